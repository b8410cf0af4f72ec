"""Host side of the conv engine's streams: layer -> beats, output beats -> feature map.

One definition of the engine protocol (:mod:`sfc_hls.hw.register_map`) in
Python, used by the cocotb testbench and the host driver's RTL backend.
Payloads are packed as the raw integers that appear on the Verilog ports,
bit for bit in Amaranth's layout order (element 0 / first field at bit 0).
:func:`pack` / :func:`unpack` are vectorized with NumPy so whole layers
encode in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.hw.register_map import layer_register_writes
from sfc_hls.reference import check_stride, extract_tiles, output_size

__all__ = ["EngineStreams", "LayerBeats", "pack", "unpack", "flat_fields"]


def flat_fields(layout) -> list[tuple[str, int, int, bool, int]]:
    """Leaf fields of a layout: ``(path, offset, width, signed, count)``; arrays of scalars are one row."""
    out: list[tuple[str, int, int, bool, int]] = []

    def uniform(shape) -> tuple[int, Shape] | None:
        """(element count, scalar shape) of nested arrays of one scalar shape."""
        if isinstance(shape, data.ArrayLayout):
            inner = uniform(shape.elem_shape)
            return None if inner is None else (shape.length * inner[0], inner[1])
        if isinstance(shape, data.Layout):
            return None
        return 1, Shape.cast(shape)

    def walk(shape, prefix: str, offset: int) -> None:
        if isinstance(shape, data.ArrayLayout):
            flat = uniform(shape)
            if flat is not None:
                count, s = flat
                out.append((prefix, offset, s.width, s.signed, count))
                return
            elem = shape.elem_shape
            size = data.Layout.cast(elem).size
            for i in range(shape.length):
                walk(elem, f"{prefix}[{i}]", offset + i * size)
            return
        if isinstance(shape, data.StructLayout):
            for name, field in shape:
                walk(field.shape, f"{prefix}.{name}" if prefix else name, offset + field.offset)
            return
        s = Shape.cast(shape)
        out.append((prefix, offset, s.width, s.signed, 1))

    walk(layout, "", 0)
    return out


def _to_bits(values: np.ndarray, width: int) -> np.ndarray:
    """(k,) ints -> (k, width) bits, two's complement, LSB first."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    return ((v[:, None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)


def pack(layout, fields: dict[str, np.ndarray]) -> list[int]:
    """Pack a batch of payloads: ``fields[path]`` has shape (batch, count) (or (batch,)).

    Returns one raw integer per payload.  Missing fields are zero.  Values
    must fit their field (checked).
    """
    leaves = flat_fields(layout)
    size = data.Layout.cast(layout).size
    batch = None
    for arr in fields.values():
        batch = np.asarray(arr).shape[0]
        break
    if batch is None:
        return []
    bits = np.zeros((batch, size), dtype=np.uint8)
    known = {leaf[0] for leaf in leaves}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"unknown payload fields {sorted(unknown)}; layout has {sorted(known)}")
    for path, offset, width, is_signed, count in leaves:
        if path not in fields:
            continue
        arr = np.asarray(fields[path], dtype=np.int64).reshape(batch, count)
        lo, hi = (
            (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
        )
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"field {path!r} values must be in [{lo}, {hi}]")
        bits[:, offset : offset + width * count] = _to_bits(arr, width).reshape(batch, -1)
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def unpack(layout, payloads: list[int]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack`: ``{path: (batch, count) int64}``."""
    size = data.Layout.cast(layout).size
    nbytes = (size + 7) // 8
    raw = np.frombuffer(
        b"".join(int(p).to_bytes(nbytes, "little") for p in payloads), dtype=np.uint8
    )
    bits = np.unpackbits(raw.reshape(len(payloads), nbytes), axis=1, bitorder="little")
    out = {}
    for path, offset, width, is_signed, count in flat_fields(layout):
        chunk = bits[:, offset : offset + width * count].reshape(len(payloads), count, width)
        vals = (chunk.astype(np.int64) << np.arange(width, dtype=np.int64)).sum(axis=2)
        if is_signed:
            vals = np.where(vals >> (width - 1), vals - (1 << width), vals)
        out[path] = vals
    return out


@dataclass(frozen=True)
class LayerBeats:
    """Everything the host sends for one layer, in protocol order per stream."""

    cfg: list[int]
    chan: list[int]  # all groups, in order
    weight: list[int]
    act: list[int]
    groups: int
    tiles: int  # per group (all images)
    expected_outputs: int  # o_out beats


class EngineStreams:
    """Encoder/decoder of one engine's streams (layouts from its :class:`EngineInterface`).

    Takes the engine's :class:`~sfc_hls.config.EngineConfig` (or its interface).
    """

    def __init__(self, engine: EngineConfig | EngineInterface) -> None:
        if isinstance(engine, EngineConfig):
            engine = EngineInterface.from_config(engine)
        if not isinstance(engine, EngineInterface):
            raise TypeError(
                f"engine must be an EngineConfig or EngineInterface, got {type(engine).__name__}"
            )
        self.interface = engine
        self.layouts = engine.layouts
        self.config = engine.config
        self.algo = engine.algo

    def check_layer(self, params: LayerQuant) -> None:
        """ValueError when ``params`` does not run on this engine (names the field)."""
        self.config.check_layer(params)

    def groups(self, cout: int) -> int:
        return math.ceil(cout / self.config.pco)

    def layer_beats(self, params: LayerQuant, x: np.ndarray, *, stride: int = 1) -> LayerBeats:
        """Beats for ``x`` (N, Cin, H, W) int8: the N images' tiles run as one layer.

        ``stride > 1`` (1x1-output-tile algorithms only): the host sends one
        input patch per output pixel, ``stride`` pixels apart; the engine
        itself is unchanged.
        """
        self.check_layer(params)
        lay = self.layouts
        pco = self.config.pco
        tiles_arr, _, grid = extract_tiles(
            np.asarray(x, dtype=np.int64), self.algo, params.padding, stride
        )
        n = x.shape[0]
        tiles = n * grid[0] * grid[1]
        max_tiles = self.interface.limits["tiles"]
        if tiles > max_tiles:
            raise ValueError(f"layer has {tiles} tiles; the engine allows {max_tiles}")
        # act beats: (n, ty, tx, ci, L*L), ci innermost
        acts = tiles_arr.transpose(0, 2, 3, 1, 4).reshape(-1, self.algo.input_tile**2)
        act_beats = pack(lay["act"], {"": acts})
        groups = self.groups(params.cout)
        chan, weight, act = [], [], []
        cout_pad = groups * pco
        w = np.zeros((self.algo.mults, cout_pad, params.cin), dtype=np.int64)
        w[:, : params.cout] = params.weights
        rm = np.zeros((self.algo.mults, cout_pad), dtype=np.int64)
        rm[:, : params.cout] = params.rescale_mult

        def pad(v):
            out = np.zeros(cout_pad, dtype=np.int64)
            out[: params.cout] = v
            return out

        bias, omult, oshift = pad(params.bias), pad(params.out_mult), pad(params.out_shift)
        for g in range(groups):
            lanes = slice(g * pco, (g + 1) * pco)
            chan += pack(
                lay["chan"],
                {
                    "rescale_mult": rm[:, lanes].T,
                    "params.bias": bias[lanes],
                    "params.out_mult": omult[lanes],
                    "params.out_shift": oshift[lanes],
                },
            )
            # rows ci: weights[lane][j] -> (cin, pco * m), lane-major
            rows = w[:, lanes, :].transpose(2, 1, 0).reshape(params.cin, -1)
            weight += pack(lay["weight"], {"": rows})
            act += act_beats
        valid = [min(pco, params.cout - g * pco) for g in range(groups)]
        return LayerBeats(
            cfg=pack(
                lay["cfg"],
                {
                    "addr": np.array([a for a, _ in layer_register_writes(params, tiles)]),
                    "data": np.array([d for _, d in layer_register_writes(params, tiles)]),
                },
            ),
            chan=chan,
            weight=weight,
            act=act,
            groups=groups,
            tiles=tiles,
            expected_outputs=tiles * sum(valid),
        )

    def decode_outputs(self, payloads: list[int]) -> dict[str, np.ndarray]:
        """``{data: (k, M*M), channel: (k,), tile: (k,), last: (k,)}``."""
        f = unpack(self.layouts["out"], payloads)
        return {
            "data": f["data"],
            "channel": f["meta.channel"][:, 0],
            "tile": f["meta.tile"][:, 0],
            "last": f["meta.last"][:, 0],
        }

    def assemble(
        self,
        payloads: list[int],
        params: LayerQuant,
        batch: int,
        height: int,
        width: int,
        *,
        stride: int = 1,
    ) -> np.ndarray:
        """Output beats of one layer -> (N, Cout, Ho, Wo); checks the framing."""
        check_stride(self.algo, stride)
        f = self.decode_outputs(payloads)
        m_out = self.algo.output_tile
        ho = output_size(height, self.algo.kernel, params.padding, stride)
        wo = output_size(width, self.algo.kernel, params.padding, stride)
        th, tw = self.algo.tiles(ho, 1), self.algo.tiles(wo, 1)
        tiles = batch * th * tw
        if len(payloads) != tiles * params.cout:
            raise ValueError(f"got {len(payloads)} output beats, expected {tiles * params.cout}")
        out = np.zeros((batch, params.cout, th * m_out, tw * m_out), dtype=np.int64)
        seen = np.zeros((params.cout, tiles), dtype=bool)
        for k in range(len(payloads)):
            co, t = int(f["channel"][k]), int(f["tile"][k])
            if co >= params.cout or t >= tiles or seen[co, t]:
                raise ValueError(f"output beat {k}: unexpected channel {co} / tile {t}")
            seen[co, t] = True
            n, rem = divmod(t, th * tw)
            ty, tx = divmod(rem, tw)
            out[n, co, ty * m_out : (ty + 1) * m_out, tx * m_out : (tx + 1) * m_out] = f["data"][
                k
            ].reshape(m_out, m_out)
        if not f["last"][-1] or f["last"][:-1].any():
            raise ValueError("the 'last' flag must be set on the final output beat only")
        return out[:, :, :ho, :wo]
