"""``sfc-hls vectors ... -o DIR``: golden-model test vectors of one layer (:mod:`sfc_hls.vectors`)."""

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
        "--algo", default="sfc6-7x7-3x3", help="algorithm name (default %(default)s)"
    )
    parser.add_argument("--cin", type=int, default=4, help="input channels (default 4)")
    parser.add_argument("--cout", type=int, default=4, help="output channels (default 4)")
    parser.add_argument("--h", type=int, default=14, help="input height (default 14)")
    parser.add_argument("--w", type=int, default=14, help="input width (default 14)")
    parser.add_argument("--batch", type=int, default=1, help="images (default 1)")
    parser.add_argument("--seed", type=int, default=0, help=f"random seed in [0, {MAX_SEED}]")
    parser.add_argument("--scale-mode", choices=SCALE_MODES, default="pow2")
    parser.add_argument("--relu", action="store_true")
    parser.add_argument("--padding", type=int, default=None, help="0 .. R - 1 (default: R // 2)")
    parser.add_argument(
        "--params", type=Path, help="use this LayerQuant JSON instead of a random layer"
    )
    parser.add_argument("--input", type=Path, help="use this .npy int8 input (N, Cin, H, W)")
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


def _check_options(args: argparse.Namespace) -> None:
    """ValueError/TypeError naming the option, before anything is read or computed."""
    for name in ("cin", "cout", "h", "w", "batch"):
        check_int(f"--{name}", getattr(args, name), 1)
    check_int("--seed", args.seed, 0, MAX_SEED)
    if args.padding is not None:
        check_int("--padding", args.padding, 0)


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
    check_output_directory(args.output, overwrite=args.force)
    params = load_layer_params(args.params) if args.params else None
    x = _read_input(args.input) if args.input else None
    result = write_vectors(
        args.output,
        algorithm=args.algo,
        cin=args.cin,
        cout=args.cout,
        height=args.h,
        width=args.w,
        seed=args.seed,
        batch=args.batch,
        scale_mode=args.scale_mode,
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
