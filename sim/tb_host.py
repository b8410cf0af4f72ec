"""cocotb module of the host driver's RTL backend: an engine that serves layer requests.

:class:`sfc_hls.host.device.RtlDevice` starts one simulator per engine
(:func:`sfc_hls.sim.verilator.run_cocotb`, test :func:`serve`) with the
configuration::

    {"engine": {EngineConfig fields}, "requests": "DIR", "idle_timeout": 600,
     "input_pause": 0.0, "output_pause": 0.0}

and keeps it running for the whole network: the host writes
``DIR/req00000.json``, ``DIR/req00001.json``, ... (atomically), each either a
layer ::

    {"name": "layer1.0.conv1", "params": "l.json", "input": "l.in.npy",
     "output": "l.out.npy", "stride": 1}

or ``{"quit": true}``; the test answers each layer with ``DIR/resp<k>.json``
(``{"name", "tiles", "groups", "act_beats", "output_beats", "cycles"}``)
after saving the output map as int8 ``.npy``.  While it waits for a request
the simulator is paused (simulated time does not advance).  Nothing is
compared here: the host compares backends.

Each layer (a :class:`~sfc_hls.datapath.LayerQuant` and an int8 input map) is
encoded by :class:`~sfc_hls.hw.engine_streams.EngineStreams` (``stride > 1``:
one input patch per output pixel) and sent through the drivers and monitor
of :class:`~sfc_hls.sim.tb_engine.EngineTestbench`; ``cycles`` counts from the
layer's first configuration beat to its last output beat.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.triggers import with_timeout

from sfc_hls.datapath import LayerQuant
from sfc_hls.sim.tb_engine import CLOCK_PERIOD_NS, EngineTestbench
from sfc_hls.sim.verilator import tb_config

__all__ = ["layer_timeout", "request_path", "response_path", "run_layer"]

_POLL_SECONDS = 0.002


def request_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"req{index:05d}.json"


def response_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"resp{index:05d}.json"


def layer_timeout(beats: Any, params: LayerQuant, pco: int) -> int:
    """Generous cycle budget of one layer: act beats, output beats, per-group reloads."""
    groups = beats.groups
    return 20 * (len(beats.act) + beats.expected_outputs + groups * (params.cin + pco + 200)) + 5000


async def run_layer(tb: EngineTestbench, entry: dict[str, Any]) -> dict[str, Any]:
    """Stream one layer request through the engine; save its output; return the counts."""
    params = LayerQuant.load(entry["params"])
    x = np.load(entry["input"]).astype(np.int64)
    stride = int(entry.get("stride", 1))
    beats = tb.streams.layer_beats(params, x, stride=stride)
    tb.monitor.clear()
    start = tb.cycle
    for port, payloads in (
        ("i_cfg", beats.cfg),
        ("i_chan", beats.chan),
        ("i_weight", beats.weight),
        ("i_act", beats.act),
    ):
        tb.drivers[port].send(payloads)
    budget = layer_timeout(beats, params, tb.engine_config.pco)
    await with_timeout(
        tb.monitor.wait_for(beats.expected_outputs), budget * CLOCK_PERIOD_NS, timeout_unit="ns"
    )
    cycles = tb.cycle - start
    out = tb.streams.assemble(
        list(tb.monitor.received), params, x.shape[0], x.shape[2], x.shape[3], stride=stride
    )
    np.save(entry["output"], out.astype(np.int8))
    await tb.wait_idle()
    tb.dut._log.info(
        "%s: cin=%d cout=%d %dx%d stride %d, %d tiles, %d cycles",
        entry["name"], params.cin, params.cout, x.shape[2], x.shape[3], stride,
        beats.tiles, cycles,
    )  # fmt: skip
    return {
        "name": entry["name"],
        "tiles": beats.tiles,
        "groups": beats.groups,
        "act_beats": len(beats.act),
        "output_beats": beats.expected_outputs,
        "cycles": cycles,
    }


def _wait_for(path: Path, idle_timeout: float) -> dict[str, Any]:
    # Blocking on purpose: the simulation has nothing to do until the next layer.
    t0 = time.monotonic()
    while not path.exists():
        if time.monotonic() - t0 > idle_timeout:
            raise TimeoutError(f"no request {path.name} within {idle_timeout} s; stopping")
        time.sleep(_POLL_SECONDS)
    return json.loads(path.read_text())


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


@cocotb.test()
async def serve(dut: Any) -> None:
    """Run layer requests until a quit request; the engine status must stay clean."""
    config = tb_config()
    directory = Path(config["requests"])
    idle_timeout = float(config.get("idle_timeout", 600))
    tb = EngineTestbench(dut, config)
    await tb.start(
        input_pause=float(config.get("input_pause", 0.0)),
        output_pause=float(config.get("output_pause", 0.0)),
    )
    index = 0
    while True:
        entry = _wait_for(request_path(directory, index), idle_timeout)
        if entry.get("quit"):
            break
        _write_atomic(response_path(directory, index), await run_layer(tb, entry))
        index += 1
    status = await tb.wait_idle()
    assert status["desc_error"] == 0 and status["overflow"] == 0, status
    assert status["layers_done"] == index, status
