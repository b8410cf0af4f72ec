"""The written report of ``sfc-hls explore``: JSON, markdown, a Pareto plot and the plan file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sfc_hls.atomic_files import write_bytes_atomic, write_text_atomic
from sfc_hls.catalog import get_algorithm
from sfc_hls.text_table import format_table

__all__ = ["markdown", "plot_png", "write_report"]


def _label(row: dict[str, Any]) -> str:
    p = row["point"]
    text = (
        f"{get_algorithm(p['algorithm']).title} P_co {p['pco']} x{p['macs_per_dsp']} int{p['bits']}"
    )
    if p["scale_mode"] != "pow2":
        text += f" {p['scale_mode']}"
    text += f" W {r_w}" if (r_w := p.get("backend_width")) is not None else ""
    if row["direct_layers"]:
        text += f" ({len(row['direct_layers'])} layers direct)"
    return text


def _own_images(report: dict[str, Any]) -> bool:
    return report["accuracy"] != "digits top-1"


def _table_rows(report: dict[str, Any], indices: list[int]) -> list[list[str]]:
    rows = []
    for i in indices:
        r = report["points"][i]
        res = r["resources"]
        own = [f"{100 * r['images_top1']:.2f}"] if _own_images(report) else []
        rows.append([
            str(i), _label(r), f"{r['frames_per_second']:.1f}",
            f"{r['frames_per_second_compute_bound']:.1f}", f"{r['mb_per_frame']:.1f}",
            f"{res['DSP']:,}", f"{res['LUT']:,}", f"{res['BRAM']:,}", *own,
            f"{100 * r['digits_top1']:.2f}", _nmse(r["layer_nmse_geomean"]),
        ])  # fmt: skip
    return rows


def _header(report: dict[str, Any]) -> list[str]:
    own = ["images top-1 %"] if _own_images(report) else []
    return ["#", "point", "frames/s", "frames/s (compute)", "MB/frame", "DSP", "LUT", "BRAM",
            *own, "digits top-1 %", "layer NMSE"]  # fmt: skip


def _bandwidth(report: dict[str, Any]) -> str:
    gbps = report["bandwidth_gbps"]
    return "unlimited" if gbps is None else f"{gbps:g} GB/s"


def _nmse(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"  # None: no layer runs fast


def markdown(report: dict[str, Any]) -> str:
    """The Pareto front, the chosen point and how the numbers were obtained."""
    front = sorted(report["pareto"], key=lambda i: -report["points"][i]["frames_per_second"])
    chosen = report["chosen"]
    budget = {k: v for k, v in report["budget"].items() if v is not None}
    lines = [
        f"# sfc-hls explore: {report['network']} ({report['weights']} weights)",
        "",
        f"{len(report['points'])} design points, {len(front)} on the Pareto front ({report['accuracy']} "
        f"and frames/s up, DSP and LUT down). Frames/s at {report['clock_mhz']:g} MHz from the "
        f"cycle model with {_bandwidth(report)} of memory bandwidth (each layer the larger of "
        f"its compute and its transfer time; the compute-bound figure next to it); resources: "
        f"{report['resources']}; accuracy: "
        + (f"{report['accuracy']} and " if _own_images(report) else "")
        + "digits-ResNet top-1 "
        "(golden model, 450 held-out images) with the point's layer rule, and the geometric "
        f"mean of the int8 output NMSE of {report['network']}'s fast layers. "
        f"{report['seconds']:.0f} s.",
        "",
        "## Chosen point" + (f" (budget {budget})" if budget else " (no budget: the fastest)"),
        "",
    ]
    if chosen is None:
        lines.append("No point fits the budget.")
    else:
        r = report["points"][chosen]
        lines += [
            format_table(_header(report), _table_rows(report, [chosen]), markdown=True), "",
            f"Layers in direct mode: {', '.join(r['direct_layers']) or 'none'}.", "",
        ]  # fmt: skip
    lines += [
        "## Pareto front",
        "",
        format_table(_header(report), _table_rows(report, front), markdown=True),
    ]
    return "\n".join(lines) + "\n"


def plot_png(report: dict[str, Any], path: Path) -> None:
    """Frames/s against DSPs and LUTs (colour: top-1; ringed: Pareto; star: chosen)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["points"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, res in zip(axes, ("DSP", "LUT"), strict=True):
        xs = [r["resources"][res] for r in rows]
        ys = [r["frames_per_second"] for r in rows]
        acc = [100 * r["top1"] for r in rows]
        sc = ax.scatter(xs, ys, c=acc, cmap="viridis", s=14, vmin=min(acc), vmax=max(acc))
        front = report["pareto"]
        ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=60, facecolors="none",
                   edgecolors="red", linewidths=0.8, label="Pareto front")  # fmt: skip
        if report["chosen"] is not None:
            c = report["chosen"]
            ax.scatter([xs[c]], [ys[c]], marker="*", s=220, color="orange", edgecolors="black",
                       label="chosen")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{res} ({'Yosys' if 'yosys' in report['resources'] else 'estimate'})")
        ax.set_ylabel(f"frames/s at {report['clock_mhz']:g} MHz, {_bandwidth(report)}")
        ax.legend(loc="lower right")
    fig.colorbar(sc, ax=axes, label=f"{report['accuracy']} (%)")
    fig.suptitle(f"sfc-hls explore: {report['network']}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def write_report(report: dict[str, Any], plan: dict[str, Any] | None, out: Path) -> list[Path]:
    """explore.json, explore.md, explore.png and (if a point was chosen) plan.json in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "explore.json", out / "explore.md", out / "explore.png"]
    write_text_atomic(paths[0], json.dumps(report, indent=1) + "\n")
    write_text_atomic(paths[1], markdown(report))
    plot_png(report, paths[2])
    if plan is not None:
        paths.append(out / "plan.json")
        write_text_atomic(paths[3], json.dumps(plan, indent=1) + "\n")
    return paths
