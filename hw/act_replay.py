"""Activation replay buffer: a layer's first output-channel group's ``i_act`` beats, replayed.

The engine computes a layer group by group (``per_group`` output channels at a
time), and every group consumes the same ``group_beats = TILES * reduction``
activation beats in the same order.  Without this block the host sends them
``ceil(cout / per_group)`` times.  :class:`ActReplay` sits between the engine's
``i_act`` port and the activation port register: for a layer with replay
enabled the host sends the beats once, the block passes them through to the
engine while writing them to a block RAM, then replays them from there for
every further group, so the activations cross the external interface once
per layer instead of once per group.

Storage.  One memory of ``depth`` words of one beat each (``act_layout``),
one write port and one synchronous read port (no transparency): beat ``k`` of
the first group is at word ``k``.  The read side is a
:class:`~sfc_hls.hw.pipeline.StallPipeline` of :data:`ActReplay.READ_LATENCY`
stages (the block RAM's read register, then a data register that can go into
the RAM's output register), as in :mod:`sfc_hls.hw.map_buffer`.  It starts to
read a layer's replay while the first group is still being recorded (beat
``k`` once it is written) and keeps going across group boundaries, so the
replayed groups follow the recorded one without a gap.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, ShapeLike, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sfc_hls.arguments import check_int
from sfc_hls.hw.pipeline import Handshake, StallPipeline

__all__ = ["ActReplay"]


class ActReplay(wiring.Component):
    """``i_act`` beats in; the first group's beats passed through, then replayed, out.

    Parameters (keyword-only)
    -------------------------
    act_layout : ShapeLike
        One ``i_act`` beat (the engine's: ``ArrayLayout(signed(8), 132)``, 1056 bits,
        for SFC-6(7x7,3x3)); both ports' payload.
    depth : int
        Beats the memory holds, >= 1.
    cout_max : int
        Largest ``cout``, >= 1.
    group_channels_max : int
        Largest ``per_group``, >= 1.

    Attributes
    ----------
    beat_bits : int
        Bits of one beat, ``Shape.cast(act_layout).width``.
    memory_bits : int
        ``depth * beat_bits``: the block RAM.
    latency : int
        :data:`READ_LATENCY`: cycles from a replay read to its beat on ``o_act``.

    Ports
    -----
    i_act : In(stream.Signature(act_layout))
    o_act : Out(stream.Signature(act_layout))
    enable : In(1)
        The layer replays (held during a layer, from its ``start`` cycle).  Low:
        combinational pass-through,
        ``o_act.valid = i_act.valid``, ``o_act.payload = i_act.payload``,
        ``i_act.ready = o_act.ready``, in every cycle (``start`` blocks nothing then).
    start : In(1)
        One-cycle pulse at a layer's start: resets the record/replay state, the
        write address and ``overflow``, loads the channels left from ``cout``, and
        abandons a replay still running (the beats in the read pipeline are
        dropped; one offered on ``o_act`` is withdrawn).  With ``enable`` high,
        ``i_act.ready`` and ``o_act.valid`` are low in the ``start`` cycle and the
        cycle after it: the engine computes ``group_beats`` in a register from the
        descriptor, valid one cycle after the start, and the block counts the
        recorded group's channels in that cycle.
    group_beats : In(unsigned(GROUP_BEATS_BITS))
        Beats per group, >= 1, held during a layer, read from the cycle after ``start``
        (0 is no layer: its record would not end).
    cout : In(range(cout_max + 1))
        Output channels of the layer, read in the ``start`` cycle.
    per_group : In(range(group_channels_max + 1))
        Output channels per group, >= 1, held during a layer, read from the cycle
        after ``start``.  The layer has ``ceil(cout / per_group)`` groups: a channel
        counter loaded with ``cout`` loses ``per_group`` (saturating at 0) per
        finished group, no divider; the replay runs while it is not 0 (``per_group =
        0`` would replay without end).
    overflow : Out(1)
        The first group had more than ``depth`` beats (sticky until ``start``).

    Behaviour with ``enable`` high, after ``start``
    -------------------------------------------------
    * Record: the first ``group_beats`` beats of ``i_act`` pass through to ``o_act``
      as with ``enable`` low (same cycle, combinational) and each taken beat
      (``valid & ready``) is written to word 0, 1, 2, ... of the memory.  Beats past
      ``depth`` pass through but are not stored, and set ``overflow``.
    * Replay: if channels remain after the first group, every further group emits
      words ``0 .. group_beats - 1`` on ``o_act``, in order.  With ``overflow`` the
      read address wraps: beat ``k`` of a replayed group is word ``k mod depth``
      (wrong data, but every group has exactly ``group_beats`` beats: nothing hangs).
    * From the end of the record (during the replay and after the last group)
      ``i_act.ready`` is low: the next layer's beats wait for its ``start``.  With
      one group (``cout <= per_group``) nothing is replayed.  After reset, nothing
      is taken nor emitted before a ``start``.

    Contract
    --------
    * Latency: record, 0 (combinational).  Replay: :attr:`latency` (2) cycles from
      a read of the memory to its beat on ``o_act``; a beat is read no earlier than
      the cycle after it was written.  With ``o_act`` always ready, the first
      replayed beat leaves in cycle ``max(t_last + 1, t_first + 1 + latency)``,
      ``t_first`` and ``t_last`` being the cycles the first and last recorded beats
      were taken: :meth:`replay_gap` idle cycles after the last recorded beat when
      the beats come back to back, :data:`REPLAY_GAP` (none) for ``group_beats >
      READ_LATENCY``.
    * Throughput: one beat per cycle in both phases while ``o_act.ready`` (and, in
      the record, ``i_act.valid``).  The reads run ahead across group boundaries,
      so the replayed groups follow each other without a gap.  If beat 1 is taken
      more than a cycle after beat 0, the prefetch may hold a bubble
      (``READ_LATENCY - 1`` stages): at most one idle cycle in the replay, once
      per layer.
    * Backpressure: record, ``i_act.ready = o_act.ready`` (combinational).  Replay,
      stall-together (:mod:`sfc_hls.hw.pipeline`): while ``o_act.valid & ~o_act.ready``
      the read register and the data register hold (the read port is enabled only
      when the pipeline advances), and ``o_act.valid`` comes from a register.
    * Reset: no layer: ``overflow`` low, no replay pending; with ``enable`` high
      nothing is taken nor emitted until a ``start``.  ``start`` empties the read
      pipeline in its two blocked cycles (hence ``READ_LATENCY <= 2``).
    """

    #: Width of ``group_beats`` (``TILES * reduction`` up to ``2^29 - 1``).
    GROUP_BEATS_BITS = 29
    #: Stages from a replay read to ``o_act``: the block RAM's read register, a data register.
    READ_LATENCY = 2
    #: Idle cycles between the last recorded and the first replayed beat, ``o_act`` always
    #: ready and the beats back to back, for ``group_beats > READ_LATENCY`` (reads start
    #: during the record): :meth:`replay_gap` of such a group.
    REPLAY_GAP = 0

    @classmethod
    def replay_gap(cls, group_beats: int) -> int:
        """Idle cycles between the last recorded and the first replayed beat, ``o_act``
        always ready and the ``group_beats`` beats back to back: ``max(0, READ_LATENCY
        + 1 - group_beats)`` (an upper bound when the beats have gaps)."""
        check_int("group_beats", group_beats, 1)
        return max(0, cls.READ_LATENCY + 1 - group_beats)

    def __init__(
        self,
        *,
        act_layout: ShapeLike,
        depth: int,
        cout_max: int,
        group_channels_max: int,
    ) -> None:
        self.beat_bits = _beat_bits(act_layout)
        self.act_layout = act_layout
        self.depth = check_int("depth", depth, 1)
        self.cout_max = check_int("cout_max", cout_max, 1)
        self.group_channels_max = check_int("group_channels_max", group_channels_max, 1)
        self.memory_bits = depth * self.beat_bits
        self.latency = self.READ_LATENCY
        super().__init__(
            {
                "i_act": In(stream.Signature(act_layout)),
                "o_act": Out(stream.Signature(act_layout)),
                "enable": In(1),
                "start": In(1),
                "group_beats": In(unsigned(self.GROUP_BEATS_BITS)),
                "cout": In(range(cout_max + 1)),
                "per_group": In(range(group_channels_max + 1)),
                "overflow": Out(1),
            }
        )

    # ------------------------------------------------------------------ hardware
    def elaborate(self, platform) -> Module:
        m = Module()
        # The start cycle and the cycle after it empty the read pipeline: two stages at most.
        assert self.READ_LATENCY <= 2
        m.submodules.memory = memory = Memory(shape=self.act_layout, depth=self.depth, init=[])
        settling = Signal(name="settling")  # the cycle after start
        m.d.sync += settling.eq(self.start)
        draining = Signal(name="draining")  # start or settling: the read pipeline empties
        m.d.comb += draining.eq(self.start | settling)
        recording = Signal(name="recording")  # the first group's beats are being taken
        recorded = Signal(unsigned(self.GROUP_BEATS_BITS), name="recorded")  # beats taken
        self._recorder(m, memory, draining, recording, recorded)
        replay = Handshake("replay")  # the read pipeline's output
        data = self._reader(m, memory, settling, draining, recording, recorded, replay)
        self._ports(m, draining, recording, replay, data)
        return m

    def _recorder(self, m: Module, memory: Memory, draining, recording, recorded) -> None:
        """Record: taken beats -> words ``0, 1, ...`` (up to ``depth``), ``overflow``."""
        i = self.i_act
        taken = Signal(name="record_taken")
        m.d.comb += taken.eq(self.enable & recording & ~draining & i.valid & i.ready)
        fits = recorded < self.depth
        port = memory.write_port()
        m.d.comb += [
            port.addr.eq(recorded),
            port.data.eq(i.payload),
            port.en.eq(taken & fits),
        ]
        with m.If(taken):
            m.d.sync += recorded.eq(recorded + 1)
            with m.If(~fits):
                m.d.sync += self.overflow.eq(1)
            with m.If(recorded + 1 == self.group_beats):
                m.d.sync += recording.eq(0)
        with m.If(self.start):
            m.d.sync += [recorded.eq(0), recording.eq(1), self.overflow.eq(0)]

    def _reader(
        self, m: Module, memory: Memory, settling, draining, recording, recorded, replay
    ) -> Signal:
        """Replay reads: the groups after the first, word by word, through the read
        pipeline.  Returns the data register (the last stage)."""
        # Channels of the groups not yet read, the one being read included: loaded with
        # cout at start, less the recorded group's in the cycle after; 0 once the last
        # group is read (and after reset).
        channels_left = Signal(range(self.cout_max + 1), name="channels_left")
        read_beat = Signal(unsigned(self.GROUP_BEATS_BITS), name="read_beat")  # of the group
        read_addr = Signal(range(max(self.depth, 2)), name="read_addr")  # read_beat mod depth
        reads = Handshake("read")
        pipe = StallPipeline(m, i=reads, o=replay, depth=self.READ_LATENCY, name="replay_pipe")
        # During the record, beat k is read once written (read_beat <= recorded always).
        written = ~recording | (read_beat != recorded)
        m.d.comb += reads.valid.eq(self.enable & (channels_left != 0) & ~draining & written)
        port = memory.read_port(transparent_for=())
        m.d.comb += [port.addr.eq(read_addr), port.en.eq(pipe.advance)]
        data = pipe.register(m, port.data, name="replay_data")

        def count_group() -> None:  # a group's channels are done
            more = channels_left > self.per_group
            m.d.sync += channels_left.eq(Mux(more, channels_left - self.per_group, 0))

        with m.If(settling):  # the recorded group
            count_group()
        with m.If(reads.valid & reads.ready):
            with m.If(read_beat + 1 == self.group_beats):  # a replayed group's last read
                m.d.sync += [read_beat.eq(0), read_addr.eq(0)]
                count_group()
            with m.Else():
                m.d.sync += [
                    read_beat.eq(read_beat + 1),
                    read_addr.eq(Mux(read_addr == self.depth - 1, 0, read_addr + 1)),
                ]
        with m.If(self.start):
            m.d.sync += [channels_left.eq(self.cout), read_beat.eq(0), read_addr.eq(0)]
        return data

    def _ports(self, m: Module, draining, recording, replay: Handshake, data: Signal) -> None:
        """``i_act`` / ``o_act``: pass-through (``enable`` low, or the record), nothing
        (``start`` and the cycle after), the read pipeline (the replay)."""
        i, o = self.i_act, self.o_act
        replaying = Signal(name="replaying")
        m.d.comb += [
            replaying.eq(self.enable & ~draining & ~recording),
            # start: the read pipeline drains (its beats are dropped), it cannot hold a beat
            replay.ready.eq(draining | (replaying & o.ready)),
            o.payload.eq(Mux(replaying, data, Value.cast(i.payload))),
        ]
        with m.If(~self.enable | (recording & ~draining)):
            m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready)]
        with m.Elif(replaying):
            m.d.comb += o.valid.eq(replay.valid)


def _beat_bits(act_layout: ShapeLike) -> int:
    """Bits of one beat; ``act_layout`` must be a shape of at least one bit."""
    message = (
        f"act_layout must be a shape (e.g. a data.ArrayLayout) of >= 1 bit, got {act_layout!r}"
    )
    if isinstance(act_layout, bool):
        raise TypeError(message)
    try:
        width = Shape.cast(act_layout).width
    except (TypeError, ValueError) as exc:
        raise TypeError(message) from exc
    if width < 1:
        raise ValueError(message)
    return width
