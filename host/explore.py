"""``sfc-hls explore``: engine configurations and per-layer modes on a Pareto front.

A *design point* is one generated accelerator -- fast algorithm, MAC lanes
``P_co``, MACs per DSP, MAC-operand bits (8/6/4), activation scale mode -- plus
a per-layer choice: each stride-1 3x3 conv runs fast (the algorithm) or direct
(the same MAC array, exact products).  The choice follows measured error: with
``max_layer_nmse = T`` a layer whose int8 output error (normalized MSE, fast
mode, measured on the network: :func:`~sfc_hls.host.explore_tasks.numerics_task`)
exceeds ``T`` runs direct (``None``: no layer for its error), and so does a layer
the cycle model finds faster in direct mode on the point's engine (a stem with
one input channel; :func:`~sfc_hls.host.explore_tasks.assign_modes`).

Per point (tasks in :mod:`sfc_hls.host.explore_tasks`, run on Dask):

* frames/s at ``--clock-mhz`` and external MB per frame (cycle model);
* DSP/LUT/FF/BRAM (estimator; Yosys ``synth_xilinx`` with ``--synth``);
  ECP5 Fmax with ``--fmax``;
* accuracy: digits-ResNet top-1 with the same rule applied to its layers
  (the trained network we ship; for ResNet-18/34 it stands in for a dataset we
  cannot download) and the geometric-mean layer error on the explored network.

The report (JSON, markdown, PNG) lists every point, the Pareto front
(accuracy up, frames/s up, DSP down, LUT down) and the point chosen for the
budget (``--max-dsp``, ``--max-lut``, ``--min-accuracy``): the fastest one
inside it.  That point is written as a plan file that ``sfc-hls run --plan``
and ``sfc-hls generate --plan`` take unchanged.

Points run as tasks on ``dask.distributed``: a ``LocalCluster`` of
``--workers`` processes, or ``--scheduler ADDRESS``.  Every result is cached by
content (``$SFC_HLS_CACHE/explore``): an interrupted sweep resumes where it
stopped, a point is never computed twice, and a task whose worker died is
rescheduled by Dask.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sfc_hls.arguments import check_int
from sfc_hls.atomic_files import check_output_directory
from sfc_hls.config import SCALE_MODES
from sfc_hls.host.explore_tasks import (
    NETWORKS,
    ResultCache,
    accuracy_task,
    assign_modes,
    hardware_task,
    numerics_task,
    user_accuracy_task,
)

__all__ = ["PLAN_FORMAT", "Point", "Sweep", "add_arguments", "explore", "pareto", "run"]

FORMAT = "sfc-hls.explore/1"
PLAN_FORMAT = "sfc-hls.plan/1"
ALGORITHMS = ("direct-3x3", "wino-2x2-3x3", "wino-4x4-3x3", "sfc4-4x4-3x3", "sfc6-7x7-3x3")
#: Layer-error thresholds swept (None: every eligible layer fast).
THRESHOLDS = (None, 0.1, 0.03)


@dataclass(frozen=True)
class Point:
    """One design point (see the module docstring)."""

    algorithm: str
    pco: int
    macs_per_dsp: int
    bits: int
    scale_mode: str
    max_layer_nmse: float | None
    #: Output-path width W (positions per cycle of rescale and output quantizer); None: the
    #: engine's default (sized to the MAC array's result rate, ``EngineConfig``).
    backend_width: int | None = None

    @property
    def numerics_key(self) -> tuple[str, int, str]:
        return (self.algorithm, self.bits, self.scale_mode)


@dataclass(frozen=True)
class Sweep:
    """The grid explored: every combination of these values."""

    algorithms: tuple[str, ...] = ALGORITHMS
    pco: tuple[int, ...] = (2, 4, 8, 16)
    macs_per_dsp: tuple[int, ...] = (1, 2)
    bits: tuple[int, ...] = (8, 6, 4)
    scale_modes: tuple[str, ...] = ("pow2",)
    thresholds: tuple[float | None, ...] = THRESHOLDS
    backend_widths: tuple[int | None, ...] = (None,)

    def points(self) -> list[Point]:
        """Every combination, once; ``None`` widths resolved to the engine's default, and a
        width that does not divide an algorithm's ``m`` transform positions skipped for it."""
        from sfc_hls.catalog import get_algorithm
        from sfc_hls.config import EngineConfig

        grid = itertools.product(self.algorithms, self.pco, self.macs_per_dsp, self.bits,
                                 self.scale_modes, self.thresholds, self.backend_widths)  # fmt: skip
        points: dict[Point, None] = {}
        for algorithm, pco, macs, bits, scale_mode, threshold, width in grid:
            if width is None:
                width = EngineConfig(algorithm=algorithm, pco=pco, cout_max=pco).backend_width
            if get_algorithm(algorithm).mults % width == 0:
                point = Point(algorithm, pco, macs, bits, scale_mode, threshold, width)
                points[point] = None
        return list(points)


@dataclass(frozen=True)
class Budget:
    max_dsp: int | None = None
    max_lut: int | None = None
    min_accuracy: float | None = None  # top-1 in [0, 1]

    def admits(self, row: dict[str, Any]) -> bool:
        res = row["resources"]
        return (
            (self.max_dsp is None or res["DSP"] <= self.max_dsp)
            and (self.max_lut is None or res["LUT"] <= self.max_lut)
            and (self.min_accuracy is None or row["top1"] >= self.min_accuracy)
        )


@dataclass(frozen=True)
class ExploreOptions:
    network: str = "resnet18"
    weights: str | None = None
    #: A folder ``DIR/<class>/<image>``: top-1 of the explored network on it is the accuracy
    #: objective (instead of the digits ResNet's).
    images: str | None = None
    sweep: Sweep = Sweep()
    budget: Budget = Budget()
    clock_mhz: float = 200.0
    #: Memory bandwidth the frames/s objective assumes (one DDR4-2400 x64 channel); None:
    #: unlimited (compute-bound).
    bandwidth_gbps: float | None = 19.2
    synth: bool = False
    fmax: bool = False

    @property
    def bytes_per_cycle(self) -> float | None:
        if self.bandwidth_gbps is None:
            return None
        return self.bandwidth_gbps * 1e3 / self.clock_mhz


# ------------------------------------------------------------------------- scheduling
class TaskRunner:
    """Runs cached tasks on a Dask client (or inline without one), with progress lines."""

    def __init__(self, client: Any, cache: ResultCache, say: Callable[[str], None]) -> None:
        self.client, self.cache, self.say = client, cache, say

    def run(self, kind: str, calls: dict[str, tuple[Callable[..., Any], tuple, dict]]) -> dict:
        """``{name: result}`` of ``calls`` (``name -> (function, args, kwargs)``)."""
        keys = {
            name: ResultCache.key(kind, {"args": list(a), **kw})
            for name, (_, a, kw) in calls.items()
        }
        done = {name: self.cache.get(key) for name, key in keys.items()}
        done = {name: value for name, value in done.items() if value is not None}
        todo = [name for name in calls if name not in done]
        self.say(f"{kind}: {len(calls)} tasks, {len(done)} cached, {len(todo)} to run")
        if self.client is None:
            for k, name in enumerate(todo, 1):
                fn, args, kwargs = calls[name]
                done[name] = self._store(keys[name], fn(*args, **kwargs))
                self.say(f"  {kind} {k}/{len(todo)}")
            return done
        from distributed import as_completed

        futures = {}
        for name in todo:
            fn, args, kwargs = calls[name]
            future = self.client.submit(fn, *args, key=keys[name], retries=2, pure=False, **kwargs)
            futures[future] = name
        for k, future in enumerate(as_completed(futures), 1):
            done[futures[future]] = self._store(future.key, future.result())
            if k % max(1, len(todo) // 10) == 0 or k == len(todo):
                self.say(f"  {kind} {k}/{len(todo)}")
        return done

    def _store(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        self.cache.put(key, value)
        return value


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(max(v, 1e-30)) for v in values) / len(values)) if values else 0.0


def _evaluate(runner: TaskRunner, options: ExploreOptions) -> list[dict[str, Any]]:
    network, weights, points = options.network, options.weights, options.sweep.points()
    bpc = options.bytes_per_cycle
    combos = sorted({p.numerics_key for p in points})
    numerics = runner.run("numerics", {
        f"{net}|{a}|{b}|{s}": (numerics_task, (net, w, a, b, s), {})
        for a, b, s in combos
        for net, w in {(network, weights), ("small_resnet", None)}
    })  # fmt: skip
    plans, seen = [], set()
    for p in points:
        errors = {net: numerics[f"{net}|{'|'.join(map(str, p.numerics_key))}"]["layers"]
                  for net in (network, "small_resnet")}  # fmt: skip
        hw = _hw_point(p)
        direct = assign_modes(network, weights, hw, errors[network], p.max_layer_nmse, bpc)
        digits = assign_modes("small_resnet", None, hw, errors["small_resnet"], p.max_layer_nmse,
                              bpc)  # fmt: skip
        if (_hw_key(p), tuple(direct), tuple(digits)) in seen:
            continue  # another threshold gave the same point
        seen.add((_hw_key(p), tuple(direct), tuple(digits)))
        kept = [v for k, v in errors[network].items() if k not in direct]
        plans.append((p, direct, digits, _geomean(kept) if kept else None))
    accuracy = runner.run("accuracy", {
        _name(p.numerics_key, d): (accuracy_task, (*p.numerics_key, d), {}) for p, _, d, _ in plans
    })  # fmt: skip
    user: dict[str, Any] = {}
    if options.images is not None:
        user = runner.run("user_accuracy", {
            _name(p.numerics_key, d): (user_accuracy_task,
                                       (network, weights, options.images, *p.numerics_key, d), {})
            for p, d, _, _ in plans
        })  # fmt: skip
    hardware = runner.run("hardware", {
        _name(_hw_key(p), direct): (hardware_task, (network, weights, _hw_point(p), direct),
                                    {"synth": options.synth, "fmax": options.fmax,
                                     "bytes_per_cycle": bpc})
        for p, direct, _, _ in plans
    })  # fmt: skip
    rows = []
    for p, direct, digits_direct, nmse in plans:
        hw = hardware[_name(_hw_key(p), direct)]
        row = _row(p, direct, digits_direct, nmse, hw,
                   accuracy[_name(p.numerics_key, digits_direct)]["top1"])  # fmt: skip
        own = user.get(_name(p.numerics_key, direct))
        row["images_top1"] = None if own is None else own["top1"]
        row["top1"] = row["digits_top1"] if own is None else own["top1"]
        clock = options.clock_mhz * 1e6
        row["frames_per_second"] = round(clock / hw["cycles_per_frame_at_bandwidth"], 2)
        row["frames_per_second_compute_bound"] = round(clock / hw["cycles_per_frame"], 2)
        rows.append(row)
    return rows


def _hw_point(p: Point) -> dict[str, Any]:
    return {k: v for k, v in asdict(p).items() if k != "max_layer_nmse"}


def _hw_key(p: Point) -> tuple:
    return tuple(_hw_point(p).values())


def _name(key: tuple, direct: list[str]) -> str:
    return "|".join(map(str, key)) + "|" + ",".join(direct)


def _row(p: Point, direct: list[str], digits_direct: list[str], nmse: float | None, hw: dict,
         top1: float) -> dict[str, Any]:  # fmt: skip
    resources = hw["yosys"] or hw["estimate"]
    return {
        "point": asdict(p),
        "direct_layers": direct,
        "digits_direct_layers": digits_direct,
        "engine": hw["engine"],
        "cycles_per_frame": hw["cycles_per_frame"],
        "cycles_per_frame_at_bandwidth": hw["cycles_per_frame_at_bandwidth"],
        "mb_per_frame": round(hw["mb_per_frame"], 3),
        "resources": resources,
        "resource_source": "yosys" if hw["yosys"] else "estimate",
        "estimate": hw["estimate"],
        "ecp5_fmax_mhz": hw["ecp5_fmax_mhz"],
        "digits_top1": top1,
        "layer_nmse_geomean": nmse,
    }


# --------------------------------------------------------------------------- analysis
_OBJECTIVES = (("top1", 1), ("frames_per_second", 1), ("DSP", -1), ("LUT", -1))


def _objective(row: dict[str, Any], name: str) -> float:
    return row["resources"][name] if name in ("DSP", "LUT") else row[name]


def pareto(rows: list[dict[str, Any]]) -> list[int]:
    """Indices of the rows no other row dominates (top-1 and frames/s up, DSP and LUT down;
    ``top1`` is the user's images' when given, else the digits ResNet's)."""

    def vec(row: dict[str, Any]) -> tuple[float, ...]:
        return tuple(sign * _objective(row, name) for name, sign in _OBJECTIVES)

    vecs = [vec(r) for r in rows]
    front = []
    for i, v in enumerate(vecs):
        dominated = any(all(a >= b for a, b in zip(u, v, strict=True)) and u != v for u in vecs)
        if not dominated:
            front.append(i)
    return front


def choose(rows: list[dict[str, Any]], budget: Budget) -> int | None:
    """The fastest row inside ``budget`` (ties: fewer DSPs, then LUTs), or None."""
    inside = [i for i, r in enumerate(rows) if budget.admits(r)]
    if not inside:
        return None
    return max(inside, key=lambda i: (rows[i]["frames_per_second"], -rows[i]["resources"]["DSP"],
                                      -rows[i]["resources"]["LUT"]))  # fmt: skip


# ------------------------------------------------------------------------------ driver
def explore(options: ExploreOptions, client: Any = None, *, cache: ResultCache | None = None,
            say: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """Evaluate every point of ``options.sweep`` and return the report (see the module doc)."""
    t0 = time.perf_counter()
    runner = TaskRunner(client, cache or ResultCache(), say)
    rows = _evaluate(runner, options)
    front = pareto(rows)
    for i, row in enumerate(rows):
        row["pareto"] = i in front
    chosen = choose(rows, options.budget)
    return {
        "format": FORMAT,
        "network": options.network,
        "weights": options.weights or ("digits" if options.network == "small_resnet" else "random"),
        "accuracy": f"top-1 on {options.images}" if options.images else "digits top-1",
        "clock_mhz": options.clock_mhz,
        "bandwidth_gbps": options.bandwidth_gbps,
        "sweep": {k: list(v) for k, v in asdict(options.sweep).items()},
        "budget": asdict(options.budget),
        "resources": "yosys synth_xilinx -family xcup"
        if options.synth
        else "estimator (hw/estimate.py)",
        "points": rows,
        "pareto": front,
        "chosen": chosen,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def plan_of(report: dict[str, Any], index: int) -> dict[str, Any]:
    """The plan file of row ``index``: engine, per-layer modes, network and predicted figures."""
    row = report["points"][index]
    return {
        "format": PLAN_FORMAT,
        "network": report["network"],
        "engine": row["engine"],
        "direct_layers": row["direct_layers"],
        "predicted": {
            k: row[k]
            for k in (
                "frames_per_second",
                "cycles_per_frame",
                "mb_per_frame",
                "resources",
                "digits_top1",
                "top1",
            )
        },  # fmt: skip
    }


def load_plan(path: Path) -> dict[str, Any]:
    """A plan file written by explore; ValueError naming the file and what is wrong."""
    from sfc_hls.config import EngineConfig

    try:
        plan = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--plan {path}: {exc}") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise ValueError(f"--plan {path}: not an sfc-hls plan ({PLAN_FORMAT}) file")
    try:
        plan["engine"] = EngineConfig.from_dict(plan["engine"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"--plan {path}: engine: {exc}") from None
    layers = plan.get("direct_layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise ValueError(f"--plan {path}: direct_layers must be a list of layer names")
    return plan


# --------------------------------------------------------------------------------- CLI
def _csv(kind: Callable[[str], Any], name: str) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(item) for item in text.split(",") if item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: a comma-separated list, got {text!r}"
            ) from None

    return parse


def _width(text: str) -> int | None:
    return None if text == "auto" else int(text)


def _threshold(text: str) -> float | None:
    return None if text == "none" else float(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls explore``."""
    default = Sweep()
    parser.add_argument("--network", choices=NETWORKS, default="resnet18")
    parser.add_argument(
        "--weights",
        type=Path,
        help="checkpoint of --network (default: resnet "
        "random weights, seed 0; small_resnet: the committed digits weights)",
    )
    parser.add_argument("--images", type=Path,
                        help="image folder DIR/<class>/<image>: the accuracy objective becomes "
                        "the explored network's top-1 on it (with --weights for resnet18/34)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="no synthesis: resources from the estimator (sfc-hls estimate); "
                        "without it every engine of the sweep is synthesized with Yosys (slow, "
                        "cached, spread over the Dask workers)")  # fmt: skip
    parser.add_argument(
        "--fmax",
        action="store_true",
        help="ECP5 Fmax from nextpnr for every macs_per_dsp=1 point (slow, cached)",
    )
    parser.add_argument("--algos", type=_csv(str, "--algos"), default=default.algorithms)
    parser.add_argument("--pco", type=_csv(int, "--pco"), default=default.pco)
    parser.add_argument("--macs-per-dsp", type=_csv(int, "--macs-per-dsp"),
                        default=default.macs_per_dsp)  # fmt: skip
    parser.add_argument("--bits", type=_csv(int, "--bits"), default=default.bits)
    parser.add_argument("--scale-modes", type=_csv(str, "--scale-modes"),
                        default=default.scale_modes)  # fmt: skip
    parser.add_argument("--thresholds", type=_csv(_threshold, "--thresholds"),
                        default=default.thresholds,
                        help="layer-error thresholds above which a layer runs direct; 'none' = "
                        "all fast (default none,0.1,0.03)")  # fmt: skip
    parser.add_argument("--backend-widths", type=_csv(_width, "--backend-widths"),
                        default=default.backend_widths,
                        help="output-path widths W ('auto': the engine's default; a W that does "
                        "not divide an algorithm's m is skipped for it; default auto)")  # fmt: skip
    parser.add_argument("--max-dsp", type=int, help="budget: DSPs of the whole top")
    parser.add_argument("--max-lut", type=int, help="budget: LUTs of the whole top")
    parser.add_argument("--min-accuracy", type=float,
                        help="budget: top-1 in percent (--images, else the digits ResNet)")  # fmt: skip
    parser.add_argument("--clock-mhz", type=float, default=200.0)
    parser.add_argument("--bandwidth-gbps", type=float, default=19.2,
                        help="memory bandwidth frames/s assumes (default: one DDR4-2400 "
                        "channel, 19.2); 0: unlimited")  # fmt: skip
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="LocalCluster worker processes (0: run in this process)",
    )
    parser.add_argument("--scheduler", help="address of a running Dask scheduler to use instead")
    parser.add_argument("--no-cache", action="store_true", help="recompute every point")
    parser.add_argument("-o", "--output", type=Path, help="report directory "
                        "(default explore-NETWORK)")  # fmt: skip
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing report directory written by sfc-hls",
    )
    parser.add_argument("--quiet", action="store_true")


def _check_sweep(args: argparse.Namespace) -> Sweep:
    from sfc_hls.catalog import get_algorithm

    for name in args.algos:
        try:
            algo = get_algorithm(name)
        except ValueError as exc:
            raise ValueError(f"--algos: {exc}") from None
        if algo.dims != 2 or algo.kernel != 3:
            raise ValueError(f"--algos: {name!r} is not a 2D 3x3 algorithm")
    for value in args.pco:
        check_int("--pco", value, 1, 256)
    for value in args.macs_per_dsp:
        check_int("--macs-per-dsp", value, 1, 2)
    for value in args.bits:
        check_int("--bits", value, 4, 8)
    bad = [m for m in args.scale_modes if m not in SCALE_MODES]
    if bad:
        raise ValueError(f"--scale-modes: {bad} not in {SCALE_MODES}")
    if any(t is not None and not t > 0 for t in args.thresholds):
        raise ValueError("--thresholds: every value must be > 0 or 'none'")
    for value in args.backend_widths:
        if value is not None:
            check_int("--backend-widths", value, 1, 1024)
    sweep = Sweep(tuple(args.algos), tuple(args.pco), tuple(args.macs_per_dsp),
                  tuple(args.bits), tuple(args.scale_modes), tuple(args.thresholds),
                  tuple(args.backend_widths))  # fmt: skip
    if not sweep.points():
        raise ValueError(
            "the sweep is empty: every list option needs at least one value, and some "
            "--backend-widths value must divide an algorithm's transform positions"
        )
    return sweep


def _options(args: argparse.Namespace) -> ExploreOptions:
    sweep = _check_sweep(args)
    for name in ("max_dsp", "max_lut"):
        if getattr(args, name) is not None:
            check_int(f"--{name.replace('_', '-')}", getattr(args, name), 1)
    if args.min_accuracy is not None and not 0 <= args.min_accuracy <= 100:
        raise ValueError(f"--min-accuracy is a percentage in [0, 100], got {args.min_accuracy}")
    if not args.clock_mhz > 0:
        raise ValueError(f"--clock-mhz must be > 0, got {args.clock_mhz}")
    if not args.bandwidth_gbps >= 0:
        raise ValueError(f"--bandwidth-gbps must be >= 0 (0: unlimited), got {args.bandwidth_gbps}")
    check_int("--workers", args.workers, 0, 256)
    weights = None
    if args.weights is not None:
        if not args.weights.is_file():
            raise ValueError(f"--weights {args.weights}: no such file")
        weights = str(args.weights.resolve())
    images = None
    if args.images is not None:
        if not args.images.is_dir():
            raise ValueError(f"--images {args.images}: not a folder of DIR/<class>/<image> files")
        if weights is None and args.network != "small_resnet":
            raise ValueError(f"--images needs --weights: {args.network} has no trained weights "
                             "offline, its top-1 would be meaningless")  # fmt: skip
        images = str(args.images.resolve())
    budget = Budget(args.max_dsp, args.max_lut,
                    None if args.min_accuracy is None else args.min_accuracy / 100)  # fmt: skip
    return ExploreOptions(args.network, weights, images, sweep, budget, args.clock_mhz,
                          args.bandwidth_gbps or None, synth=not args.quick,
                          fmax=args.fmax)  # fmt: skip


def _client(args: argparse.Namespace) -> Any:
    """A Dask client: on ``--scheduler``, on a new LocalCluster, or None (``--workers 0``)."""
    if args.scheduler is None and args.workers == 0:
        return None
    from distributed import Client, LocalCluster

    if args.scheduler is not None:
        return Client(args.scheduler)
    import dask

    # Dask's default worker environment sets MALLOC_TRIM_THRESHOLD_, which turns off glibc's
    # adaptive mmap threshold: every large temporary of the golden model becomes an
    # mmap/munmap pair (measured: 2x slower tasks, mostly system time).  Keep its
    # one-thread-per-worker settings only.
    single_thread = {name: 1 for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                          "OPENBLAS_NUM_THREADS")}  # fmt: skip
    with dask.config.set({"distributed.nanny.pre-spawn-environ": single_thread}):
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)  # fmt: skip
    return Client(cluster)


def run(args: argparse.Namespace) -> int:
    from sfc_hls.atomic_files import atomic_directory
    from sfc_hls.host.explore_report import write_report

    options = _options(args)
    out = args.output or Path(f"explore-{args.network}")
    check_output_directory(out, overwrite=args.force)
    say = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))
    client = _client(args)
    try:
        if client is not None:
            say(f"dask: {client.scheduler_info()['address']}, "
                f"{len(client.scheduler_info()['workers'])} workers")  # fmt: skip
        report = explore(options, client, cache=ResultCache(enabled=not args.no_cache), say=say)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    plan = plan_of(report, report["chosen"]) if report["chosen"] is not None else None
    with atomic_directory(out, overwrite=args.force) as tmp:
        write_report(report, plan, tmp)
    if not args.quiet:
        from sfc_hls.host.explore_report import markdown

        print(markdown(report))
    print(f"wrote {out}/explore.{{json,md,png}}" + (" and plan.json" if plan else
          " (no point fits the budget: no plan.json)"))  # fmt: skip
    return 0 if plan is not None or report["budget"] == asdict(Budget()) else 1
