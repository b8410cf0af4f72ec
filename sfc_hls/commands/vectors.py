"""``sfc-hls vectors ... -o DIR``: golden-model test vectors of one layer (:mod:`sfc_hls.vectors`).

With ``--engine ENG`` (the output of ``sfc-hls generate -o ENG``) it writes the
beats on that engine's ports instead (:mod:`sfc_hls.sim.engine_vectors`), for a
plain Verilog testbench (``replay_tb.sv``, written alongside).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sfc_hls.arguments import check_int
from sfc_hls.atomic_files import check_output_directory
from sfc_hls.config import SCALE_MODES
from sfc_hls.vectors import MAX_SEED, MAX_VECTOR_VALUES, load_layer_params, write_vectors

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls vectors``."""
    parser.add_argument(
        "--algo", default=None, help=f"algorithm name (default {DEFAULT_ALGO}; --engine: its own)"
    )
    parser.add_argument("--cin", type=int, default=4, help="input channels (default 4)")
    parser.add_argument("--cout", type=int, default=4, help="output channels (default 4)")
    parser.add_argument("--h", type=int, default=14, help="input height (default 14)")
    parser.add_argument("--w", type=int, default=14, help="input width (default 14)")
    parser.add_argument("--batch", type=int, default=1, help="images (default 1)")
    parser.add_argument("--seed", type=int, default=0, help=f"random seed in [0, {MAX_SEED}]")
    parser.add_argument("--scale-mode", choices=SCALE_MODES, default=None,
                        help="default pow2; --engine: its own")  # fmt: skip
    parser.add_argument("--relu", action="store_true")
    parser.add_argument("--padding", type=int, default=None, help="0 .. R - 1 (default: R // 2)")
    parser.add_argument(
        "--params", type=Path, help="use this LayerQuant JSON instead of a random layer"
    )
    parser.add_argument("--input", type=Path, help="use this .npy int8 input (N, Cin, H, W)")
    engine = parser.add_argument_group("port-level vectors of a generated engine")
    engine.add_argument("--engine", type=Path, metavar="DIR",
                        help="write the beats of every port of the engine sfc-hls generate "
                        "wrote to DIR (input streams, register writes, expected o_out beats "
                        "and their mask) and a SystemVerilog testbench replaying them")  # fmt: skip
    engine.add_argument("--mode", choices=("fast", "direct"), help="layer mode (default fast)")
    engine.add_argument(
        "--kernel", type=int, help="direct-mode kernel K (default: the algorithm's)"
    )
    engine.add_argument("--stride", type=int, help="stride (default 1)")
    engine.add_argument("--replicas", type=int, help="direct-mode replicas (default: chosen)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output directory (created atomically)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output directory written by sfc-hls (nothing else)",
    )
    parser.epilog = (
        f"At most {MAX_VECTOR_VALUES:,} values are written over all files; padding is at most "
        "R - 1."
    )


DEFAULT_ALGO = "sfc6-7x7-3x3"
_ENGINE_ONLY = ("mode", "kernel", "stride", "replicas")


def _check_options(args: argparse.Namespace) -> None:
    """ValueError/TypeError naming the option, before anything is read or computed."""
    for name in ("cin", "cout", "h", "w", "batch"):
        check_int(f"--{name}", getattr(args, name), 1)
    check_int("--seed", args.seed, 0, MAX_SEED)
    if args.padding is not None:
        check_int("--padding", args.padding, 0)
    for name in ("kernel", "stride", "replicas"):
        if getattr(args, name) is not None:
            check_int(f"--{name}", getattr(args, name), 1)
    if args.engine is None:
        given = [f"--{n}" for n in _ENGINE_ONLY if getattr(args, n) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --engine")
    elif args.kernel is not None and args.mode != "direct":
        raise ValueError("--kernel applies to direct-mode layers: add --mode direct")


def _read_input(path: Path) -> np.ndarray:
    """The ``--input`` array, memory-mapped so that its size is checked before it is read."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"cannot read --input {path}: {exc}") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu":
        raise ValueError(f"--input {path} must hold an integer array (N, Cin, H, W)")
    if x.ndim != 4:
        raise ValueError(f"--input {path} must be 4D (N, Cin, H, W), got shape {x.shape}")
    return x


def run(args: argparse.Namespace) -> int:
    """Write the vectors of the layer the options describe."""
    _check_options(args)
    if args.engine is not None:
        return _run_engine(args)
    check_output_directory(args.output, overwrite=args.force)
    params = load_layer_params(args.params) if args.params else None
    x = _read_input(args.input) if args.input else None
    result = write_vectors(
        args.output,
        algorithm=args.algo or DEFAULT_ALGO,
        cin=args.cin,
        cout=args.cout,
        height=args.h,
        width=args.w,
        seed=args.seed,
        batch=args.batch,
        scale_mode=args.scale_mode or "pow2",
        relu=args.relu,
        padding=args.padding,
        params=params,
        x=x,
        overwrite=args.force,
    )
    layer = result.manifest["layer"]
    print(
        f"wrote {len(result.manifest['files'])} hex files, vectors.npz, params.json and "
        f"manifest.json to {result.path} ({result.manifest['algorithm']['name']}, "
        f"cin={layer['cin']} cout={layer['cout']} {layer['height']}x{layer['width']}, "
        f"{layer['tiles'][0]}x{layer['tiles'][1]} tiles)"
    )
    return 0


def _run_engine(args: argparse.Namespace) -> int:
    """``--engine DIR``: the port-level vectors of the layer on that engine."""
    from sfc_hls.sim.engine_vectors import LayerSpec, load_engine, write_engine_vectors

    engine = load_engine(args.engine)
    for option, value, own in (
        ("--algo", args.algo, engine.config.algorithm),
        ("--scale-mode", args.scale_mode, engine.config.scale_mode),
    ):
        if value is not None and value != own:
            raise ValueError(f"{option} {value} differs from the engine's {own} (--engine "
                             f"{args.engine}): leave it out")  # fmt: skip
    check_output_directory(args.output, overwrite=args.force)
    params = load_layer_params(args.params) if args.params else None
    x = _read_input(args.input) if args.input else None
    spec = LayerSpec(cin=args.cin, cout=args.cout, height=args.h, width=args.w,
                     batch=args.batch, seed=args.seed, relu=args.relu, padding=args.padding,
                     mode=args.mode or "fast", kernel=args.kernel, stride=args.stride or 1,
                     replicas=args.replicas)  # fmt: skip
    result = write_engine_vectors(args.engine, args.output, spec, params=params, x=x,
                                  overwrite=args.force)  # fmt: skip
    man = result.manifest
    layer, beats = man["layer"], man["beats"]
    print(
        f"wrote port-level vectors of {man['engine']['toplevel']} to {result.path} "
        f"({layer['mode']}, cin={layer['cin']} cout={layer['cout']} "
        f"{layer['height']}x{layer['width']} stride {layer['stride']}, {layer['groups']} groups "
        f"x {layer['tiles']} tiles; {beats['o_out']} o_out beats)\nreplay: {man['replay']}"
    )
    return 0
