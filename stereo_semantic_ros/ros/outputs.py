"""Pipeline results -> the node's output messages, written once for the live node and replay.

The live node and rosbag replay both call :func:`build_messages`, so a replayed bag holds
exactly what the vehicle would have published for the same input.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.pipeline import MIN_DISPARITY, PipelineResult
from stereo_semantic_ros.ros.conversions import array_to_image, cloud_to_msg, disparity_to_msg
from stereo_semantic_ros.visualize import DISPARITY_CMAP, colorize_disparity, colorize_labels

if TYPE_CHECKING:
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

# output topic (relative name) -> the pipeline outputs it needs
TOPIC_NEEDS: dict[str, tuple[str, ...]] = {
    "disparity": ("disparity",),
    "disparity/color": ("disparity",),
    "depth": ("depth",),
    "depth/camera_info": (),
    "points2": ("points",),
    "semantic/labels": ("labels",),
    "semantic/color": ("labels",),
}
OUTPUT_TOPICS = tuple(TOPIC_NEEDS)

DELTA_D = 1.0 / 256.0
"""Disparity resolution advertised in DisparityImage: soft-argmin output is continuous, so we
state the precision of 16-bit KITTI-style disparity storage (1/256 px)."""


def pipeline_outputs_for(topics: Collection[str]) -> set[str]:
    """Which pipeline outputs must be computed and copied to serve ``topics``."""
    unknown = set(topics) - set(TOPIC_NEEDS)
    if unknown:
        raise ValueError(f"unknown output topics {sorted(unknown)}; known: {OUTPUT_TOPICS}")
    return {need for topic in topics for need in TOPIC_NEEDS[topic]}


@dataclass(frozen=True)
class OutputStyle:
    """How the human-facing outputs look.

    Attributes:
        max_disparity: search range of the network, pixels (DisparityImage.max_disparity and
            the top of the disparity colour map).
        semantic_blend: weight of the class colours over the left image in ``semantic/color``
            (1.0 = colours only).
    """

    max_disparity: float
    semantic_blend: float = 1.0


def build_messages(
    result: PipelineResult,
    header: Header,
    left_info: CameraInfo | None,
    calib: StereoCalibration,
    label_set: LabelSet,
    left_rgb: np.ndarray,
    topics: Collection[str],
    style: OutputStyle,
) -> dict[str, Any]:
    """The messages of ``topics`` for one processed frame, all stamped with ``header``.

    Args:
        result: pipeline output holding at least :func:`pipeline_outputs_for(topics)`.
        header: the left image's header.
        left_info: published unchanged as ``depth/camera_info``.
        calib: calibration of the pair at the result's resolution.
        label_set: the weights' classes (palette for ``semantic/color``).
        left_rgb: (H, W, 3) uint8 left image, for the blended ``semantic/color``.
    """
    msgs: dict[str, Any] = {}
    if "disparity" in topics:
        msgs["disparity"] = disparity_to_msg(
            result.disparity, header, calib, MIN_DISPARITY, float(style.max_disparity), DELTA_D
        )
    if "disparity/color" in topics:
        # the one map of eval pictures and replay previews, so a topic and a picture read alike
        rgb = colorize_disparity(
            result.disparity, max_disparity=float(style.max_disparity), cmap=DISPARITY_CMAP
        )
        msgs["disparity/color"] = array_to_image(rgb, "rgb8", header)
    if "depth" in topics:
        msgs["depth"] = array_to_image(result.depth, "32FC1", header)
    if "depth/camera_info" in topics and left_info is not None:
        msgs["depth/camera_info"] = left_info
    if "points2" in topics:
        msgs["points2"] = cloud_to_msg(result.points, header)
    if "semantic/labels" in topics:
        msgs["semantic/labels"] = array_to_image(result.labels, "mono8", header)
    if "semantic/color" in topics:
        image = left_rgb if style.semantic_blend < 1.0 else None
        rgb = colorize_labels(result.labels, label_set.palette(), image, alpha=style.semantic_blend)
        msgs["semantic/color"] = array_to_image(rgb, "rgb8", header)
    return msgs
