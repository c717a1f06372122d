"""Replay figures: accuracy against a bag's ground truth, latency percentiles, the summary table.

Accuracy uses the accumulators of :mod:`stereo_semantic_ros.metrics`, pixel-weighted over all
scored frames as ``stereo-semantic-eval`` reports them (disparity on every pixel with ground
truth, depth on ground-truth depths up to :data:`~stereo_semantic_ros.evaluate.DEFAULT_MAX_DEPTH`,
segmentation by confusion matrix). The printed table is made from the JSON report, rounding
each figure to the decimals :data:`DECIMALS` gives, so the screen and ``report.json`` agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.metrics import (
    ConfusionMatrix,
    DepthAccumulator,
    DisparityAccumulator,
    depth_metrics,
)

MAX_DEPTH_M = 80.0
"""Ground-truth depths beyond this many metres are not scored (KITTI convention, as
``stereo-semantic-eval``)."""
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
            calib: the frame's calibration (depth = fx * B / d).
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
            with np.errstate(invalid="ignore"):
                depth_mask = np.isfinite(gt_depth) & (gt_depth <= MAX_DEPTH_M)
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
            out["max_depth_m"] = MAX_DEPTH_M
        if self._has["segmentation"]:
            out["segmentation"] = self._confusion.to_dict(self.label_set.names)
        return out


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
        f"frames: {frames['left_images']} left images, {frames['paired']} paired, "
        f"{frames['processed']} processed, {frames['dropped_total']} dropped, "
        f"{frames['failed_total']} failed",
    ]
    for kind in ("dropped", "failed"):
        reasons = {k: n for k, n in frames[kind].items() if n}
        if reasons:
            lines.append(f"  {kind}: " + ", ".join(f"{k} {n}" for k, n in reasons.items()))
    sync = {k: n for k, n in report["sync"]["dropped_messages"].items() if n}
    if sync:
        lines.append("  synchroniser dropped messages: "
                     + ", ".join(f"{k} {n}" for k, n in sync.items()))
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
