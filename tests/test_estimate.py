"""The resource estimator (hw/estimate.py, ``sfc-hls estimate``): fitting, the shipped model, CLI."""

import json
from pathlib import Path

import pytest

from sfc_hls.cli import main
from sfc_hls.config import EngineConfig
from sfc_hls.hw.estimate import (
    ESTIMATED,
    FITTED_ON,
    MODEL_PATH,
    PARTS,
    MemoryCells,
    ResourceModel,
    Sample,
    block_features,
    dsp_tiles,
    estimate,
    fit,
    memory_cells,
)
from sfc_hls.hw.interface import BLOCKS

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [
    EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=64, cout_max=64),
    EngineConfig(algorithm="wino-2x2-3x3", pco=8, cin_max=128, cout_max=128, scale_mode="fixed"),
    EngineConfig(algorithm="wino-4x4-3x3", pco=2, cin_max=64, cout_max=64, macs_per_dsp=1),
    EngineConfig(algorithm="sfc4-4x4-3x3", pco=4, cin_max=128, cout_max=128),
    EngineConfig(algorithm="direct-3x3", pco=8, cin_max=64, cout_max=64),
    EngineConfig(algorithm="wino-4x4-3x3", pco=4, act_bits=4, weight_bits=4),
    EngineConfig(algorithm="direct-3x3", pco=16, cin_max=32, cout_max=32, act_bits=6,
                 weight_bits=6),
]  # fmt: skip


def test_dsp_tiles_of_a_dsp48e2():
    # A DSP48E2 multiplies 27 x 18 signed: one tile up to that, more beyond either side.
    assert dsp_tiles(8, 8) == 1
    assert dsp_tiles(27, 18) == 1
    assert dsp_tiles(18, 27) == 1
    assert dsp_tiles(28, 18) == 2
    assert dsp_tiles(33, 17) == 2
    assert dsp_tiles(28, 19) == 4


@pytest.mark.parametrize(
    ("width", "depth", "bram", "lutram_luts"),
    [
        # (bits, words) -> cells Yosys 0.23 synth_xilinx -family xcup chose for the weight
        # buffers and parameter memories of the engines in bench/bench_estimator.py, in
        # 18 Kb units and LUTs (hw/synthesis.py).
        (256, 128, 8, 0),  # 4 RAMB36E2 512x72
        (576, 128, 16, 0),
        (1056, 128, 30, 0),
        (1024, 256, 29, 0),  # RAMB18E2 512x36 (15 RAMB36 would be 30 halves)
        (1472, 256, 41, 0),
        (229, 96, 7, 0),  # RAMB18E2
        (4224, 1024, 235, 0),  # RAMB18E2 1Kx18
        (306, 4, 0, 8 * 22),  # RAM32M16, 14 bits each
        (378, 64, 0, 8 * 54),  # RAM64M8, 7 bits each
    ],
)
def test_memory_cells_follow_yosys(width, depth, bram, lutram_luts):
    assert memory_cells(width, depth) == MemoryCells(bram, lutram_luts)


def test_every_part_has_features():
    features = block_features(EngineConfig())
    assert set(features) == set(PARTS) == {*BLOCKS, "other"}
    assert all(values for values in features.values())


def _synthetic(coef):
    """Samples whose 'Yosys' counts are ``coef`` applied to the features, exactly."""
    samples = []
    for config in CONFIGS:
        feats = block_features(config)

        def value(part, r, feats=feats):
            return sum(c * feats[part][k] for k, c in coef[part][r].items())

        blocks = {b: {r: value(b, r) for r in ESTIMATED} for b in BLOCKS}
        total = {r: sum(blocks[b][r] for b in BLOCKS) + value("other", r) for r in ESTIMATED}
        samples.append(Sample(config, blocks, total))
    return samples


def test_fit_reproduces_a_linear_model_exactly():
    # Known non-negative block coefficients, a signed "other": the fit must predict the
    # training counts (and a configuration it did not see) to rounding.
    feats = block_features(EngineConfig())
    coef = {
        part: {r: {k: (1.5 + n + 0.25 * m) * _fitted(part, r, k)
                   for m, k in enumerate(feats[part])} for n, r in enumerate(ESTIMATED)}
        for part in BLOCKS
    }  # fmt: skip
    coef["other"] = {
        r: {k: (-3.0 if k == "one" else 0.5) for k in feats["other"]} for r in ESTIMATED
    }
    samples = _synthetic(coef)
    model = fit(samples)
    for s in samples:
        est = model.estimate(s.config)
        for r in ESTIMATED:
            assert est.total[r] == pytest.approx(s.total[r], rel=1e-6, abs=1)
    unseen = EngineConfig(algorithm="sfc6-6x6-3x3", pco=2, cin_max=64, cout_max=64)
    truth = ResourceModel(coef).estimate(unseen).total
    assert model.estimate(unseen).total == pytest.approx(truth, rel=0.02)


def _fitted(part, resource, feature):
    """1 if the fit may give ``feature`` a coefficient for ``resource`` of ``part``."""
    only = FITTED_ON.get((part, resource))
    return 1.0 if only is None or feature in only else 0.0


def test_fitted_on_names_features_and_the_fit_keeps_to_them():
    feats = block_features(EngineConfig())
    for (part, r), names in FITTED_ON.items():
        assert part in BLOCKS and r in ESTIMATED and set(names) <= set(feats[part]), (part, r)
    # Counts that do depend on an excluded feature: the fit gives it 0 all the same.
    coef = _zero_model()
    coef["weight_buffer"]["FF"] = {"row_bits": 3.0, "bram": 50.0, "lutram_luts": 0.0}
    model = fit(_synthetic(coef))
    assert model.coef["weight_buffer"]["FF"]["bram"] == 0.0
    assert model.coef["weight_buffer"]["FF"]["row_bits"] > 3.0
    shipped = ResourceModel.load()
    for (part, r), names in FITTED_ON.items():
        assert all(c == 0.0 for k, c in shipped.coef[part][r].items() if k not in names)


def test_fit_needs_a_whole_top():
    samples = [Sample(s.config, s.blocks, None) for s in _synthetic(_zero_model())]
    with pytest.raises(ValueError, match="whole top"):
        fit(samples)
    with pytest.raises(ValueError, match="at least one"):
        fit([])


def _zero_model():
    feats = block_features(EngineConfig())
    return {p: {r: {k: 0.0 for k in feats[p]} for r in ESTIMATED} for p in PARTS}


def test_shipped_model_is_within_15_percent_of_yosys_on_the_default_engine():
    # bench/results/engines.json holds Yosys's count of the default engine's whole top
    # (synth_xilinx xcup); the shipped model was not fitted on that engine
    # (bench/bench_estimator.py holds it out).
    model = ResourceModel.load()
    assert model.meta["fitted_on"] >= 5
    engines = json.loads((REPO / "bench" / "results" / "engines.json").read_text())
    default = engines["engines"][0]
    yosys = default["synthesis"]
    est = model.estimate(EngineConfig.from_dict(default["config"])).total
    for r in ("LUT", "FF", "DSP"):
        assert abs(est[r] - yosys[r]) <= 0.15 * yosys[r], (r, est[r], yosys[r])


def test_load_names_the_file(tmp_path):
    bad = tmp_path / "model.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="model.json"):
        ResourceModel.load(bad)
    with pytest.raises(ValueError, match="missing.json"):
        ResourceModel.load(tmp_path / "missing.json")


def test_model_round_trips_through_json(tmp_path):
    model = ResourceModel.load(MODEL_PATH)
    path = tmp_path / "m.json"
    path.write_text(model.to_json())
    again = ResourceModel.load(path)
    config = EngineConfig(algorithm="wino-4x4-3x3", pco=8)
    assert again.estimate(config).total == estimate(config).total


def test_cli_estimate(tmp_path, capsys):
    out = tmp_path / "est.json"
    assert main(["estimate", "--algo", "wino-2x2-3x3", "--pco", "4", "--blocks",
                 "--json", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "mac_array" in text and "total" in text
    data = json.loads(out.read_text())
    assert data["engine"]["pco"] == 4
    assert data["total"] == estimate(EngineConfig(algorithm="wino-2x2-3x3", pco=4)).total


def test_cli_estimate_bad_input(capsys):
    assert main(["estimate", "--pco", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pco" in err[0]
    assert main(["estimate", "--target", "ecp5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "predicts Xilinx resources" in err[0] and "'ecp5'" in err[0]
