"""Accuracy of replayed frames against a bag's ground truth, scored by the one
:class:`~stereo_semantic_ros.evaluation.scorer.Scorer` that ``stereo-semantic-eval`` and
training validation use (depth capped at :data:`~stereo_semantic_ros.metrics.DEPTH_CAP_M`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.evaluation.predictors import Prediction
from stereo_semantic_ros.evaluation.scorer import GroundTruth, Scorer
from stereo_semantic_ros.labels import LabelSet


class GroundTruthScores:
    """Accuracy of replayed frames against the bag's ground truth, per frame and overall.

    Args:
        label_set: the classes the network predicts (ground-truth labels use the same ids).
    """

    def __init__(self, label_set: LabelSet) -> None:
        self.label_set = label_set
        self._scorer = Scorer(label_set)

    @property
    def frames(self) -> int:
        """Frames scored so far."""
        return self._scorer.frames

    def update(
        self,
        calib: StereoCalibration,
        pred_disparity: np.ndarray | None,
        pred_labels: np.ndarray | None,
        gt_disparity: np.ndarray | None,
        gt_valid: np.ndarray | None,
        gt_labels: np.ndarray | None,
    ) -> dict[str, Any]:
        """Score one frame; returns its own metrics (``disparity`` on every pixel with ground
        truth, ``density``, ``depth``, ``segmentation`` without per-class IoU; each where
        scored).

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
        truth = GroundTruth(disparity=gt_disparity, valid=gt_valid, labels=gt_labels)
        return self._scorer.update(calib, Prediction(pred_disparity, pred_labels), truth)

    def summary(self) -> dict[str, Any] | None:
        """Pixel-weighted figures over every scored frame; None when nothing was scored."""
        if not self._scorer.frames:
            return None
        scores = self._scorer.summary()
        out: dict[str, Any] = {"frames": self._scorer.frames}
        if scores["disparity"] is not None:
            out["disparity"] = scores["disparity"]["all"]
            out["density"] = scores["density"]
            out["depth"] = scores["depth"]
            out["max_depth_m"] = self._scorer.max_depth
        if scores["segmentation"] is not None:
            out["segmentation"] = scores["segmentation"]
        return out
