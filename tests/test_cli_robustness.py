"""Issue #16, lists 1-8: hostile input to the sfc-hls commands gets one line on stderr and
exit code 2, before any expensive work, with every pre-existing file left as it was."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sfc_hls.atomic_files import write_text_atomic
from sfc_hls.cli import main
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import random_layer_quant

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--algo", "wino-2x2-3x3", "--cin", "2", "--cout", "1", "--h", "5", "--w", "6"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``sfc-hls argv`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("sfc-hls") and ": error: " in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root`` (hidden ones too): kind, mode and content."""
    entries: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            entries[str(path.relative_to(root))] = ("link", os.readlink(path))
        elif path.is_dir():
            entries[str(path.relative_to(root))] = ("dir", st.st_mode)
        else:
            entries[str(path.relative_to(root))] = ("file", st.st_mode, path.read_bytes())
    return entries


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """A valid layer-quant file (direct-3x3, 2 -> 2 channels)."""
    cfg = EngineConfig(algorithm="direct-3x3", pco=1, cin_max=2, cout_max=2)
    params = random_layer_quant(cfg, 2, 2, np.random.default_rng(2))
    path = tmp_path / "params.json"
    params.save(path)
    return path


def _edited(params_file: Path, edit) -> Path:
    data = json.loads(params_file.read_text())
    data = edit(data)
    path = params_file.with_name("edited.json")
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------------- 1: fractional params
def test_params_with_fractional_values_are_rejected(params_file, tmp_path):
    def fractional_bias(d):
        d["bias"][0] += 0.7
        return d

    code, _, err = run_cli(["vectors", "--params", _edited(params_file, fractional_bias),
                            "-o", tmp_path / "v"])  # fmt: skip
    assert_one_line_error(code, err, "bias", "integers only")
    assert not (tmp_path / "v").exists()


def test_params_with_fractional_weights_are_rejected(params_file, tmp_path):
    def fractional_weight(d):
        d["weights"][1][0][1] = 34.7
        return d

    code, _, err = run_cli(["vectors", "--params", _edited(params_file, fractional_weight),
                            "-o", tmp_path / "v"])  # fmt: skip
    assert_one_line_error(code, err, "weights", "34.7")


# ---------------------------------------------------------------------- 3, 4: --force
def test_force_refuses_a_users_directory(tmp_path):
    out = tmp_path / "v"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = snapshot(tmp_path)
    code, _, err = run_cli(["vectors", *SMALL, "-o", out, "--force"])
    assert_one_line_error(code, err, str(out), "sfc-hls did not write it")
    assert snapshot(tmp_path) == before


def test_force_refuses_an_sfc_hls_directory_holding_other_files(tmp_path):
    out = tmp_path / "v"
    assert run_cli(["vectors", *SMALL, "-o", out])[0] == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = run_cli(["vectors", *SMALL, "-o", out, "--force"])
    assert_one_line_error(code, err, "did not write: notes.txt")
    assert snapshot(tmp_path) == before


def test_force_replaces_its_own_output_and_keeps_a_sibling_old_directory(tmp_path):
    out = tmp_path / "v"
    old = tmp_path / ".v.old"
    old.mkdir()
    (old / "keep.txt").write_text("a user's file")
    assert run_cli(["vectors", *SMALL, "-o", out])[0] == 0
    assert run_cli(["vectors", *SMALL, "--seed", "7", "-o", out, "--force"])[0] == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 7
    assert (old / "keep.txt").read_text() == "a user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".v.old", "v"]  # no temporaries


def test_force_refuses_a_symlink_and_a_directory_without_marker(tmp_path):
    from sfc_hls.atomic_files import OUTPUT_MARKER

    target = tmp_path / "target"
    assert run_cli(["vectors", *SMALL, "-o", target])[0] == 0
    link = tmp_path / "link"
    link.symlink_to(target)
    assert_one_line_error(*run_cli(["vectors", *SMALL, "-o", link, "--force"])[::2], "symbolic")
    (target / OUTPUT_MARKER).unlink()
    before = snapshot(tmp_path)
    code, _, err = run_cli(["vectors", *SMALL, "-o", target, "--force"])
    assert_one_line_error(code, err, OUTPUT_MARKER)
    assert snapshot(tmp_path) == before


def test_force_onto_a_regular_file(tmp_path):
    out = tmp_path / "v"
    out.write_text("precious")
    before = snapshot(tmp_path)
    for _ in range(2):  # the same answer every time: nothing was renamed away
        code, _, err = run_cli(["vectors", *SMALL, "-o", out, "--force"])
        assert_one_line_error(code, err, "not a directory")
        assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------- 5: crashes, bounds
def test_show_large_winograd_is_a_clear_error(tmp_path):
    for name in ("wino-11x11-3x3", "wino-14x14-3x3", "wino-6x6-11x11"):
        code, _, err = run_cli(["show", name])
        assert_one_line_error(code, err, "m + r - 1 <= 12")


def test_exact_verification_beyond_int64():
    """Matrices whose common denominator exceeds 2^63 are verified in Python integers."""
    from sfc_hls.baselines import winograd_1d
    from sfc_hls.bilinear import BilinearAlgorithm

    base = winograd_1d(2, 3)
    big = Fraction(2**40)
    algo = BilinearAlgorithm(
        name="scaled", title="scaled", family="winograd", dims=1, output_tile=2, kernel=3,
        bt=base.bt / big, g=base.g / big, at=base.at * big * big,
        product_groups=base.product_groups,
    )  # fmt: skip
    assert algo.mults == 4


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["show", "direct-16x16-11x11"], ["at most 16x16", "1024 multiplications", "26x26"]),
        (["show", "sfc6-10x10-7x7"], ["SFC-6(10x10,7x7)", "1432"]),
        (["algorithms", "direct-3x3-11x11"], ["1089"]),
        (["show", "wino-2x2-3x3@0,1,-1,1000"], ["1000", "64"]),
        (["show", "wino-2x2-3x3@0,1,1/0"], ["not a rational number"]),
    ],
)
def test_algorithm_sizes_are_bounded(argv, needles):
    t0 = time.perf_counter()
    code, _, err = run_cli(argv)
    assert_one_line_error(code, err, *needles)
    assert time.perf_counter() - t0 < 5


def test_largest_accepted_2d_algorithms_build():
    from sfc_hls.catalog import get_algorithm

    assert get_algorithm("direct-4x4-8x8").mults == 1024
    assert get_algorithm("wino-10x10-3x3").input_tile == 12


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (["--padding", "1000"], ["padding must be in [0, 2]"]),
        (["--cin", "2000", "--cout", "2000"], ["values, more than the 16,777,216 allowed"]),
        (["--cin", "5000"], ["cin_max must be an int in [1, 4096]"]),
        (["--h", "100000", "--w", "100000"], ["more than the 16,777,216 allowed"]),
        (["--batch", "10000000"], ["more than the 16,777,216 allowed"]),
        (["--cin", "0"], ["--cin must be an int >= 1"]),
    ],
)
def test_vector_sizes_are_bounded(tmp_path, options, needles):
    t0 = time.perf_counter()
    code, _, err = run_cli(["vectors", *options, "-o", tmp_path / "v"])
    assert_one_line_error(code, err, *needles)
    assert time.perf_counter() - t0 < 5
    assert list(tmp_path.iterdir()) == []


def test_generate_cin_max_is_bounded(tmp_path, monkeypatch):
    import sfc_hls.commands.generate as command

    monkeypatch.setattr(command, "generate_engine", _must_not_run)
    code, _, err = run_cli(["generate", "--cin-max", "65536", "-o", tmp_path / "e"])
    assert_one_line_error(code, err, "cin_max")


def _must_not_run(*args, **kwargs):
    raise AssertionError("the expensive work started")


def test_temporaries_of_a_killed_run_are_cleaned_up(tmp_path):
    pid = dead_pid()
    stale_dir = tmp_path / f".v.{pid}-abc123.tmp"
    stale_dir.mkdir()
    (stale_dir / "input.hex").write_text("00\n")
    stale_file = tmp_path / f".v.{pid}-def456.tmp"
    stale_file.write_text("partial")
    unrelated = tmp_path / ".v.notes.tmp"
    unrelated.write_text("not ours")
    assert run_cli(["vectors", *SMALL, "-o", tmp_path / "v"])[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".v.notes.tmp", "v"]


def test_killed_between_renames_restores_the_previous_output(tmp_path):
    out = tmp_path / "v"
    assert run_cli(["vectors", *SMALL, "-o", out])[0] == 0
    before = snapshot(out)
    out.rename(tmp_path / f".v.{dead_pid()}-abc123.old")
    code, _, err = run_cli(["vectors", *SMALL, "-o", out])
    assert_one_line_error(code, err, "exists")
    assert snapshot(out) == before


_SLOW_VECTORS = """
import sys, time
import sfc_hls.vectors as vectors
hex_lines = vectors.hex_lines
def slow(*args, **kwargs):
    time.sleep(0.3)
    return hex_lines(*args, **kwargs)
vectors.hex_lines = slow
from sfc_hls.cli import main
sys.exit(main(["vectors", "--cin", "1", "--cout", "1", "--h", "4", "--w", "4", "-o", sys.argv[1]]))
"""


def test_sigterm_during_a_write_leaves_no_temporary(tmp_path):
    out = tmp_path / "v"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_VECTORS, str(out)], cwd=ROOT)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".v.*.tmp")):
        assert proc.poll() is None and time.monotonic() < deadline, "no temporary appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- 6: OS errors
def test_json_onto_a_directory_fails_before_the_run(tmp_path, monkeypatch):
    from sfc_hls.host import run as host_run

    monkeypatch.setattr(host_run, "_load_model", _must_not_run)
    code, _, err = run_cli(["run", "--quiet", "--json", tmp_path])
    assert_one_line_error(code, err, "is a directory")
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["run", "--quiet", "--json", tmp_path / "file" / "report.json"])
    assert_one_line_error(code, err, "not a directory")


def test_unwritable_destination(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    code, _, err = run_cli(["vectors", *SMALL, "-o", tmp_path / "v"])
    assert_one_line_error(code, err, "not writable")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_loses_nothing(tmp_path, monkeypatch):
    out = tmp_path / "v"
    assert run_cli(["vectors", *SMALL, "-o", out])[0] == 0
    before = snapshot(tmp_path)
    write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.suffix == ".hex":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    code, _, err = run_cli(["vectors", *SMALL, "--seed", "3", "-o", out, "--force"])
    assert_one_line_error(code, err, "No space left on device", ".hex")
    assert snapshot(tmp_path) == before


def test_read_only_file_system_while_writing(tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    code, _, err = run_cli(["vectors", *SMALL, "-o", tmp_path / "v"])
    assert_one_line_error(code, err, "Read-only file system")


# ---------------------------------------------------------------------- 7: exists, up front
def test_generate_finds_an_existing_output_before_generating(tmp_path, monkeypatch):
    import sfc_hls.commands.generate as command

    monkeypatch.setattr(command, "generate_engine", _must_not_run)
    (tmp_path / "e").mkdir()
    code, _, err = run_cli(["generate", "--algo", "wino-2x2-3x3", "--pco", "2", "-o",
                            tmp_path / "e"])  # fmt: skip
    assert_one_line_error(code, err, "exists")
    code, _, err = run_cli(["generate", "-o", tmp_path / "e", "--force"])
    assert_one_line_error(code, err, "did not write it")


def test_error_study_finds_an_existing_output_before_the_study(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from sfc_hls.host import error_study

    monkeypatch.setattr(error_study, "run_error_study", _must_not_run)
    (tmp_path / "study").mkdir()
    code, _, err = run_cli(["error-study", tmp_path / "study"])
    assert_one_line_error(code, err, "exists")


def test_vectors_find_an_existing_output_before_the_golden_model(tmp_path, monkeypatch):
    import sfc_hls.vectors as vectors

    monkeypatch.setattr(vectors, "conv2d_int8", _must_not_run)
    (tmp_path / "v").mkdir()
    code, _, err = run_cli(["vectors", "-o", tmp_path / "v"])
    assert_one_line_error(code, err, "exists")


# ---------------------------------------------------------------------- 8: malformed input
@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (lambda d: [d], ["JSON object", "list"]),
        (lambda d: None, ["JSON object", "NoneType"]),
        (lambda d: {**d, "bias": [10**30, 0]}, ["bias", "2^62"]),
        (lambda d: {**d, "bias": [2**40, 0]}, ["bias magnitude must be <="]),
        (lambda d: {**d, "padding": 10**6}, ["padding must be in [0, 2]"]),
        (lambda d: {**d, "config": 7}, ["config must be a JSON object"]),
        (lambda d: {**d, "config": {**d["config"], "pco": "x"}}, ["pco must be an int"]),
        (lambda d: {**d, "config": {**d["config"], "colour": 1}}, ["unknown fields", "colour"]),
        (lambda d: {**d, "weights": [[[1, 2], [3]]] * 9}, ["weights is ragged"]),
        (lambda d: {**d, "weights": [1, 2]}, ["weights must be a 3-dimensional"]),
        (lambda d: {**d, "act_shift": "3"}, ["act_shift must be a 1-dimensional"]),
        (lambda d: {**d, "act_shift": [float("nan")] * 9}, ["act_shift", "nan"]),
        (lambda d: {**d, "act_shift": [True] * 9}, ["act_shift", "integers only"]),
        (lambda d: {**d, "cin": 2.5}, ["cin must be an integer"]),
        (lambda d: {**d, "relu": "yes"}, ["relu must be true or false"]),
        (lambda d: {**d, "input_scale": "x"}, ["input_scale must be a finite number"]),
        (lambda d: {k: v for k, v in d.items() if k != "out_shift"}, ["missing", "out_shift"]),
        (lambda d: {**d, "format": "other"}, ["not a layer-quant record"]),
    ],
)
def test_malformed_params_name_the_field(params_file, tmp_path, edit, needles):
    code, _, err = run_cli(["vectors", "--params", _edited(params_file, edit),
                            "-o", tmp_path / "v"])  # fmt: skip
    assert_one_line_error(code, err, "edited.json", *needles)
    assert not (tmp_path / "v").exists()


def test_unreadable_params_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": ')
    assert_one_line_error(*run_cli(["vectors", "--params", bad, "-o", tmp_path / "v"])[::2],
                          "bad.json")  # fmt: skip
    bad.write_bytes(b"\xff\xfe")
    assert_one_line_error(*run_cli(["vectors", "--params", bad, "-o", tmp_path / "v"])[::2],
                          "bad.json")  # fmt: skip
    code, _, err = run_cli(["vectors", "--params", tmp_path / "missing.json", "-o", tmp_path / "v"])
    assert_one_line_error(code, err, "missing.json")


def test_bad_input_arrays_are_named(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 5, 5)))
    code, _, err = run_cli(["vectors", "--input", tmp_path / "x.npy", "-o", tmp_path / "v"])
    assert_one_line_error(code, err, "x.npy", "integer array")
    np.save(tmp_path / "x.npy", np.zeros((4, 5, 5), dtype=np.int8))
    code, _, err = run_cli(["vectors", "--input", tmp_path / "x.npy", "-o", tmp_path / "v"])
    assert_one_line_error(code, err, "x.npy", "4D")
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object))
    code, _, err = run_cli(["vectors", "--input", tmp_path / "x.npy", "-o", tmp_path / "v"])
    assert_one_line_error(code, err, "x.npy")


def _image_folder(root: Path, side: int) -> Path:
    from PIL import Image

    (root / "3").mkdir(parents=True)
    Image.fromarray(np.zeros((side, side), dtype=np.uint8)).save(root / "3" / "big.png")
    return root


@pytest.mark.parametrize("side", [48, 40])  # 2304 px > 2x the limit; 1600 px > the limit
def test_decompression_bomb_names_the_file(tmp_path, monkeypatch, side):
    pytest.importorskip("torch")
    from PIL import Image

    images = _image_folder(tmp_path / "images", side)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    code, _, err = run_cli(["run", "--images", images, "--quiet"])
    assert_one_line_error(code, err, "big.png", "too large")


def _digits_state() -> dict:
    from sfc_hls.host.checkpoint import DIGITS_WEIGHTS, read_state_dict

    return read_state_dict(DIGITS_WEIGHTS)


def test_zero_batchnorm_variance_is_refused(tmp_path):
    pytest.importorskip("torch")
    from sfc_hls.host.checkpoint import save_checkpoint

    state = _digits_state()
    for key in state:
        if key.endswith("running_var"):
            state[key][:] = 0
    path = save_checkpoint(state, tmp_path / "var0.pt")
    code, _, err = run_cli(["run", "--weights", path, "--random-images", "2", "--quiet"])
    assert_one_line_error(code, err, "running_var is 0")


def test_zero_batchnorm_variance_names_the_layer(tmp_path):
    pytest.importorskip("torch")
    from sfc_hls.host.checkpoint import save_checkpoint

    state = _digits_state()
    state["layer2.0.bn1.running_var"][:] = 0
    path = save_checkpoint(state, tmp_path / "var0.pt")
    code, _, err = run_cli(["run", "--weights", path, "--random-images", "2", "--quiet"])
    assert_one_line_error(code, err, "layer2.0.bn1")


def test_fold_batchnorm_names_the_layer():
    from types import SimpleNamespace

    from sfc_hls.quantize import fold_batchnorm

    conv = SimpleNamespace(weight=np.ones((2, 1, 3, 3)), bias=None)
    bn = SimpleNamespace(running_mean=np.zeros(2), running_var=np.array([1.0, 0.0]),
                         weight=None, bias=None, eps=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match=r"layer 'layer1.0.bn1': bn.running_var is 0 in channel"):
        fold_batchnorm(conv, bn, layer="layer1.0.bn1")
    conv.weight[1] = 0  # a pruned channel with zero variance folds fine
    w, _ = fold_batchnorm(conv, bn, layer="layer1.0.bn1")
    assert not w[1].any()
    conv.weight[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"layer 'conv1': conv.weight contains NaN"):
        fold_batchnorm(conv, None, layer="conv1")


def test_nan_weights_name_the_layer(tmp_path):
    pytest.importorskip("torch")
    from sfc_hls.host.checkpoint import save_checkpoint

    state = _digits_state()
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    path = save_checkpoint(state, tmp_path / "nan.pt")
    code, _, err = run_cli(["run", "--weights", path, "--random-images", "1", "--quiet"])
    assert_one_line_error(code, err, "nan.pt", "layer1.0.conv1.weight", "NaN")


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["run", "--image-size", "0"], ["--image-size must be an int in [1, 1024], got 0"]),
        (["run", "--image-size", "100000"], ["--image-size"]),
        (["run", "--random-images", "0"], ["--random-images"]),
        (["run", "--seed", "-1"], ["--seed must be an int in [0, "]),
        (["vectors", "--seed", "-1", "-o", "unused"], ["--seed must be an int in [0, "]),
        (["vectors", "--seed", str(2**64), "-o", "unused"], ["--seed"]),
        (["error-study", "unused", "--seed", "-1"], ["--seed must be an int in [0, "]),
        (["error-study", "unused", "--calib-images", "0"], ["--calib-images"]),
        (
            ["error-study", "unused", "--z-bits", "8"],
            ["--z-bits must be an int in [12, 64], got 8"],
        ),
        (["run", "--pco", "abc"], ["argument --pco: invalid int value: 'abc'"]),
        (["show"], ["the following arguments are required: NAME"]),
        (["no-such-command"], ["invalid choice: 'no-such-command'"]),
    ],
)
def test_bad_options_are_one_line(tmp_path, monkeypatch, argv, needles):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv)
    assert_one_line_error(code, err, *needles)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_modes_from_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        out = tmp_path / "v"
        assert run_cli(["vectors", *SMALL, "-o", out])[0] == 0
        write_text_atomic(tmp_path / "report.json", "{}")
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    for path in [*out.iterdir(), tmp_path / "report.json"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_text_atomic(path, "[]")
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_text() == "[]"


# ---------------------------------------------------------------------- fuzzing
FUZZ = settings(
    derandomize=True,
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_clean_exit(code: int, err: str) -> None:
    """Exit 0, or exit 2 with one line on stderr; never a traceback."""
    event(f"exit {code}")
    assert "Traceback" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.count("\n") == 1 and ": error: " in err, err


def _sfc_name(n: int, m: int, r: int, two_d: bool) -> str:
    return f"sfc{n}-{m}x{m}-{r}x{r}" if two_d else f"sfc{n}-{m}-{r}"


def _wino_name(m: int, r: int, two_d: bool, points: list[str] | None) -> str:
    name = f"wino-{m}x{m}-{r}x{r}" if two_d else f"wino-{m}-{r}"
    return name if points is None else f"{name}@{','.join(points)}"


def _direct_name(m: int, r: int, two_d: bool) -> str:
    if m == 1:
        return f"direct-{r}x{r}" if two_d else f"direct-{r}"
    return f"direct-{m}x{m}-{r}x{r}" if two_d else f"direct-{m}-{r}"


_POINT = st.one_of(
    st.integers(-80, 80).map(str),
    st.sampled_from(["inf", "1/2", "-1/3", "1/0", "x", "", "1e3", "1/65"]),
)


def algorithm_names(max_tile: int) -> st.SearchStrategy[str]:
    """Names of every family around (and beyond) the accepted sizes, and junk."""
    tile, kernel = st.integers(-1, max_tile), st.integers(-1, 6)
    return st.one_of(
        st.builds(_sfc_name, st.sampled_from([2, 3, 4, 6, 8]), tile, kernel, st.booleans()),
        st.builds(
            _wino_name,
            tile,
            kernel,
            st.booleans(),
            st.one_of(st.none(), st.lists(_POINT, max_size=6)),
        ),  # fmt: skip
        st.builds(_direct_name, st.integers(0, 4), kernel, st.booleans()),
        st.sampled_from(["wino-11x11-3x3", "direct-16x16-11x11", "sfc6-10x10-7x7", "SFC6-6X6-3X3"]),
        st.text(max_size=12),
    )


@FUZZ
@given(name=algorithm_names(max_tile=9), as_json=st.booleans())
def test_fuzz_show(name, as_json):
    code, out, err = run_cli(["show", name, *(["--json"] if as_json else [])])
    assert_clean_exit(code, err)
    if code == 0:
        if as_json:
            assert json.loads(out)["mults"] == len(json.loads(out)["bt"])
        else:
            assert "B^T (" in out and "A^T (" in out


@FUZZ
@given(names=st.lists(algorithm_names(max_tile=4), max_size=3), as_json=st.booleans())
def test_fuzz_algorithms(names, as_json):
    code, out, err = run_cli(["algorithms", *names, *(["--json"] if as_json else [])])
    assert_clean_exit(code, err)
    if code == 0 and as_json:
        assert len(json.loads(out)) == (len(names) or 11)


def _existing_output(root: Path, kind: str | None) -> None:
    out = root / "v"
    if kind == "file":
        out.write_text("precious")
    elif kind == "user_dir":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif kind in ("own_dir", "own_dir_and_notes"):
        out.mkdir()
        (out / "input.hex").write_text("00\n")
        marker = {"format": "sfc-hls.output/1", "entries": ["input.hex"]}
        (out / ".sfc-hls-output.json").write_text(json.dumps(marker))
        if kind == "own_dir_and_notes":
            (out / "notes.txt").write_text("mine")


_VECTOR_OPTIONS = {
    "--algo": st.sampled_from(["wino-2x2-3x3", "direct-3x3", "sfc4-4x4-3x3", "direct-5x5"]),
    "--cin": st.integers(1, 3),
    "--cout": st.integers(1, 3),
    "--batch": st.integers(1, 2),
    "--h": st.integers(3, 12),
    "--w": st.integers(3, 12),
    "--padding": st.integers(0, 2),
    "--seed": st.integers(0, 2**63 - 1),
    "--scale-mode": st.sampled_from(["pow2", "fixed"]),
}
_BAD_VALUES = st.sampled_from([-1, 0, 3, 10**6, 2**64, "x", "sfc6-10x10-7x7", "1.5"])


@FUZZ
@given(
    options=st.fixed_dictionaries({}, optional=_VECTOR_OPTIONS),
    broken=st.one_of(st.none(), st.tuples(st.sampled_from(sorted(_VECTOR_OPTIONS)), _BAD_VALUES)),
    flags=st.tuples(st.booleans(), st.booleans()),
    existing=st.sampled_from([None, "file", "user_dir", "own_dir", "own_dir_and_notes"]),
)
def test_fuzz_vectors_options(options, broken, flags, existing):
    if broken is not None:
        options = {**options, broken[0]: broken[1]}
    relu, force = flags
    argv = ["vectors", *(str(x) for item in options.items() for x in item)]
    argv += ["--relu"] * relu + ["--force"] * force
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _existing_output(root, existing)
        before = snapshot(root)
        code, out, err = run_cli([*argv, "-o", root / "v"])
        assert_clean_exit(code, err)
        if code == 0:
            manifest = json.loads((root / "v" / "manifest.json").read_text())
            assert manifest["layer"]["height"] == int(options.get("--h", 14))
            assert existing in (None, "own_dir") and (existing is None or force)
            assert sorted(p.name for p in root.iterdir()) == ["v"]
        else:
            assert snapshot(root) == before


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12,
)  # fmt: skip
_PARAM_FIELDS = ["format", "config", "cin", "cout", "padding", "relu", "rescale_shift",
                 "input_scale", "output_scale", "act_mult", "act_shift", "weights",
                 "rescale_mult", "bias", "out_mult", "out_shift", "extra"]  # fmt: skip


_ARRAY_FIELDS = ["act_mult", "act_shift", "weights", "rescale_mult", "bias", "out_mult",
                 "out_shift"]  # fmt: skip
_MUTATIONS = st.one_of(
    st.tuples(st.just("set"), st.sampled_from([*_PARAM_FIELDS, "config.pco", "config.algorithm"]),
              _JSON),
    st.tuples(st.just("delete"), st.sampled_from([*_PARAM_FIELDS, "config.z_bits"]), st.none()),
    st.tuples(st.just("document"), st.none(), _JSON),
    st.tuples(st.just("element"), st.sampled_from(_ARRAY_FIELDS),
              st.one_of(_JSON, st.floats(-300, 300), st.integers(-(2**70), 2**70))),
)  # fmt: skip


def _mutated(doc: dict, mutation: tuple) -> object:
    kind, field, value = mutation
    if kind == "document":
        return value
    target, key = (doc["config"], field[7:]) if field.startswith("config.") else (doc, field)
    if kind == "delete":
        target.pop(key, None)
    elif kind == "set":
        target[key] = value
    else:  # one element of a (nested) array
        array = target[key]
        while isinstance(array[0], list):
            array = array[0]
        array[0] = value
    return doc


@FUZZ
@given(mutation=_MUTATIONS)
def test_fuzz_params_documents(mutation):
    cfg = EngineConfig(algorithm="direct-3x3", pco=1, cin_max=2, cout_max=2)
    doc = _mutated(random_layer_quant(cfg, 2, 2, np.random.default_rng(3)).to_dict(), mutation)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "p.json").write_text(json.dumps(doc))
        before = snapshot(root)
        code, _, err = run_cli(["vectors", "--params", root / "p.json", "-o", root / "v"])
        assert_clean_exit(code, err)
        if code == 2:
            assert snapshot(root) == before
        else:  # the layer written is exactly the one given: nothing truncated or dropped
            written = json.loads((root / "v" / "params.json").read_text())
            for field in _ARRAY_FIELDS:
                assert written[field] == doc[field], field


_TOKENS = ["--cin", "--cout", "--h", "--w", "--padding", "--seed", "--batch", "--algo", "--relu",
           "--force", "--json", "-o", "out", "3", "-1", "0", "x", "1e3", "sfc6-7x7-3x3",
           "wino-2x2-3x3", "--scale-mode", "fixed", "--params", "--input", "--", "-h", "NaN",
           "direct-3x3", "out/sub"]  # fmt: skip


@FUZZ
@given(command=st.sampled_from(["algorithms", "show", "vectors"]),
       tokens=st.lists(st.sampled_from(_TOKENS), max_size=8))  # fmt: skip
def test_fuzz_argument_lists(command, tokens):
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        Path("out").mkdir()
        (Path("out") / "keep.txt").write_text("keep")
        before = snapshot(Path(tmp))
        code, out, err = run_cli([command, *tokens])
        assert_clean_exit(code, err)
        assert (Path("out") / "keep.txt").read_text() == "keep"
        if code == 2:
            assert snapshot(Path(tmp)) == before


def test_an_output_that_appears_during_the_run_is_not_replaced(tmp_path):
    from sfc_hls.atomic_files import atomic_directory

    out = tmp_path / "v"
    with pytest.raises(FileExistsError, match="exists"), atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("new")
        out.mkdir()  # another run finished first
        (out / "b.txt").write_text("theirs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]


# -- #16 item 2: a broken cache entry is rebuilt, never copied on --------------------------------
@pytest.mark.parametrize("damage", ["truncate", "empty", "bad-manifest", "no-hash"])
def test_generate_rebuilds_a_broken_cache_entry(tmp_path, monkeypatch, damage):
    import json

    monkeypatch.setenv("SFC_HLS_CACHE", str(tmp_path / "cache"))
    argv = ["generate", "--algo", "wino-2x2-3x3", "--pco", "1", "--cin-max", "4", "--cout-max", "2"]
    code, _, err = run_cli([*argv, "-o", tmp_path / "first"])
    assert code == 0, err
    good = (tmp_path / "first" / "conv_engine.v").read_bytes()
    (entry,) = (tmp_path / "cache" / "engines").iterdir()
    verilog, manifest = entry / "conv_engine.v", entry / "conv_engine.json"
    if damage == "truncate":
        verilog.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        verilog.write_bytes(b"")
    elif damage == "bad-manifest":
        manifest.write_text(manifest.read_text()[:100])
    else:
        record = json.loads(manifest.read_text())
        del record["verilog_sha256"]
        manifest.write_text(json.dumps(record))
    code, out, err = run_cli([*argv, "-o", tmp_path / "second"])
    assert code == 0, err
    assert (tmp_path / "second" / "conv_engine.v").read_bytes() == good
    assert verilog.read_bytes() == good  # the cache is healed
    assert json.loads(manifest.read_text())["verilog_sha256"]
