"""`sfc-hls algorithms` and `sfc-hls show`."""

import json
import subprocess
import sys

from sfc_hls.catalog import DEFAULT_ALGORITHMS
from sfc_hls.cli import main


def test_default_table_lists_every_default(capsys):
    assert main(["algorithms"]) == 0
    out = capsys.readouterr().out
    for name in DEFAULT_ALGORITHMS:
        assert name in out
    assert "SFC-6(7x7,3x3)" in out and "3.34x" in out and "4.54x" in out


def test_json_by_name(capsys):
    assert main(["algorithms", "sfc4-4x4-5x5", "wino-2x2-3x3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["sfc4-4x4-5x5", "wino-2x2-3x3"]
    for d in data:
        assert {"name", "mults", "standard_mults", "ratio", "ternary_input_transform"} <= set(d)
    assert data[1]["mults"] == 16 and data[1]["standard_mults"] == 36
    assert data[0]["ternary_input_transform"] is True


def test_show_prints_matrices(capsys):
    assert main(["show", "sfc4-4-3"]) == 0
    out = capsys.readouterr().out
    assert "B^T (7 x 6)" in out and "G (7 x 3)" in out and "A^T (4 x 7)" in out
    assert main(["show", "sfc6-6-3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["bt"]) == 10 and len(data["at"]) == 6


def test_bad_name_exits_2_with_message(capsys):
    assert main(["show", "sfc5-5x5-3x3"]) == 2
    err = capsys.readouterr().err
    assert "N (DFT size) must be one of (3, 4, 6)" in err


def test_console_script_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "sfc_hls.cli", "algorithms", "direct-3x3", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout)[0]["mults"] == 9
