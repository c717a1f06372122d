"""decode_stereo_inputs: the checks the node (and replay) apply to one input set."""

from __future__ import annotations

import pytest
from node_harness import BASELINE, FX, Frame, camera_info, make_frame

from stereo_semantic_ros.ros.stereo_inputs import RejectedFrameError, decode_stereo_inputs


def decode(frame: Frame) -> tuple:
    return decode_stereo_inputs(frame.left, frame.right, frame.left_info, frame.right_info)


def test_good_set_gives_rgb_images_and_calibration() -> None:
    frame = make_frame(5, encoding="bgr8")
    left, right, calib = decode(frame)
    assert left.shape == right.shape == (32, 64, 3)
    assert (left == frame.rgb).all()
    assert calib.fx == FX and calib.baseline == pytest.approx(BASELINE)
    assert (calib.width, calib.height) == (64, 32)


def _zero_baseline(frame: Frame) -> Frame:
    frame.right_info = camera_info(5, "right", 64, 32, tx=0.0)
    return frame


def _info_size(frame: Frame) -> Frame:
    frame.left_info = camera_info(5, "left", 640, 320, tx=0.0)
    return frame


def _truncated(frame: Frame) -> Frame:
    frame.right.data = bytes(frame.right.data)[:-10]
    return frame


@pytest.mark.parametrize(
    ("frame", "reason", "words"),
    [
        (make_frame(5, encoding="nv21"), "bad_encoding", "left/image_rect: unsupported"),
        (_truncated(make_frame(5)), "malformed_image", "right/image_rect: rgb8 image 64x32"),
        (make_frame(5, right_width=60), "size_mismatch", "64x32 but right image is 60x32"),
        (_info_size(make_frame(5)), "size_mismatch", "left/camera_info describes 640x320"),
        (_zero_baseline(make_frame(5)), "bad_calibration", "zero stereo baseline"),
    ],
    ids=["encoding", "malformed", "image_sizes", "info_size", "zero_baseline"],
)
def test_bad_sets_are_rejected_with_their_reason(frame: Frame, reason: str, words: str) -> None:
    with pytest.raises(RejectedFrameError) as info:
        decode(frame)
    assert info.value.reason == reason
    assert words in str(info.value)
