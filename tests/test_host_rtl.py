"""The RTL backend: the digits ResNet end to end in Verilator equals the golden backend.

One engine (SFC-6(7x7,3x3), P_co=4) runs every conv: the stride-1 3x3 convs
in fast mode, the stride-2 and 1x1 convs in direct mode; generated and built
(cached) once, every layer a run of the native stream runner.  Cold builds
take most of the time.
"""

import dataclasses

import numpy as np
import pytest

from sfc_hls.config import EngineConfig
from sfc_hls.host.calibration import calibrate, engine_configs
from sfc_hls.host.checkpoint import load_digits_small_resnet
from sfc_hls.host.device import GoldenDevice, RtlDevice
from sfc_hls.host.digits import load_digits_split
from sfc_hls.host.inference import check_convs, run_int8
from sfc_hls.host.lowering import lower_model
from sfc_hls.hw.engine_streams import EngineStreams
from sfc_hls.quantize import QuantOptions


def test_small_resnet_rtl_equals_golden_end_to_end(tmp_path):
    model, _ = load_digits_small_resnet()
    split = load_digits_split()
    net = lower_model(model, (1, 28, 28))
    engines = engine_configs(net, pco=4)
    assert len(engines) == 1
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
    convs = [r for r in rtl.records if r.op == "conv"]
    assert all(r.cycles and r.cycles > 0 for r in convs), convs
    assert {r.mode for r in convs} == {"fast", "direct"}
    assert len({r.engine for r in convs}) == 1

    # The layer-parallel check: every conv from its golden input, two at a time.
    with RtlDevice(engines, jobs=2) as device:
        check = check_convs(qnet, device, golden)
        assert check.identical, check.mismatched
        cycles = {r.name: r.cycles for r in check.records if r.op == "conv"}
        assert cycles == {r.name: r.cycles for r in convs}  # same beats, same cycles
        # ... and it sees a wrong conv output: corrupt one golden tensor.
        victim = qnet.network.convs[3]
        bad = dataclasses.replace(golden, tensors=dict(golden.tensors))
        bad.tensors[victim.output] = bad.tensors[victim.output].copy()
        bad.tensors[victim.output].flat[7] ^= 1
        # The victim's output differs, and so do the outputs of the convs that read it
        # (their input changed): each is compared with the corrupted golden tensors.
        readers = [c.name for c in qnet.network.convs if c.input == victim.output]
        assert readers, "pick a victim whose output another conv reads"
        assert check_convs(qnet, device, bad).mismatched == [victim.name, *readers]


def test_run_cli_rtl_check_golden_reports_one_engine_and_modes(tmp_path, capsys):
    """``sfc-hls run --backend rtl --check-golden``: every conv identical, the JSON names the
    one engine for every conv and each conv's mode."""
    import json

    from sfc_hls.cli import main

    out = tmp_path / "run.json"
    argv = ["run", "--backend", "rtl", "--check-golden", "--limit", "1", "--jobs", "2",
            "--quiet", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["summary"]["golden_identical"] is True
    convs = [layer for layer in report["layers"] if layer["op"] == "conv"]
    assert len({layer["engine"] for layer in convs}) == 1
    assert {layer["mode"] for layer in convs} == {"fast", "direct"}
    assert all(layer["cycles"] > 0 for layer in convs)


def test_rtl_device_reports_a_layer_that_does_not_finish(tmp_path, monkeypatch):
    """A layer whose outputs never all arrive (here: its last input beat is dropped) fails
    with an error naming the layer and the engine, not a hang or a wrong map."""
    from sfc_hls.datapath import random_layer_quant
    from sfc_hls.hw.engine_streams import EngineStreams

    config = EngineConfig(algorithm="direct-3x3", pco=4, cin_max=8, cout_max=8)
    params = random_layer_quant(config, 3, 4, np.random.default_rng(0))
    x = np.random.default_rng(1).integers(-128, 128, size=(1, 3, 5, 5))
    layer_beats = EngineStreams.layer_beats

    def drop_last_act(self, *args, **kwargs):
        beats = layer_beats(self, *args, **kwargs)
        return dataclasses.replace(beats, act=beats.act[:-1])

    monkeypatch.setattr(EngineStreams, "layer_beats", drop_last_act)
    device = RtlDevice([config], work_dir=tmp_path)
    with pytest.raises(
        RuntimeError, match="layer 'ghost' on the direct-3x3 engine: .*outputs incomplete"
    ):
        device.run_conv("ghost", params, x)


def test_small_resnet_rtl_with_every_buffer_equals_golden(tmp_path):
    """The same network on an engine with a feature-map buffer and a weight transform,
    quantized with spatial weights: its stride-1 fast convs take their input maps once on
    i_map (each fits) and their weights as spatial weights and shifts, the others tiles on
    i_act and rows; same outputs as the golden model, tensor by tensor."""
    model, _ = load_digits_small_resnet()
    split = load_digits_split()
    net = lower_model(model, (1, 28, 28))
    (plain,) = engine_configs(net, pco=4)
    engine = dataclasses.replace(plain, map_kib=128, weight_transform=True, replay_beats=1024)
    # map_kib and weight_transform are no datapath fields: the plain engine quantizes.
    qnet = calibrate(
        net, split.x_train, engines=[plain], options=QuantOptions(weight_source="spatial")
    )
    x = split.x_test[:1]
    golden = run_int8(qnet, GoldenDevice([plain]), x, keep_tensors=True)
    with RtlDevice([engine], work_dir=tmp_path) as device:
        rtl = run_int8(qnet, device, x, keep_tensors=True)
    for name, want in golden.tensors.items():
        assert np.array_equal(rtl.tensors[name], want), f"tensor {name} differs"
    streams = EngineStreams(engine)
    fast = [c for c in qnet.network.convs if c.stride == 1 and c.kernel == 3]
    assert fast
    for conv in fast:  # every fast conv took the map path
        params = qnet.convs[conv.name]
        shape = golden.tensors[conv.input].shape
        assert streams.map_input_reason(params, shape) is None, conv.name
        assert streams.spatial_weights_reason(params) is None, conv.name
    # The other convs (stride 2, 1x1) send their activations once where a group's fit.
    others = [c for c in qnet.network.convs if c not in fast]
    replayed = [c.name for c in others if streams.layer_beats(
        qnet.convs[c.name], golden.tensors[c.input], stride=c.stride).act_replay]  # fmt: skip
    assert replayed, "no conv replayed its activations"
