"""host.run: the ``sfc-hls run`` command (golden backend) and its bad-input errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sfc_hls.cli import main as cli_main
from sfc_hls.host.checkpoint import DIGITS_WEIGHTS, read_state_dict, save_checkpoint


def main(argv):
    return cli_main(["run", *argv])


def test_digits_run_prints_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "report" / "run.json"
    code = main(["--limit", "6", "--calib", "8", "--quiet", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["format"] == "sfc-hls.run/1" and report["backend"] == "golden"
    assert len(report["predictions"]) == 6
    assert report["summary"]["images"] == 6 and 0.8 <= report["summary"]["int8_top1"] <= 1
    assert report["quantization"]["calib_images"] == 8
    layers = {r["name"]: r for r in report["layers"]}
    assert layers["layer1.0.conv1"]["engine"] == "sfc6-7x7-3x3 P_co=4"
    assert layers["layer1.0.conv1"]["mode"] == "fast"
    assert layers["layer2.0.downsample.0"]["mode"] == "direct"
    assert [p.name for p in out.parent.iterdir()] == ["run.json"]  # no temporary left over
    code = main(["--limit", "3", "--calib", "4", "--algo", "wino-4x4-3x3"])
    text = capsys.readouterr().out
    assert code == 0
    assert "layer1.0.conv1" in text and "wino-4x4-3x3" in text and "MACs/img" in text
    assert "top-1 on 3 image(s)" in text and "predictions (golden int8 vs float32)" in text


def test_weight_transform_engine_quantizes_spatial_weights(tmp_path):
    """--weight-transform: the engine has the transform and the fast convs spatial weights
    (the default weight source then); --weight-source transform keeps transform-domain rows."""
    out = tmp_path / "run.json"
    argv = ["--limit", "4", "--calib", "8", "--quiet", "--weight-transform", "--map-kib", "64"]
    assert main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    quant = report["quantization"]
    assert quant["options"]["weight_source"] == "spatial"
    (engine,) = quant["engines"].values()
    assert engine["weight_transform"] is True and engine["map_kib"] == 64
    assert report["summary"]["int8_top1"] >= 0.75
    assert main([*argv, "--weight-source", "transform", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["quantization"]["options"]["weight_source"] == "transform"


def _digit_folder(root, count_per_class=2):
    """Real digits (scikit-learn scans), written as 8-bit PNG files in class folders."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in (3, 7):
        (root / str(label)).mkdir(parents=True)
        idx = np.flatnonzero(digits.target == label)[-count_per_class:]
        for k in idx:
            pixels = (digits.images[k] / 16 * 255).astype(np.uint8)
            Image.fromarray(pixels).resize((28, 28), Image.BILINEAR).save(
                root / str(label) / f"{k}.png"
            )
    return root


def test_image_folder_and_checkpoint_path(tmp_path):
    images = _digit_folder(tmp_path / "images")
    ckpt = save_checkpoint(read_state_dict(DIGITS_WEIGHTS), tmp_path / "ckpt.pt")
    out = tmp_path / "run.json"
    code = main(
        ["--weights", str(ckpt), "--images", str(images), "--calib", "4", "--quiet",
         "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    preds = report["predictions"]
    assert [p["label"] for p in preds] == [3, 3, 7, 7]  # folder names are the class indices
    assert preds[0]["image"].endswith(".png")
    assert report["summary"]["int8_top1"] >= 0.75


def test_corrupt_image_is_named(tmp_path, capsys):
    images = _digit_folder(tmp_path / "images", count_per_class=1)
    bad = images / "7" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    assert main(["--images", str(images), "--quiet"]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_resnet18_needs_weights_or_explicit_random(tmp_path, capsys):
    assert main(["--model", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "no pretrained resnet18 weights are available offline" in err
    assert "--random-weights" in err
    assert main(["--model", "resnet18", "--random-weights"]) == 2
    assert "--random-images N" in capsys.readouterr().err


def test_mismatched_checkpoint_names_file_and_keys(tmp_path, capsys):
    state = read_state_dict(DIGITS_WEIGHTS)
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    save_checkpoint(state, path)
    assert main(["--weights", str(path), "--images", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and "layer1.0.conv1.weight" in err and "extra.weight" in err
    assert main(["--weights", str(tmp_path / "missing.pt"), "--quiet"]) == 2
    assert "missing.pt" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--limit", "0"], "--limit must be an int >= 1"),
        (["--calib", "0"], "--calib must be an int >= 1"),
        (["--algo", "sfc5-2x2-3x3"], "algorithm"),
        (["--map-kib", "-1"], "--map-kib must be an int in [0, 16384], got -1"),
        (["--weight-transform", "--backend", "rtl", "--axi"], "--axi: the AXI top takes none"),
        (["--replay-beats", "-1"], "--replay-beats must be an int in [0, 65536], got -1"),
    ],
)
def test_bad_options(argv, message, capsys):
    assert main([*argv, "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_wrong_channel_count_in_checkpoint_input(tmp_path, capsys):
    """An RGB resnet18 checkpoint with a grayscale random input set is fine (converted);
    a random small model with 3 input channels rejects the 1-channel digits split."""
    from sfc_hls.host.models import small_resnet

    path = save_checkpoint(small_resnet(in_channels=3), tmp_path / "rgb.pt")
    assert main(["--weights", str(path), "--quiet"]) == 2
    assert "--images DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_resnet18_runs_every_conv_on_one_engine(tmp_path):
    # Issue #12: all 20 convs of ResNet-18 on the one engine, each with its mode.
    out = tmp_path / "r18.json"
    assert main(["--model", "resnet18", "--random-weights", "--random-images", "1",
                 "--image-size", "64", "--quiet", "--json", str(out)]) == 0  # fmt: skip
    convs = [r for r in json.loads(out.read_text())["layers"] if r["op"] == "conv"]
    assert len(convs) == 20
    assert {r["engine"] for r in convs} == {"sfc6-7x7-3x3 P_co=4"}
    modes = {r["name"]: r["mode"] for r in convs}
    assert modes["conv1"] == modes["layer2.0.conv1"] == modes["layer2.0.downsample.0"] == "direct"
    # The 13 stride-1 3x3 convs in fast mode; the stem, 3 stride-2 3x3 and 3 1x1 direct.
    assert sum(mode == "fast" for mode in modes.values()) == 13
