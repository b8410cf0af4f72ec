"""Test vectors for any simulator: every stage of one layer as `$readmemh` files.

``sfc-hls vectors --algo sfc6-7x7-3x3 --cin 8 --cout 4 --h 14 --w 14 --seed 1 -o DIR``
writes into ``DIR`` (atomically: the directory appears complete or not at all):

* ``manifest.json`` -- config, layer, widths of every stage, shapes, the
  element order of every file, sha256 of every file;
* ``params.json`` -- the layer's :class:`~sfc_hls.datapath.LayerQuant`;
* ``vectors.npz`` -- every array below, as int64;
* one ``<name>.hex`` per array: one two's-complement value per line, zero
  padded to ``ceil(bits / 4)`` hex digits, readable with ``$readmemh``.

Element orders follow the engine's stream order (docs/datapath.md): tiles
row-major, input channels innermost for input-side stages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sfc_hls.atomic_files import atomic_directory
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant, random_layer_quant
from sfc_hls.golden import conv2d_int8

__all__ = ["VectorSet", "write_vectors", "hex_lines", "read_hex"]


def hex_lines(values: np.ndarray, bits: int) -> str:
    """Two's-complement hex, one value per line, ``ceil(bits/4)`` digits."""
    values = np.asarray(values).reshape(-1)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if values.size and (min(int(v) for v in values) < lo or max(int(v) for v in values) > hi):
        raise ValueError(f"values do not fit {bits} signed bits")
    digits = (bits + 3) // 4
    mask = (1 << bits) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def read_hex(path: Path, bits: int) -> np.ndarray:
    """Inverse of :func:`hex_lines` (sign-extends ``bits``-bit values)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            v = int(line, 16)
        except ValueError:
            raise ValueError(f"{path}:{n}: not a hex value: {line!r}") from None
        if v >> bits:
            raise ValueError(f"{path}:{n}: {line} does not fit {bits} bits")
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return np.array(out, dtype=np.int64)


@dataclass(frozen=True)
class VectorSet:
    """What :func:`write_vectors` wrote: the directory and its manifest."""

    path: Path
    manifest: dict


def _tile_major(a: np.ndarray) -> np.ndarray:
    """(N, C, TH, TW, K) -> (N, TH, TW, C, K): the engine's stream order."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1, 4))


def write_vectors(
    out_dir: str | Path,
    *,
    algorithm: str = "sfc6-7x7-3x3",
    cin: int = 4,
    cout: int = 4,
    height: int = 14,
    width: int = 14,
    seed: int = 0,
    batch: int = 1,
    scale_mode: str = "pow2",
    relu: bool = False,
    padding: int | None = None,
    params: LayerQuant | None = None,
    x: np.ndarray | None = None,
    overwrite: bool = False,
) -> VectorSet:
    """Generate (or take) a layer and its input, run the golden model, write every stage.

    With ``params`` (and optionally ``x``) the given quantized layer is used;
    otherwise a random valid layer is drawn from ``seed``.
    """
    rng = np.random.default_rng(seed)
    if params is None:
        for name, v in (("cin", cin), ("cout", cout), ("batch", batch)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        config = EngineConfig(
            algorithm=algorithm, pco=1, scale_mode=scale_mode, cin_max=cin, cout_max=cout
        )
        if padding is None:
            padding = config.algo.kernel // 2
        params = random_layer_quant(config, cin, cout, rng, padding=padding, relu=relu)
    if x is None:
        for name, v in (("h", height), ("w", width)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        lo, hi = -(1 << (params.config.in_bits - 1)), 1 << (params.config.in_bits - 1)
        x = rng.integers(lo, hi, size=(batch, params.cin, height, width))
    out, st = conv2d_int8(x, params, return_stages=True)
    cfg = params.config
    wd = params.widths
    shift_bits = max(int(wd.out_product_bits).bit_length(), 1) + 1
    arrays = {
        # name: (array in file order, bits, order description)
        "input": (x, cfg.in_bits, "n, ci, row, col"),
        "tiles": (
            _tile_major(st.tiles),
            cfg.in_bits,
            "n, tile_row, tile_col, ci, tile pixel (row-major L*L)",
        ),
        "v": (_tile_major(st.v), wd.v_bits, "n, tile_row, tile_col, ci, position j"),
        "q": (_tile_major(st.q), cfg.act_bits, "n, tile_row, tile_col, ci, position j"),
        "weights": (params.weights, cfg.weight_bits, "position j, co, ci"),
        "acc": (_tile_major(st.acc), wd.acc_bits, "n, tile_row, tile_col, co, position j"),
        "z": (_tile_major(st.z), cfg.z_bits, "n, tile_row, tile_col, co, position j"),
        "y": (
            _tile_major(st.y),
            wd.y_bits,
            "n, tile_row, tile_col, co, output pixel (row-major M*M)",
        ),
        "out_tiles": (
            _tile_major(st.out_tiles),
            cfg.out_bits,
            "n, tile_row, tile_col, co, output pixel",
        ),
        "output": (out, cfg.out_bits, "n, co, row, col"),
        "act_mult": (params.act_mult, cfg.act_mult_bits + 1, "position j (unsigned)"),
        "act_shift": (params.act_shift, shift_bits, "position j"),
        "rescale_mult": (params.rescale_mult, cfg.rescale_bits + 1, "position j, co (unsigned)"),
        "bias": (params.bias, wd.biased_bits, "co"),
        "out_mult": (params.out_mult, cfg.out_mult_bits + 1, "co (unsigned)"),
        "out_shift": (params.out_shift, shift_bits, "co"),
    }
    algo = params.algo
    manifest: dict = {
        "format": "sfc-hls.vectors/1",
        "seed": seed,
        "config": cfg.to_dict(),
        "layer": {
            "batch": int(x.shape[0]),
            "cin": params.cin,
            "cout": params.cout,
            "height": int(x.shape[2]),
            "width": int(x.shape[3]),
            "padding": params.padding,
            "relu": params.relu,
            "rescale_shift": params.rescale_shift,
            "tiles": [int(st.tiles.shape[2]), int(st.tiles.shape[3])],
        },
        "algorithm": {
            "name": algo.name,
            "mults": algo.mults,
            "input_tile": algo.input_tile,
            "output_tile": algo.output_tile,
            "kernel": algo.kernel,
        },
        "widths": wd.as_dict(),
        "files": {},
    }
    with atomic_directory(Path(out_dir), overwrite=overwrite) as tmp:
        for name, (arr, bits, order) in arrays.items():
            text = hex_lines(arr, bits)
            (tmp / f"{name}.hex").write_text(text)
            manifest["files"][f"{name}.hex"] = {
                "shape": list(np.shape(arr)),
                "bits": bits,
                "order": order,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
        np.savez(
            tmp / "vectors.npz", **{k: np.asarray(v[0], dtype=np.int64) for k, v in arrays.items()}
        )
        (tmp / "params.json").write_text(json.dumps(params.to_dict()))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return VectorSet(Path(out_dir), manifest)
