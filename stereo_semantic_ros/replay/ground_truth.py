"""A frame's ground truth from the bag's messages, as the scorer's arrays (scoring, previews)."""

from __future__ import annotations

from typing import Any

import numpy as np

from stereo_semantic_ros.evaluation.scorer import GroundTruth
from stereo_semantic_ros.ros.conversions import image_to_array


def decode_ground_truth(disparity_msg: Any, labels_msg: Any) -> tuple[GroundTruth, str | None]:
    """The arrays of a stereo_msgs/DisparityImage (valid at or above its ``min_disparity``) and a
    mono8 label image of train ids (either message may be None), and what is wrong with them
    (labels of another encoding are left out), or None."""
    disparity = valid = labels = None
    problem = None
    if disparity_msg is not None:
        disparity = image_to_array(disparity_msg.image).astype(np.float32)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(disparity) & (disparity >= disparity_msg.min_disparity)
    if labels_msg is not None:
        labels = image_to_array(labels_msg)
        if labels.ndim != 2 or labels.dtype != np.uint8:
            problem = f"ground-truth labels must be mono8/8UC1, got {labels_msg.encoding}"
            labels = None
    return GroundTruth(disparity=disparity, valid=valid, labels=labels), problem
