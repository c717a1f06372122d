"""One synchronised set -> the node's output messages, or the reason it has none.

:func:`process_set` is the whole of what happens to a set once it leaves the synchroniser, for
the live node's worker and for rosbag replay alike: the inputs decoded and checked
(:func:`~stereo_semantic_ros.ros.stereo_inputs.decode_stereo_inputs`, :func:`frame_id_mismatch`),
the pipeline run for the outputs that are wanted, the messages built from the output table
(:mod:`stereo_semantic_ros.outputs`) with the caller's message kit. Only message attributes are
read, so rclpy and ``rosbags`` messages both work; no ROS imports.
"""

from __future__ import annotations

import traceback
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.frames.inputs import INPUT_TOPICS, Input
from stereo_semantic_ros.outputs import (
    FrameProducts,
    MessageKit,
    build_messages,
    pipeline_outputs_for,
)
from stereo_semantic_ros.pipeline import (
    FrameDroppedError,
    InputError,
    PipelineResult,
    StereoPipeline,
)
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.ros.settings import NodeSettings
from stereo_semantic_ros.ros.stereo_inputs import RejectedFrameError, decode_stereo_inputs


@dataclass
class FrameOutcome:
    """What became of one synchronised set: messages, or a failure ``(reason, detail)``."""

    stamp_ns: int
    messages: dict[str, Any] = field(default_factory=dict)
    failure: tuple[str, str] | None = None
    """``(reason, detail)``: a reason of :data:`~stereo_semantic_ros.frames.reasons.SET_REASONS`
    and what was wrong, ending in "Frame dropped"."""
    traceback: str = ""
    """For ``pipeline_error``: where the unexpected exception came from."""
    result: PipelineResult | None = None
    calib: StereoCalibration | None = None
    left_rgb: np.ndarray | None = None


def _failed(stamp_ns: int, reason: str, text: str) -> FrameOutcome:
    return FrameOutcome(stamp_ns, failure=(reason, f"{text.rstrip('.')}. Frame dropped"))


def process_set(
    pipeline: StereoPipeline,
    settings: NodeSettings,
    topics: Collection[str],
    left: Any,
    right: Any,
    left_info: Any,
    right_info: Any,
    kit: MessageKit,
    extra_outputs: Collection[str] = (),
) -> FrameOutcome:
    """One synchronised set through the checks, the pipeline and the output builders.

    Args:
        settings: one snapshot of the node's settings (live changes apply to the next set).
        topics: the output topics to build (enabled, and live: with a subscriber).
        left, right, left_info, right_info: the set's messages (rclpy or ``rosbags``).
        kit: the message library to build with.
        extra_outputs: pipeline outputs wanted beyond what ``topics`` need (replay's scoring).

    Any exception of the pipeline or the builders becomes a ``pipeline_error`` outcome: one
    frame never stops the node or a replay.
    """
    stamp = stamp_to_ns(left.header.stamp)
    try:
        left_rgb, right_rgb, calib = decode_stereo_inputs(
            left, right, left_info, right_info, bit_depth=settings.mono16_bit_depth
        )
    except RejectedFrameError as exc:
        return _failed(stamp, exc.reason, str(exc))
    # after decoding: an unreadable image or calibration is the more useful reason to report
    mismatch = frame_id_mismatch(left, right, left_info, right_info)
    if mismatch:
        return _failed(stamp, "frame_id_mismatch", mismatch)
    try:
        result = pipeline.run(
            left_rgb,
            right_rgb,
            calib,
            outputs=pipeline_outputs_for(topics) | set(extra_outputs),
            min_confidence=settings.min_confidence,
            cloud=settings.cloud_options(),
        )
        products = FrameProducts(
            result,
            left.header,
            left_info,
            calib,
            pipeline.label_set,
            left_rgb,
            settings.output_style(pipeline, result.input_scale),
        )
        messages = build_messages(products, topics, kit)
    except FrameDroppedError as exc:  # non-finite output, too large, out of memory
        return _failed(stamp, exc.reason, str(exc))
    except InputError as exc:  # decode_stereo_inputs checked the pair: unexpected here
        return _failed(stamp, "pipeline_error", str(exc))
    except Exception as exc:  # noqa: BLE001 - whatever one frame does, the next one runs
        outcome = _failed(stamp, "pipeline_error", f"{type(exc).__name__}: {exc}")
        outcome.traceback = traceback.format_exc()
        return outcome
    return FrameOutcome(stamp, messages, result=result, calib=calib, left_rgb=left_rgb)


def frame_id_mismatch(left: Any, right: Any, left_info: Any, right_info: Any) -> str:
    """Why an image and its camera_info cannot describe the same camera, or ''.

    Each image must carry its own camera_info's frame_id: another frame means the remapping
    paired the image with another camera's calibration. An empty frame_id is not compared (some
    recorders drop it). Left and right frame_ids may differ: each camera of a stereo pair has
    its own optical frame (stereo_image_proc, camera drivers), and outputs use the left one.
    """
    problems = [
        f"{topic} frame_id {image.header.frame_id!r} but {info_topic} frame_id "
        f"{info.header.frame_id!r}"
        for (image, info), (topic, info_topic) in (
            ((left, left_info), (INPUT_TOPICS[Input.LEFT_IMAGE], INPUT_TOPICS[Input.LEFT_INFO])),
            (
                (right, right_info),
                (INPUT_TOPICS[Input.RIGHT_IMAGE], INPUT_TOPICS[Input.RIGHT_INFO]),
            ),
        )
        if image.header.frame_id
        and info.header.frame_id
        and image.header.frame_id != info.header.frame_id
    ]
    if not problems:
        return ""
    return (
        "; ".join(problems)
        + ": an image and its camera_info must name the same camera frame (check the remappings "
        "and the driver's frame_id settings)"
    )
