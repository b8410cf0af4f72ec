"""Tests of sfc_hls.host.error_study on a reduced setting (one small layer, few images)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from sfc_hls.atomic_files import OUTPUT_MARKER  # noqa: E402
from sfc_hls.cli import main as cli_main  # noqa: E402
from sfc_hls.host import error_study  # noqa: E402
from sfc_hls.host.error_study import (  # noqa: E402
    FILES,
    format_table,
    run_error_study,
    write_error_study,
)


def main(argv):
    return cli_main(["error-study", *argv])


ALGORITHMS = ("direct-3x3", "wino-4x4-3x3", "sfc6-7x7-3x3")
LAYER = "layer3.0.conv2"  # 64 -> 64 channels on 7x7 maps: the cheapest layer
REDUCED = dict(
    algorithms=ALGORITHMS,
    layers=[LAYER],
    calib_images=8,
    eval_images=8,
    scale_modes=("pow2",),
    fine_tune=(False, True),
)


@pytest.fixture(scope="module")
def reduced_result():
    return run_error_study(**REDUCED)


def test_result_records(reduced_result):
    r = reduced_result
    assert r["format"] == "sfc-hls.error-study/1"
    assert len(r["records"]) == len(ALGORITHMS) * 2
    (layer,) = r["layers"]
    assert (layer["name"], layer["cin"], layer["cout"], layer["height"]) == (LAYER, 64, 64, 7)
    for rec in r["records"]:
        for key in ("mse_out", "nmse_out", "mse_y", "nmse_y"):
            assert 0 < rec[key] < 0.1, rec
        # The int8 output cannot beat the input + output rounding floor by much.
        assert rec["nmse_out"] > 0.5 * layer["nmse_input_output_quant"]
    by_algo = {(x["algorithm"], x["fine_tune"]): x for x in r["records"]}
    for ft in (False, True):
        assert by_algo[("sfc6-7x7-3x3", ft)]["nmse_y"] < by_algo[("wino-4x4-3x3", ft)]["nmse_y"]
        assert by_algo[("direct-3x3", ft)]["nmse_y"] < by_algo[("sfc6-7x7-3x3", ft)]["nmse_y"]
    ratios = r["summary"]["winograd4_over_sfc6"]["sfc6-7x7-3x3"]
    assert set(ratios) == {"pow2", "pow2+ft"}


def test_study_is_deterministic(reduced_result):
    again = run_error_study(**{**REDUCED, "fine_tune": (False,), "algorithms": ALGORITHMS[2:]})
    first = next(
        x
        for x in reduced_result["records"]
        if x["algorithm"] == ALGORITHMS[2] and not x["fine_tune"]
    )
    (second,) = again["records"]
    assert {k: v for k, v in first.items() if k != "quantize_seconds"} == {
        k: v for k, v in second.items() if k != "quantize_seconds"
    }


def test_write_files(reduced_result, tmp_path):
    out = write_error_study(reduced_result, tmp_path / "study")
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, OUTPUT_MARKER])
    data = json.loads((out / "error_study.json").read_text())
    assert data["records"] == reduced_result["records"]
    md = (out / "error_study.md").read_text()
    assert "SFC-6(7x7,3x3)" in md and "error_study.png" in md
    assert (out / "error_study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Winograd F(4x4,3x3)" in format_table(reduced_result)
    with pytest.raises(FileExistsError):
        write_error_study(reduced_result, out)
    write_error_study(reduced_result, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_no_partial_directory_on_failure(reduced_result, tmp_path, monkeypatch):
    def broken(_result):
        raise RuntimeError("disk full")

    monkeypatch.setattr(error_study, "_markdown", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_error_study(reduced_result, tmp_path / "study")
    assert list(tmp_path.iterdir()) == []


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [str(out), "--algorithms", "sfc6-7x7-3x3", "--layers", LAYER]
    argv += ["--calib-images", "4", "--eval-images", "4", "--scale-modes", "fixed"]
    argv += ["--fine-tune", "off"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, OUTPUT_MARKER])
    assert "SFC-6(7x7,3x3)" in capsys.readouterr().out
    assert main(argv) == 2  # exists, no --force
    assert "exists" in capsys.readouterr().err
    assert main([*argv, "--force", "--quiet"]) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layers": ["layer2.0.conv1"]}, "layers"),  # stride 2
        ({"algorithms": ["sfc6-6x6-5x5"]}, "3x3"),
        ({"algorithms": []}, "algorithms"),
        ({"scale_modes": ["log"]}, "scale_modes"),
        ({"fine_tune": ["yes"]}, "fine_tune"),
        ({"calib_images": 0}, "calib_images"),
        ({"eval_images": 10_000}, "eval_images"),
        ({"options": {"act_method": "max"}}, "options"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        run_error_study(**{**REDUCED, **kwargs})


def test_narrow_mac_operands_raise_the_error_winograd_most():
    """``bits`` narrows the transform-domain activations and weights: at 4 bits every
    algorithm's error grows, Winograd F(4x4)'s the most (its transforms amplify)."""
    kwargs = {**REDUCED, "fine_tune": (False,)}
    wide = run_error_study(**kwargs)["summary"]["geomean_over_layers"]["pow2"]
    narrow = run_error_study(**kwargs, bits=4)["summary"]["geomean_over_layers"]["pow2"]
    growth = {a: narrow[a]["nmse_y"] / wide[a]["nmse_y"] for a in ALGORITHMS}
    assert all(g > 4 for g in growth.values()), growth
    assert narrow["wino-4x4-3x3"]["nmse_y"] > 5 * narrow["sfc6-7x7-3x3"]["nmse_y"], narrow
    with pytest.raises(ValueError, match=r"bits must be an int in \[4, 8\]"):
        run_error_study(**kwargs, bits=3)


def test_narrow_z_raises_the_error_and_is_recorded():
    """``z_bits`` narrows the rescaled accumulators: at 12 bits SFC-6's output error grows;
    the width is checked and recorded with the study's engine settings."""
    kwargs = {**REDUCED, "algorithms": ("sfc6-7x7-3x3",), "fine_tune": (False,)}
    wide = run_error_study(**kwargs)
    narrow = run_error_study(**kwargs, z_bits=12)
    nmse = [s["summary"]["geomean_over_layers"]["pow2"]["sfc6-7x7-3x3"]["nmse_out"]
            for s in (wide, narrow)]  # fmt: skip
    assert nmse[1] > 1.5 * nmse[0], nmse
    assert (wide["settings"]["engine"]["z_bits"], narrow["settings"]["engine"]["z_bits"]) == (
        20,
        12,
    )
    with pytest.raises(ValueError, match=r"z_bits must be an int in \[12, 64\]"):
        run_error_study(**kwargs, z_bits=11)
