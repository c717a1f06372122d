"""The output table's messages as rclpy objects: what the live node publishes.

:data:`RCLPY_MESSAGES` is the rclpy :class:`~stereo_semantic_ros.outputs.MessageKit`
(constructors from :mod:`stereo_semantic_ros.ros.conversions`, which import the message packages
when first called). The table itself, and the builders, are in :mod:`stereo_semantic_ros.outputs`.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.outputs import (
    OUTPUT_TOPICS,  # noqa: F401  (re-exported: the launch files' tests read it here)
    FrameProducts,
    MessageKit,
    OutputStyle,
)
from stereo_semantic_ros.outputs import build_messages as build_with
from stereo_semantic_ros.pipeline import PipelineResult
from stereo_semantic_ros.ros.conversions import array_to_image, cloud_to_msg, disparity_to_msg

RCLPY_MESSAGES = MessageKit(array_to_image, disparity_to_msg, cloud_to_msg)
"""The output table's rclpy message kit (the live node)."""


def build_messages(
    result: PipelineResult,
    header: Any,
    left_info: Any,
    calib: StereoCalibration,
    label_set: LabelSet,
    left_rgb: np.ndarray,
    topics: Collection[str],
    style: OutputStyle,
) -> dict[str, Any]:
    """The rclpy messages of ``topics`` for one processed frame, all stamped with ``header``
    (see :class:`~stereo_semantic_ros.outputs.FrameProducts` for the arguments)."""
    products = FrameProducts(result, header, left_info, calib, label_set, left_rgb, style)
    return build_with(products, topics, RCLPY_MESSAGES)


def message_type(msgtype: str) -> type:
    """``sensor_msgs/msg/Image`` -> the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)
