"""Resource estimator: LUT, FF, DSP, BRAM of a generated engine in milliseconds, without Yosys.

Each datapath block (:data:`~sfc_hls.hw.interface.BLOCKS`) and the rest of the
top (``other``: descriptor, scheduler, parameter memory, stream selection,
minus what flattening optimises across block boundaries) has a linear model

    resource(block) = sum_k  c[block, resource, k] * feature_k(config)

over a few *structural features* that the generator's own width functions give
without elaborating anything (:class:`~sfc_hls.hw.interface.EngineInterface`):
adder bits of the transform netlists, register bits of each payload, accumulator
bits, multiplier tiles of a DSP48E2 (27 x 18 signed), memory cells (block RAM in
18 Kb units, LUTs of distributed RAM), ... (:func:`block_features`).  The
coefficients are fitted (non-negative least squares per block and resource;
signed for ``other``) to Yosys ``synth_xilinx`` runs of every block converted on
its own and of whole tops (:func:`fit`, :func:`training_samples`), cached by
Verilog content like every synthesis here (:mod:`sfc_hls.hw.synth_report`).  The
fitted model ships as ``hw/estimator_model.json`` (written by
``bench/bench_estimator.py``, which also reports the error on configurations
held out of the fit).

An estimate costs the engine interface (its adder netlists: up to ~1.5 s for
the largest SFC-6 on first use, cached per algorithm) plus microseconds.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sfc_hls.atomic_files import check_output_file, write_text_atomic
from sfc_hls.config import EngineConfig, add_engine_arguments
from sfc_hls.hw.digit_serial import DigitPlan
from sfc_hls.hw.interface import BLOCKS, EngineInterface
from sfc_hls.hw.quantizers import DSP_WIDE_INPUT_BITS as DSP_WIDE_INPUT
from sfc_hls.hw.transform import AdderNetlist
from sfc_hls.text_table import format_table

__all__ = [
    "ESTIMATED",
    "FITTED_ON",
    "MODEL_PATH",
    "PARTS",
    "Estimate",
    "ResourceModel",
    "block_features",
    "dsp_tiles",
    "estimate",
    "memory_cells",
    "MemoryCells",
    "fit",
    "add_arguments",
    "run",
]

#: Resources the estimator predicts (``synth_report`` columns).
ESTIMATED = ("LUT", "FF", "DSP", "BRAM")
#: The parts of a top the model sums: every datapath block, then the rest.
PARTS = (*BLOCKS, "other")
#: The shipped model (fitted by bench/bench_estimator.py).
MODEL_PATH = Path(__file__).resolve().parent / "estimator_model.json"
MODEL_FORMAT = "sfc-hls.estimator/2"  # /2: memory features in 18 Kb and LUT units


def dsp_tiles(a_bits: int, b_bits: int) -> int:
    """DSP48E2 blocks of a signed ``a_bits`` x ``b_bits`` multiply (27 x 18 signed tiles)."""
    a, b = max(a_bits, b_bits), min(a_bits, b_bits)
    return math.ceil(max(a - 1, 1) / 26) * math.ceil(max(b - 1, 1) / 17)


def _adder_bits(netlist: AdderNetlist) -> int:
    """Sum of the widths of the netlist's adders and subtractors."""
    return sum(w.width for w in netlist.wires if w.op[0] != "in")


def _output_transform_features(iface: EngineInterface) -> dict[str, float]:
    """The output transform: its network's adder bits, plus, on digits
    (:class:`~sfc_hls.hw.digit_serial.DigitSerialTransform`), the accumulators above
    the digit and the digit select (one LUT-sized bit each), and the held tile."""
    net, digits = iface.output_digit_netlist, iface.output_digits
    if digits == 1:
        return {"adder_bits": _adder_bits(net), "register_bits": net.register_bits}
    plan = DigitPlan(iface.config.z_bits, digits)
    acc_bits = sum(max(w - plan.digit_bits, 1) for w in iface.output_netlist.row_widths)
    select_bits = iface.positions * plan.net_width
    held_bits = iface.positions * iface.config.z_bits
    return {
        "adder_bits": _adder_bits(net) + acc_bits + select_bits,
        "register_bits": net.register_bits + held_bits + sum(iface.output_netlist.row_widths),
    }


@dataclass(frozen=True)
class MemoryCells:
    """The cells Yosys 0.23's ``memory_libmap`` maps a simple dual-port RAM onto
    (UltraScale+), counted as :class:`~sfc_hls.hw.synthesis.SynthesisResult` counts
    them: ``bram`` in 18 Kb units, ``lutram_luts`` the LUTs of distributed RAM."""

    bram: int
    lutram_luts: int


def memory_cells(width: int, depth: int) -> MemoryCells:
    """Memory of a ``width`` x ``depth`` simple dual-port RAM on UltraScale+, as
    Yosys 0.23's ``memory_libmap`` chooses it (checked on the synthesized engines).

    Up to 64 deep: distributed RAM, 8 LUTs per cell (``RAM32M16``: 14 bits at 32 deep;
    ``RAM64M8``: 7 at 64).  Deeper: block RAM in the aspect ratio for the depth,
    ``RAMB36E2`` (two 18 Kb units) when it needs at most half as many cells as
    ``RAMB18E2`` (a tie goes to ``RAMB36E2``), else ``RAMB18E2``.
    """
    if depth <= 64:
        return MemoryCells(bram=0, lutram_luts=8 * math.ceil(width / (14 if depth <= 32 else 7)))
    level = max(0, math.ceil(math.log2(depth / 512)))  # 512, 1K, 2K, ... deep
    width18 = max(1, 36 >> level)
    width36 = max(1, 72 >> level)
    cells18 = math.ceil(width / width18) * math.ceil(depth / (512 << level))
    cells36 = math.ceil(width / width36) * math.ceil(depth / (512 << level))
    return MemoryCells(bram=2 * cells36 if 2 * cells36 <= cells18 else cells18, lutram_luts=0)


def _payload_bits(iface: EngineInterface, name: str) -> int:
    return iface.layouts[name].size


def _features(iface: EngineInterface) -> dict[str, dict[str, float]]:
    cfg, m, lanes, w = iface.config, iface.positions, iface.lanes, iface.width
    acc, z, y = iface.acc_bits, cfg.z_bits, iface.output_widths.y_bits
    act, resc, out = iface.act_widths, iface.rescale_widths, iface.output_widths
    tile_y = iface.algo.output_tile**2
    lane_meta = _payload_bits(iface, "lane_meta")
    out_mult = cfg.out_mult_bits + 1  # signed width of the unsigned multiplier
    row_bits = m * lanes * cfg.weight_bits
    weight_memory = memory_cells(row_bits, 2 * cfg.cin_max)
    param_memory = memory_cells(_payload_bits(iface, "chan"), 2 * lanes * iface.blocks)
    return {
        "act_input": {"bits": _payload_bits(iface, "act")},
        "input_transform": {
            "adder_bits": _adder_bits(iface.input_netlist),
            "register_bits": iface.input_netlist.register_bits,
        },
        "act_quantizer": {
            "v_bits": m * act.v_bits,
            # The shift ports; fixed: a barrel shifter per position; pow2: a select among
            # each position's legal shifts of an act_bits + 1 wide field (hw/quantizers.py).
            "shift_bits": m * act.v_bits * act.shift_width,
            "select_bits": 0
            if act.has_multiplier
            else sum(limit + 1 for limit in act.shift_limits) * (cfg.act_bits + 1),
            "dsp_tiles": m * dsp_tiles(act.v_bits, cfg.act_mult_bits + 1)
            if act.has_multiplier
            else 0,
        },  # fmt: skip
        "weight_buffer": {
            "row_bits": row_bits,
            "bram": weight_memory.bram,
            "lutram_luts": weight_memory.lutram_luts,
        },
        "mac_array": {
            "dsp": iface.multipliers["mac_array_dsp"],
            "acc_bits": m * lanes * acc,
            "packed_acc_bits": m * (lanes // 2) * acc * (cfg.macs_per_dsp == 2),
        },
        "serializer": {"acc_bits": m * lanes * acc, "beat_bits": w * acc + lane_meta},
        "rescale": {
            "acc_bits": w * acc,
            "shift_bits": w * resc.product_bits * resc.shift_width,
            "dsp_tiles": w * dsp_tiles(acc, cfg.rescale_bits + 1),
        },
        "collector": {"bits": m * z + lane_meta},
        "output_transform": _output_transform_features(iface),
        "splitter": {"bits": tile_y * y + lane_meta, "beat_bits": w * y},
        "output_quantizer": {
            "biased_bits": w * out.biased_bits,
            "shift_bits": w * out.product_bits * out.shift_width,
            # y + bias wider than a DSP input is split: its top bits in the DSP, the rest
            # in fabric (hw/quantizers.py, _split_product).
            "dsp_tiles": w * dsp_tiles(min(out.biased_bits, DSP_WIDE_INPUT), out_mult),
        },
        "output_buffer": {"bits": _payload_bits(iface, "out")},
        "other": {
            "one": 1.0,
            "descriptor_bits": _payload_bits(iface, "descriptor"),
            "param_bram": param_memory.bram,
            "param_lutram_luts": param_memory.lutram_luts,
            "lanes": lanes,
        },
    }


def block_features(config: EngineConfig) -> dict[str, dict[str, float]]:
    """Structural features of each part (:data:`PARTS`) of ``config``'s engine."""
    return _features(EngineInterface.from_config(config))


@dataclass(frozen=True)
class Estimate:
    """Estimated resources of one engine: per part and in total (rounded to integers)."""

    config: EngineConfig
    parts: dict[str, dict[str, float]]
    seconds: float

    @property
    def total(self) -> dict[str, int]:
        return {r: max(0, round(sum(p[r] for p in self.parts.values()))) for r in ESTIMATED}

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.config.to_dict(),
            "total": self.total,
            "parts": {n: {r: round(v, 1) for r, v in p.items()} for n, p in self.parts.items()},
            "seconds": self.seconds,
        }


@dataclass
class ResourceModel:
    """Fitted coefficients ``coef[part][resource][feature]`` and how they were fitted."""

    coef: dict[str, dict[str, dict[str, float]]]
    meta: dict[str, Any] = field(default_factory=dict)

    def estimate(self, config: EngineConfig) -> Estimate:
        if config.map_kib:
            raise ValueError(
                f"map_kib={config.map_kib}: the estimator has no model of the feature-map "
                "buffer; synthesize the engine (sfc-hls synth), or estimate it with map_kib=0"
            )
        if config.replay_beats:
            raise ValueError(
                f"replay_beats={config.replay_beats}: the estimator has no model of the replay "
                "buffer; synthesize the engine (sfc-hls synth), or estimate it with replay_beats=0"
            )
        if config.weight_transform:
            raise ValueError(
                "weight_transform=True: the estimator has no model of the weight transform; "
                "synthesize the engine (sfc-hls synth), or estimate it without the transform"
            )
        if config.target != "xilinx":
            raise ValueError(
                f"the estimator predicts Xilinx resources (synth_xilinx); config.target="
                f"{config.target!r}: estimate the same engine with target 'xilinx'"
            )
        t0 = time.perf_counter()
        features = block_features(config)
        parts = {
            part: {
                r: sum(c * features[part][k] for k, c in self.coef[part][r].items())
                for r in ESTIMATED
            }
            for part in PARTS
        }
        return Estimate(config, parts, time.perf_counter() - t0)

    def to_json(self) -> str:
        return json.dumps({"format": MODEL_FORMAT, "meta": self.meta, "coef": self.coef}, indent=1)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> ResourceModel:
        """The model in ``path``; ValueError naming the file if it is not one."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"estimator model {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ValueError(f"estimator model {path}: not a {MODEL_FORMAT} file")
        coef = data["coef"]
        missing = [p for p in PARTS if p not in coef]
        if missing:
            raise ValueError(f"estimator model {path}: no coefficients for {missing}")
        return cls(coef=coef, meta=data.get("meta", {}))


def estimate(config: EngineConfig, model: ResourceModel | None = None) -> Estimate:
    """Estimated resources of ``config``'s engine (the shipped model unless ``model``)."""
    return (model or _shipped_model()).estimate(config)


_SHIPPED: list[ResourceModel] = []


def _shipped_model() -> ResourceModel:
    if not _SHIPPED:
        _SHIPPED.append(ResourceModel.load(MODEL_PATH))
    return _SHIPPED[0]


# ---------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class Sample:
    """One synthesized configuration: Yosys counts of each block and (optionally) the top."""

    config: EngineConfig
    blocks: dict[str, dict[str, int]]
    total: dict[str, int] | None

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> Sample:
        """From a :func:`~sfc_hls.hw.synth_report.synth_report` dict."""
        return cls(EngineConfig.from_dict(report["engine"]), report["blocks"], report.get("total"))


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)  # column scaling: a well-posed problem
    x, _ = nnls(a / scale, b, maxiter=50 * a.shape[1])
    return x / scale


#: Features a resource of a block is fitted on, where not every feature of the block
#: can drive it (the others get coefficient 0).  The weight buffer's flip-flops and
#: logic scale with its row (read registers, output skid buffer, row selects), not
#: with the memory's depth: in the training set BRAM18 units are proportional to
#: the row (depth <= 512: one unit per 36 bits), so a fit on both picks either, and
#: one on ``bram`` doubles at depth 1024 (cin_max 512: one unit per 18 bits; the
#: default engine's weight buffer estimated at 30,054 FF, 11,444 LUT against Yosys's
#: 14,243 and 6,952).
FITTED_ON: dict[tuple[str, str], tuple[str, ...]] = {
    ("weight_buffer", "LUT"): ("row_bits", "lutram_luts"),
    ("weight_buffer", "FF"): ("row_bits",),
    ("weight_buffer", "BRAM"): ("bram",),
}


def _solve(
    rows: list[dict[str, float]], targets: list[float], signed: bool, only: tuple[str, ...] = ()
) -> dict[str, float]:
    """Coefficients of every feature of ``rows`` (those not in ``only``, when given, 0)."""
    names = [k for k in rows[0] if not only or k in only]
    a = np.array([[row[k] for k in names] for row in rows], dtype=float)
    b = np.array(targets, dtype=float)
    x = np.linalg.lstsq(a, b, rcond=None)[0] if signed else _nnls(a, b)
    fitted = {k: float(v) for k, v in zip(names, x, strict=True)}
    return {k: fitted.get(k, 0.0) for k in rows[0]}


def fit(samples: Sequence[Sample], meta: dict[str, Any] | None = None) -> ResourceModel:
    """Fit every part's coefficients to ``samples``.

    Blocks: non-negative least squares on the blocks synthesized alone (a
    resource never shrinks as a structure grows).  ``other``: least squares
    (signed) on ``total - sum(blocks)`` of the samples with a whole top.
    """
    if not samples:
        raise ValueError("fit needs at least one synthesized configuration")
    features = [block_features(s.config) for s in samples]
    coef: dict[str, dict[str, dict[str, float]]] = {}
    for part in BLOCKS:
        rows = [f[part] for f in features]
        coef[part] = {
            r: _solve(
                rows,
                [s.blocks[part][r] for s in samples],
                signed=False,
                only=FITTED_ON.get((part, r), ()),
            )
            for r in ESTIMATED
        }
    whole = [(s, f) for s, f in zip(samples, features, strict=True) if s.total is not None]
    if not whole:
        raise ValueError("fit needs at least one configuration synthesized as a whole top")
    coef["other"] = {}
    for r in ESTIMATED:
        rest = [s.total[r] - sum(s.blocks[b][r] for b in BLOCKS) for s, _ in whole]  # type: ignore[index]
        coef["other"][r] = _solve([f["other"] for _, f in whole], rest, signed=True)
    return ResourceModel(coef=coef, meta=dict(meta or {}))


def relative_errors(model: ResourceModel, samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """Per whole-top sample: Yosys, estimate and relative error of each resource."""
    rows = []
    for s in samples:
        if s.total is None:
            continue
        est = model.estimate(s.config).total
        rows.append(
            {
                "engine": s.config.to_dict(),
                "yosys": {r: s.total[r] for r in ESTIMATED},
                "estimate": est,
                "error": {
                    r: (est[r] - s.total[r]) / s.total[r] if s.total[r] else float(est[r] != 0)
                    for r in ESTIMATED
                },
            }
        )
    return rows


# ------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls estimate``."""
    add_engine_arguments(parser)
    parser.add_argument("--blocks", action="store_true", help="also print every block's estimate")
    parser.add_argument(
        "--model", type=Path, default=MODEL_PATH, help="fitted model (default: the shipped one)"
    )
    parser.add_argument("--json", type=Path, dest="json_out", help="write the estimate as JSON")


def format_estimate(est: Estimate, *, blocks: bool = False) -> str:
    rows: list[list[str]] = []
    if blocks:
        rows += [[n, *(f"{p[r]:.0f}" for r in ESTIMATED)] for n, p in est.parts.items()]
    rows.append(["total", *(str(est.total[r]) for r in ESTIMATED)])
    return format_table(["part", *ESTIMATED], rows)


def run(args: argparse.Namespace) -> int:
    config = EngineConfig.from_args(args)
    if args.json_out is not None:
        check_output_file(args.json_out)
    model = ResourceModel.load(args.model)
    est = model.estimate(config)
    print(
        f"{config.algo.title}, P_co={config.pco}, macs_per_dsp={config.macs_per_dsp}: "
        f"estimated without synthesis ({1000 * est.seconds:.1f} ms; model fitted on "
        f"{model.meta.get('fitted_on', '?')} synthesized configurations, "
        f"{model.meta.get('yosys', 'Yosys')})"
    )
    print(format_estimate(est, blocks=args.blocks))
    if args.json_out is not None:
        write_text_atomic(args.json_out, json.dumps(est.to_dict(), indent=1))
        print(f"wrote {args.json_out}")
    return 0
