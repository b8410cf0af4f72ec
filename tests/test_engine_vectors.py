"""`sfc-hls vectors --engine`: port-level beats replayed by a plain SystemVerilog testbench."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sfc_hls.cli import main
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import random_layer_quant
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.engine_streams import EngineStreams
from sfc_hls.hw.generate import generate_engine
from sfc_hls.sim.native import read_hex

SMALL = {"pco": 2, "cin_max": 16, "cout_max": 8}
WINO = EngineConfig(algorithm="wino-2x2-3x3", **SMALL)
SFC6 = EngineConfig(algorithm="sfc6-7x7-3x3", **SMALL)
# (mode, stride, input shape (N, Cin, H, W), cout): cout > 2 P_co, several groups
LAYERS = [
    ("fast", 1, (2, 3, 9, 10), 5),
    ("direct", 2, (1, 3, 9, 7), 7),
    ("direct", 1, (2, 2, 5, 4), 8),
]


@pytest.mark.parametrize("config", [WINO, SFC6], ids=["wino", "sfc6"])
@pytest.mark.parametrize("mode,stride,shape,cout", LAYERS)
def test_expected_beats_invert_assemble(config, mode, stride, shape, cout):
    streams = EngineStreams(config)
    rng = np.random.default_rng(1)
    params = random_layer_quant(config, shape[1], cout, rng, mode=mode, kernel=3)
    x = rng.integers(-128, 128, size=shape)
    out = conv2d_int8(x, params, stride=stride)
    beats = streams.layer_beats(params, x, stride=stride)
    payloads, masks = streams.expected_output_beats(out, params, schedule=beats.schedule)
    assert len(payloads) == len(masks) == beats.expected_outputs
    back = streams.assemble(payloads, params, shape[0], *shape[2:], stride=stride,
                            schedule=beats.schedule)  # fmt: skip
    assert np.array_equal(back, out)
    assert all(p & ~m == 0 for p, m in zip(payloads, masks, strict=True))  # unmasked bits zero


@pytest.mark.parametrize("mode,stride,shape,cout", LAYERS[:2])
def test_expected_beats_match_the_rtl_under_the_mask(mode, stride, shape, cout):
    """Every beat the engine (Verilator, native runner) emits equals the expected one under the mask."""
    from sfc_hls.sim.native import engine_model, run_layer

    streams = EngineStreams(WINO)
    rng = np.random.default_rng(7)
    params = random_layer_quant(WINO, shape[1], cout, rng, mode=mode, kernel=3)
    x = rng.integers(-128, 128, size=shape)
    out, run = run_layer(engine_model(WINO), streams, params, x, stride=stride, seed=3,
                         input_pause=0.2, output_pause=0.2)  # fmt: skip
    schedule = streams.layer_beats(params, x, stride=stride).schedule
    expected, masks = streams.expected_output_beats(out, params, schedule=schedule)
    actual = run.outputs["o_out"]
    assert len(actual) == len(expected)
    bad = [i for i, (a, e, m) in enumerate(zip(actual, expected, masks, strict=True))
           if (a ^ e) & m]  # fmt: skip
    assert bad == []


# ---------------------------------------------------------------------- Icarus replay
@pytest.fixture(scope="module")
def wino_engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("eng") / "eng"
    generate_engine(WINO, path, name="eng_wino")
    return path


def _vectors(engine: Path, out: Path, *options: str) -> dict:
    assert main(["vectors", "--engine", str(engine), "-o", str(out), *options]) == 0
    return json.loads((out / "manifest.json").read_text())


def _replay(vectors: Path, engine: Path, work: Path, *plusargs: str) -> str:
    """Compile the shipped testbench with the engine's Verilog and run it; vvp's stdout."""
    assert shutil.which("iverilog"), "iverilog missing: `make toolchain` installs it"
    verilog = next(engine.glob("*.v"))
    binary = work / "replay.vvp"
    subprocess.run(["iverilog", "-g2012", "-I", str(vectors), "-o", str(binary),
                    str(vectors / "replay_tb.sv"), str(verilog)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    proc = subprocess.run(["vvp", "-n", str(binary), f"+vectors={vectors}", *plusargs],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    return proc.stdout


@pytest.mark.parametrize(
    "options",
    [
        ["--cin", "3", "--cout", "5", "--h", "7", "--w", "6", "--batch", "2", "--seed", "4"],
        ["--mode", "direct", "--stride", "2", "--cin", "3", "--cout", "7", "--h", "9", "--w",
         "7", "--replicas", "1", "--seed", "5", "--relu"],
    ],
    ids=["fast", "direct-stride2"],
)  # fmt: skip
def test_icarus_replays_the_vectors_bit_exact(wino_engine, tmp_path, options):
    man = _vectors(wino_engine, tmp_path / "vec", *options)
    assert man["layer"]["groups"] > 2
    out = _replay(tmp_path / "vec", wino_engine, tmp_path, "+seed=3", "+stall=25")
    assert f"PASS: {man['beats']['o_out']} o_out beats bit-exact" in out, out
    # the files are the raw payloads, one per line, as the ports carry them
    bits = {n: p["payload_bits"] for n, p in json.loads(next(wino_engine.glob("*.json"))
                                                       .read_text())["ports"].items()
            if "payload_bits" in p}  # fmt: skip
    for name in ("i_cfg", "i_chan", "i_weight", "i_act", "o_out"):
        lines = (tmp_path / "vec" / f"{name}.hex").read_text().splitlines()
        assert len(lines) == man["beats"][name]
        assert {len(line) for line in lines} == {(bits[name] + 3) // 4}


def test_icarus_fails_on_a_flipped_expected_byte(wino_engine, tmp_path):
    vec = tmp_path / "vec"
    man = _vectors(wino_engine, vec, "--cin", "2", "--cout", "5", "--h", "4", "--w", "4")
    expected = read_hex(vec / "o_out.hex")
    masks = read_hex(vec / "o_out.mask.hex")
    beat = len(expected) // 2
    digits = len((vec / "o_out.hex").read_text().splitlines()[0])
    expected[beat] ^= 0xFF & masks[beat]  # the lowest data lane: always a real pixel
    (vec / "o_out.hex").write_text("".join(f"{v:0{digits}x}\n" for v in expected))
    out = _replay(vec, wino_engine, tmp_path)
    assert f"mismatch at o_out beat {beat}" in out, out
    assert f"FAIL: 1 of {man['beats']['o_out']} o_out beats differ" in out, out


@pytest.mark.slow  # ~2 minutes of Icarus on the SFC-6 engine: make test-slow
def test_icarus_replays_sfc6(tmp_path):
    engine = tmp_path / "eng"
    generate_engine(SFC6, engine, name="eng_sfc6")
    man = _vectors(engine, tmp_path / "vec", "--cin", "1", "--cout", "5", "--h", "7", "--w", "7")
    out = _replay(tmp_path / "vec", engine, tmp_path)
    assert f"PASS: {man['beats']['o_out']} o_out beats bit-exact" in out, out


# ---------------------------------------------------------------------- bad inputs
def test_engine_without_a_manifest_is_one_line_naming_engine(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["vectors", "--engine", str(tmp_path / "empty"), "-o", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--engine" in err and "no engine manifest" in err
    assert not (tmp_path / "v").exists()


def test_engine_only_options_need_engine(tmp_path, capsys):
    assert main(["vectors", "--stride", "2", "-o", str(tmp_path / "v")]) == 2
    assert "--stride only apply with --engine" in capsys.readouterr().err


def test_engine_options_are_checked_against_the_engine(wino_engine, tmp_path, capsys):
    code = main(["vectors", "--engine", str(wino_engine), "--algo", "sfc6-7x7-3x3",
                 "-o", str(tmp_path / "v")])  # fmt: skip
    assert code == 2 and "--algo sfc6-7x7-3x3 differs" in capsys.readouterr().err
    code = main(["vectors", "--engine", str(wino_engine), "--cout", "9", "-o", str(tmp_path / "v")])
    assert code == 2 and "cout" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()
