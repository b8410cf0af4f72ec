"""``sfc-hls explore`` (host/explore*.py): Pareto front, budgets, plans, Dask, cache and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfc_hls.cli import main
from sfc_hls.config import EngineConfig
from sfc_hls.host.explore import Budget, TaskRunner, choose, load_plan, pareto
from sfc_hls.host.explore_tasks import ResultCache, load_network

REPO = Path(__file__).resolve().parents[1]
# One algorithm, two bit widths, two layer rules on the digits ResNet: ~30 s inline.
SWEEP = ["--network", "small_resnet", "--algos", "wino-2x2-3x3", "--pco", "2",
         "--macs-per-dsp", "2", "--bits", "8,4", "--thresholds", "none,0.1"]  # fmt: skip


def _row(top1, fps, dsp, lut):
    return {"top1": top1, "frames_per_second": fps,
            "resources": {"DSP": dsp, "LUT": lut, "BRAM": 0, "FF": 0}}  # fmt: skip


def test_pareto_keeps_exactly_the_undominated_rows():
    rows = [
        _row(0.99, 100, 50, 1000),  # 0: front
        _row(0.99, 100, 60, 1000),  # 1: dominated by 0 (more DSP)
        _row(0.90, 200, 50, 1000),  # 2: front (faster, less accurate)
        _row(0.99, 100, 50, 900),  # 3: front, dominates 0 (fewer LUT)
        _row(0.80, 150, 50, 1000),  # 4: dominated by 2
    ]
    assert pareto(rows) == [2, 3]


def test_choose_is_the_fastest_point_inside_the_budget():
    rows = [_row(0.99, 100, 50, 1000), _row(0.90, 200, 80, 1000), _row(0.95, 150, 60, 3000)]
    assert choose(rows, Budget()) == 1
    assert choose(rows, Budget(max_dsp=70)) == 2
    assert choose(rows, Budget(max_dsp=70, max_lut=2000)) == 0
    assert choose(rows, Budget(min_accuracy=0.96)) == 0
    assert choose(rows, Budget(max_dsp=10)) is None


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    """Every cache (explore points, engines) in a fresh folder: nothing is reused."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SFC_HLS_CACHE", str(root))
    return root


def test_explore_plan_runs_through_run_and_generate(tmp_path, cache_root, capsys):
    out = tmp_path / "report"
    args = ["explore", "--quick", *SWEEP, "--workers", "0", "--min-accuracy", "95", "-o", str(out)]
    assert main(args) == 0
    report = json.loads((out / "explore.json").read_text())
    assert report["resources"].startswith("estimator")
    rows = report["points"]
    assert {r["point"]["bits"] for r in rows} == {8, 4}
    assert report["pareto"] and all(rows[i]["pareto"] for i in report["pareto"])
    chosen = rows[report["chosen"]]
    assert chosen["top1"] == chosen["digits_top1"] >= 0.95
    inside = [r for r in rows if r["top1"] >= 0.95]
    assert chosen["frames_per_second"] == max(r["frames_per_second"] for r in inside)
    for name in ("explore.md", "explore.png", "plan.json"):
        assert (out / name).stat().st_size > 0
    plan = load_plan(out / "plan.json")
    assert plan["engine"] == EngineConfig.from_dict(chosen["engine"])
    assert plan["direct_layers"] == chosen["direct_layers"]
    # The plan runs unchanged: same engine, same layer modes, the accuracy explore measured.
    result = tmp_path / "run.json"
    assert main(["run", "--plan", str(out / "plan.json"), "--quiet", "--json", str(result)]) == 0
    summary = json.loads(result.read_text())["summary"]
    assert summary["int8_top1"] == chosen["digits_top1"]
    gen = tmp_path / "gen"
    assert main(["generate", "--plan", str(out / "plan.json"), "-o", str(gen)]) == 0
    manifest = json.loads((gen / "conv_engine.json").read_text())
    assert EngineConfig.from_dict(manifest["config"]) == plan["engine"]


def test_plan_errors_name_the_option(tmp_path, capsys):
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"format": "sfc-hls.plan/1", "network": "small_resnet",
                               "engine": {"pco": 3, "cout_max": 64}, "direct_layers": []}))  # fmt: skip
    assert main(["generate", "--plan", str(bad), "-o", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--plan" in err and "pco" in err and len(err.splitlines()) == 1
    good = {"format": "sfc-hls.plan/1", "network": "resnet18",
            "engine": EngineConfig().to_dict(), "direct_layers": []}  # fmt: skip
    bad.write_text(json.dumps(good))
    assert main(["run", "--plan", str(bad), "--pco", "8"]) == 2
    assert "--pco" in capsys.readouterr().err
    assert main(["run", "--plan", str(bad)]) == 2
    assert "resnet18" in capsys.readouterr().err
    assert main(["explore", "--quick", "--bits", "3", "--workers", "0"]) == 2
    assert "--bits" in capsys.readouterr().err


def test_dask_reschedules_a_killed_worker_and_caches(tmp_path, cache_root):
    from distributed import Client, LocalCluster

    def _dies_once(marker: str, value: int) -> dict:
        """Kills its worker process the first time it runs (nested: pickled by value)."""
        path = Path(marker)
        if not path.exists():
            path.write_text("died")
            os._exit(1)
        return {"value": value * 2}

    marker = tmp_path / "marker"
    calls = {f"t{k}": (_dies_once, (str(marker), k), {}) for k in range(4)}
    lines: list[str] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        done = TaskRunner(client, ResultCache(), lines.append).run("test", calls)
    assert marker.exists()  # one worker did die
    assert done == {f"t{k}": {"value": 2 * k} for k in range(4)}
    # Cached: a second run needs no cluster at all.
    again = TaskRunner(None, ResultCache(), lines.append).run("test", calls)
    assert again == done
    assert lines[-1] == "test: 4 tasks, 4 cached, 0 to run"


def test_explore_resumes_after_being_killed(tmp_path, cache_root):
    """The CLI on a LocalCluster, killed once some points are cached, then run to the end."""
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "sfc_hls.cli", "explore", "--quick", *SWEEP, "--workers", "2",
           "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=os.environ.copy())  # fmt: skip
    deadline = time.monotonic() + 300
    while not list((cache_root / "explore").glob("accuracy-*.json")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, text
    assert not out.exists()  # nothing half-written
    cached = list((cache_root / "explore").glob("*.json"))
    assert cached
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = [line for line in done.stdout.splitlines() if " cached, " in line]
    assert sum(int(line.split(", ")[1].split()[0]) for line in counts) >= 1, counts
    assert json.loads((out / "explore.json").read_text())["chosen"] is not None


def test_layer_rules_pick_direct_by_error_and_by_cost():
    from sfc_hls.host.explore_tasks import assign_modes, conv_cost, network_engine, with_modes
    from sfc_hls.hw.interface import EngineInterface

    net = load_network("small_resnet")
    fast = [c.name for c in net.convs if c.mode == "fast"]
    point = {"algorithm": "wino-4x4-3x3", "pco": 4, "macs_per_dsp": 2, "bits": 8,
             "scale_mode": "pow2"}  # fmt: skip
    errors = {name: 0.5 for name in fast}
    errors[fast[1]] = 0.01
    by_error = assign_modes("small_resnet", None, point, errors, 0.1)
    assert set(fast) - {fast[1]} <= set(by_error)
    # No threshold: exactly the layers the cycle model finds faster in direct mode.
    by_cost = assign_modes("small_resnet", None, point, errors, None)
    iface = EngineInterface.from_config(
        network_engine(with_modes(net, "wino-4x4-3x3", set()), point)
    )
    cheaper = {
        c.name
        for c in with_modes(net, "wino-4x4-3x3", set()).convs
        if c.mode == "fast"
        and conv_cost(iface, c.__class__(**{**c.__dict__, "mode": "direct"}))[0]
        < conv_cost(iface, c)[0]
    }
    assert set(by_cost) == cheaper and cheaper  # the one-channel stem
    moded = with_modes(net, "wino-4x4-3x3", set(by_error))
    assert {
        c.name for c in moded.convs if c.mode == "direct" and c.stride == 1 and c.kernel == 3
    } == set(by_error)
    assert all(c.algorithm == "wino-4x4-3x3" for c in moded.convs)


@pytest.mark.slow  # two Yosys runs of small engines, ~5 minutes: make test-slow
def test_synthesis_sweep_resumes_after_being_killed(tmp_path, cache_root):
    """The full (synthesizing) sweep on a LocalCluster, killed after its first synthesized
    point, resumes from the cache: that point is not synthesized again."""
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "sfc_hls.cli", "explore", "--network", "small_resnet",
           "--algos", "direct-3x3", "--pco", "2,4", "--macs-per-dsp", "2", "--bits", "8",
           "--thresholds", "none", "--workers", "2", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=os.environ.copy())  # fmt: skip
    deadline = time.monotonic() + 1800
    while not list((cache_root / "explore").glob("hardware-*.json")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    first = {p.name for p in (cache_root / "explore").glob("hardware-*.json")}
    assert len(first) == 1
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hardware: 2 tasks, 1 cached, 1 to run" in done.stdout
    report = json.loads((out / "explore.json").read_text())
    assert report["resources"].startswith("yosys")
    assert all(r["resource_source"] == "yosys" for r in report["points"])


@pytest.mark.slow  # a Verilator build of a 6-bit engine, ~3 minutes: make test-slow
def test_plan_runs_in_rtl_bit_exact(tmp_path):
    """A plan chosen under a budget runs through the RTL backend unchanged, every conv
    identical to the golden model (4-bit MAC operands; the layers whose Winograd F(4x4)
    error exceeds 0.8 in direct mode, the others fast)."""
    out = tmp_path / "report"
    args = ["explore", "--quick", "--network", "small_resnet", "--algos", "wino-4x4-3x3",
            "--pco", "2", "--macs-per-dsp", "2", "--bits", "4", "--thresholds", "0.8",
            "--workers", "0", "--max-dsp", "200", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    plan = load_plan(out / "plan.json")
    assert plan["engine"].act_bits == 4 and plan["direct_layers"]
    fast = [c.name for c in load_network("small_resnet").convs if c.mode == "fast"]
    assert set(fast) - set(plan["direct_layers"])  # some stay fast
    result = tmp_path / "run.json"
    assert main(["run", "--plan", str(out / "plan.json"), "--backend", "rtl", "--check-golden",
                 "--limit", "2", "--quiet", "--json", str(result)]) == 0  # fmt: skip
    report = json.loads(result.read_text())
    assert report["summary"]["golden_identical"] is True
    assert all(layer["cycles"] for layer in report["layers"] if layer["op"] == "conv")
    modes = {layer["name"]: layer["mode"] for layer in report["layers"] if "mode" in layer}
    assert all(modes[name] == "direct" for name in plan["direct_layers"])


def test_accuracy_on_the_users_images_and_checkpoint(tmp_path, cache_root):
    """With --images (and --weights) the accuracy objective is the explored network's top-1
    on that folder, the same number `sfc-hls run --plan --images` then measures."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from sfc_hls.host.checkpoint import read_state_dict, save_checkpoint

    digits = load_digits()
    folder = tmp_path / "images"
    for label in range(10):
        (folder / str(label)).mkdir(parents=True)
        for k in np.flatnonzero(digits.target == label)[-3:]:
            pixels = (digits.images[k] / 16 * 255).astype(np.uint8)
            Image.fromarray(pixels).resize((28, 28), Image.BILINEAR).save(
                folder / str(label) / f"{k}.png"
            )
    weights = REPO / "host" / "weights" / "digits_small_resnet.pt"
    ckpt = save_checkpoint(read_state_dict(weights), tmp_path / "ckpt.pt")
    out = tmp_path / "report"
    args = ["explore", "--quick", "--network", "small_resnet", "--weights", str(ckpt),
            "--images", str(folder), "--algos", "wino-4x4-3x3", "--pco", "2",
            "--macs-per-dsp", "2", "--bits", "4", "--thresholds", "none,0.1", "--workers", "0",
            "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "explore.json").read_text())
    assert report["accuracy"].startswith("top-1 on")
    assert all(r["top1"] == r["images_top1"] for r in report["points"])
    assert len({r["images_top1"] for r in report["points"]}) == 2  # the layer rule matters
    chosen = report["points"][report["chosen"]]
    result = tmp_path / "run.json"
    assert main(["run", "--plan", str(out / "plan.json"), "--weights", str(ckpt), "--images",
                 str(folder), "--quiet", "--json", str(result)]) == 0  # fmt: skip
    assert json.loads(result.read_text())["summary"]["int8_top1"] == chosen["images_top1"]
    assert main(["explore", "--quick", "--network", "resnet18", "--images", str(folder),
                 "--workers", "0"]) == 2  # fmt: skip


def test_sweep_resolves_and_filters_output_path_widths():
    from sfc_hls.host.explore import Sweep

    sweep = Sweep(algorithms=("wino-2x2-3x3", "sfc6-7x7-3x3"), pco=(4,), macs_per_dsp=(2,),
                  bits=(8,), thresholds=(None,), backend_widths=(None, 4, 33, 16))  # fmt: skip
    widths = {(p.algorithm, p.backend_width) for p in sweep.points()}
    # m = 16 (default W 16) and 132 (default W 11); 33 does not divide 16, 16 not 132;
    # the default and an explicit 16 are one point.
    assert widths == {("wino-2x2-3x3", 16), ("wino-2x2-3x3", 4), ("sfc6-7x7-3x3", 11),
                      ("sfc6-7x7-3x3", 4), ("sfc6-7x7-3x3", 33)}  # fmt: skip
    assert len(sweep.points()) == 5
