"""The sfc-hls command line: the registry, `sfc-hls algorithms` and `sfc-hls show`, layering."""

import ast
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sfc_hls.catalog import DEFAULT_ALGORITHMS
from sfc_hls.cli import SUBCOMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


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


def test_help_lists_every_subcommand_without_importing_them():
    code = (
        "import sys\n"
        "from sfc_hls.cli import SUBCOMMANDS, main\n"
        "assert main(['--help']) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sfc_hls.', 'torch', 'amaranth'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *help_lines, loaded = proc.stdout.strip().splitlines()
    help_text = "\n".join(help_lines)
    for command in SUBCOMMANDS:
        assert command.name in help_text and command.help.split()[0] in help_text
    assert eval(loaded) == ["sfc_hls.cli"]


@pytest.mark.parametrize("command", [c.name for c in SUBCOMMANDS])
def test_every_subcommand_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert f"usage: sfc-hls {command}" in capsys.readouterr().out


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_neither_host_nor_hw():
    """The top-level modules of sfc_hls/ (the core) never import host/ or hw/ (issue #10)."""
    for path in sorted((ROOT / "sfc_hls").glob("*.py")):
        bad = {n for n in _imports(path) if n.startswith(("sfc_hls.host", "sfc_hls.hw"))}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_no_subcommand_imports_the_cli():
    """No import cycle: the CLI imports its subcommands (lazily), never the other way round."""
    for command in SUBCOMMANDS:
        spec = importlib.util.find_spec(command.module)
        assert "sfc_hls.cli" not in _imports(Path(spec.origin)), command.module
        module = importlib.import_module(command.module)
        assert callable(module.add_arguments) and callable(module.run)
