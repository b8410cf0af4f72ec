"""`sfc-hls vectors`: every stage as $readmemh files, consistent and atomic."""

import hashlib
import json

import numpy as np
import pytest

from sfc_hls.atomic_files import _umask
from sfc_hls.cli import main
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant, random_layer_quant
from sfc_hls.golden import conv2d_int8
from sfc_hls.vectors import hex_lines, read_hex, write_vectors


def test_hex_round_trip_and_range():
    vals = np.array([-128, -1, 0, 1, 127])
    text = hex_lines(vals, 8)
    assert text.splitlines() == ["80", "ff", "00", "01", "7f"]
    assert hex_lines(np.array([-1]), 14) == "3fff\n"
    with pytest.raises(ValueError, match="do not fit 8 signed bits"):
        hex_lines(np.array([128]), 8)


@pytest.mark.parametrize("mode", ["pow2", "fixed"])
def test_vectors_match_npz_and_golden(tmp_path, mode):
    out = tmp_path / "vec"
    res = write_vectors(out, algorithm="sfc4-4x4-3x3", cin=3, cout=2, height=9, width=7,
                        seed=5, scale_mode=mode, relu=True)  # fmt: skip
    man = json.loads((out / "manifest.json").read_text())
    assert man == res.manifest
    npz = np.load(out / "vectors.npz")
    for name, meta in man["files"].items():
        text = (out / name).read_text()
        assert hashlib.sha256(text.encode()).hexdigest() == meta["sha256"]
        back = read_hex(out / name, meta["bits"])
        assert np.array_equal(back, npz[name[:-4]].reshape(-1)), name
        assert list(npz[name[:-4]].shape) == meta["shape"]
    params = LayerQuant.load(out / "params.json")
    assert np.array_equal(conv2d_int8(npz["input"], params), npz["output"])
    # tile-major order: tiles (n, ty, tx, ci, L*L); v = B^T tile in the same order
    assert np.array_equal(npz["v"], npz["tiles"] @ params.algo.bt_int.T)
    assert man["layer"]["tiles"] == [3, 2]


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["vectors", "--algo", "wino-2x2-3x3", "--cin", "2", "--cout", "1", "--h", "5",
                 "--w", "6", "-o", str(out)]) == 0  # fmt: skip
    assert (out / "manifest.json").exists()
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    assert main(["vectors", "-o", str(out)]) == 2
    assert "exists (use --force" in capsys.readouterr().err
    assert main(["vectors", "--seed", "9", "-o", str(out), "--force"]) == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 9


def test_cli_with_given_params(tmp_path):
    rng = np.random.default_rng(2)
    cfg = EngineConfig(algorithm="direct-3x3", pco=1, cin_max=2, cout_max=2)
    params = random_layer_quant(cfg, 2, 2, rng)
    params.save(tmp_path / "p.json")
    x = rng.integers(-128, 128, size=(1, 2, 4, 4)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "v"
    assert main(["vectors", "--params", str(tmp_path / "p.json"), "--input",
                 str(tmp_path / "x.npy"), "-o", str(out)]) == 0  # fmt: skip
    npz = np.load(out / "vectors.npz")
    assert np.array_equal(npz["input"], x)
    assert np.array_equal(npz["output"], conv2d_int8(x, params))


def test_failure_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["vectors", "--algo", "sfc5-5x5-3x3", "-o", str(out)]) == 2
    assert "N (DFT size) must be one of" in capsys.readouterr().err
    bad_x = tmp_path / "x.npy"
    np.save(bad_x, np.full((1, 4, 5, 5), 300))
    assert main(["vectors", "--input", str(bad_x), "-o", str(out)]) == 2
    assert "x values must be in [-128, 127]" in capsys.readouterr().err
    (tmp_path / "corrupt.npy").write_bytes(b"garbage")
    assert main(["vectors", "--input", str(tmp_path / "corrupt.npy"), "-o", str(out)]) == 2
    assert "cannot read --input" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.npy", "x.npy"]


def test_planned_values_counts_every_written_value(tmp_path):
    from sfc_hls.catalog import get_algorithm
    from sfc_hls.vectors import planned_values

    res = write_vectors(tmp_path / "v", algorithm="sfc4-4x4-3x3", cin=3, cout=2, height=9,
                        width=7, batch=2, padding=0)  # fmt: skip
    written = sum(int(np.prod(f["shape"])) for f in res.manifest["files"].values())
    algo = get_algorithm("sfc4-4x4-3x3")
    assert planned_values(algo, 3, 2, 0, 2, 9, 7) == written
