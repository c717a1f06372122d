"""A replay's report: accuracy against a bag's ground truth, latency, ``report.json``, the table.

Accuracy uses the accumulators of :mod:`stereo_semantic_ros.metrics`, pixel-weighted over all
scored frames as ``stereo-semantic-eval`` reports them (disparity on every pixel with ground
truth, depth on ground-truth depths up to :data:`~stereo_semantic_ros.metrics.DEPTH_CAP_M`
(predictions clipped to it),
segmentation by confusion matrix). :func:`replay_report` gathers one run's figures and counts
(:class:`ReplayTotals`, plain data the loop hands over) into the report, :func:`write_report`
writes it as strict JSON. The printed table is made from
that report, rounding each figure to the decimals :data:`ACCURACY_ROWS` gives, so the screen and
``report.json`` agree.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stereo_semantic_ros.evaluation.report import jsonable
from stereo_semantic_ros.frames.diagnostics import weights_text
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.replay.options import INPUT_ROLES, ReplayOptions
from stereo_semantic_ros.ros.settings import NodeSettings, disparity_range
from stereo_semantic_ros.sync import MESSAGE_DROP_REASONS

#: (JSON path, label, unit, scale, decimals) of the accuracy rows of the summary table.
ACCURACY_ROWS: tuple[tuple[tuple[str, ...], str, str, float, int], ...] = (
    (("disparity", "epe"), "disparity EPE", "px", 1.0, 3),
    (("disparity", "d1"), "disparity D1 (KITTI)", "%", 1.0, 2),
    (("disparity", "bad1"), "disparity bad-1", "%", 1.0, 2),
    (("disparity", "bad3"), "disparity bad-3", "%", 1.0, 2),
    (("density",), "valid disparity density", "%", 1.0, 2),
    (("depth", "abs_rel"), "depth AbsRel", "", 1.0, 4),
    (("depth", "rmse"), "depth RMSE", "m", 1.0, 3),
    (("depth", "delta1"), "depth delta < 1.25", "%", 100.0, 2),
    (("segmentation", "miou"), "semantic mIoU", "%", 100.0, 2),
    (("segmentation", "global_accuracy"), "semantic pixel accuracy", "%", 100.0, 2),
)
#: (latency key, label) of the latency rows; the keys are
#: :data:`~stereo_semantic_ros.frames.stats.LATENCY_KEYS` (replay's end to end: a frame's whole
#: turn, from decoding to the last message written; live, the node's also counts queueing).
LATENCY_ROWS = (
    ("pipeline_total", "pipeline total"),
    ("network", "network"),
    ("end_to_end", "end to end"),
)


@dataclass(frozen=True)
class FrameTotals:
    """The fate of every frame read so far. ``received + without_left_image == processed +
    dropped_total + failed_total + unprocessed_at_stop + left_without_fate``."""

    received: int
    """Left images read."""
    paired: int
    processed: int
    dropped: dict[str, int]
    """Lost before a set formed, per reason."""
    failed: dict[str, int]
    """Sets that could not be used, per reason (and ``undecodable`` left images)."""
    unprocessed_at_stop: int
    without_left_image: int
    left_without_fate: int


@dataclass(frozen=True)
class ReplayTotals:
    """What a replay run hands its report: counts, figures and lists, no run internals."""

    frames: FrameTotals
    messages_read: dict[str, int]
    undecodable: dict[str, int]
    error: str | None
    model: dict[str, Any]
    sync_stats: dict[str, int]
    input_names: tuple[str, ...]
    ground_truth_roles: tuple[str, ...]
    written: dict[str, int]
    drops: list[dict[str, Any]]
    accuracy: dict[str, Any] | None
    latency_ms: dict[str, dict[str, float]]
    processing_s: float
    wall_s: float
    previews: list[str]
    per_frame: list[dict[str, Any]]


def model_section(settings: NodeSettings, pipeline: StereoPipeline) -> dict[str, Any]:
    """``report.json``'s ``model``: what ran."""
    return {
        "architecture": settings.architecture,
        "weights": weights_text(settings),
        "device": str(pipeline.device),
        "precision": pipeline.precision,
        "label_set": pipeline.label_set.name,
        "max_disparity_px": disparity_range(pipeline),
        "input_scale": settings.input_scale,
    }


# ---------------------------------------------------------------------------------- report.json


def frames_section(frames: FrameTotals) -> dict[str, Any]:
    """``report.json``'s ``frames`` (also the progress journal's)."""
    return {
        "received": frames.received,
        "left_images": frames.received,
        "paired": frames.paired,
        "processed": frames.processed,
        "dropped": dict(frames.dropped),
        "dropped_total": sum(frames.dropped.values()),
        "failed": dict(frames.failed),
        "failed_total": sum(frames.failed.values()),
        "unprocessed_at_stop": frames.unprocessed_at_stop,
        "without_left_image": frames.without_left_image,
        "left_without_fate": frames.left_without_fate,
    }


def messages_section(read: Mapping[str, int], undecodable: Mapping[str, int]) -> dict[str, Any]:
    """Messages read from the input bag per topic, and those that did not decode."""
    return {"read_total": sum(read.values()), "read": dict(read), "undecodable": dict(undecodable)}


def replay_report(
    options: ReplayOptions, totals: ReplayTotals, available: dict[str, tuple[str, int]]
) -> dict[str, Any]:
    """The report of one replay run (``available``: the input bag's topics, types and counts)."""
    settings = options.settings
    sync_stats = totals.sync_stats
    out = Path(options.out)
    processed = totals.frames.processed
    return {
        "bag": str(options.bag),
        "storage": options.storage,
        "output_bag": str(out / "bag"),
        "report": str(out / "report.json"),
        "params_file": str(options.params_file) if options.params_file else None,
        "warnings": list(options.warnings),
        "error": totals.error,
        "model": totals.model,
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "sync": {
            "description": settings.sync_description(),
            "received_messages": {
                name: sync_stats[f"received_{i}"] for i, name in enumerate(totals.input_names)
            },
            "dropped_messages": {r: sync_stats[f"dropped_{r}"] for r in MESSAGE_DROP_REASONS},
        },
        "topics": {
            "inputs": dict(zip(INPUT_ROLES, totals.input_names)),
            "ground_truth": {
                role: getattr(options.topics, role) for role in totals.ground_truth_roles
            },
            "in_bag": {t: {"type": typ, "messages": n} for t, (typ, n) in available.items()},
            "written": dict(totals.written),
            "undecodable": dict(totals.undecodable),
        },
        "frames": frames_section(totals.frames),
        "messages": messages_section(totals.messages_read, totals.undecodable),
        "drops": totals.drops,
        "accuracy": totals.accuracy,
        "latency_ms": totals.latency_ms,
        "throughput": {
            "processing_fps": processed / totals.processing_s if totals.processing_s else math.nan,
            "overall_fps": processed / totals.wall_s if totals.wall_s else math.nan,
            "wall_s": totals.wall_s,
        },
        "previews": totals.previews,
        "per_frame": totals.per_frame,
    }


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """``report`` as strict JSON (NaN as null), so any JSON reader takes it; replaced in one
    step, so a run killed while writing it leaves the previous file or none."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(report), indent=2) + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------- summary table


def lookup(tree: Mapping[str, Any] | None, path: Sequence[str]) -> Any:
    """``tree[path[0]][path[1]]...`` or None where a key is missing."""
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def format_value(value: Any, scale: float = 1.0, decimals: int = 2) -> str:
    """A figure as printed in the summary (``-`` for missing or NaN)."""
    if value is None:
        return "-"
    v = float(value) * scale
    return "-" if math.isnan(v) else f"{v:.{decimals}f}"


def summary_table(report: Mapping[str, Any]) -> str:
    """The replay summary printed at the end, made only from ``report`` (``report.json``)."""
    frames = report["frames"]
    lines = [
        f"replay of {report['bag']} ({report['storage']}) with {report['model']['weights']}",
        f"  device {report['model']['device']}, sync {report['sync']['description']}",
        "",
        f"frames: {frames['received']} left images read, {frames['paired']} paired, "
        f"{frames['processed']} processed, {frames['dropped_total']} dropped, "
        f"{frames['failed_total']} failed",
    ]
    for kind in ("dropped", "failed"):
        reasons = {k: n for k, n in frames[kind].items() if n}
        if reasons:
            lines.append(f"  {kind}: " + ", ".join(f"{k} {n}" for k, n in reasons.items()))
    odd = {
        "frames dropped without a left image": frames.get("without_left_image"),
        "left images without a fate (waiting in the synchroniser at the stop, replaced by a "
        "copy with the same stamp, or cleared by a time jump)": frames.get("left_without_fate"),
    }
    lines += [f"  {label}: {n}" for label, n in odd.items() if n]
    messages = report.get("messages")
    if messages:
        bad = {t: n for t, n in messages["undecodable"].items() if n}
        lines.append(
            f"messages read: {messages['read_total']} on {len(messages['read'])} topics"
            + (", undecodable: " + ", ".join(f"{t} {n}" for t, n in bad.items()) if bad else "")
        )
    sync = {k: n for k, n in report["sync"]["dropped_messages"].items() if n}
    if sync:
        lines.append(
            "  synchroniser dropped messages: " + ", ".join(f"{k} {n}" for k, n in sync.items())
        )
    if report.get("error"):
        lines.append(f"  STOPPED EARLY: {report['error']}")

    accuracy = report.get("accuracy")
    lines.append("")
    if accuracy:
        lines.append(f"accuracy vs ground truth ({accuracy['frames']} frames, pixel-weighted)")
        width = max(len(label) for _, label, *_ in ACCURACY_ROWS)
        for path, label, unit, scale, decimals in ACCURACY_ROWS:
            value = lookup(accuracy, path)
            if value is None:
                continue
            lines.append(
                f"  {label:<{width}}  {format_value(value, scale, decimals):>9} {unit}".rstrip()
            )
    else:
        lines.append("accuracy: no ground truth in this bag")

    lines.append("")
    lines.append(f"latency (ms)        {'p50':>9} {'p90':>9} {'p99':>9} {'mean':>9}")
    for key, label in LATENCY_ROWS:
        stats = report["latency_ms"][key]
        cells = " ".join(f"{format_value(stats[k]):>9}" for k in ("p50", "p90", "p99", "mean"))
        lines.append(f"  {label:<18}{cells}")
    tp = report["throughput"]
    lines.append(
        f"throughput: {format_value(tp['processing_fps'])} frames/s processing, "
        f"{format_value(tp['overall_fps'])} frames/s overall ({format_value(tp['wall_s'], 1, 1)}"
        " s wall)"
    )
    return "\n".join(lines)
