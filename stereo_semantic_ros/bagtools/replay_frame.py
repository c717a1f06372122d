"""One synchronised set through the node's worker steps, offline; and the fates a frame can have.

:func:`process_set` is what the node's worker (``StereoSemanticNode._process``) does with a set:
the shared :func:`~stereo_semantic_ros.ros.stereo_inputs.decode_stereo_inputs` checks, the same
pipeline call, the same :func:`~stereo_semantic_ros.ros.outputs.build_messages`. A frame that
never formed a set is *dropped* (:data:`DROPPED_REASONS`, from the synchroniser); a set that
cannot be used is *failed* (:data:`FAILED_REASONS`: ``bad_encoding``, ``malformed_image``,
``size_mismatch``, ``bad_calibration``, ``pipeline_error``), counted and skipped. Replay never
drops a frame as ``busy``: offline, every synchronised set is processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.pipeline import FrameDroppedError, InputError, StereoPipeline
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.ros.node_stats import DROP_REASONS
from stereo_semantic_ros.ros.outputs import build_messages, pipeline_outputs_for
from stereo_semantic_ros.ros.settings import NodeSettings
from stereo_semantic_ros.ros.stereo_inputs import RejectedFrameError, decode_stereo_inputs

#: Reasons for which a frame is *dropped* (never formed a set) vs *failed* (set unusable).
DROPPED_REASONS = ("no_partner", "no_camera_info", "stale_stamp")
# busy and input_reset only happen live (inference still running; a synchroniser reset)
FAILED_REASONS = tuple(
    r for r in DROP_REASONS if r not in DROPPED_REASONS + ("busy", "input_reset")
)


@dataclass
class FrameOutcome:
    """What became of one synchronised set."""

    stamp_ns: int
    messages: dict[str, Any] = field(default_factory=dict)
    failure: tuple[str, str] | None = None  # (reason, detail)
    result: Any = None  # PipelineResult
    calib: StereoCalibration | None = None
    left_rgb: np.ndarray | None = None


def _rclpy_header(hdr: Any) -> Any:
    """An rclpy std_msgs/Header equal to a ``rosbags`` one (build_messages stamps with it)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(
        stamp=Time(sec=int(hdr.stamp.sec), nanosec=int(hdr.stamp.nanosec)),
        frame_id=str(hdr.frame_id),
    )


def _restamped(info: Any, hdr: Any) -> Any:
    """``info`` with the left image's header, as the node publishes ``depth/camera_info``."""
    same = (
        info.header.stamp.sec == hdr.stamp.sec
        and info.header.stamp.nanosec == hdr.stamp.nanosec
        and info.header.frame_id == hdr.frame_id
    )
    return info if same else replace(info, header=hdr)


def process_set(
    pipeline: StereoPipeline,
    settings: NodeSettings,
    topics: tuple[str, ...],
    extra_outputs: set[str],
    left: Any,
    right: Any,
    left_info: Any,
    right_info: Any,
) -> FrameOutcome:
    """One synchronised set -> the node's messages, or the node's reason for refusing it.

    The steps of the node's worker (``StereoSemanticNode._process``): the shared
    :func:`~stereo_semantic_ros.ros.stereo_inputs.decode_stereo_inputs` checks, the same
    pipeline call, the same :func:`~stereo_semantic_ros.ros.outputs.build_messages`.

    Args:
        topics: enabled output topics (``NodeSettings.enabled_topics()``).
        extra_outputs: pipeline outputs wanted beyond what ``topics`` need (for scoring).
        left, right, left_info, right_info: messages (``rosbags`` or rclpy).
    """
    out = FrameOutcome(stamp_to_ns(left.header.stamp))
    try:
        left_rgb, right_rgb, calib = decode_stereo_inputs(left, right, left_info, right_info)
    except RejectedFrameError as exc:
        out.failure = (exc.reason, str(exc))
        return out
    try:
        result = pipeline.run(
            left_rgb,
            right_rgb,
            calib,
            outputs=pipeline_outputs_for(topics) | extra_outputs,
            min_confidence=settings.min_confidence,
            cloud=settings.cloud_options(),
        )
    except FrameDroppedError as exc:  # too_large, non_finite_output, out_of_memory: as live
        out.failure = (exc.reason, str(exc))
        return out
    except InputError as exc:  # decode_stereo_inputs checked the pair: unexpected, as live
        out.failure = ("pipeline_error", str(exc))
        return out
    out.messages = build_messages(
        result,
        _rclpy_header(left.header),
        _restamped(left_info, left.header),
        calib,
        pipeline.label_set,
        left_rgb,
        topics,
        settings.output_style(pipeline),
    )
    out.result, out.calib, out.left_rgb = result, calib, left_rgb
    return out
