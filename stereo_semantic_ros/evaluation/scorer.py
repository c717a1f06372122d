"""The one scorer: predictions against ground truth, per frame and pixel-weighted over many.

``stereo-semantic-eval`` (:func:`~stereo_semantic_ros.evaluation.runner.evaluate`), replay's
ground-truth scores and training validation (through ``evaluate``) all score with
:class:`Scorer`, so a figure means the same everywhere:

* disparity EPE, bad-1/2/3 and KITTI D1 on All (``truth.valid``) and NOC (``truth.noc``)
  pixels, a pixel without a valid prediction (non-finite or <= 0) counting as an error
  (:func:`~stereo_semantic_ros.metrics.disparity_metrics`); ``density``: % of All pixels with a
  valid prediction;
* depth ``fx * B / (d + doffs)`` of the predicted disparity against ``truth.depth`` (or the
  ground-truth disparity's depth on valid pixels), both capped at ``max_depth``
  (:data:`~stereo_semantic_ros.metrics.DEPTH_CAP_M` by default);
* optionally the two-view benchmark figures (:class:`~stereo_semantic_ros.metrics.
  BenchmarkAccumulator`) on All and NOC pixels;
* semantics by confusion matrix (mIoU, per-class IoU, global and class-average accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.evaluation.predictors import Prediction
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.metrics import (
    DEPTH_CAP_M,
    BenchmarkAccumulator,
    ConfusionMatrix,
    DepthAccumulator,
    DisparityAccumulator,
)

__all__ = ["GroundTruth", "Scorer"]


@dataclass(frozen=True)
class GroundTruth:
    """What a frame is scored against; any part may be missing.

    Attributes:
        disparity: (H, W) px; scored where ``valid``.
        valid: (H, W) bool, pixels with ground-truth disparity (All).
        noc: (H, W) bool, the non-occluded ones (NOC), or None.
        depth: (H, W) metres (NaN or <= 0 where unknown), or None: the depth of ``disparity``.
        labels: (H, W) train ids, 255 = unlabelled, or None.
    """

    disparity: np.ndarray | None = None
    valid: np.ndarray | None = None
    noc: np.ndarray | None = None
    depth: np.ndarray | None = None
    labels: np.ndarray | None = None

    @classmethod
    def of_sample(cls, sample: StereoSample) -> GroundTruth:
        return cls(sample.disparity, sample.valid, sample.noc, sample.depth, sample.labels)

    @property
    def has_disparity(self) -> bool:
        return self.disparity is not None and self.valid is not None

    def depth_and_mask(self, calib: StereoCalibration) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth depth (metres) and the mask of pixels that have one."""
        if self.depth is not None:
            depth = np.asarray(self.depth, dtype=np.float32)
        else:
            depth = np.where(
                self.valid, calib.depth_from_disparity(self.disparity), np.float32(np.nan)
            ).astype(np.float32)
        with np.errstate(invalid="ignore"):
            mask = np.isfinite(depth) & (depth > 0)
        return depth, mask


class Scorer:
    """Accumulates one predictor's scores over frames.

    Args:
        label_set: the classes of the predicted and ground-truth train ids.
        max_depth: depth cap in metres (None: no cap).
        benchmark: also accumulate the two-view benchmark figures.
    """

    def __init__(
        self,
        label_set: LabelSet,
        *,
        max_depth: float | None = DEPTH_CAP_M,
        benchmark: bool = False,
    ) -> None:
        self.label_set = label_set
        self.max_depth = max_depth
        self.frames = 0
        self._all = DisparityAccumulator()
        self._noc = DisparityAccumulator()
        self._depth = DepthAccumulator(max_depth)
        self._bench = (BenchmarkAccumulator(), BenchmarkAccumulator()) if benchmark else None
        self._confusion: ConfusionMatrix | None = None
        self._dense = 0
        self._scored = 0
        self.has_disparity = False

    def update(
        self, calib: StereoCalibration, pred: Prediction, truth: GroundTruth
    ) -> dict[str, Any]:
        """Score one frame; returns its own figures: ``disparity`` (All), ``density``,
        ``depth`` and ``segmentation`` (without per-class IoU), each where scored.

        Raises:
            ValueError: (``MetricInputError``) arrays of different sizes.
        """
        frame: dict[str, Any] = {}
        if pred.disparity is not None and truth.has_disparity:
            self.has_disparity = True
            disp = np.asarray(pred.disparity, dtype=np.float32)
            frame["disparity"] = self._all.update(disp, truth.disparity, truth.valid)
            if truth.noc is not None:
                self._noc.update(disp, truth.disparity, truth.noc)
            if self._bench is not None:
                self._bench[0].update(disp, truth.disparity, truth.valid)
                if truth.noc is not None:
                    self._bench[1].update(disp, truth.disparity, truth.noc)
            ok = np.isfinite(disp) & (disp > 0)
            dense = int(np.count_nonzero(ok & truth.valid))
            scored = int(np.count_nonzero(truth.valid))
            self._dense += dense
            self._scored += scored
            frame["density"] = 100.0 * dense / scored if scored else math.nan
            gt_depth, depth_mask = truth.depth_and_mask(calib)
            frame["depth"] = self._depth.update(
                calib.depth_from_disparity(disp), gt_depth, depth_mask
            )
        if pred.labels is not None and truth.labels is not None:
            one = ConfusionMatrix(self.label_set.num_classes)
            one.update(np.asarray(pred.labels), truth.labels)
            if self._confusion is None:
                self._confusion = ConfusionMatrix(self.label_set.num_classes)
            self._confusion.merge(one)
            seg = one.to_dict(self.label_set.names)
            seg.pop("iou")  # per-class IoU of one frame is mostly NaN; kept for the total only
            frame["segmentation"] = seg
        if frame:
            self.frames += 1
        return frame

    def summary(self) -> dict[str, Any]:
        """Pixel-weighted figures over every scored frame: ``disparity`` ``{"noc", "all"}``
        (:func:`~stereo_semantic_ros.metrics.disparity_metrics`), ``density`` (%),
        ``segmentation`` (:meth:`ConfusionMatrix.to_dict`), ``depth``
        (:func:`~stereo_semantic_ros.metrics.depth_metrics`) and ``benchmark`` ``{"all",
        "noc"}``; None for what was not scored (``benchmark`` also when not asked for)."""
        has = self.has_disparity
        bench = None
        if has and self._bench is not None:
            bench = {
                "all": self._bench[0].compute(),
                "noc": self._bench[1].compute() if self._bench[1].count else None,
            }
        return {
            "disparity": {"noc": self._noc.compute(), "all": self._all.compute()} if has else None,
            "density": 100.0 * self._dense / self._scored if self._scored else math.nan,
            "segmentation": (
                None if self._confusion is None else self._confusion.to_dict(self.label_set.names)
            ),
            "depth": self._depth.compute() if has else None,
            "benchmark": bench,
        }
