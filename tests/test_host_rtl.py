"""The RTL backend: the digits ResNet end to end in Verilator equals the golden backend.

Two engines (SFC-6(7x7,3x3) with P_co=4 for the stride-1 3x3 convs, direct
3x3 with P_co=16 for the stride-2 and embedded 1x1 convs), each generated,
built (cached) and run as one simulator that serves all its layers.  Cold
builds take most of the time; warm runs take about 30 s.
"""

import numpy as np
import pytest

from sfc_hls.host.calibration import calibrate, engine_configs
from sfc_hls.host.checkpoint import load_digits_small_resnet
from sfc_hls.host.device import GoldenDevice, RtlDevice
from sfc_hls.host.digits import load_digits_split
from sfc_hls.host.inference import run_int8
from sfc_hls.host.lowering import lower_model

PCO = {"sfc6-7x7-3x3": 4, "direct-3x3": 16}


def test_small_resnet_rtl_equals_golden_end_to_end(tmp_path):
    model, _ = load_digits_small_resnet()
    split = load_digits_split()
    net = lower_model(model, (1, 28, 28))
    engines = engine_configs(net, pco=PCO)
    qnet = calibrate(net, split.x_train, engines=engines)
    x = split.x_test[:2]
    golden = run_int8(qnet, GoldenDevice(engines), x, keep_tensors=True)
    with RtlDevice(engines, work_dir=tmp_path) as device:
        rtl = run_int8(qnet, device, x, keep_tensors=True)
    assert set(rtl.tensors) == set(golden.tensors)
    for name, want in golden.tensors.items():
        assert np.array_equal(rtl.tensors[name], want), f"tensor {name} differs"
    assert np.array_equal(rtl.logits, golden.logits)
    assert rtl.predictions.tolist() == split.y_test[:2].tolist()
    cycles = {r.name: r.cycles for r in rtl.records if r.op == "conv"}
    assert all(c and c > 0 for c in cycles.values()), cycles
    # Output-bound direct layers: one beat per output pixel and channel.
    assert cycles["layer2.0.conv1"] >= 2 * 14 * 14 * 32


def test_rtl_device_reports_a_failed_engine(tmp_path):
    """A simulator that dies (here: a request for a file that does not exist) is reported."""
    model, _ = load_digits_small_resnet()
    net = lower_model(model, (1, 28, 28))
    engines = [e for e in engine_configs(net, pco=PCO) if e.algorithm == "direct-3x3"]
    device = RtlDevice(engines, work_dir=tmp_path, idle_timeout=60)
    server = device._server("direct-3x3")
    with pytest.raises(RuntimeError, match="stopped before answering layer 'ghost'"):
        server.request(
            {"name": "ghost", "params": str(tmp_path / "missing.json"),
             "input": "x", "output": "y"}
        )  # fmt: skip
    with pytest.raises(RuntimeError, match="direct-3x3 engine simulation failed"):
        device.close()
