"""Host side of the conv engine's streams: layer -> beats, output beats -> feature map.

One definition of the engine protocol (:mod:`sfc_hls.hw.register_map`) in
Python, used by the cocotb testbench and the host driver's RTL backend.
Payloads are packed as the raw integers that appear on the Verilog ports,
bit for bit in Amaranth's layout order (element 0 / first field at bit 0).
:func:`pack` / :func:`unpack` are vectorized with NumPy so whole layers
encode in milliseconds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.hw.register_map import layer_register_writes
from sfc_hls.hw.weight_transform import spatial_group_beats
from sfc_hls.map_input import map_beats
from sfc_hls.reference import check_stride, extract_tiles, output_size
from sfc_hls.schedule import DirectSchedule, direct_schedule
from sfc_hls.weight_transform import shift_window

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
    act: list[int]  # empty when the layer takes its input map on i_map
    groups: int
    tiles: int  # per group (all images)
    expected_outputs: int  # o_out beats
    schedule: DirectSchedule | None = None  # direct mode: replicas, pixels per tile
    map: list[int] = field(default_factory=list)  # i_map beats (map input), else empty
    map_bytes: int = 0  # the map's own bytes (N Cin H W pixels), what a DMA moves for i_map
    spatial_weights: bool = False  # i_weight carries spatial weights (a weight-transform engine)
    act_replay: bool = False  # act holds one group's beats, replayed on chip (a replay engine)
    tile_offset: int = 0  # a chunk of a layer (EngineStreams.layer_chunks): its first tile

    def inputs(self) -> dict[str, list[int]]:
        """Beats per input port (``i_map`` only when the layer uses it)."""
        ports = {"i_cfg": self.cfg, "i_chan": self.chan, "i_weight": self.weight,
                 "i_act": self.act}  # fmt: skip
        return {**ports, "i_map": self.map} if self.map else ports


class EngineStreams:
    """Encoder/decoder of one engine's streams (layouts from its :class:`EngineInterface`).

    Takes the engine's :class:`~sfc_hls.config.EngineConfig` (or its interface).
    Beat orders (docs/datapath.md, docs/integration.md): per output-channel
    group, ``i_chan`` has one beat per (lane, block), ``i_weight`` the group's
    rows, ``i_act`` ``TILES * reduction`` beats (tile-major; fast: input channel
    innermost; direct: tap-major, input channel innermost).
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

    def groups(self, cout: int, replicas: int = 1) -> int:
        return math.ceil(cout / (self.config.pco * replicas))

    def schedule(self, params: LayerQuant, x_shape, stride: int = 1, replicas: int | None = None):
        """The direct-mode schedule of ``params`` on an input of ``x_shape`` (N, Cin, H, W)."""
        n, _, h, w = x_shape
        ho = output_size(h, params.kernel, params.padding, stride)
        wo = output_size(w, params.kernel, params.padding, stride)
        iface = self.interface
        return direct_schedule(positions=iface.positions, width=iface.width, lanes=iface.lanes,
                               cout=params.cout, pixels=n * ho * wo, replicas=replicas,
                               max_tiles=iface.replay_tiles(params.kernel**2 * params.cin))  # fmt: skip

    def layer_beats(
        self,
        params: LayerQuant,
        x: np.ndarray,
        *,
        stride: int = 1,
        replicas: int | None = None,
        map_input: bool | None = None,
        spatial_weights: bool | None = None,
        act_replay: bool | None = None,
    ) -> LayerBeats:
        """Beats for ``x`` (N, Cin, H, W) int8: the N images run as one layer.

        Fast mode: ``stride > 1`` only for 1x1-output-tile algorithms (one
        input patch per output pixel).  Direct mode: any stride; ``replicas``
        as for :func:`~sfc_hls.schedule.direct_schedule` (default: chosen).
        ``map_input``: the input map on ``i_map`` (:mod:`sfc_hls.map_input`)
        instead of tiles on ``i_act``; ``spatial_weights``: spatial weights and
        shifts on ``i_weight`` (:mod:`sfc_hls.weight_transform`) instead of
        transform-domain rows; ``act_replay``: the ``i_act`` beats once, replayed on
        chip for every further group; default for all three: wherever they can
        (:meth:`map_input_reason`, :meth:`spatial_weights_reason`,
        :meth:`act_replay_reason` are ``None``; the map input before the replay).
        """
        self.check_layer(params)
        x = np.asarray(x, dtype=np.int64)
        spatial_reason = self.spatial_weights_reason(params)
        if spatial_weights and spatial_reason is not None:
            raise ValueError(f"spatial_weights: {spatial_reason}")
        if params.mode == "direct":
            if map_input:
                raise ValueError(f"map_input: {self.map_input_reason(params, x.shape, stride)}")
            beats = self._direct_beats(params, x, stride, replicas)
        else:
            reason = self.map_input_reason(params, x.shape, stride)
            if map_input and reason is not None:
                raise ValueError(f"map_input: {reason}")
            beats = self._fast_beats(
                params,
                x,
                stride,
                map_input=reason is None and map_input is not False,
                spatial_weights=spatial_reason is None and spatial_weights is not False,
            )
        return self._with_replay(beats, params, act_replay)

    def layer_chunks(
        self,
        params: LayerQuant,
        x: np.ndarray,
        *,
        stride: int = 1,
        replicas: int | None = None,
        map_input: bool | None = None,
        spatial_weights: bool | None = None,
        act_replay: bool | None = None,
    ) -> list[LayerBeats]:
        """The layer as engine layers: ``[layer_beats(...)]``, or, when the replay buffer
        cannot hold a group's ``i_act`` beats (a layer without map input; not with
        ``act_replay=False``), chunks of whole output tiles that it can hold
        (:meth:`~sfc_hls.hw.interface.EngineInterface.replay_chunks`), each a layer of its
        own (TILES its tiles, ACT_REPLAY set, parameters and weights sent again) whose
        outputs :meth:`assemble_chunks` places at :attr:`LayerBeats.tile_offset`."""
        beats = self.layer_beats(params, x, stride=stride, replicas=replicas,
                                 map_input=map_input, spatial_weights=spatial_weights,
                                 act_replay=False if act_replay is False else None)  # fmt: skip
        if act_replay is False or beats.act_replay or beats.map:
            return [beats]
        reduction = len(beats.act) // (beats.groups * beats.tiles)
        tiles = self.interface.replay_chunks(beats.tiles, reduction)
        if not tiles:
            return [beats]
        group = beats.act[: beats.tiles * reduction]
        outputs = beats.expected_outputs // beats.tiles
        r = beats.schedule.replicas if beats.schedule else 1
        chunks = []
        for t0, n in zip(np.cumsum((0, *tiles[:-1])).tolist(), tiles, strict=True):
            cfg = self._cfg_beats(params, n, r, spatial=beats.spatial_weights, replay=True)
            chunks.append(dataclasses.replace(
                beats, cfg=cfg, act=group[t0 * reduction : (t0 + n) * reduction], tiles=n,
                expected_outputs=outputs * n, act_replay=True, tile_offset=t0))  # fmt: skip
        return chunks

    def act_replay_reason(self, beats: LayerBeats) -> str | None:
        """Why a layer encoded as ``beats`` cannot replay its ``i_act`` beats (``None``: it can)."""
        depth = self.config.replay_beats
        if not depth:
            return "the engine has no activation replay buffer (replay_beats=0)"
        if beats.map:
            return "the layer takes its input map on i_map"
        per_group = len(beats.act) // beats.groups
        if per_group > depth:
            return f"a group takes {per_group} i_act beats; the replay buffer holds {depth}"
        return None

    def _with_replay(self, beats: LayerBeats, params: LayerQuant, act_replay) -> LayerBeats:
        """``beats`` with one group's ``i_act`` beats and ACT_REPLAY set, where it can/should."""
        reason = self.act_replay_reason(beats)
        if act_replay and reason is not None:
            raise ValueError(f"act_replay: {reason}")
        if reason is not None or act_replay is False:
            return beats
        replicas = beats.schedule.replicas if beats.schedule else 1
        cfg = self._cfg_beats(params, beats.tiles, replicas, spatial=beats.spatial_weights,
                              replay=True)  # fmt: skip
        per_group = len(beats.act) // beats.groups
        return dataclasses.replace(beats, cfg=cfg, act=beats.act[:per_group], act_replay=True)

    def spatial_weights_reason(self, params: LayerQuant) -> str | None:
        """Why the layer cannot take spatial weights on ``i_weight`` (``None``: it can)."""
        if not self.config.weight_transform:
            return "the engine has no weight transform (weight_transform=False)"
        if params.mode != "fast":
            return f"only fast-mode layers take spatial weights (mode {params.mode})"
        if not params.has_spatial_weights:
            return "the layer has no spatial weights (quantize with weight_source='spatial')"
        return None

    def map_input_reason(self, params: LayerQuant, x_shape, stride: int = 1) -> str | None:
        """Why the layer cannot take its input map on ``i_map`` (``None``: it can)."""
        cfg = self.config
        if not cfg.map_kib:
            return "the engine has no feature-map buffer (map_kib=0)"
        if params.mode != "fast" or stride != 1:
            return (
                f"only stride-1 fast-mode layers take a map (mode {params.mode}, stride {stride})"
            )
        n, cin, h, w = x_shape
        limits = self.interface.map_limits
        for name, value in (
            ("images", n),
            ("height", h),
            ("width", w),
            ("padding", params.padding),
        ):
            if value > limits[name]:
                return f"{name}={value} exceeds the map registers' limit {limits[name]}"
        words = cfg.map_words(n, cin, h, w)
        if words > cfg.map_depth:
            return (f"the {n}x{cin}x{h}x{w} map takes {words} words per memory; the "
                    f"{cfg.map_kib} KiB buffer holds {cfg.map_depth}")  # fmt: skip
        return None

    # ------------------------------------------------------------------ fast mode
    def _fast_beats(
        self,
        params: LayerQuant,
        x: np.ndarray,
        stride: int,
        *,
        map_input: bool = False,
        spatial_weights: bool = False,
    ) -> LayerBeats:
        iface, lay, pco = self.interface, self.layouts, self.config.pco
        tiles_arr, _, grid = extract_tiles(x, self.algo, params.padding, stride)
        tiles = x.shape[0] * grid[0] * grid[1]
        self._check_tiles(tiles)
        if map_input:
            act_beats: list[int] = []
            beats = map_beats(x, self.algo.input_tile, self.config.map_pairs)
            map_beats_ = pack(lay["map"], {"": beats})
        else:
            # act beats: (n, ty, tx, ci, L*L), ci innermost, padded to the beat's width
            acts = tiles_arr.transpose(0, 2, 3, 1, 4).reshape(-1, self.algo.input_tile**2)
            act_beats = pack(lay["act"], {"": _pad_columns(acts, lay["act"].length)})
            map_beats_ = []
        groups = self.groups(params.cout)
        cout_pad = groups * pco
        w = np.zeros((iface.positions, cout_pad, params.cin), dtype=np.int64)
        w[:, : params.cout] = params.weights
        rm = np.zeros((iface.positions, cout_pad), dtype=np.int64)
        rm[:, : params.cout] = params.rescale_mult
        chan, weight = [], []
        for g in range(groups):
            channels = np.arange(g * pco, (g + 1) * pco)
            # (lane, block): rescale multipliers of the block's positions, the lane's parameters
            mults = rm[:, channels].T.reshape(pco * iface.blocks, iface.width)
            lane_channel = np.repeat(channels, iface.blocks)
            chan += self._chan_beats(params, mults, lane_channel)
            if spatial_weights:
                weight += self._spatial_weight_beats(params, channels)
            else:
                rows = w[:, channels, :].transpose(2, 1, 0).reshape(params.cin, -1)
                weight += pack(lay["weight"], {"": rows})
        valid = [min(pco, params.cout - g * pco) for g in range(groups)]
        shape = (x.shape[0], x.shape[2], x.shape[3]) if map_input else None
        return LayerBeats(
            cfg=self._cfg_beats(params, tiles, 1, map_shape=shape, spatial=spatial_weights),
            chan=chan,
            weight=weight,
            act=act_beats * groups,
            groups=groups,
            tiles=tiles,
            expected_outputs=tiles * sum(valid) * iface.output_beats,
            map=map_beats_,
            map_bytes=x.size * self.config.in_bits // 8 if map_input else 0,
            spatial_weights=spatial_weights,
        )

    def _spatial_weight_beats(self, params: LayerQuant, channels: np.ndarray) -> list[int]:
        """One group's ``i_weight`` beats: the header of shifts, then ``k`` spatial rows per beat
        (channels past ``cout``: zero weights, the windows' lowest shifts)."""
        assert params.spatial_weights is not None and params.weight_shift is not None
        live = channels[channels < params.cout]
        r = self.algo.kernel
        spatial = np.zeros((len(channels), params.cin, r, r), dtype=np.int64)
        spatial[: len(live)] = params.spatial_weights[live]
        lo = shift_window(self.algo, self.config.weight_bits)[0]
        shift = np.repeat(lo[:, None], len(channels), axis=1)  # lanes past cout: any valid
        shift[:, : len(live)] = params.weight_shift[:, live]
        return spatial_group_beats(
            spatial, shift, algorithm=self.algo, weight_bits=self.config.weight_bits
        )

    # ------------------------------------------------------------------ direct mode
    def _direct_beats(
        self, params: LayerQuant, x: np.ndarray, stride: int, replicas: int | None
    ) -> LayerBeats:
        iface, lay, pco = self.interface, self.layouts, self.config.pco
        sched = self.schedule(params, x.shape, stride, replicas)
        self._check_tiles(sched.tiles)
        act_beats = pack(lay["act"], {"": _pad_columns(self._direct_pixels(params, x, stride, sched),
                                                        lay["act"].length)})  # fmt: skip
        k, r = params.kernel, sched.replicas
        chan, weight = [], []
        expected = 0
        for g in range(sched.groups):
            # channel of (lane, block): g P_co R + (block // BPR) P_co + lane; -1 past cout
            block_rep = np.arange(iface.blocks) // sched.blocks_per_replica
            channel = g * pco * r + block_rep[None, :] * pco + np.arange(pco)[:, None]
            channel = np.where(channel < params.cout, channel, -1)  # (lane, block)
            expected += int((channel[:, :: sched.blocks_per_replica] >= 0).sum())
            mults = np.repeat(_take(params.rescale_mult, channel).reshape(-1, 1), iface.width, 1)
            chan += self._chan_beats(params, mults, channel.reshape(-1))
            # entries (tap, ci) x (lane, block), W per row, zero-padded
            wk = params.weights.transpose(2, 3, 1, 0).reshape(k * k * params.cin, params.cout)
            entries = _take(wk.T, channel).transpose(2, 0, 1)  # (entry, lane, block)
            rows = -(-entries.shape[0] // iface.width)
            padded = np.zeros((rows * iface.width, pco, iface.blocks), dtype=np.int64)
            padded[: entries.shape[0]] = entries
            weight += pack(lay["direct_row"], {"": padded.reshape(rows, -1)})
        return LayerBeats(
            cfg=self._cfg_beats(params, sched.tiles, r),
            chan=chan,
            weight=weight,
            act=act_beats * sched.groups,
            groups=sched.groups,
            tiles=sched.tiles,
            expected_outputs=expected * sched.tiles * sched.blocks_per_replica,
            schedule=sched,
        )

    def _direct_pixels(
        self, params: LayerQuant, x: np.ndarray, stride: int, sched: DirectSchedule
    ) -> np.ndarray:
        """Act beats of one group: ``(tiles * K^2 * cin, m)``, tile, tap, channel order."""
        n, cin, h, w = x.shape
        k, pad = params.kernel, params.padding
        ho, wo = output_size(h, k, pad, stride), output_size(w, k, pad, stride)
        m, px = self.interface.positions, sched.pixels_per_tile
        flat = np.arange(sched.tiles)[:, None] * px + np.arange(m)[None, :] % px  # (tiles, m)
        valid = flat < n * ho * wo
        img, rem = np.divmod(np.where(valid, flat, 0), ho * wo)
        oy, ox = np.divmod(rem, wo)
        xp = np.zeros((n, cin, h + 2 * pad + k, w + 2 * pad + k), dtype=np.int64)
        xp[:, :, pad : pad + h, pad : pad + w] = x
        beats = np.zeros((sched.tiles, k * k, cin, m), dtype=np.int64)
        for ky in range(k):
            for kx in range(k):
                vals = xp[img, :, oy * stride + ky, ox * stride + kx]  # (tiles, m, cin)
                beats[:, ky * k + kx] = np.where(valid[:, :, None], vals, 0).transpose(0, 2, 1)
        return beats.reshape(-1, m)

    # ------------------------------------------------------------------ shared pieces
    def _check_tiles(self, tiles: int) -> None:
        max_tiles = self.interface.limits["tiles"]
        if tiles > max_tiles:
            raise ValueError(f"layer has {tiles} tiles; the engine allows {max_tiles}")

    def _chan_beats(self, params: LayerQuant, mults: np.ndarray, channel: np.ndarray) -> list[int]:
        """One beat per (lane, block): ``mults`` (beats, W) and the parameters of ``channel``."""
        return pack(
            self.layouts["chan"],
            {
                "rescale_mult": mults,
                "params.bias": _take(params.bias, channel),
                "params.out_mult": _take(params.out_mult, channel),
                "params.out_shift": _take(params.out_shift, channel),
            },
        )

    def _cfg_beats(
        self,
        params: LayerQuant,
        tiles: int,
        replicas: int,
        *,
        map_shape=None,
        spatial=False,
        replay=False,
    ) -> list[int]:
        writes = layer_register_writes(params, tiles, replicas=replicas,
                                       registers=self.interface.registers, map_shape=map_shape,
                                       spatial_weights=spatial, act_replay=replay)  # fmt: skip
        return pack(
            self.layouts["cfg"],
            {"addr": np.array([a for a, _ in writes]), "data": np.array([d for _, d in writes])},
        )

    def decode_outputs(self, payloads: list[int]) -> dict[str, np.ndarray]:
        """``{data: (k, W), channel, tile, index, end, last: (k,)}``."""
        f = unpack(self.layouts["out"], payloads)
        out = {"data": f["data"]}
        for name in ("channel", "tile", "index", "end", "last"):
            out[name] = f[f"meta.{name}"][:, 0]
        return out

    def assemble(
        self,
        payloads: list[int],
        params: LayerQuant,
        batch: int,
        height: int,
        width: int,
        *,
        stride: int = 1,
        schedule: DirectSchedule | None = None,
    ) -> np.ndarray:
        """Output beats of one layer -> (N, Cout, Ho, Wo); checks the framing.

        Direct mode needs the layer's ``schedule`` (:attr:`LayerBeats.schedule`).
        """
        return self.assemble_chunks([payloads], [0], params, batch, height, width,
                                    stride=stride, schedule=schedule)  # fmt: skip

    def assemble_chunks(
        self,
        payloads: list[list[int]],
        tile_offsets: list[int],
        params: LayerQuant,
        batch: int,
        height: int,
        width: int,
        *,
        stride: int = 1,
        schedule: DirectSchedule | None = None,
    ) -> np.ndarray:
        """:meth:`assemble` of a layer run in chunks (:meth:`layer_chunks`): the output beats
        of each chunk, whose tiles start at its ``tile_offsets`` entry."""
        parts = []
        for chunk, offset in zip(payloads, tile_offsets, strict=True):
            f = self.decode_outputs(chunk)
            if len(chunk) and (not f["last"][-1] or f["last"][:-1].any()):
                raise ValueError("the 'last' flag must be set on the final output beat only")
            parts.append({**f, "tile": f["tile"] + offset})
        f = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        if params.mode == "direct":
            if schedule is None:
                raise ValueError("a direct-mode layer needs its schedule to be assembled")
            return self._assemble_direct(f, params, (batch, height, width), stride, schedule)
        return self._assemble_fast(f, params, (batch, height, width), stride)

    def _assemble_fast(self, f, params: LayerQuant, shape, stride: int) -> np.ndarray:
        check_stride(self.algo, stride)
        batch, height, width = shape
        m_out, w = self.algo.output_tile, self.interface.width
        ho = output_size(height, self.algo.kernel, params.padding, stride)
        wo = output_size(width, self.algo.kernel, params.padding, stride)
        th, tw = self.algo.tiles(ho, 1), self.algo.tiles(wo, 1)
        tiles, beats = batch * th * tw, self.interface.output_beats
        if len(f["data"]) != tiles * params.cout * beats:
            raise ValueError(
                f"got {len(f['data'])} output beats, expected {tiles * params.cout * beats}"
            )
        co, t, s = f["channel"], f["tile"], f["index"]
        if (co >= params.cout).any() or (t >= tiles).any() or (s >= beats).any():
            raise ValueError("an output beat names a channel, tile or block out of range")
        slots = np.zeros((params.cout, tiles, beats * w), dtype=np.int64)
        seen = np.zeros((params.cout, tiles, beats), dtype=np.int64)
        np.add.at(seen, (co, t, s), 1)
        if (seen != 1).any():
            raise ValueError("output beats are missing or repeated")
        slots.reshape(params.cout, tiles, beats, w)[co, t, s] = f["data"]
        out = slots[:, :, : m_out * m_out].reshape(params.cout, batch, th, tw, m_out, m_out)
        out = out.transpose(1, 0, 2, 4, 3, 5).reshape(batch, params.cout, th * m_out, tw * m_out)
        return out[:, :, :ho, :wo]

    def _assemble_direct(self, f, params: LayerQuant, shape, stride, sched) -> np.ndarray:
        batch, height, width = shape
        ho = output_size(height, params.kernel, params.padding, stride)
        wo = output_size(width, params.kernel, params.padding, stride)
        w, px = self.interface.width, sched.pixels_per_tile
        pixels = batch * ho * wo
        co, t, k = f["channel"], f["tile"], f["index"]
        if (co >= params.cout).any() or (t >= sched.tiles).any():
            raise ValueError("an output beat names a channel or tile out of range")
        flat = (t * px + k * w)[:, None] + np.arange(w)[None, :]  # (beats, W)
        keep = flat < np.minimum((t + 1) * px, pixels)[:, None]
        out = np.full((params.cout, pixels), np.iinfo(np.int64).min, dtype=np.int64)
        out[np.broadcast_to(co[:, None], flat.shape)[keep], flat[keep]] = f["data"][keep]
        if (out == np.iinfo(np.int64).min).any():
            raise ValueError("output beats do not cover every output pixel")
        return out.reshape(params.cout, batch, ho, wo).transpose(1, 0, 2, 3)

    # ------------------------------------------------------------------ expected outputs
    def expected_output_beats(
        self, out: np.ndarray, params: LayerQuant, *, schedule: DirectSchedule | None = None
    ) -> tuple[list[int], list[int]]:
        """The ``o_out`` beats of a layer whose output map is ``out``: ``(payloads, masks)``.

        The inverse of :meth:`assemble`: ``out`` is the golden ``(N, Cout, Ho, Wo)``
        map (:func:`sfc_hls.golden.conv2d_int8`); the beats come in the order
        the engine emits them (docs/integration.md, "Output beat order"): per
        output-channel group, per tile, per lane (fast) or per (lane, replica)
        (direct), the packet's blocks.  ``masks[i]`` has a one on every payload
        bit of beat ``i`` that the engine determines from the layer: every
        ``meta`` bit and the data lanes that hold an output pixel.  Lanes
        beyond it (the last block of a fast tile beyond ``M*M``, edge tiles
        beyond ``Ho x Wo``, direct-mode pixels beyond the map) are zero in
        ``payloads`` and in ``masks``.  Direct mode needs the layer's
        ``schedule`` (:attr:`LayerBeats.schedule`).
        """
        out = np.asarray(out, dtype=np.int64)
        if out.ndim != 4 or out.shape[1] != params.cout:
            raise ValueError(f"out must be (N, {params.cout}, Ho, Wo), got shape {out.shape}")
        if params.mode == "direct":
            if schedule is None:
                raise ValueError("a direct-mode layer needs its schedule")
            fields = self._direct_output_fields(out, schedule)
        else:
            fields = self._fast_output_fields(out)
        data_, valid = fields.pop("data"), fields.pop("valid")
        end_index = fields.pop("packet_beats") - 1
        count = len(data_)
        last = np.zeros(count, dtype=np.int64)
        last[-1:] = 1
        meta = {**fields, "end": (fields["index"] == end_index).astype(np.int64), "last": last}
        lay = self.layouts["out"]
        payloads = pack(lay, {"data": np.where(valid, data_, 0),
                              **{f"meta.{k}": v for k, v in meta.items()}})  # fmt: skip
        ones = {path: np.full(count, -1 if signed else (1 << width) - 1, dtype=np.int64)
                for path, _, width, signed, _ in flat_fields(lay) if path != "data"}  # fmt: skip
        masks = pack(lay, {"data": np.where(valid, -1, 0), **ones})
        return payloads, masks

    def _fast_output_fields(self, out: np.ndarray) -> dict[str, np.ndarray]:
        """Per beat (fast mode): data (k, W), valid (k, W), channel, tile, index; packet_beats."""
        n, cout, ho, wo = out.shape
        m_out, w, pco = self.algo.output_tile, self.interface.width, self.config.pco
        beats = self.interface.output_beats
        th, tw = self.algo.tiles(ho, 1), self.algo.tiles(wo, 1)
        tiles = n * th * tw
        padded = np.zeros((n, cout, th * m_out, tw * m_out), dtype=np.int64)
        padded[:, :, :ho, :wo] = out
        inside = np.zeros(padded.shape[2:], dtype=bool)
        inside[:ho, :wo] = True
        # (cout, tiles, beats * W): a tile's M*M pixels row-major, zero padded
        slots = np.zeros((cout, tiles, beats * w), dtype=np.int64)
        slots[:, :, : m_out * m_out] = (
            padded.reshape(n, cout, th, m_out, tw, m_out).transpose(1, 0, 2, 4, 3, 5)
            .reshape(cout, tiles, m_out * m_out)
        )  # fmt: skip
        ok = np.zeros((tiles, beats * w), dtype=bool)
        ok[:, : m_out * m_out] = np.broadcast_to(
            inside.reshape(th, m_out, tw, m_out).transpose(0, 2, 1, 3).reshape(1, th * tw, -1),
            (n, th * tw, m_out * m_out),
        ).reshape(tiles, -1)
        g, t, lane, s = (a.reshape(-1) for a in np.indices(
            (self.groups(cout), tiles, pco, beats)))  # fmt: skip
        co = g * pco + lane
        keep = co < cout
        co, t, s = co[keep], t[keep], s[keep]
        cols = s[:, None] * w + np.arange(w)[None, :]
        return {"data": slots[co[:, None], t[:, None], cols], "valid": ok[t[:, None], cols],
                "channel": co, "tile": t, "index": s, "packet_beats": beats}  # fmt: skip

    def _direct_output_fields(
        self, out: np.ndarray, sched: DirectSchedule
    ) -> dict[str, np.ndarray]:
        """Per beat (direct mode): data (k, W), valid (k, W), channel, tile, index; packet_beats."""
        n, cout, ho, wo = out.shape
        w, pco, r = self.interface.width, self.config.pco, sched.replicas
        pixels, px, bpr = n * ho * wo, sched.pixels_per_tile, sched.blocks_per_replica
        flat_out = out.transpose(1, 0, 2, 3).reshape(cout, pixels)
        g, t, lane, rep, k = (a.reshape(-1) for a in np.indices(
            (sched.groups, sched.tiles, pco, r, bpr)))  # fmt: skip
        co = g * pco * r + rep * pco + lane
        keep = co < cout
        co, t, k = co[keep], t[keep], k[keep]
        flat = (t * px + k * w)[:, None] + np.arange(w)[None, :]
        valid = flat < np.minimum((t + 1) * px, pixels)[:, None]
        data_ = flat_out[co[:, None], np.where(valid, flat, 0)]
        return {"data": data_, "valid": valid, "channel": co, "tile": t, "index": k,
                "packet_beats": bpr}  # fmt: skip


def _pad_columns(values: np.ndarray, width: int) -> np.ndarray:
    """``values`` (rows, k) with zero columns up to ``width``."""
    if values.shape[1] == width:
        return values
    out = np.zeros((values.shape[0], width), dtype=values.dtype)
    out[:, : values.shape[1]] = values
    return out


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` along the first axis, zero where ``index`` is -1 or past the end."""
    values = np.asarray(values)
    ok = (index >= 0) & (index < values.shape[0])
    out = values[np.where(ok, index, 0)]
    mask = ok.reshape(ok.shape + (1,) * (out.ndim - ok.ndim))
    return np.where(mask, out, 0)
