"""Per-layer int8 error of fast-convolution algorithms on a trained network.

:func:`run_error_study` measures, for every 3x3 stride-1 conv layer of the
committed digits ResNet (:func:`sfc_hls.host.checkpoint.load_digits_small_resnet`)
and every algorithm, the error of the layer quantized by
:func:`sfc_hls.quantize.quantize_conv_layer` and run through the bit-accurate
golden model (:func:`sfc_hls.golden.conv2d_int8`), against the float layer:

1. The model is lowered to the host IR (:func:`sfc_hls.host.lowering.lower_model`:
   BatchNorm folded into each conv); the IR's float walker
   (:func:`sfc_hls.host.inference.float_tensors`, i.e. ``Network.evaluate``)
   captures the float input of each layer on calibration images (training
   set) and evaluation images (test set), both chosen by a seeded permutation.
2. The layer input is quantized to int8, symmetric, with the scale
   ``max|x| / 127`` of the calibration inputs.
3. The layer is quantized for each (algorithm, activation scale mode,
   fine-tuning on/off) with the same clipping methods and weight granularity,
   calibrated and fine-tuned on the calibration images only.
4. On the evaluation images two errors are measured, each as plain MSE (in the
   units of the BN-folded conv output) and normalized MSE
   ``mean((y_hat - y)^2) / var(y)`` (``var`` of the float output ``y`` over all
   its elements):

   * ``out``: the engine's int8 output (dequantized) against the float layer on
     the float input -- everything included (input, transform-domain and
     output quantization);
   * ``y``: the datapath's accumulator ``y + bias`` before the output
     requantization (dequantized) against the float layer on the int8 input --
     the error the transform-domain quantization alone adds.

Layers are quantized without ReLU (the measured output is conv + BN, which in
a BasicBlock's second conv is added to the shortcut before any ReLU).

:func:`write_error_study` writes ``error_study.json``, ``error_study.md`` and
``error_study.png`` into a directory atomically; :func:`add_arguments` and
:func:`run` are the ``sfc-hls error-study`` command (which checks the output
directory before the study starts).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sfc_hls.arguments import check_int
from sfc_hls.atomic_files import (
    atomic_directory,
    check_output_directory,
    write_bytes_atomic,
    write_text_atomic,
)
from sfc_hls.catalog import get_algorithm
from sfc_hls.config import SCALE_MODES, EngineConfig
from sfc_hls.golden import conv2d_int8
from sfc_hls.host.ir import Conv, Network
from sfc_hls.quantize import (
    ACT_METHODS,
    WEIGHT_GRANULARITIES,
    WEIGHT_METHODS,
    WEIGHT_SOURCES,
    QuantOptions,
    accumulator_scale,
    dequantize_output,
    float_conv2d,
    quantize_conv_layer,
    quantize_input,
)
from sfc_hls.reference import assemble_tiles
from sfc_hls.text_table import format_table as text_table

__all__ = [
    "MAX_SEED",
    "STUDY_ALGORITHMS",
    "add_arguments",
    "capture_inputs",
    "format_table",
    "layer_errors",
    "run",
    "run_error_study",
    "write_error_study",
]

#: The algorithms compared by default (all 3x3 kernels).
STUDY_ALGORITHMS = (
    "direct-3x3",
    "wino-2x2-3x3",
    "wino-4x4-3x3",
    "sfc4-4x4-3x3",
    "sfc6-6x6-3x3",
    "sfc6-7x7-3x3",
)
FORMAT = "sfc-hls.error-study/1"
FILES = ("error_study.json", "error_study.md", "error_study.png")
_WINOGRAD = "wino-4x4-3x3"
_SFC6 = ("sfc6-6x6-3x3", "sfc6-7x7-3x3")
#: Largest image-selection seed.
MAX_SEED = 2**63 - 1
#: Narrowest ``z`` the study takes (``--z-bits``): the rescale shift needs room below it.
MIN_Z_BITS = 12

#: Narrowest MAC operands the study takes (``--bits``): 4 is the smallest the project checks.
MIN_BITS = 4
_NORMALIZATION = (
    "nmse = mean((estimate - reference)^2) / var(reference) over all outputs of the "
    "evaluation images; mse is the plain mean squared error in the units of the "
    "BN-folded conv output. 'out': int8 engine output vs the float layer on the float "
    "input. 'y': accumulator y + bias before output requantization vs the float layer "
    "on the int8 input (transform-domain quantization error only)."
)


# ---------------------------------------------------------------------- data capture
def _stride1_convs(network: Network, kernel: int = 3) -> list[Conv]:
    """The ``kernel x kernel`` stride-1 convs of the lowered network, in execution order."""
    return [c for c in network.convs if c.kernel == kernel and c.stride == 1]


def capture_inputs(network: Network, convs: Sequence[Conv], images: Any) -> dict[str, np.ndarray]:
    """Float64 input of each conv for ``images`` (the IR's float walker, BatchNorm folded)."""
    import torch

    from sfc_hls.host.inference import float_tensors

    readers: dict[str, list[str]] = {}
    for conv in convs:
        readers.setdefault(conv.input, []).append(conv.name)
    captured: dict[str, np.ndarray] = {}

    def visit(tensor: str, value: Any) -> None:
        for name in readers.get(tensor, ()):
            captured[name] = value.detach().to(torch.float64).cpu().numpy().copy()

    float_tensors(network, images, visit=visit)
    return captured


# ---------------------------------------------------------------------- metrics
def _errors(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(MSE, MSE / var(reference))."""
    mse = float(np.mean((estimate - reference) ** 2))
    var = float(np.var(reference))
    return mse, mse / var if var > 0 else math.inf


def _accumulator_output(stages: Any, params: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Dequantized ``y + bias`` (before output requantization) as (N, Cout, Ho, Wo)."""
    algo = params.algo
    n, _, ho, wo = shape
    grid = [math.ceil(ho / algo.output_tile), math.ceil(wo / algo.output_tile)]
    y = assemble_tiles(stages.y.astype(np.float64), algo, [ho, wo], grid)
    y = y + params.bias[None, :, None, None]
    return y * accumulator_scale(params)[None, :, None, None]


def _geomean(values: Sequence[float]) -> float:
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return float(np.exp(np.mean(np.log(values)))) if values else math.nan


# ---------------------------------------------------------------------- the study
@dataclass(frozen=True)
class _Sweep:
    """What is compared on every layer: algorithms x scale modes x fine-tuning."""

    algorithms: list[str]
    scale_modes: list[str]
    fine_tune: list[bool]
    options: QuantOptions
    bits: int = 8
    z_bits: int = EngineConfig.z_bits


def _check_sweep(
    algorithms: Sequence[str],
    scale_modes: Sequence[str],
    fine_tune: Sequence[bool],
    options: QuantOptions | None,
    bits: int = 8,
    z_bits: int = EngineConfig.z_bits,
) -> _Sweep:
    check_int("bits", bits, MIN_BITS, 8)
    check_int("z_bits", z_bits, MIN_Z_BITS, 64)
    algorithms = list(algorithms)
    if not algorithms:
        raise ValueError("algorithms must name at least one algorithm")
    for name in algorithms:
        if get_algorithm(name).kernel != 3 or get_algorithm(name).dims != 2:
            raise ValueError(f"algorithms: {name!r} is not a 2D 3x3 algorithm")
    scale_modes = list(scale_modes)
    if not scale_modes or any(m not in SCALE_MODES for m in scale_modes):
        raise ValueError(
            f"scale_modes must be a non-empty subset of {SCALE_MODES}, got {scale_modes}"
        )
    fine_tune = list(fine_tune)
    if not fine_tune or any(not isinstance(f, bool) for f in fine_tune):
        raise ValueError(f"fine_tune must be a non-empty list of bools, got {fine_tune}")
    options = QuantOptions() if options is None else options
    if not isinstance(options, QuantOptions):
        raise TypeError(f"options must be a QuantOptions, got {type(options).__name__}")
    return _Sweep(algorithms, scale_modes, fine_tune, options, bits, z_bits)


def _study_layer(
    conv: Conv, xc: np.ndarray, xe: np.ndarray, sweep: _Sweep
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-layer data and one record per (algorithm, scale mode, fine-tune) of ``conv``."""
    w, b, padding = conv.weight, conv.bias, conv.padding
    assert w is not None and b is not None  # lowered from a trained model
    sx = float(np.abs(xc).max()) / 127.0
    xc_int, xe_int = quantize_input(xc, sx), quantize_input(xe, sx)
    ref = float_conv2d(xe, w, b, padding)
    ref_int_in = float_conv2d(xe_int * sx, w, b, padding)
    calib_ref = float_conv2d(xc_int * sx, w, b, padding)
    so = float(np.abs(calib_ref).max()) / 127.0
    out_floor = np.clip(np.rint(ref_int_in / so), -128, 127) * so
    info = {
        "name": conv.name,
        "cin": int(w.shape[1]),
        "cout": int(w.shape[0]),
        "height": int(xe.shape[2]),
        "width": int(xe.shape[3]),
        "input_scale": sx,
        "output_scale": so,
        "float_output_var": float(np.var(ref)),
        # Errors every algorithm shares: int8 input (exact conv of it), and
        # in addition int8 rounding of the exact output.
        "nmse_input_quant": _errors(ref_int_in, ref)[1],
        "nmse_input_output_quant": _errors(out_floor, ref)[1],
    }
    records = []
    for algo in sweep.algorithms:
        for mode in sweep.scale_modes:
            # The default engine's channel limits, raised for wider layers (ResNet-18's 512).
            config = EngineConfig(algorithm=algo, scale_mode=mode, act_bits=sweep.bits,
                                  weight_bits=sweep.bits, z_bits=sweep.z_bits,
                                  cin_max=max(256, w.shape[1]),
                                  cout_max=max(256, w.shape[0]))  # fmt: skip
            for ft in sweep.fine_tune:
                t0 = time.perf_counter()
                params = quantize_conv_layer(
                    w, b, config=config, calib_inputs_int8=xc_int, input_scale=sx,
                    output_scale=so, padding=padding,
                    options=dataclasses.replace(sweep.options, fine_tune=ft, calib_samples=None),
                )  # fmt: skip
                t1 = time.perf_counter()
                out, stages = conv2d_int8(xe_int, params, return_stages=True)
                mse_out, nmse_out = _errors(dequantize_output(out, params), ref)
                y = _accumulator_output(stages, params, out.shape)
                mse_y, nmse_y = _errors(y, ref_int_in)
                records.append(
                    {"layer": conv.name, "algorithm": algo, "scale_mode": mode, "fine_tune": ft,
                     "mse_out": mse_out, "nmse_out": nmse_out, "mse_y": mse_y, "nmse_y": nmse_y,
                     "quantize_seconds": round(t1 - t0, 3)}
                )  # fmt: skip
    return info, records


def layer_errors(
    conv: Conv, calib: np.ndarray, evaluate: np.ndarray, algorithm: str, bits: int, scale_mode: str
) -> float:
    """Normalized MSE of ``conv``'s int8 output run fast with ``algorithm`` at ``bits``-bit MAC
    operands, calibrated on ``calib`` and measured on ``evaluate`` (float inputs, NCHW)."""
    sweep = _check_sweep([algorithm], [scale_mode], [False], None, bits)
    _, records = _study_layer(conv, calib, evaluate, sweep)
    return float(records[0]["nmse_out"])


def _select_layers(network: Network, layers: Sequence[str] | None) -> list[Conv]:
    available = _stride1_convs(network)
    names = [c.name for c in available]
    chosen = names if layers is None else list(layers)
    if not chosen or any(name not in names for name in chosen):
        raise ValueError(f"layers must be among the 3x3 stride-1 convs {names}, got {chosen}")
    return [next(c for c in available if c.name == name) for name in chosen]


def _settings(
    meta: dict[str, Any],
    sweep: _Sweep,
    layers: list[str],
    calib_images: int,
    eval_images: int,
    seed: int,
) -> dict[str, Any]:
    """The ``settings`` record of a study result."""
    return {
        "model": meta.get("model", "small_resnet"),
        "dataset": meta.get("dataset", "digits"),
        "algorithms": sweep.algorithms,
        "layers": layers,
        "calib_images": calib_images,
        "eval_images": eval_images,
        "scale_modes": sweep.scale_modes,
        "fine_tune": sweep.fine_tune,
        "act_method": sweep.options.act_method,
        "weight_method": sweep.options.weight_method,
        "weight_granularity": sweep.options.weight_granularity,
        "weight_source": sweep.options.weight_source,
        "seed": seed,
        "engine": {
            k: v
            for k, v in EngineConfig(
                act_bits=sweep.bits, weight_bits=sweep.bits, z_bits=sweep.z_bits
            )
            .to_dict()
            .items()
            if k not in ("algorithm", "scale_mode", "pco", "cin_max", "cout_max")
        },
    }


def run_error_study(
    *,
    algorithms: Sequence[str] = STUDY_ALGORITHMS,
    layers: Sequence[str] | None = None,
    calib_images: int = 32,
    eval_images: int = 64,
    scale_modes: Sequence[str] = SCALE_MODES,
    fine_tune: Sequence[bool] = (False, True),
    options: QuantOptions | None = None,
    seed: int = 0,
    progress: bool = False,
    bits: int = 8,
    z_bits: int = EngineConfig.z_bits,
) -> dict[str, Any]:
    """Quantize every selected layer with every algorithm and configuration; measure errors.

    Args:
        algorithms: 3x3 algorithm names (all quantized the same way).
        layers: names of 3x3 stride-1 conv layers of the digits ResNet
            (``None``: all of them).
        calib_images, eval_images: images from the training / test split.
        scale_modes: activation scale modes to compare (``pow2``, ``fixed``).
        fine_tune: fine-tuning settings to compare.
        options: clipping methods and weight granularity passed to
            :func:`~sfc_hls.quantize.quantize_conv_layer` (``fine_tune`` is swept as above;
            all calibration images are used).
        seed: seed of the image selection, in ``[0, MAX_SEED]``.
        progress: print one line per layer to stderr.
        bits: width of the transform-domain activations and weights (the MAC
            operands, ``act_bits`` = ``weight_bits``) in ``[MIN_BITS, 8]``; the
            feature maps stay int8.
        z_bits: width of the rescaled accumulators entering ``A^T``
            (``EngineConfig.z_bits``) in ``[MIN_Z_BITS, 64]``.

    Returns:
        A JSON-serializable dict (``format`` ``sfc-hls.error-study/1``) with
        settings, per-layer data, one record per (layer, algorithm, scale mode,
        fine-tune) and a summary (geometric means over layers, SFC-6 vs
        Winograd F(4x4) ratios).
    """
    import torch

    from sfc_hls.host.checkpoint import load_digits_small_resnet
    from sfc_hls.host.digits import load_digits_split
    from sfc_hls.host.lowering import lower_model

    sweep = _check_sweep(algorithms, scale_modes, fine_tune, options, bits, z_bits)
    check_int("calib_images", calib_images, 1)
    check_int("eval_images", eval_images, 1)
    check_int("seed", seed, 0, MAX_SEED)
    start = time.perf_counter()
    model, meta = load_digits_small_resnet()
    split = load_digits_split()
    network = lower_model(model, tuple(split.x_train.shape[1:]), name="small_resnet")
    convs = _select_layers(network, layers)
    for name, count, total in (
        ("calib_images", calib_images, len(split.x_train)),
        ("eval_images", eval_images, len(split.x_test)),
    ):
        if count > total:
            raise ValueError(f"{name}={count} exceeds the {total} images available")
    rng = np.random.default_rng(seed)
    calib_idx = np.sort(rng.permutation(len(split.x_train))[:calib_images])
    eval_idx = np.sort(rng.permutation(len(split.x_test))[:eval_images])
    calib_x = capture_inputs(network, convs, split.x_train[torch.from_numpy(calib_idx)])
    eval_x = capture_inputs(network, convs, split.x_test[torch.from_numpy(eval_idx)])
    layer_info, records = [], []
    for conv in convs:
        info, layer_records = _study_layer(conv, calib_x[conv.name], eval_x[conv.name], sweep)
        layer_info.append(info)
        records += layer_records
        if progress:
            elapsed = time.perf_counter() - start
            print(f"error-study: {conv.name} done ({elapsed:.1f} s)", file=sys.stderr)
    settings = _settings(meta, sweep, [c.name for c in convs], calib_images, eval_images, seed)
    return {
        "format": FORMAT,
        "settings": settings,
        "normalization": _NORMALIZATION,
        "layers": layer_info,
        "records": records,
        "summary": _summary(records, sweep.algorithms, sweep.scale_modes, sweep.fine_tune),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _config_key(mode: str, ft: bool) -> str:
    return f"{mode}{'+ft' if ft else ''}"


def _summary(
    records: list[dict], algorithms: list[str], modes: list[str], fts: list[bool]
) -> dict[str, Any]:
    geo: dict[str, dict[str, dict[str, float]]] = {}
    for mode in modes:
        for ft in fts:
            key = _config_key(mode, ft)
            geo[key] = {}
            for algo in algorithms:
                sel = [
                    r
                    for r in records
                    if r["algorithm"] == algo and r["scale_mode"] == mode and r["fine_tune"] == ft
                ]
                geo[key][algo] = {
                    "nmse_out": _geomean([r["nmse_out"] for r in sel]),
                    "nmse_y": _geomean([r["nmse_y"] for r in sel]),
                }
    ratios: dict[str, Any] = {}
    if _WINOGRAD in algorithms:
        for sfc in _SFC6:
            if sfc not in algorithms:
                continue
            for key, per_algo in geo.items():
                for metric in ("nmse_out", "nmse_y"):
                    ratio = per_algo[_WINOGRAD][metric] / per_algo[sfc][metric]
                    ratios.setdefault(sfc, {}).setdefault(key, {})[metric] = ratio
    return {
        "geomean_over_layers": geo,
        "winograd4_over_sfc6": ratios,
        "paper_claim": "SFC-6 int8 layer MSE >= 10x lower than Winograd F(4x4,3x3) int8",
        "paper_claim_met": {
            sfc: {key: r["nmse_y"] >= 10.0 for key, r in per.items()} for sfc, per in ratios.items()
        },
    }


# ---------------------------------------------------------------------- reports
def _short(algo: str) -> str:
    return get_algorithm(algo).title


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    """Layer (or label) columns left-aligned, numbers right-aligned."""
    labels = sum(1 for h in headers if h in ("layer", "SFC-6", "config"))
    align = "l" * labels + "r" * (len(headers) - labels)
    return text_table(headers, rows, align=align, markdown=markdown)


def _metric_rows(result: dict[str, Any], metric: str, mode: str, ft: bool) -> list[list[str]]:
    """One row per layer plus the geometric mean, for one metric and configuration."""
    algos = result["settings"]["algorithms"]
    index = {
        (r["layer"], r["algorithm"], r["scale_mode"], r["fine_tune"]): r for r in result["records"]
    }
    with_floor = metric == "nmse_out"
    rows = []
    for info in result["layers"]:
        shape = f"{info['cin']}->{info['cout']}, {info['height']}x{info['width']}"
        row = [f"{info['name']} ({shape})"]
        row += [f"{index[(info['name'], a, mode, ft)][metric]:.2e}" for a in algos]
        if with_floor:
            row.append(f"{info['nmse_input_output_quant']:.2e}")
        rows.append(row)
    geo = result["summary"]["geomean_over_layers"][_config_key(mode, ft)]
    rows.append(["geomean"] + [f"{geo[a][metric]:.2e}" for a in algos])
    if with_floor:
        floor = _geomean([i["nmse_input_output_quant"] for i in result["layers"]])
        rows[-1].append(f"{floor:.2e}")
    return rows


_METRIC_TITLES = {
    "nmse_y": "normalized MSE of y (before output requantization) vs float layer on the int8 input",
    "nmse_out": "normalized MSE of the int8 output vs float layer on the float input",
}


def format_table(result: dict[str, Any], *, markdown: bool = False) -> str:
    """Per-layer and summary tables of a study result (text or markdown)."""
    s = result["settings"]
    heading = (lambda t: f"### {t}") if markdown else (lambda t: t)
    parts = []
    for metric, title in _METRIC_TITLES.items():
        for mode in s["scale_modes"]:
            for ft in s["fine_tune"]:
                headers = ["layer"] + [_short(a) for a in s["algorithms"]]
                headers += ["floor"] if metric == "nmse_out" else []
                parts.append(heading(f"{title} -- {_config_key(mode, ft)}"))
                parts.append(_table(headers, _metric_rows(result, metric, mode, ft), markdown))
                parts.append("")
    ratios = result["summary"]["winograd4_over_sfc6"]
    if ratios:
        parts.append(heading("Winograd F(4x4,3x3) error / SFC-6 error (geomean over layers)"))
        rows = [
            [_short(sfc), key, f"{r['nmse_y']:.1f}x", f"{r['nmse_out']:.1f}x"]
            for sfc, per in ratios.items()
            for key, r in per.items()
        ]
        parts.append(_table(["SFC-6", "config", "y", "int8 out"], rows, markdown))
        parts.append("")
    parts.append(
        "floor = int8 input and int8 output rounding alone (exact arithmetic in between); "
        + result["normalization"]
    )
    return "\n".join(parts)


def _plot_png(result: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    s = result["settings"]
    algos = s["algorithms"]
    configs = [_config_key(m, f) for m in s["scale_modes"] for f in s["fine_tune"]]
    main = configs[-1]
    index = {
        (r["layer"], r["algorithm"], _config_key(r["scale_mode"], r["fine_tune"])): r
        for r in result["records"]
    }
    layers = [info["name"] for info in result["layers"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
    width = 0.8 / len(algos)
    x = np.arange(len(layers))
    for i, algo in enumerate(algos):
        vals = [index[(layer, algo, main)]["nmse_y"] for layer in layers]
        axes[0].bar(x + (i - (len(algos) - 1) / 2) * width, vals, width, label=_short(algo))
    axes[0].set_xticks(x, layers, rotation=20, ha="right", fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("normalized MSE of y vs float")
    axes[0].set_title(f"per layer ({main})")
    x = np.arange(len(configs))
    geo = result["summary"]["geomean_over_layers"]
    for i, algo in enumerate(algos):
        vals = [geo[c][algo]["nmse_y"] for c in configs]
        axes[1].bar(x + (i - (len(algos) - 1) / 2) * width, vals, width, label=_short(algo))
    axes[1].set_xticks(x, configs)
    axes[1].set_yscale("log")
    axes[1].set_title("geometric mean over layers")
    axes[1].set_ylabel("normalized MSE of y vs float")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(algos), fontsize=8)
    fig.suptitle(
        f"int8 transform-domain quantization error, digits ResNet "
        f"({s['calib_images']} calibration / {s['eval_images']} evaluation images)"
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "# Int8 error study",
        "",
        f"Model: {s['model']} on {s['dataset']}; {len(s['layers'])} 3x3 stride-1 conv layers "
        f"(BatchNorm folded, no ReLU); {s['calib_images']} calibration images (train), "
        f"{s['eval_images']} evaluation images (test), seed {s['seed']}.",
        f"Quantizer: activation clipping `{s['act_method']}` per transform position, weights "
        f"`{s['weight_method']}` per {s['weight_granularity']}; int8 activations and weights; "
        f"run time {result['seconds']} s.",
        "",
        format_table(result, markdown=True),
        "",
        "![error study](error_study.png)",
        "",
    ]
    return "\n".join(lines)


def write_error_study(
    result: dict[str, Any], out_dir: str | Path, *, overwrite: bool = False
) -> Path:
    """Write ``error_study.{json,md,png}`` into ``out_dir`` atomically (all or nothing).

    ``overwrite`` replaces only an earlier sfc-hls output directory
    (:func:`sfc_hls.atomic_files.check_output_directory`).
    """
    out_dir = Path(out_dir)
    check_output_directory(out_dir, overwrite=overwrite)
    png = _plot_png(result)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        write_text_atomic(tmp / "error_study.json", json.dumps(result, indent=2) + "\n")
        write_text_atomic(tmp / "error_study.md", _markdown(result))
        write_bytes_atomic(tmp / "error_study.png", png)
    return out_dir


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls error-study``."""
    parser.add_argument("output", type=Path, help="output directory (created atomically)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output directory written by sfc-hls (nothing else)",
    )
    parser.add_argument(
        "--algorithms", nargs="+", default=list(STUDY_ALGORITHMS), metavar="NAME",
        help="3x3 algorithms to compare (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--layers", nargs="+", default=None, metavar="LAYER",
        help="conv layers (default: all 3x3 stride-1)",
    )  # fmt: skip
    parser.add_argument("--calib-images", type=int, default=32, help="calibration images (32)")
    parser.add_argument("--eval-images", type=int, default=64, help="evaluation images (64)")
    parser.add_argument(
        "--scale-modes", nargs="+", choices=SCALE_MODES, default=list(SCALE_MODES),
        help="activation scale modes (default: both)",
    )  # fmt: skip
    parser.add_argument(
        "--fine-tune", choices=("off", "on", "both"), default="both",
        help="scale fine-tuning (default: both)",
    )  # fmt: skip
    parser.add_argument("--act-method", choices=ACT_METHODS, default="percentile")
    parser.add_argument("--weight-method", choices=WEIGHT_METHODS, default="mse")
    parser.add_argument("--granularity", choices=WEIGHT_GRANULARITIES, default="channel")
    parser.add_argument(
        "--weight-source", choices=WEIGHT_SOURCES, default="transform",
        help="quantize G w ('transform') or int8 spatial w transformed exactly with a "
        "power-of-two scale per position and channel ('spatial', the on-chip weight transform)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=0, help=f"image selection seed in [0, {MAX_SEED}] (0)"
    )
    parser.add_argument(
        "--bits",
        type=int,
        default=8,
        help=f"transform-domain activation and weight bits (MAC operands) in [{MIN_BITS}, 8]; "
        "feature maps stay int8 (default 8)",
    )
    parser.add_argument(
        "--z-bits", type=int, default=EngineConfig.z_bits,
        help=f"width of the rescaled accumulators entering A^T in [{MIN_Z_BITS}, 64] "
        "(default %(default)s)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="print no table")


def run(args: argparse.Namespace) -> int:
    """Run the study with parsed ``args``; write the files and print the table.

    The options and the output directory are checked before the study starts.
    """
    check_int("--calib-images", args.calib_images, 1)
    check_int("--eval-images", args.eval_images, 1)
    check_int("--seed", args.seed, 0, MAX_SEED)
    check_int("--z-bits", args.z_bits, MIN_Z_BITS, 64)
    check_output_directory(args.output, overwrite=args.force)
    fine_tune = {"off": [False], "on": [True], "both": [False, True]}[args.fine_tune]
    result = run_error_study(
        algorithms=args.algorithms,
        layers=args.layers,
        calib_images=args.calib_images,
        eval_images=args.eval_images,
        scale_modes=args.scale_modes,
        fine_tune=fine_tune,
        options=QuantOptions(
            act_method=args.act_method,
            weight_method=args.weight_method,
            weight_granularity=args.granularity,
            weight_source=args.weight_source,
        ),
        seed=args.seed,
        bits=args.bits,
        z_bits=args.z_bits,
        progress=not args.quiet,
    )
    path = write_error_study(result, args.output, overwrite=args.force)
    if not args.quiet:
        print(format_table(result))
    print(f"wrote {', '.join(FILES)} to {path} ({result['seconds']} s)")
    return 0
