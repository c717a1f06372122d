"""The evaluation report as text: the headline and two-view benchmark tables, ``metrics.md``,
and strict JSON for ``metrics.json``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from stereo_semantic_ros.metrics import BENCHMARK_THRESHOLDS

__all__ = ["benchmark_table", "headline_table", "jsonable", "main_table_rows", "markdown_report"]

_DASH = "-"


def _fmt(value: Any, scale: float = 1.0) -> str:
    if value is None:
        return _DASH
    v = float(value)
    return _DASH if math.isnan(v) else f"{v * scale:.2f}"


def main_table_rows(report: Mapping[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """(column headers, {method: formatted cells}) of the headline table of ``metrics.md``."""
    headers = ["Method"]
    for region in ("NOC", "All"):
        headers += [
            f"EPE {region}",
            f"bad-1 {region}",
            f"bad-2 {region}",
            f"bad-3 {region}",
            f"D1 {region}",
        ]
    headers += ["mIoU", "G", "C", "density", "ms/img"]
    rows: dict[str, list[str]] = {}
    for name, m in report["methods"].items():
        cells = [name]
        disp = m["disparity"] or {}
        for region in ("noc", "all"):
            d = disp.get(region, {})
            cells += [_fmt(d.get(k)) for k in ("epe", "bad1", "bad2", "bad3", "d1")]
        seg = m["segmentation"] or {}
        cells += [_fmt(seg.get(k), 100.0) for k in ("miou", "global_accuracy", "class_accuracy")]
        cells += [_fmt(m["density"] if m["disparity"] else None), _fmt(m["runtime_ms"]["mean"])]
        rows[name] = cells
    return headers, rows


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline_table(report: Mapping[str, Any]) -> str:
    headers, rows = main_table_rows(report)
    return _table(headers, rows.values())


def benchmark_table(report: Mapping[str, Any]) -> str:
    """Two-view benchmark table: one row per method and region (All, and NOC where scored)."""
    bads = [f"bad{t:g}" for t in BENCHMARK_THRESHOLDS]
    headers = ["Method", "Pixels"]
    headers += ["EPE"] + [f"bad-{t:g}" for t in BENCHMARK_THRESHOLDS]
    headers += ["EPE pred"] + [f"bad-{t:g} pred" for t in BENCHMARK_THRESHOLDS]
    headers += ["density", "ms/img"]
    rows = []
    for name, m in report["methods"].items():
        bench = m.get("benchmark") or {}
        for region, label in (("all", "All"), ("noc", "NOC")):
            b = bench.get(region)
            if not b:
                continue
            dense, pred = b["dense"], b["predicted"]
            rows.append(
                [name, label, _fmt(dense["epe"])]
                + [_fmt(dense[k]) for k in bads]
                + [_fmt(pred["epe"])]
                + [_fmt(pred[k]) for k in bads]
                + [_fmt(b["density"]), _fmt(m["runtime_ms"]["mean"])]
            )
    return _table(headers, rows)


BENCHMARK_NOTE = (
    "Two-view benchmark figures. EPE in pixels; bad-k: % of pixels with error > k px. Dense "
    "columns (EPE, bad-k): every ground-truth pixel of the region counts, a pixel without a "
    "valid prediction as wrong (EPE: as if it predicted 0). `pred` columns: only the pixels "
    "the method predicts. density: % of the region's ground-truth pixels with a valid "
    "prediction. All: every pixel with ground truth; NOC: the non-occluded ones (mask0nocc.png "
    "255), only where the data has the mask. ms/img: mean wall-clock time of one prediction "
    "(after a warm-up)."
)


def markdown_report(report: Mapping[str, Any], title: str = "Evaluation") -> str:
    """``metrics.md``: headline table, per-class IoU and depth tables, all to 2 decimals."""
    methods = report["methods"]
    parts = [f"# {title}", ""]
    ds = report.get("dataset")
    if ds:
        parts += [
            f"Data: {ds.get('name')} `{ds.get('root')}` split `{ds.get('split')}`: "
            f"{report['num_images']} images evaluated, {report['num_skipped']} skipped.",
            "",
        ]
    if report.get("two_view"):
        parts += ["## Two-view benchmark", "", benchmark_table(report), "", BENCHMARK_NOTE, ""]
        parts += ["## KITTI-style figures", ""]
    parts += [headline_table(report), ""]
    parts += [
        "EPE in pixels; bad-k: % of pixels with error > k px; D1: % with error > 3 px and > 5 % "
        "(KITTI 2015). NOC: non-occluded pixels, All: every pixel with ground truth. A pixel "
        "without a valid prediction counts as an error for every method; density: % of All "
        "pixels with a valid prediction. mIoU, G (global pixel accuracy), C (class-average "
        "accuracy) in %; `-`: the method has no such output. ms/img: mean wall-clock time of "
        "one prediction (after a warm-up).",
        "",
        "## Per-class IoU (%)",
        "",
    ]
    names = list(methods)
    class_rows = []
    for cls in report["class_names"]:
        row = [cls]
        for name in names:
            seg = methods[name]["segmentation"]
            row.append(_DASH if seg is None else _fmt(seg["iou"].get(cls), 100.0))
        class_rows.append(row)
    parts += [_table(["Class", *names], class_rows), ""]
    parts += [
        "`-`: no semantics, or the class is in neither the ground truth nor the prediction.",
        "",
        "## Depth",
        "",
    ]
    depth_headers = [
        "Method",
        "δ<1.25 (%)",
        "δ<1.25² (%)",
        "δ<1.25³ (%)",
        "AbsRel",
        "SqRel",
        "RMSE (m)",
        "RMSE-log",
        "SIE (×100)",
        "coverage (%)",
    ]
    depth_rows = []
    for name in names:
        d = methods[name]["depth"] or {}
        depth_rows.append(
            [name]
            + [_fmt(d.get(k), 100.0) for k in ("delta1", "delta2", "delta3")]
            + [_fmt(d.get(k)) for k in ("abs_rel", "sq_rel", "rmse", "rmse_log")]
            + [_fmt(d.get("sie"), 100.0), _fmt(d.get("coverage"), 100.0)]
        )
    max_depth = report.get("max_depth")
    cap = f"up to {max_depth:g} m" if max_depth is not None else "at any distance"
    parts += [
        _table(depth_headers, depth_rows),
        "",
        f"Depth = fx * B / disparity against ground-truth depth {cap}, on pixels where the "
        "method has a valid disparity (coverage: % of those ground-truth pixels). SIE: "
        "scale-invariant error mean(d²) - mean(d)², d = ln(pred) - ln(gt).",
        "",
    ]
    if report["num_skipped"]:
        parts += ["## Skipped samples", ""]
        parts += [f"- `{s['name']}`: {s['reason']}" for s in report["skipped"]]
        parts.append("")
    return "\n".join(parts) + "\n"


def jsonable(value: Any) -> Any:
    """``value`` for strict JSON: NaN/inf -> None, numpy scalars -> Python numbers and bools,
    tuples -> lists, mapping keys -> str, anything else that JSON has no type for -> str."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: an undefined metric (no pixels) is null
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
