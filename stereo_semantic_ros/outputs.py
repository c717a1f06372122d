"""The node's outputs, declared once: topic, message type, pipeline arrays, switch, builder.

:data:`OUTPUTS` is the one table of output topics. The node creates its publishers from it,
replay writes the same topics, :mod:`stereo_semantic_ros.ros.settings` derives the ``publish_*``
parameters (and so the parameter files' keys) from it, and :func:`build_messages` builds each
topic's message with the table's builder. Adding an output is one :class:`Output` row here (its
switch also needs a :class:`~stereo_semantic_ros.ros.settings.NodeSettings` field and a line in
``config/*.yaml``).

Builders never name a message library: they get a :class:`MessageKit`. The live node passes the
rclpy one (:data:`stereo_semantic_ros.ros.outputs.RCLPY_MESSAGES`), replay the ``rosbags`` one
(:data:`stereo_semantic_ros.replay.loop.ROSBAGS_MESSAGES`), so replay writes the node's
messages without going through rclpy types. No ROS imports here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.pipeline import MIN_DISPARITY, PipelineResult
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.visualize import DISPARITY_CMAP, colorize_disparity, colorize_labels

DELTA_D = 1.0 / 256.0
"""Disparity resolution advertised in DisparityImage: soft-argmin output is continuous, so we
state the precision of 16-bit KITTI-style disparity storage (1/256 px)."""


@dataclass(frozen=True)
class MessageKit:
    """Message constructors of one library (rclpy or ``rosbags``): the same fields either way.

    Attributes:
        image: ``image(array, encoding, header)`` -> sensor_msgs/Image.
        disparity: ``disparity(disparity, header, calib, min_disparity, max_disparity,
            delta_d)`` -> stereo_msgs/DisparityImage.
        cloud: ``cloud(points, header)`` -> sensor_msgs/PointCloud2.
    """

    image: Callable[..., Any]
    disparity: Callable[..., Any]
    cloud: Callable[..., Any]


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


@dataclass(frozen=True)
class FrameProducts:
    """What the builders read for one processed frame.

    Attributes:
        result: pipeline output holding at least :func:`pipeline_outputs_for` the topics.
        header: the left image's header (every output is stamped with it).
        left_info: the left camera_info (``depth/camera_info``), None to leave that topic out.
        calib: calibration of the pair at the result's resolution.
        label_set: the weights' classes (palette for ``semantic/color``).
        left_rgb: (H, W, 3) uint8 left image, for the blended ``semantic/color``.
    """

    result: PipelineResult
    header: Any
    left_info: Any
    calib: StereoCalibration
    label_set: LabelSet
    left_rgb: np.ndarray
    style: OutputStyle


Builder = Callable[[FrameProducts, MessageKit], Any]


def _disparity(f: FrameProducts, kit: MessageKit) -> Any:
    return kit.disparity(
        f.result.disparity,
        f.header,
        f.calib,
        MIN_DISPARITY,
        float(f.style.max_disparity),
        DELTA_D,
    )


def _disparity_color(f: FrameProducts, kit: MessageKit) -> Any:
    # the one map of eval pictures and replay previews, so a topic and a picture read alike
    rgb = colorize_disparity(
        f.result.disparity, max_disparity=float(f.style.max_disparity), cmap=DISPARITY_CMAP
    )
    return kit.image(rgb, "rgb8", f.header)


def _depth(f: FrameProducts, kit: MessageKit) -> Any:
    return kit.image(f.result.depth, "32FC1", f.header)


def _confidence(f: FrameProducts, kit: MessageKit) -> Any:
    # unmasked: min_confidence invalidates pixels of the other outputs, while this image lets a
    # consumer choose its own threshold (as ESS publishes its confidence map)
    return kit.image(f.result.confidence, "32FC1", f.header)


def _depth_info(f: FrameProducts, kit: MessageKit) -> Any:
    return None if f.left_info is None else restamped(f.left_info, f.header)


def restamped(info: Any, header: Any) -> Any:
    """``info`` with the left image's ``header`` (approximate sync may give it another stamp):
    a shallow copy, of an rclpy or a ``rosbags`` message alike."""
    if stamp_to_ns(info.header.stamp) == stamp_to_ns(header.stamp) and (
        info.header.frame_id == header.frame_id
    ):
        return info
    out = copy.copy(info)
    out.header = header
    return out


def _points(f: FrameProducts, kit: MessageKit) -> Any:
    return kit.cloud(f.result.points, f.header)


def _labels(f: FrameProducts, kit: MessageKit) -> Any:
    return kit.image(f.result.labels, "mono8", f.header)


def _semantic_color(f: FrameProducts, kit: MessageKit) -> Any:
    blend = f.style.semantic_blend
    image = f.left_rgb if blend < 1.0 else None
    rgb = colorize_labels(f.result.labels, f.label_set.palette(), image, alpha=blend)
    return kit.image(rgb, "rgb8", f.header)


@dataclass(frozen=True)
class Output:
    """One output topic of the node.

    Attributes:
        topic: relative topic name.
        msgtype: ROS message type, ``pkg/msg/Name``.
        needs: the pipeline arrays it is built from (computed only when someone listens).
        switch: the ``publish_*`` parameter that turns it on or off (shared by some topics).
        what: what the switch's parameter description says about it.
        build: ``build(products, kit)`` -> the message (None: nothing to publish).
    """

    topic: str
    msgtype: str
    needs: tuple[str, ...]
    switch: str
    what: str
    build: Builder


IMAGE = "sensor_msgs/msg/Image"
OUTPUTS: tuple[Output, ...] = (
    Output(
        "disparity",
        "stereo_msgs/msg/DisparityImage",
        ("disparity",),
        "publish_disparity",
        "disparity (stereo_msgs/DisparityImage)",
        _disparity,
    ),
    Output(
        "disparity/color",
        IMAGE,
        ("disparity",),
        "publish_disparity_color",
        "disparity/color (rgb8, for RViz)",
        _disparity_color,
    ),
    # image_rect + camera_info side by side: image_transport's CameraSubscriber (depth_image_proc,
    # RViz's DepthCloud) takes the info from the image topic's namespace + "camera_info"
    Output(
        "depth/image_rect",
        IMAGE,
        ("depth",),
        "publish_depth",
        "depth/image_rect (32FC1 metres)",
        _depth,
    ),
    Output(
        "depth/camera_info",
        "sensor_msgs/msg/CameraInfo",
        (),
        "publish_depth",
        "depth/camera_info",
        _depth_info,
    ),
    Output(
        "confidence",
        IMAGE,
        ("confidence",),
        "publish_confidence",
        "confidence (32FC1, stereo confidence 0-1)",
        _confidence,
    ),
    Output(
        "points2",
        "sensor_msgs/msg/PointCloud2",
        ("points",),
        "publish_points",
        "points2 (sensor_msgs/PointCloud2)",
        _points,
    ),
    Output(
        "semantic/labels",
        IMAGE,
        ("labels",),
        "publish_labels",
        "semantic/labels (mono8 class ids)",
        _labels,
    ),
    Output(
        "semantic/color",
        IMAGE,
        ("labels",),
        "publish_semantic_color",
        "semantic/color (rgb8, for RViz)",
        _semantic_color,
    ),
)
OUTPUT_BY_TOPIC: dict[str, Output] = {o.topic: o for o in OUTPUTS}
OUTPUT_TOPICS: tuple[str, ...] = tuple(OUTPUT_BY_TOPIC)
#: ``publish_*`` switch -> parameter description, in table order.
SWITCHES: dict[str, str] = {
    switch: "publish " + " and ".join(o.what for o in OUTPUTS if o.switch == switch)
    for switch in dict.fromkeys(o.switch for o in OUTPUTS)
}


def pipeline_outputs_for(topics: Collection[str]) -> set[str]:
    """Which pipeline outputs must be computed and copied to serve ``topics``."""
    unknown = set(topics) - set(OUTPUT_BY_TOPIC)
    if unknown:
        raise ValueError(f"unknown output topics {sorted(unknown)}; known: {OUTPUT_TOPICS}")
    return {need for topic in topics for need in OUTPUT_BY_TOPIC[topic].needs}


def build_messages(
    products: FrameProducts, topics: Collection[str], kit: MessageKit
) -> dict[str, Any]:
    """The messages of ``topics`` (in table order) for one processed frame, made with ``kit``."""
    msgs = {}
    for output in OUTPUTS:
        if output.topic in topics:
            msg = output.build(products, kit)
            if msg is not None:
                msgs[output.topic] = msg
    return msgs
