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

Bounds, checked before any work: ``padding <= R - 1`` and at most
:data:`MAX_VECTOR_VALUES` (16,777,216) values over all arrays.  A given layer
file is read by :func:`load_layer_params`, which rejects anything but
integer arrays (no silent truncation) and names the offending field.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sfc_hls.arguments import check_int
from sfc_hls.atomic_files import atomic_directory, check_output_directory
from sfc_hls.bilinear import BilinearAlgorithm
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant, random_layer_quant
from sfc_hls.golden import check_input, conv2d_int8

__all__ = [
    "MAX_SEED",
    "MAX_VECTOR_VALUES",
    "VectorSet",
    "hex_lines",
    "load_layer_params",
    "planned_values",
    "read_hex",
    "write_vectors",
]

#: Most values :func:`write_vectors` writes over all its arrays (about 120 MB of
#: hex files; a 64 -> 64 channel 56x56 layer with SFC-6(7x7,3x3) needs 3.6 M).
MAX_VECTOR_VALUES = 1 << 24
#: Largest random seed.
MAX_SEED = 2**63 - 1


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


# ---------------------------------------------------------------------- --params files
_INT_FIELDS = ("cin", "cout", "padding", "rescale_shift")
_ARRAY_DIMS = {
    "act_mult": 1,
    "act_shift": 1,
    "weights": 3,
    "rescale_mult": 2,
    "bias": 1,
    "out_mult": 1,
    "out_shift": 1,
}
#: Magnitude bound of any integer in a parameter file (int64 with headroom).
_MAX_PARAM_INT = 2**62


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_array(value: Any, field: str, ndim: int) -> np.ndarray:
    """A JSON nested list of integers as an int64 array; ValueError naming ``field``."""
    shape: list[int] = []
    level = [value]
    for depth in range(ndim):
        if not all(isinstance(v, list) for v in level):
            raise ValueError(f"{field} must be a {ndim}-dimensional array of integers")
        lengths = {len(v) for v in level}
        if len(lengths) > 1:
            raise ValueError(
                f"{field} is ragged: rows of lengths {sorted(lengths)} at depth {depth}"
            )
        shape.append(lengths.pop())
        level = [item for v in level for item in v]
    bad = next((v for v in level if not _is_int(v) or abs(v) > _MAX_PARAM_INT), None)
    if bad is not None:
        if _is_int(bad):
            raise ValueError(f"{field} holds {bad}, beyond the magnitude limit 2^62")
        raise ValueError(f"{field} must hold integers only, got {bad!r}")
    return np.array(level, dtype=np.int64).reshape(shape)


def _check_layer_record(data: Any) -> dict[str, Any]:
    """The fields of a layer-quant record, each checked for its JSON type."""
    if not isinstance(data, dict):
        raise ValueError(
            f"expected a JSON object (a layer-quant record), got {type(data).__name__}"
        )
    if not isinstance(data.get("config"), dict):
        raise ValueError(
            f"config must be a JSON object of engine fields, got {data.get('config')!r}"
        )
    for field in _INT_FIELDS:
        if field in data and not _is_int(data[field]):
            raise ValueError(f"{field} must be an integer, got {data[field]!r}")
        if field in data and abs(data[field]) > _MAX_PARAM_INT:
            raise ValueError(f"{field}={data[field]} is beyond the magnitude limit 2^62")
    if "relu" in data and not isinstance(data["relu"], bool):
        raise ValueError(f"relu must be true or false, got {data['relu']!r}")
    for field in ("input_scale", "output_scale"):
        value = data.get(field)
        if field in data and (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f"{field} must be a finite number > 0, got {value!r}")
    checked = dict(data)
    for field, ndim in _ARRAY_DIMS.items():
        if field in data:
            checked[field] = _int_array(data[field], field, ndim).tolist()
    return checked


def load_layer_params(path: str | Path) -> LayerQuant:
    """Read a :class:`~sfc_hls.datapath.LayerQuant` JSON file, strictly.

    Every array must be a rectangular nested list of JSON integers (a value
    like 34.7 is an error, never truncated), every field of its JSON type;
    ValueError names the file and the field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # incl. JSON syntax, UTF-8 and 4300-digit errors
        raise ValueError(f"cannot read the layer parameters {path}: {exc}") from None
    try:
        params = LayerQuant.from_dict(_check_layer_record(data))
        _check_padding(params.algo, params.padding)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"layer parameters {path}: {exc}") from None
    return params


# ---------------------------------------------------------------------- sizes
def planned_values(
    algo: BilinearAlgorithm, cin: int, cout: int, padding: int, batch: int, height: int, width: int
) -> int:
    """Number of values :func:`write_vectors` writes for this layer and input size."""
    out_h = height + 2 * padding - algo.kernel + 1
    out_w = width + 2 * padding - algo.kernel + 1
    tiles = math.ceil(out_h / algo.output_tile) * math.ceil(out_w / algo.output_tile)
    per_tile = cin * (algo.input_tile**2 + 2 * algo.mults)  # tiles, v, q
    per_tile += cout * (2 * algo.mults + 2 * algo.output_tile**2)  # acc, z, y, out_tiles
    return (
        batch * (cin * height * width + tiles * per_tile + cout * out_h * out_w)
        + algo.mults * (cout * cin + cout + 2)  # weights, rescale_mult, act_mult, act_shift
        + 3 * cout  # bias, out_mult, out_shift
    )


def _check_padding(algo: BilinearAlgorithm, padding: int) -> None:
    if padding > algo.kernel - 1:
        raise ValueError(
            f"padding must be in [0, {algo.kernel - 1}] (R - 1 for {algo.name}), got {padding}: "
            "more padding only adds outputs that see no input"
        )


def _check_sizes(
    algo: BilinearAlgorithm, cin: int, cout: int, padding: int, batch: int, height: int, width: int
) -> None:
    """ValueError unless the layer's padding and the whole output are within bounds."""
    kernel = algo.kernel
    _check_padding(algo, padding)
    for name, size in (("height", height), ("width", width)):
        if size + 2 * padding < kernel:
            raise ValueError(
                f"{name}={size} with padding {padding} is smaller than the kernel R={kernel}"
            )
    values = planned_values(algo, cin, cout, padding, batch, height, width)
    if values > MAX_VECTOR_VALUES:
        raise ValueError(
            f"the vectors would hold {values:,} values, more than the {MAX_VECTOR_VALUES:,} "
            f"allowed (batch={batch}, cin={cin}, cout={cout}, {height}x{width}): use fewer "
            "channels, a smaller batch or a smaller input"
        )


# ---------------------------------------------------------------------- writing
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

    With ``params`` the given quantized layer is used, otherwise a random valid
    layer is drawn from ``seed``; with ``x`` (``(N, Cin, H, W)`` integers) that
    input, otherwise a random one.  Everything is checked before any work:
    the output directory (``overwrite`` replaces only an earlier sfc-hls
    output), ``padding <= R - 1`` and at most :data:`MAX_VECTOR_VALUES` values.
    """
    check_output_directory(out_dir, overwrite=overwrite)
    check_int("seed", seed, 0, MAX_SEED)
    rng = np.random.default_rng(seed)
    if x is not None:
        if np.ndim(x) != 4:
            raise ValueError(f"x must be 4D (N, Cin, H, W), got shape {np.shape(x)}")
        batch, _, height, width = np.shape(x)
    for name, value in (("batch", batch), ("height", height), ("width", width)):
        check_int(name, value, 1)
    if params is None:
        check_int("cin", cin, 1)
        check_int("cout", cout, 1)
        config = EngineConfig(algorithm=algorithm, pco=1, scale_mode=scale_mode,
                              cin_max=cin, cout_max=cout)  # fmt: skip
        padding = config.algo.kernel // 2 if padding is None else padding
        check_int("padding", padding, 0)
        _check_sizes(config.algo, cin, cout, padding, batch, height, width)
        params = random_layer_quant(config, cin, cout, rng, padding=padding, relu=relu)
    else:
        _check_sizes(params.algo, params.cin, params.cout, params.padding, batch, height, width)
    if x is None:
        lo, hi = -(1 << (params.config.in_bits - 1)), 1 << (params.config.in_bits - 1)
        x = rng.integers(lo, hi, size=(batch, params.cin, height, width))
    x = check_input(x, params)
    out, stages = conv2d_int8(x, params, return_stages=True)
    manifest = _manifest(params, x, stages, seed)
    arrays = _stage_arrays(params, x, out, stages)
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
        # Any: mypy matches a **dict of arrays against savez's allow_pickle: bool too.
        npz: dict[str, Any] = {k: np.asarray(v[0], dtype=np.int64) for k, v in arrays.items()}
        np.savez(tmp / "vectors.npz", **npz)
        (tmp / "params.json").write_text(json.dumps(params.to_dict()))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return VectorSet(Path(out_dir), manifest)


def _stage_arrays(
    params: LayerQuant, x: np.ndarray, out: np.ndarray, st: Any
) -> dict[str, tuple[np.ndarray, int, str]]:
    """name -> (array in file order, bits, order description) of every written array."""
    cfg = params.config
    wd = params.widths
    shift_bits = max(int(wd.out_product_bits).bit_length(), 1) + 1
    return {
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


def _manifest(params: LayerQuant, x: np.ndarray, st: Any, seed: int) -> dict[str, Any]:
    algo = params.algo
    return {
        "format": "sfc-hls.vectors/1",
        "seed": seed,
        "config": params.config.to_dict(),
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
        "widths": params.widths.as_dict(),
        "files": {},
    }
