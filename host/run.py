"""``sfc-hls run``: quantize a ResNet and run it on the accelerator (golden model or RTL).

Pipeline: load the model and weights -> lower (:mod:`sfc_hls.host.lowering`)
-> calibrate on K images (:mod:`sfc_hls.host.calibration`) -> run the int8
network on a device (:mod:`sfc_hls.host.device`, :mod:`sfc_hls.host.inference`)
-> print a per-layer table and the predictions, optionally write a JSON
report (atomically).

Data:

* ``small_resnet`` without ``--images``: the committed digits weights, the
  digits training split for calibration and the held-out test split.
* ``--images DIR``: ``DIR/<class>/<image>`` files (class folders named by
  class index, e.g. ``0`` .. ``9``, give labels; other names are sorted);
  calibration uses ``--calib-images DIR`` if given, else the same images.
* ``resnet18``/``resnet34``: no pretrained weights ship offline; pass
  ``--weights`` (a torchvision state_dict file) or, explicitly,
  ``--random-weights``; without ``--images`` use ``--random-images N``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sfc_hls.arguments import check_int
from sfc_hls.atomic_files import check_output_file, write_text_atomic
from sfc_hls.config import MAP_KIB_MAX, REPLAY_BEATS_MAX, SCALE_MODES
from sfc_hls.quantize import WEIGHT_SOURCES
from sfc_hls.text_table import format_table

__all__ = [
    "MAX_IMAGE_SIZE",
    "MAX_RANDOM_IMAGES",
    "MAX_SEED",
    "MODELS",
    "add_arguments",
    "check_options",
    "format_layer_table",
    "run",
]

MODELS = ("small_resnet", "resnet18", "resnet34")
FORMAT = "sfc-hls.run/1"
#: Largest ``--image-size`` (a 1024x1024 ResNet-18 image is 21x the work of 224x224).
MAX_IMAGE_SIZE = 1024
#: Largest ``--random-images``.
MAX_RANDOM_IMAGES = 4096
#: Largest ``--seed`` (torch seeds are 64-bit).
MAX_SEED = 2**63 - 1
#: ImageNet normalization of torchvision's ResNets (RGB, [0, 1] input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Images the RTL backend runs unless ``--limit`` says otherwise (simulation is slow).
RTL_DEFAULT_LIMIT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls run``."""
    from sfc_hls.host.lowering import DEFAULT_ALGORITHM

    parser.add_argument("--model", choices=MODELS, default="small_resnet")
    parser.add_argument(
        "--weights",
        type=Path,
        help="checkpoint (state_dict) file; default for small_resnet: the committed digits weights",
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="resnet18/34 without --weights: seeded random initialization (not a trained model)",
    )
    parser.add_argument("--images", type=Path, help="image folder DIR/<class>/<image>")
    parser.add_argument(
        "--calib-images", type=Path, help="calibration image folder (default: --images)"
    )
    parser.add_argument(
        "--random-images",
        type=int,
        metavar="N",
        help=f"without --images: N <= {MAX_RANDOM_IMAGES} seeded random inputs (smoke runs)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help=f"input side in [1, {MAX_IMAGE_SIZE}] (default: 28 / 224)",
    )
    parser.add_argument("--backend", choices=("golden", "rtl"), default="golden")
    parser.add_argument(
        "--algo",
        help=f"fast algorithm of the stride-1 convs (default {DEFAULT_ALGORITHM})",
    )
    parser.add_argument("--scale-mode", choices=SCALE_MODES, help="default pow2")
    parser.add_argument("--pco", type=int, help="MAC lanes of the engine (default 4)")
    parser.add_argument(
        "--plan",
        type=Path,
        help="a plan from `sfc-hls explore` (plan.json): its engine (algorithm, P_co, bits, "
        "MACs per DSP, scale mode) and its per-layer modes; excludes --algo/--pco/--scale-mode",
    )
    parser.add_argument("--calib", type=int, default=32, help="calibration images (default 32)")
    parser.add_argument("--fine-tune", action="store_true", help="fine-tune the scales")
    parser.add_argument(
        "--weight-source", choices=WEIGHT_SOURCES,
        help="fast layers' weights: G w quantized per position ('transform') or int8 spatial "
        "weights transformed exactly with power-of-two scales ('spatial'); default: spatial "
        "with --weight-transform, else transform",
    )  # fmt: skip
    parser.add_argument(
        "--map-kib", type=int, default=0,
        help="the engine's feature-map buffer in KiB (stride-1 fast layers take their input "
        "map once per layer, where it fits); default 0: none",
    )  # fmt: skip
    parser.add_argument(
        "--replay-beats", type=int, default=0,
        help="the engine's activation replay buffer in i_act beats (a layer whose group's "
        "beats fit sends them once); default 0: none",
    )  # fmt: skip
    parser.add_argument(
        "--weight-transform", action="store_true",
        help="the engine transforms spatial weights on chip (fast layers stream int8 spatial "
        "weights and shifts)",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=int, help=f"run the first N images (rtl default {RTL_DEFAULT_LIMIT})"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--check-golden",
        action="store_true",
        help="rtl: run the golden model, then every conv in RTL from its golden input "
        "(--jobs at a time) and check every conv output is identical",
    )
    parser.add_argument(
        "--axi",
        action="store_true",
        help="rtl: drive each engine's AXI top (registers over AXI4-Lite, data over "
        "AXI4-Stream, as `sfc-hls generate --axi` writes it) instead of its bare streams",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="rtl --check-golden: simulator processes at once (default: the CPU count)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help=f"seed of random weights/images in [0, {MAX_SEED}]"
    )
    parser.add_argument(
        "--json",
        type=Path,
        dest="json_out",
        help="write a JSON report here (checked before the run, written atomically)",
    )
    parser.add_argument("--quiet", action="store_true", help="no tables, no progress bars")


# ---------------------------------------------------------------------- data and model
class _Data:
    def __init__(self, images, labels, names, calib, source, classes=None):
        self.images = images
        self.labels = labels
        self.names = names
        self.calib = calib
        self.source = source
        self.classes = classes


def _load_model(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import torch

    from sfc_hls.host import models
    from sfc_hls.host.checkpoint import load_checkpoint, load_digits_small_resnet, read_state_dict

    if args.model == "small_resnet" and args.weights is None:
        model, meta = load_digits_small_resnet()
        return model, {"weights": "committed digits weights", "meta": meta}
    if args.model == "small_resnet":
        state = read_state_dict(args.weights)
        model = models.small_resnet(
            num_classes=int(state["fc.weight"].shape[0]) if "fc.weight" in state else 10,
            in_channels=int(state["conv1.weight"].shape[1]) if "conv1.weight" in state else 1,
        )
        load_checkpoint(model, args.weights)
        return model.eval(), {"weights": str(args.weights)}
    build = getattr(models, args.model)
    if args.weights is None:
        if not args.random_weights:
            raise ValueError(
                f"no pretrained {args.model} weights are available offline: pass --weights "
                f"PATH (a torchvision {args.model} state_dict file) or --random-weights for a "
                "seeded random initialization (accuracy is then meaningless)"
            )
        torch.manual_seed(args.seed)
        return build().eval(), {"weights": f"random (seed {args.seed})"}
    state = read_state_dict(args.weights)
    kwargs = {}
    if "fc.weight" in state:
        kwargs["num_classes"] = int(state["fc.weight"].shape[0])
    if "conv1.weight" in state:
        kwargs["in_channels"] = int(state["conv1.weight"].shape[1])
    model = build(**kwargs)
    load_checkpoint(model, args.weights)
    return model.eval(), {"weights": str(args.weights)}


def _folder(path: Path, size: int, channels: int, mean, std):
    from sfc_hls.host.digits import load_image_folder

    return load_image_folder(path, size=size, channels=channels, mean=mean, std=std)


def _folder_labels(data, num_classes: int) -> np.ndarray:
    """Class folders named 0..num_classes-1 give their number as label, else the sorted index."""
    if all(c.isdigit() and int(c) < num_classes for c in data.classes):
        return np.array([int(data.classes[i]) for i in data.labels.tolist()])
    return data.labels.numpy()


def normalization(model: str, in_channels: int, meta: dict[str, Any] | None = None) -> tuple:
    """(mean, std) the images of ``model`` are normalized with: the digits training
    statistics for small_resnet (from its checkpoint's ``meta``), ImageNet's for 3 channels."""
    if model == "small_resnet":
        meta = meta or {}
        return meta.get("norm_mean", 0.3052247166633606), meta.get("norm_std", 0.32459279894828796)
    return (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else (0.5, 0.25)


def labelled_folder(path: Path, model: str, in_channels: int, num_classes: int, size: int,
                    meta: dict[str, Any] | None = None) -> tuple[Any, np.ndarray]:  # fmt: skip
    """Images (normalized for ``model``) and labels of the folder ``path/<class>/<image>``."""
    mean, std = normalization(model, in_channels, meta)
    data = _folder(path, size, in_channels, mean, std)
    return data.images, _folder_labels(data, num_classes)


def _load_data(args: argparse.Namespace, model: Any, info: dict[str, Any]) -> _Data:
    import torch

    from sfc_hls.host.digits import load_digits_split

    in_ch = model.conv1.in_channels
    num_classes = model.fc.out_features
    size = args.image_size or (28 if args.model == "small_resnet" else 224)  # None: default
    mean, std = normalization(args.model, in_ch, info.get("meta"))
    if args.images is not None:
        data = _folder(args.images, size, in_ch, mean, std)
        labels = _folder_labels(data, num_classes)
        names = [str(p) for p in data.paths]
        calib = data.images
        if args.calib_images is not None:
            calib = _folder(args.calib_images, size, in_ch, mean, std).images
        return _Data(data.images, labels, names, calib, str(args.images), data.classes)
    if args.random_images is not None:
        gen = torch.Generator().manual_seed(args.seed)
        images = torch.randn(args.random_images, in_ch, size, size, generator=gen)
        names = [f"random{k}" for k in range(args.random_images)]
        return _Data(images, None, names, images, f"random (seed {args.seed})")
    if args.model != "small_resnet" or args.weights is not None:
        raise ValueError(
            f"{args.model}: pass --images DIR (class sub-folders of image files) or "
            "--random-images N; the digits data only fits the committed small_resnet"
        )
    split = load_digits_split(size=size)
    names = [f"digits-test[{i}]" for i in split.test_indices.tolist()]
    return _Data(split.x_test, split.y_test.numpy(), names, split.x_train, "digits test split")


# ---------------------------------------------------------------------- output
def format_layer_table(records: list[Any], images: int) -> str:
    """Per-layer table: name, op, engine and mode, MACs and multiplications per image, cycles,
    time."""
    rows = [
        [
            r.name,
            r.op,
            r.engine,
            r.mode,
            f"{r.macs:,}" if r.macs else "-",
            f"{r.mults:,}" if r.mults else "-",
            f"{r.cycles:,}" if r.cycles is not None else "-",
            f"{r.seconds * 1e3:.1f}",
        ]
        for r in records
    ]
    macs = sum(r.macs for r in records if r.op == "conv")
    mults = sum(r.mults for r in records)
    cycles = [r.cycles for r in records if r.cycles is not None]
    total_ms = sum(r.seconds for r in records) * 1e3
    rows.append(
        ["total", "", "", "", f"{macs:,}", f"{mults:,}", f"{sum(cycles):,}" if cycles else "-",
         f"{total_ms:.1f}"]
    )  # fmt: skip
    header = ["layer", "op", "engine", "mode", "MACs/img", "mults/img", "cycles", "time ms"]
    table = format_table(header, rows, align="llllrrrr", rules=[len(rows) - 1])
    return (
        f"{table}\n({images} image(s); conv MACs / engine multiplications = "
        f"{macs / max(mults, 1):.2f}; cycles: engine clock cycles in RTL simulation)"
    )


def _predictions_text(data: _Data, int8_pred, float_pred, show: int = 10) -> str:
    lines = []
    for k in range(min(show, len(int8_pred))):
        label = "" if data.labels is None else f"label {int(data.labels[k])}  "
        lines.append(
            f"  {data.names[k]}: {label}int8 {int(int8_pred[k])}  float {int(float_pred[k])}"
        )
    if len(int8_pred) > show:
        lines.append(f"  ... ({len(int8_pred) - show} more)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the command
def _summary(
    labels: np.ndarray | None, float_pred: np.ndarray, int8_pred: np.ndarray, identical: bool | None
) -> dict[str, Any]:
    """Image count, top-1 of both runs (with labels), agreement, golden identity (RTL check)."""
    summary: dict[str, Any] = {"images": len(int8_pred)}
    if labels is not None:
        summary["float32_top1"] = float((float_pred == labels).mean())
        summary["int8_top1"] = float((int8_pred == labels).mean())
    summary["agreement_with_float"] = float((int8_pred == float_pred).mean())
    if identical is not None:
        summary["golden_identical"] = identical
    return summary


def _report(
    args: argparse.Namespace,
    info: dict[str, Any],
    source: str,
    net: Any,
    qnet: Any,
    result: Any,
    names: list[str],
    labels: np.ndarray | None,
    float_pred: np.ndarray,
) -> dict[str, Any]:
    """The JSON report of a run (format ``sfc-hls.run/1``), without summary and times."""
    return {
        "format": FORMAT,
        "model": args.model,
        "weights": info["weights"],
        "data": source,
        "backend": args.backend,
        "algorithm": qnet.network.algorithm,
        "network": net.to_dict(),
        "quantization": qnet.to_dict(),
        "layers": [r.to_dict() for r in result.records],
        "predictions": [
            {
                "image": names[k],
                "label": None if labels is None else int(labels[k]),
                "int8": int(result.predictions[k]),
                "float32": int(float_pred[k]),
            }
            for k in range(len(names))
        ],
    }


def check_options(args: argparse.Namespace) -> None:
    """ValueError/TypeError naming the option, and an OSError if ``--json`` cannot be
    written: everything that can be checked before the model is loaded."""
    for name in ("calib", "batch_size", "jobs"):
        check_int(f"--{name.replace('_', '-')}", getattr(args, name), 1)
    if args.pco is not None:
        check_int("--pco", args.pco, 1)
    check_int("--map-kib", args.map_kib, 0, MAP_KIB_MAX)
    check_int("--replay-beats", args.replay_beats, 0, REPLAY_BEATS_MAX)
    if args.weight_source is None:
        args.weight_source = "spatial" if args.weight_transform else "transform"
    if args.plan is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("algo", "pco", "scale_mode")
                 if getattr(args, n) is not None]  # fmt: skip
        if given:
            raise ValueError(f"{', '.join(given)}: the --plan file sets the engine; drop them")
        from sfc_hls.host.explore import load_plan

        args.plan_data = load_plan(args.plan)
        if args.plan_data["network"] != args.model:
            raise ValueError(
                f"--plan {args.plan} was made for --model {args.plan_data['network']}, "
                f"not {args.model}"
            )
    else:
        args.plan_data = None
    if args.limit is not None:
        check_int("--limit", args.limit, 1)
    if args.image_size is not None:
        check_int("--image-size", args.image_size, 1, MAX_IMAGE_SIZE)
    if args.random_images is not None:
        check_int("--random-images", args.random_images, 1, MAX_RANDOM_IMAGES)
    check_int("--seed", args.seed, 0, MAX_SEED)
    if args.axi and args.backend != "rtl":
        raise ValueError("--axi needs --backend rtl (it chooses the RTL top the simulator drives)")
    if args.axi and (args.map_kib or args.weight_transform or args.replay_beats):
        raise ValueError(
            "--axi: the AXI top takes none of --map-kib, --weight-transform, --replay-beats yet"
        )
    if args.json_out is not None:
        check_output_file(args.json_out)


def _check_against_golden(
    args: argparse.Namespace, qnet: Any, engines: list[Any], images: Any
) -> tuple[Any, bool, float]:
    """Golden run, then every conv in RTL from its golden input (``--jobs`` at a time).

    Returns the run with the convs' RTL cycles and times, whether every conv
    output was identical, and the engine generation and build seconds.  By
    induction over the layers this equals a chained RTL run (the host layers
    are the same code on both backends) at a fraction of its time.
    """
    from sfc_hls.host.device import RtlDevice, make_device
    from sfc_hls.host.inference import check_convs, run_int8

    golden = run_int8(
        qnet, make_device("golden", engines), images, batch_size=args.batch_size,
        keep_tensors=True,
    )  # fmt: skip
    with RtlDevice(engines, jobs=args.jobs, axi=args.axi) as device:
        device.prepare()
        check = check_convs(qnet, device, golden, progress=not args.quiet)
        build_seconds = device.build_seconds
    for name in check.mismatched:
        print(f"sfc-hls run: rtl output of {name!r} differs from golden", file=sys.stderr)
    golden.records = check.records
    golden.backend = "rtl"
    golden.seconds = check.seconds + build_seconds
    return golden, check.identical, build_seconds


def run(args: argparse.Namespace) -> int:
    """Run ``sfc-hls run`` with parsed ``args``; returns the exit code.

    Bad options and an unwritable ``--json`` path fail before any work (the
    CLI prints them as one line, exit code 2); a simulator failure exits 1.
    """
    check_options(args)
    try:
        return _run(args)
    except RuntimeError as exc:  # simulator build or run failures
        print(f"sfc-hls run: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


def _network_and_engines(
    args: argparse.Namespace, model: Any, shape: tuple[int, ...]
) -> tuple[Any, list[Any]]:
    """The lowered network and its engine: from the options, or from ``--plan`` (its engine
    and per-layer modes; an error if the network does not size the engine the plan names)."""
    from sfc_hls.host.calibration import engine_configs
    from sfc_hls.host.explore_tasks import network_engine, with_modes
    from sfc_hls.host.lowering import DEFAULT_ALGORITHM, lower_model

    plan = args.plan_data
    features = {"map_kib": args.map_kib, "weight_transform": args.weight_transform,
                "replay_beats": args.replay_beats}  # fmt: skip
    if plan is None:
        net = lower_model(model, shape, algorithm=args.algo or DEFAULT_ALGORITHM, name=args.model)
        engines = engine_configs(net, pco=args.pco or 4, scale_mode=args.scale_mode or "pow2")
        return net, [dataclasses.replace(e, **features) for e in engines]
    engine = plan["engine"]
    net = lower_model(model, shape, algorithm=engine.algorithm, name=args.model)
    eligible = {c.name for c in net.convs if c.mode == "fast"}
    unknown = sorted(set(plan["direct_layers"]) - eligible)
    if unknown:
        raise ValueError(f"--plan {args.plan}: {unknown} are not fast-mode convs of {args.model}")
    net = with_modes(net, engine.algorithm, set(plan["direct_layers"]))
    point = {"pco": engine.pco, "scale_mode": engine.scale_mode, "bits": engine.act_bits,
             "macs_per_dsp": engine.macs_per_dsp, "backend_width": engine.backend_width}  # fmt: skip
    sized = network_engine(net, point)
    if sized != engine:
        diff = [f"{k}={getattr(engine, k)!r} (this run: {getattr(sized, k)!r})"
                for k in engine.to_dict() if getattr(engine, k) != getattr(sized, k)]  # fmt: skip
        raise ValueError(
            f"--plan {args.plan}: the engine differs for this input: {', '.join(diff)}"
        )
    return net, [dataclasses.replace(engine, **features)]


def _run(args: argparse.Namespace) -> int:
    import torch

    from sfc_hls.host.calibration import calibrate
    from sfc_hls.host.device import make_device
    from sfc_hls.host.inference import run_float, run_int8
    from sfc_hls.quantize import QuantOptions

    say = (lambda *a: None) if args.quiet else print
    t0 = time.perf_counter()
    model, info = _load_model(args)
    data = _load_data(args, model, info)
    limit = args.limit or (RTL_DEFAULT_LIMIT if args.backend == "rtl" else None)
    images = data.images[:limit] if limit else data.images
    labels = None if data.labels is None else data.labels[: len(images)]
    names = data.names[: len(images)]
    net, engines = _network_and_engines(args, model, tuple(images.shape[1:]))
    say(f"model {args.model} ({info['weights']}), input {'x'.join(map(str, images.shape[1:]))}")
    if "random" in info["weights"]:
        say("note: random weights -- predictions and accuracy are meaningless")
    say(net.table() if not args.quiet else "")
    options = QuantOptions(
        fine_tune=args.fine_tune, calib_samples=args.calib, weight_source=args.weight_source
    )
    t_cal = time.perf_counter()
    qnet = calibrate(net, data.calib, options=options, engines=engines, progress=not args.quiet)
    t_cal = time.perf_counter() - t_cal
    say(
        f"calibrated on {qnet.calib_images} image(s) in {t_cal:.1f} s; engines: "
        + ", ".join(
            f"{e.algorithm} (P_co={e.pco}, cin_max={e.cin_max}, cout_max={e.cout_max}"
            + (f", {e.map_kib} KiB map buffer" if e.map_kib else "")
            + (", weight transform" if e.weight_transform else "")
            + (f", {e.replay_beats}-beat replay buffer" if e.replay_beats else "")
            + ")"
            for e in engines
        )  # fmt: skip
    )
    float_logits = run_float(net, images)
    float_pred = float_logits.argmax(axis=1)
    identical = None
    if args.backend == "rtl" and args.check_golden:
        result, identical, build_seconds = _check_against_golden(args, qnet, engines, images)
    else:
        rtl_options = {"axi": args.axi} if args.backend == "rtl" else {}
        with make_device(args.backend, engines, **rtl_options) as device:
            result = run_int8(
                qnet, device, images, batch_size=args.batch_size, progress=not args.quiet
            )
            build_seconds = getattr(device, "build_seconds", 0.0)
    say("")
    say(format_layer_table(result.records, len(images)))
    say("")
    say(f"predictions ({args.backend} int8 vs float32):")
    say(_predictions_text(_Data(images, labels, names, None, None), result.predictions, float_pred))
    summary = _summary(labels, float_pred, result.predictions, identical)
    if labels is not None:
        say(
            f"top-1 on {len(images)} image(s) ({data.source}): float32 "
            f"{100 * summary['float32_top1']:.2f} %, int8 ({engines[0].algorithm}, {args.backend}) "
            f"{100 * summary['int8_top1']:.2f} %"
        )
    if identical is not None:
        say(
            f"rtl: every conv's int8 output identical to golden (from its golden input): "
            f"{'yes' if identical else 'NO'}"
        )
    total = time.perf_counter() - t0
    run_seconds = result.seconds - build_seconds  # engines are built on first use
    say(
        f"time: calibration {t_cal:.1f} s, {args.backend} run {run_seconds:.1f} s"
        + (f" (+ engine generation and build {build_seconds:.1f} s)" if build_seconds else "")
        + f", total {total:.1f} s"
    )
    if args.json_out is not None:
        seconds = {"calibration": t_cal, "run": run_seconds, "engine_build": build_seconds,
                   "total": total}  # fmt: skip
        report = _report(args, info, data.source, net, qnet, result, names, labels, float_pred)
        report.update(summary=summary, seconds=seconds, torch_threads=torch.get_num_threads())
        write_text_atomic(args.json_out, json.dumps(report, indent=1))
        say(f"wrote {args.json_out}")
    if identical is False:
        return 1
    return 0
