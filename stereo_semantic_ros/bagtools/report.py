"""A replay's report: accuracy against a bag's ground truth, latency, ``report.json``, the table.

Accuracy uses the accumulators of :mod:`stereo_semantic_ros.metrics`, pixel-weighted over all
scored frames as ``stereo-semantic-eval`` reports them (disparity on every pixel with ground
truth, depth on ground-truth depths up to :data:`~stereo_semantic_ros.metrics.DEPTH_CAP_M`
(predictions clipped to it),
segmentation by confusion matrix). :func:`replay_report` gathers one run's figures and counts
into the report, :func:`write_report` writes it as strict JSON. The printed table is made from
that report, rounding each figure to the decimals :data:`ACCURACY_ROWS` gives, so the screen and
``report.json`` agree.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stereo_semantic_ros.bagtools.replay_frame import DROPPED_REASONS
from stereo_semantic_ros.bagtools.replay_options import GT_ROLES, INPUT_ROLES, ReplayOptions
from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.metrics import (
    DEPTH_CAP_M,
    ConfusionMatrix,
    DepthAccumulator,
    DisparityAccumulator,
    depth_metrics,
)
from stereo_semantic_ros.ros.settings import disparity_range
from stereo_semantic_ros.sync import DROP_REASONS as SYNC_DROP_REASONS

if TYPE_CHECKING:  # replay_run scores with this module's GroundTruthScores
    from stereo_semantic_ros.bagtools.replay_run import ReplayRun

PERCENTILES = (50, 90, 99)

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
#: Latencies per processed frame (ms): ``pipeline_total`` is ``StereoPipeline.run`` (upload,
#: network, post-processing, copy back), ``network`` its forward pass, ``end_to_end`` a frame's
#: whole turn in replay: image decoding and checks, the pipeline, building, serialising and
#: writing every output message. (Live, the node's end-to-end also counts queueing.)
LATENCY_ROWS = (
    ("pipeline_total", "pipeline total"),
    ("network", "network"),
    ("end_to_end", "end to end"),
)


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    """``p50``, ``p90``, ``p99``, ``mean``, ``max`` (ms) and ``n`` of a list of latencies."""
    v = np.asarray(values_ms, dtype=np.float64)
    if not v.size:
        nan = float("nan")
        return {"p50": nan, "p90": nan, "p99": nan, "mean": nan, "max": nan, "n": 0}
    out = {f"p{p}": float(np.percentile(v, p)) for p in PERCENTILES}
    out.update(mean=float(v.mean()), max=float(v.max()), n=int(v.size))
    return out


class GroundTruthScores:
    """Accuracy of replayed frames against the bag's ground truth, per frame and overall.

    Args:
        label_set: the classes the network predicts (ground-truth labels use the same ids).
    """

    def __init__(self, label_set: LabelSet) -> None:
        self.label_set = label_set
        self.frames = 0
        self._disparity = DisparityAccumulator()
        self._depth = DepthAccumulator()
        self._confusion = ConfusionMatrix(label_set.num_classes)
        self._dense = 0
        self._scored = 0
        self._has = {"disparity": False, "segmentation": False}

    def update(
        self,
        calib: StereoCalibration,
        pred_disparity: np.ndarray | None,
        pred_labels: np.ndarray | None,
        gt_disparity: np.ndarray | None,
        gt_valid: np.ndarray | None,
        gt_labels: np.ndarray | None,
    ) -> dict[str, Any]:
        """Score one frame; returns its own metrics (the same keys as :meth:`summary`).

        Args:
            calib: the frame's calibration (depth = fx * B / (d + doffs)).
            pred_disparity: (H, W) px, invalid below 0 (the pipeline's convention).
            pred_labels: (H, W) uint8 train ids.
            gt_disparity, gt_valid: (H, W) px and the mask of pixels with ground truth.
            gt_labels: (H, W) uint8 train ids, 255 = unlabelled.

        Raises:
            ValueError: (``MetricInputError``) a ground-truth array of another size than the
                prediction.
        """
        frame: dict[str, Any] = {}
        if pred_disparity is not None and gt_disparity is not None and gt_valid is not None:
            self._has["disparity"] = True
            frame["disparity"] = self._disparity.update(pred_disparity, gt_disparity, gt_valid)
            ok = np.isfinite(pred_disparity) & (pred_disparity > 0)
            dense, scored = int(np.count_nonzero(ok & gt_valid)), int(np.count_nonzero(gt_valid))
            self._dense += dense
            self._scored += scored
            frame["density"] = 100.0 * dense / scored if scored else math.nan
            gt_depth = np.where(gt_valid, calib.depth_from_disparity(gt_disparity), np.nan)
            depth_mask = np.isfinite(gt_depth)  # the metrics apply the range cap
            pred_depth = calib.depth_from_disparity(pred_disparity)
            self._depth.update(pred_depth, gt_depth, depth_mask)
            frame["depth"] = depth_metrics(pred_depth, gt_depth, depth_mask)
        if pred_labels is not None and gt_labels is not None:
            self._has["segmentation"] = True
            one = ConfusionMatrix(self.label_set.num_classes)
            one.update(pred_labels, gt_labels)
            self._confusion.merge(one)
            seg = one.to_dict(self.label_set.names)
            seg.pop("iou")  # per-class IoU of one frame is mostly NaN; kept for the total only
            frame["segmentation"] = seg
        if frame:
            self.frames += 1
        return frame

    def summary(self) -> dict[str, Any] | None:
        """Pixel-weighted figures over every scored frame; None when nothing was scored."""
        if not self.frames:
            return None
        out: dict[str, Any] = {"frames": self.frames}
        if self._has["disparity"]:
            out["disparity"] = self._disparity.compute()
            out["density"] = 100.0 * self._dense / self._scored if self._scored else math.nan
            out["depth"] = self._depth.compute()
            out["max_depth_m"] = DEPTH_CAP_M
        if self._has["segmentation"]:
            out["segmentation"] = self._confusion.to_dict(self.label_set.names)
        return out


# ---------------------------------------------------------------------------------- report.json


def frames_section(state: ReplayRun) -> dict[str, Any]:
    """The fate of every frame read so far (``report.json``'s ``frames``; also the progress
    journal's). ``received + without_left_image == processed + dropped_total + failed_total +
    unprocessed_at_stop + left_without_fate``."""
    dropped = {r: state.frame_drops[r] for r in DROPPED_REASONS}
    failed = state.failed
    return {
        "received": state.left_images,
        "left_images": state.left_images,
        "paired": state.paired,
        "processed": state.processed,
        "dropped": dropped,
        "dropped_total": sum(dropped.values()),
        "failed": failed,
        "failed_total": sum(failed.values()),
        "unprocessed_at_stop": state.unprocessed + len(state.pending),
        "without_left_image": state.without_left_image,
        "left_without_fate": state.left_without_fate,
    }


def messages_section(state: ReplayRun) -> dict[str, Any]:
    """Messages read from the input bag per topic, and those that did not decode."""
    return {
        "read_total": sum(state.messages_read.values()),
        "read": dict(state.messages_read),
        "undecodable": dict(state.undecodable),
    }


def replay_report(
    options: ReplayOptions, state: ReplayRun, available: dict[str, tuple[str, int]], wall_s: float
) -> dict[str, Any]:
    """The report of one replay run (``available``: the input bag's topics, types and counts)."""
    settings = state.settings
    sync_stats = state.sync.stats
    out = Path(options.out)
    return {
        "bag": str(options.bag),
        "storage": options.storage,
        "output_bag": str(out / "bag"),
        "report": str(out / "report.json"),
        "params_file": str(options.params_file) if options.params_file else None,
        "warnings": list(options.warnings),
        "error": state.error,
        "model": {
            "architecture": settings.architecture,
            "weights": str(settings.weights_path() or "untrained (random weights)"),
            "device": str(state.pipeline.device),
            "precision": state.pipeline.precision,
            "label_set": state.pipeline.label_set.name,
            "max_disparity_px": disparity_range(state.pipeline),
            "input_scale": settings.input_scale,
        },
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "sync": {
            "description": settings.sync_description(),
            "received_messages": {
                name: sync_stats[f"received_{i}"] for i, name in enumerate(state.input_names)
            },
            "dropped_messages": {r: sync_stats[f"dropped_{r}"] for r in SYNC_DROP_REASONS},
        },
        "topics": {
            "inputs": dict(zip(INPUT_ROLES, state.input_names)),
            "ground_truth": {
                role: getattr(options.topics, role) for role in GT_ROLES if role in state.gt_present
            },
            "in_bag": {t: {"type": typ, "messages": n} for t, (typ, n) in available.items()},
            "written": dict(state.writer.counts) if state.writer else {},
            "undecodable": dict(state.undecodable),
        },
        "frames": frames_section(state),
        "messages": messages_section(state),
        "drops": state.drop_log,
        "accuracy": state.scores.summary(),
        "latency_ms": {k: latency_summary(v) for k, v in state.latency.items()},
        "throughput": {
            "processing_fps": state.processed / state.processing_s
            if state.processing_s
            else math.nan,
            "overall_fps": state.processed / wall_s if wall_s else math.nan,
            "wall_s": wall_s,
        },
        "previews": state.previews,
        "per_frame": state.per_frame,
    }


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """``report`` as strict JSON (NaN as null), so any JSON reader takes it; replaced in one
    step, so a run killed while writing it leaves the previous file or none."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


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
