"""Fuzzing the input side: whatever arrives on the four input topics, decoding either returns
usable arrays or raises one of the documented exceptions that the node maps to a drop reason.

The node and replay call :func:`decode_stereo_inputs`, which turns :class:`EncodingError`,
:class:`MalformedImageError` and :class:`CalibrationError` into :class:`RejectedFrameError`
(``bad_encoding``, ``malformed_image``, ``size_mismatch``, ``bad_calibration``); anything else
escaping it ends as a ``pipeline_error`` with a traceback, which is what these tests rule out.

Messages are duck-typed namespaces (the readers only use attributes, as with ``rosbags``), so the
fields can take values rclpy's setters would refuse. Hypothesis runs derandomized with a bounded
number of examples so CI is deterministic. The named regression tests below pin what fuzzing
found.
"""

from __future__ import annotations

import array as pyarray
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stereo_semantic_ros.calibration import CalibrationError, StereoCalibration
from stereo_semantic_ros.ros.conversions import (
    ARRAY_ENCODINGS,
    ENCODING_LAYOUT,
    SUPPORTED_ENCODINGS,
    EncodingError,
    MalformedImageError,
    calibration_from_camera_info,
    image_to_array,
    image_to_rgb,
)
from stereo_semantic_ros.ros.node_stats import DROP_REASONS
from stereo_semantic_ros.ros.stereo_inputs import RejectedFrameError, decode_stereo_inputs

Msg = SimpleNamespace  # a message as the readers see it: attributes only

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Encodings a camera driver may send that this package does not read, beside random text.
FOREIGN_ENCODINGS = (
    "yuv422",
    "yuv422_yuy2",
    "8UC3",
    "16UC3",
    "32FC3",
    "64FC1",
    "bayer_rggb8",
    "bayer_bggr16",
    "RGB8",
    "rgb8 ",
    "",
)
HUGE = (2**16, 2**31 - 1, 2**32 - 1)

encodings = st.one_of(
    st.sampled_from(ARRAY_ENCODINGS),
    st.sampled_from(FOREIGN_ENCODINGS),
    st.text(max_size=12),
)


def _bytes_per_pixel(encoding: str) -> int:
    dtype, channels = ENCODING_LAYOUT.get(encoding, (np.dtype("u1"), 3))
    return dtype.itemsize * channels


def _container(data: bytes, kind: str) -> Any:
    """The byte containers the readers meet: rclpy's array.array, rosbags' ndarray, bytes."""
    if kind == "array":
        out = pyarray.array("B")
        out.frombytes(data)
        return out
    if kind == "ndarray":
        return np.frombuffer(data, np.uint8).copy()
    if kind == "bytearray":
        return bytearray(data)
    return data


MUTABLE_FIELDS = ("encoding", "height", "width", "step", "length")


@st.composite
def image_msgs(
    draw: st.DrawFn,
    known: tuple[str, ...] = ARRAY_ENCODINGS,
    foreign: st.SearchStrategy = encodings,
) -> Msg:
    """A consistent Image (an encoding of ``known``, 1..9 px a side, padded or not) with none to
    three of its fields replaced by hostile values, so both the decoding and every check are hit.
    """
    enc = draw(st.sampled_from(known))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    step = width * _bytes_per_pixel(enc) + draw(st.sampled_from([0, 0, 0, 1, 2, 3, 5]))
    length = step * height
    for name in draw(st.lists(st.sampled_from(MUTABLE_FIELDS), max_size=3, unique=True)):
        if name == "encoding":
            enc = draw(foreign)
        elif name == "height":
            height = draw(st.one_of(st.just(0), st.integers(1, 9), st.sampled_from(HUGE)))
        elif name == "width":
            width = draw(st.one_of(st.just(0), st.integers(1, 9), st.sampled_from(HUGE)))
        elif name == "step":
            row_bytes = width * _bytes_per_pixel(enc)
            step = draw(
                st.one_of(
                    st.integers(-3, -1).map(lambda d, rb=row_bytes: max(rb + d, 0)),  # too short
                    st.integers(0, 80),
                    st.sampled_from(HUGE),
                )
            )
        else:
            length = draw(
                st.one_of(
                    st.integers(-4, 4).map(lambda d, n=length: max(n + d, 0)), st.integers(0, 300)
                )
            )
    data = draw(st.binary(min_size=min(length, 4096), max_size=min(length, 4096)))
    return Msg(
        encoding=enc,
        height=height,
        width=width,
        step=step,
        is_bigendian=draw(st.one_of(st.booleans(), st.sampled_from([0, 1]))),
        data=_container(data, draw(st.sampled_from(["bytes", "bytearray", "array", "ndarray"]))),
    )


def _reference_pixels(msg: Msg) -> np.ndarray:
    """Row by row from the raw bytes, independently of image_to_array's reshape-and-view."""
    dtype, channels = ENCODING_LAYOUT[msg.encoding]
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    raw = bytes(msg.data)
    row_bytes = msg.width * channels * dtype.itemsize
    rows = [
        np.frombuffer(raw[r * msg.step : r * msg.step + row_bytes], dtype)
        for r in range(msg.height)
    ]
    pixels = np.stack(rows).astype(dtype.newbyteorder("="))
    return pixels.reshape((msg.height, msg.width) + ((channels,) if channels > 1 else ()))


@FUZZ
@given(msg=image_msgs())
def test_image_to_array_returns_the_pixels_or_a_documented_error(msg: Msg) -> None:
    try:
        pixels = image_to_array(msg)
    except EncodingError:
        assert msg.encoding not in ARRAY_ENCODINGS
        event("EncodingError")
        return
    except MalformedImageError as exc:
        assert str(exc)
        event("MalformedImageError")
        return
    event("decoded")
    assert msg.height > 0 and msg.width > 0
    expected = _reference_pixels(msg)
    assert pixels.shape == expected.shape
    assert pixels.dtype == expected.dtype and pixels.dtype.isnative
    assert np.array_equal(pixels, expected, equal_nan=pixels.dtype.kind == "f")


@FUZZ
@given(msg=image_msgs())
def test_image_to_rgb_returns_rgb_or_a_documented_error(msg: Msg) -> None:
    try:
        rgb = image_to_rgb(msg)
    except EncodingError:
        assert msg.encoding not in SUPPORTED_ENCODINGS
        return
    except MalformedImageError:
        return
    assert rgb.shape == (msg.height, msg.width, 3)
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous


# ----------------------------------------------------------------------------- calibration

weird_floats = st.one_of(
    # subnormals off: a library loaded earlier in the session may set flush-to-zero, and hypothesis
    # then refuses to draw them (FloatingPointError) -- the parser sees 5e-324 from the list below
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e-300, 1e308, -1.0]),
)
plausible = st.floats(-2000.0, 2000.0, allow_nan=False, allow_subnormal=False)


@st.composite
def projection_entries(draw: st.DrawFn, tx: float) -> list[float]:
    """A rectified camera's P with a few entries replaced by hostile values, or garbage."""
    if draw(st.integers(0, 7)) == 0:  # wrong length and anything in it
        return draw(st.lists(weird_floats, max_size=16))
    fx = draw(
        st.floats(1.0, 2000.0, allow_subnormal=False) if draw(st.integers(0, 5)) else weird_floats
    )
    p = [fx, 0.0, 320.0, tx, 0.0, fx, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    hostile = draw(st.lists(st.integers(0, 11), max_size=3)) if draw(st.booleans()) else []
    for index in hostile:
        p[index] = draw(st.one_of(weird_floats, plausible))
    return p


@st.composite
def camera_info_pairs(draw: st.DrawFn) -> tuple[Msg, Msg]:
    size = draw(st.tuples(st.integers(0, 2000), st.integers(0, 2000)))
    # mostly agreeing sizes and a plausible baseline, so the checks after those are reached
    mismatched = draw(st.integers(0, 3)) == 0
    right_size = draw(st.tuples(st.integers(0, 9), st.integers(0, 9))) if mismatched else size
    tx = draw(
        st.floats(-500.0, -0.01, allow_subnormal=False) if draw(st.integers(0, 3)) else weird_floats
    )
    k = draw(st.lists(weird_floats, min_size=9, max_size=9))  # unused by the parser: harmless
    left = Msg(width=size[0], height=size[1], k=k, p=draw(projection_entries(0.0)))
    right = Msg(width=right_size[0], height=right_size[1], k=k, p=draw(projection_entries(tx)))
    return left, right


def _assert_usable(calib: StereoCalibration) -> None:
    values = (calib.fx, calib.fy, calib.cx, calib.cy, calib.baseline, calib.doffs)
    assert all(math.isfinite(v) for v in values), values
    assert calib.fx > 0 and calib.fy > 0 and calib.baseline > 0
    assert math.isfinite(calib.fx * calib.baseline)


@FUZZ
@given(infos=camera_info_pairs())
def test_calibration_parser_gives_a_usable_calibration_or_calibration_error(
    infos: tuple[Msg, Msg],
) -> None:
    left, right = infos
    try:
        calib = calibration_from_camera_info(left, right)
    except CalibrationError as exc:
        assert str(exc)
        event("CalibrationError")
        return
    event("parsed")
    _assert_usable(calib)
    assert all(p[i] > 0 for p in (left.p, right.p) for i in (0, 5)), "fx, fy must be > 0"
    assert (calib.width, calib.height) == (left.width, left.height)
    assert calib.fx == left.p[0] and calib.baseline == pytest.approx(-right.p[3] / right.p[0])


@FUZZ
@given(infos=camera_info_pairs())
def test_from_projection_matrices_raises_only_calibration_error(infos: tuple[Msg, Msg]) -> None:
    left, right = infos
    try:
        calib = StereoCalibration.from_projection_matrices(left.p, right.p)
    except CalibrationError:
        return
    _assert_usable(calib)


# ----------------------------------------------------------------------------- a whole input set


@st.composite
def input_sets(draw: st.DrawFn) -> tuple[Msg, Msg, Msg, Msg]:
    left = draw(image_msgs(SUPPORTED_ENCODINGS))
    right = draw(st.one_of(st.just(left), image_msgs(SUPPORTED_ENCODINGS)))
    info_size = draw(
        st.one_of(
            st.just((left.width, left.height)),
            st.just((0, 0)),
            st.tuples(st.integers(0, 9), st.integers(0, 9)),
        )
    )
    tx = draw(st.sampled_from([-5.0, -5.0, -5.0, None]))
    tx = draw(weird_floats) if tx is None else tx
    infos = [
        Msg(width=info_size[0], height=info_size[1], p=draw(projection_entries(t)))
        for t in (0.0, tx)
    ]
    return left, right, infos[0], infos[1]


@FUZZ
@given(frame=input_sets())
def test_decode_stereo_inputs_raises_only_rejected_frame_with_a_drop_reason(
    frame: tuple[Msg, Msg, Msg, Msg],
) -> None:
    left, right, left_info, right_info = frame
    try:
        left_rgb, right_rgb, calib = decode_stereo_inputs(left, right, left_info, right_info)
    except RejectedFrameError as exc:
        assert exc.reason in DROP_REASONS
        assert str(exc)
        event(f"dropped: {exc.reason}")  # --hypothesis-show-statistics: what the examples reach
        return
    event("decoded")
    height, width = left_rgb.shape[:2]
    assert height > 0 and width > 0
    assert left_rgb.shape == right_rgb.shape == (height, width, 3)
    assert left_rgb.dtype == right_rgb.dtype == np.uint8
    _assert_usable(calib)
    if calib.width and calib.height:
        assert (calib.width, calib.height) == (width, height)


# ----------------------------------------------------------------------------- regressions


def _rgb8(width: int, height: int) -> Msg:
    return Msg(
        encoding="rgb8",
        width=width,
        height=height,
        step=3 * width,
        is_bigendian=False,
        data=bytes(3 * width * height),
    )


def _info(width: int, height: int, tx: float = 0.0, fx: float = 50.0) -> Msg:
    return Msg(width=width, height=height, p=[fx, 0, 3.5, tx, 0, fx, 2.5, 0, 0, 0, 1, 0])


@pytest.mark.parametrize("size", [(0, 0), (0, 4), (4, 0)])
def test_empty_image_with_empty_camera_info_is_malformed_not_a_pipeline_error(size) -> None:
    # 0x0 camera_info means "size unknown", so only the image check can refuse this set; it
    # used to reach the network and fail there with a torch traceback (pipeline_error)
    width, height = size
    with pytest.raises(MalformedImageError, match="has no pixels"):
        image_to_array(_rgb8(width, height))
    with pytest.raises(
        RejectedFrameError, match="left/image_rect: rgb8 image is .* no pixels"
    ) as e:
        decode_stereo_inputs(
            _rgb8(width, height), _rgb8(width, height), _info(0, 0), _info(0, 0, -5)
        )
    assert e.value.reason == "malformed_image"


def test_projection_matrix_of_wrong_length_is_bad_calibration() -> None:
    # a 9-element P (K published as P) raised numpy's reshape ValueError, which the node's
    # RejectedFrameError handler does not catch
    right = _info(8, 6, -5.0)
    right.p = right.p[:9]
    with pytest.raises(CalibrationError, match="right camera_info projection matrix P has 9"):
        calibration_from_camera_info(_info(8, 6), right)
    with pytest.raises(RejectedFrameError, match="needs 12") as e:
        decode_stereo_inputs(_rgb8(8, 6), _rgb8(8, 6), _info(8, 6), right)
    assert e.value.reason == "bad_calibration"
    with pytest.raises(CalibrationError, match="left projection matrix P has 0"):
        StereoCalibration.from_projection_matrices([], _info(8, 6, -5.0).p)


def test_negative_right_focal_length_is_refused() -> None:
    # fx < 0 with P[0,3] > 0 gave a positive baseline, so a corrupt right P passed as valid
    with pytest.raises(CalibrationError, match="right camera_info has a negative focal length"):
        calibration_from_camera_info(_info(8, 6), _info(8, 6, tx=5.0, fx=-50.0))
    with pytest.raises(CalibrationError, match="not a positive focal length"):
        StereoCalibration.from_projection_matrices(_info(8, 6).p, _info(8, 6, 5.0, -50.0).p)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_projection_entry_is_refused_by_name(bad: float) -> None:
    left = _info(8, 6)
    left.p[6] = bad  # cy
    with pytest.raises(CalibrationError, match="left camera_info projection matrix P has non-fin"):
        calibration_from_camera_info(left, _info(8, 6, -5.0))


def test_overflowing_focal_length_times_baseline_is_refused() -> None:
    # left fx = 1e300 and B = 1e10 m (from the right P) are each finite, but every depth
    # fx * B / d would be inf
    with pytest.raises(CalibrationError, match="overflows"):
        calibration_from_camera_info(_info(8, 6, fx=1e300), _info(8, 6, tx=-1e10, fx=1.0))
