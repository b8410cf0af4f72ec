# amaranth: UnusedElaboratable=no

"""RegisteredAddressMemory against a Python reference of its contract.

The slices' XOR-permuted addresses must be invisible at the ports: every word read
back is the one last written at its address, through random loads and enables.
"""

import random

import pytest

from sfc_hls.hw.lut_memory import RegisteredAddressMemory
from sfc_hls.sim.amaranth_streams import run_testbenches


def _reference(stimulus, depth: int) -> list[int]:
    """``r_data`` after each cycle of ``(w_en, w_addr, w_data, load, addr)``."""
    words, pending, addr, out = [0] * depth, None, 0, []
    for w_en, w_addr, w_data, load, next_addr in stimulus:
        if load:
            addr = next_addr
        if pending is not None:  # the registered write lands one edge late
            words[pending[0]] = pending[1]
        pending = (w_addr, w_data) if w_en else None
        out.append(words[addr])
    return out


def _stimulus(width: int, depth: int, seed: int) -> list[tuple[int, ...]]:
    """Random writes and address loads (a read may meet a write: the reference is
    cycle-exact)."""
    rng = random.Random(seed)
    return [(int(rng.random() < 0.4), rng.randrange(depth), rng.randrange(1 << width),
             int(rng.random() < 0.7), rng.randrange(depth))
            for _ in range(40 * depth)]  # fmt: skip


@pytest.mark.parametrize(
    ("width", "depth", "slice_bits"),
    [(200, 12, 64), (200, 12, 200), (70, 5, 8), (9, 40, 4)],
    ids=["4-slices", "1-slice", "9-slices-depth-5", "3-slices-depth-40"],
)
def test_registered_address_memory_reads_what_was_written(width, depth, slice_bits):
    dut = RegisteredAddressMemory(width, depth, slice_bits=slice_bits)
    assert dut.slices == -(-width // slice_bits)
    stimulus = _stimulus(width, depth, seed=width + depth)
    expected = _reference(stimulus, depth)
    got = []

    async def bench(ctx):
        for w_en, w_addr, w_data, load, addr in stimulus:
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_addr, w_addr)
            ctx.set(dut.w_data, w_data)
            ctx.set(dut.r_load, load)
            ctx.set(dut.r_addr, addr)
            await ctx.tick()
            got.append(ctx.get(dut.r_data))

    run_testbenches(dut, bench, cycles=len(stimulus) + 2)
    assert got == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"depth": 0, "slice_bits": 8}, ValueError, "depth must be an int >= 1"),
        ({"depth": 4, "slice_bits": 0}, ValueError, "slice_bits must be an int >= 1"),
        ({"depth": 4, "slice_bits": 8, "registered_write": 1}, TypeError, "registered_write"),
    ],
)
def test_registered_address_memory_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        RegisteredAddressMemory(8, **kwargs)
