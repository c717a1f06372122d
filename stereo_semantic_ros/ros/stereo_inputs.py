"""One synchronised input set (two images, two CameraInfos) -> what the pipeline takes.

An image is a sensor_msgs/Image or (``image_transport: compressed``) a CompressedImage; a
CompressedImage that does not decode is a ``malformed_image`` frame, an unreadable format a
``bad_encoding`` one, the same reasons as for raw images.

Shared by the live node and rosbag replay, so a bad frame is refused for the same reason and
with the same words in both. Only message attributes are read (no ROS imports), so rclpy and
``rosbags`` messages both work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.frames.inputs import INPUT_TOPICS, Input
from stereo_semantic_ros.ros.conversions import (
    CalibrationError,
    EncodingError,
    MalformedImageError,
    calibration_from_camera_info,
    image_to_rgb,
    is_compressed,
)


class RejectedFrameError(ValueError):
    """An input set that cannot be processed.

    Attributes:
        reason: one of ``bad_encoding``, ``malformed_image``, ``size_mismatch``,
            ``bad_calibration`` (see :data:`stereo_semantic_ros.frames.reasons.DROP_REASONS`).
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


def decode_stereo_inputs(
    left: Any, right: Any, left_info: Any, right_info: Any, bit_depth: int = 0
) -> tuple[np.ndarray, np.ndarray, StereoCalibration]:
    """Decode and check one input set.

    Args:
        left, right: sensor_msgs/Image or CompressedImage (each decoded by its own type).
        bit_depth: the camera's bit depth for 16-bit images (``mono16_bit_depth``; 0 = from
            each image's maximum), see :func:`~stereo_semantic_ros.ros.conversions.image_to_rgb`.

    Returns:
        ``(left_rgb, right_rgb, calib)``: (H, W, 3) uint8 RGB images and the pair's calibration
        at (H, W).

    Raises:
        RejectedFrameError: an unsupported encoding, a malformed image, images of different sizes
            or of another size than their camera_info, or an unusable calibration (zero
            baseline, no P matrix). The message says what was wrong and what to do.
    """
    images = []
    for index, msg in ((Input.LEFT_IMAGE, left), (Input.RIGHT_IMAGE, right)):
        topic = INPUT_TOPICS[index] + ("/compressed" if is_compressed(msg) else "")
        try:
            images.append(image_to_rgb(msg, bit_depth))
        except EncodingError as exc:
            raise RejectedFrameError("bad_encoding", f"{topic}: {exc}") from None
        except MalformedImageError as exc:
            raise RejectedFrameError("malformed_image", f"{topic}: {exc}") from None
    left_rgb, right_rgb = images
    height, width = left_rgb.shape[:2]
    if right_rgb.shape != left_rgb.shape:
        raise RejectedFrameError(
            "size_mismatch",
            f"left image is {width}x{height} but right image is {right_rgb.shape[1]}x"
            f"{right_rgb.shape[0]}: both must come from the same rectification (same output "
            "size)",
        )
    for index, info in ((Input.LEFT_INFO, left_info), (Input.RIGHT_INFO, right_info)):
        topic = INPUT_TOPICS[index]
        if info.width and info.height and (info.width, info.height) != (width, height):
            raise RejectedFrameError(
                "size_mismatch",
                f"{topic} describes {info.width}x{info.height} images but the images are "
                f"{width}x{height}: publish the camera_info of the rectified images",
            )
    try:
        calib = calibration_from_camera_info(left_info, right_info)
    except CalibrationError as exc:
        raise RejectedFrameError("bad_calibration", str(exc)) from None
    return left_rgb, right_rgb, calib
