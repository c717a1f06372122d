"""Every input encoding against OpenCV's own conversion, and against pixels of known colour.

:func:`image_to_rgb` must turn each of :data:`SUPPORTED_ENCODINGS` into what cv_bridge gives for
``desired_encoding='rgb8'`` (OpenCV's ``cvtColor`` with cv_bridge's codes, cv_bridge.cpp
``getConversionCodes``). Comparing with the same ``cvtColor`` call alone would only prove the
table is consulted, so the packed and mosaic layouts are also built here from RGB pixels of
known colour (BT.601 video-range YUV, Bayer mosaics sampled from an RGB image) and must come
back as those colours: a swapped byte order or a Bayer pattern off by one row would fail.

Messages are ``rosbags`` Images (what replay reads; no ROS install needed).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from stereo_semantic_ros.bagtools import messages as M
from stereo_semantic_ros.ros.conversions import (
    SUPPORTED_ENCODINGS,
    MalformedImageError,
    image_to_rgb,
    reduce_16bit,
)

H, W = 6, 10
RNG = np.random.default_rng(7)
HDR = M.header(1_000_000_000, "cam")


def msg(array: np.ndarray, encoding: str):
    return M.image_msg(array, encoding, HDR)


def rgb_msg(array: np.ndarray, encoding: str, bit_depth: int = 0) -> np.ndarray:
    out = image_to_rgb(msg(array, encoding), bit_depth)
    assert out.dtype == np.uint8 and out.shape == array.shape[:2] + (3,)
    assert out.flags.c_contiguous
    return out


def _cvt(code: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: cv2.cvtColor(a, code)


def _cv_bridge_16_to_8(a: np.ndarray) -> np.ndarray:
    # cv_bridge's MONO16 -> 8 bit: convertTo(..., 255 / 65535), rounding
    return cv2.cvtColor(cv2.convertScaleAbs(a, alpha=255.0 / 65535.0), cv2.COLOR_GRAY2RGB)


# encoding -> (a random image in that encoding, OpenCV's conversion to RGB, as cv_bridge does it)
OPENCV: dict[str, tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]] = {
    "rgb8": (RNG.integers(0, 256, (H, W, 3), np.uint8), lambda a: a),
    "bgr8": (RNG.integers(0, 256, (H, W, 3), np.uint8), _cvt(cv2.COLOR_BGR2RGB)),
    "rgba8": (RNG.integers(0, 256, (H, W, 4), np.uint8), _cvt(cv2.COLOR_RGBA2RGB)),
    "bgra8": (RNG.integers(0, 256, (H, W, 4), np.uint8), _cvt(cv2.COLOR_BGRA2RGB)),
    "mono8": (RNG.integers(0, 256, (H, W), np.uint8), _cvt(cv2.COLOR_GRAY2RGB)),
    "8UC1": (RNG.integers(0, 256, (H, W), np.uint8), _cvt(cv2.COLOR_GRAY2RGB)),
    # an OpenCV image (cv2_to_imgmsg writes 8UC3 for it) is BGR
    "8UC3": (RNG.integers(0, 256, (H, W, 3), np.uint8), _cvt(cv2.COLOR_BGR2RGB)),
    # bit_depth 16: full-range 16-bit data, cv_bridge's scaling (up to rounding, checked below)
    "mono16": (RNG.integers(0, 65536, (H, W), np.uint16), _cv_bridge_16_to_8),
    "16UC1": (RNG.integers(0, 65536, (H, W), np.uint16), _cv_bridge_16_to_8),
    "yuv422": (RNG.integers(0, 256, (H, W, 2), np.uint8), _cvt(cv2.COLOR_YUV2RGB_UYVY)),
    "yuv422_yuy2": (RNG.integers(0, 256, (H, W, 2), np.uint8), _cvt(cv2.COLOR_YUV2RGB_YUY2)),
    # cv_bridge's table: ROS rggb is OpenCV's classic "BG" and so on
    "bayer_rggb8": (RNG.integers(0, 256, (H, W), np.uint8), _cvt(cv2.COLOR_BayerBG2RGB)),
    "bayer_bggr8": (RNG.integers(0, 256, (H, W), np.uint8), _cvt(cv2.COLOR_BayerRG2RGB)),
    "bayer_gbrg8": (RNG.integers(0, 256, (H, W), np.uint8), _cvt(cv2.COLOR_BayerGR2RGB)),
    "bayer_grbg8": (RNG.integers(0, 256, (H, W), np.uint8), _cvt(cv2.COLOR_BayerGB2RGB)),
}


def test_every_supported_encoding_has_an_opencv_reference() -> None:
    assert set(OPENCV) == set(SUPPORTED_ENCODINGS)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_each_encoding_converts_as_opencv_does(encoding: str) -> None:
    array, reference = OPENCV[encoding]
    expected = reference(np.ascontiguousarray(array))
    got = rgb_msg(array, encoding, bit_depth=16)
    if encoding in ("mono16", "16UC1"):
        # >> 8 truncates where cv_bridge's * 255 / 65535 rounds: at most one level apart
        assert np.abs(got.astype(int) - expected).max() <= 1
        np.testing.assert_array_equal(got[..., 0], array >> 8)
    else:
        np.testing.assert_array_equal(got, expected)


def test_opencv_rggb_aliases_name_the_same_codes_as_cv_bridges_table() -> None:
    # OpenCV's newer aliases use ROS's naming (the top-left 2x2 block); where they exist they
    # must be the codes cv_bridge uses, or one of the two tables is misread
    pairs = {
        "COLOR_BayerRGGB2RGB": cv2.COLOR_BayerBG2RGB,
        "COLOR_BayerBGGR2RGB": cv2.COLOR_BayerRG2RGB,
        "COLOR_BayerGBRG2RGB": cv2.COLOR_BayerGR2RGB,
        "COLOR_BayerGRBG2RGB": cv2.COLOR_BayerGB2RGB,
    }
    present = {name: code for name, code in pairs.items() if hasattr(cv2, name)}
    for name, code in present.items():
        assert getattr(cv2, name) == code, name


# ----------------------------------------------------------------------- known colours


COLOURS = np.array(
    [[200, 100, 30], [20, 180, 90], [128, 128, 128], [250, 250, 10], [0, 0, 0], [255, 255, 255]],
    dtype=np.float64,
)


def _bt601_video(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, Cb, Cr (ITU-R BT.601, video range) of RGB 0..255, the standard's formulas."""
    r, g, b = (rgb / 255.0).T
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return (np.rint(v).astype(np.uint8) for v in (y, cb, cr))


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_byte_order_gives_back_known_colours(encoding: str) -> None:
    # each colour fills one pixel pair (4:2:2 shares U and V between the two)
    y, cb, cr = _bt601_video(COLOURS)
    n = len(COLOURS)
    packed = np.zeros((2, 2 * n, 2), np.uint8)
    for i in range(n):
        if encoding == "yuv422":  # UYVY: U Y0 V Y1
            quad = (cb[i], y[i], cr[i], y[i])
        else:  # YUY2: Y0 U Y1 V
            quad = (y[i], cb[i], y[i], cr[i])
        packed[:, 2 * i : 2 * i + 2] = np.array(quad, np.uint8).reshape(2, 2)
    rgb = rgb_msg(packed, encoding)
    expected = np.repeat(COLOURS, 2, axis=0)
    assert np.abs(rgb.astype(float) - expected).max() <= 2, rgb[0]
    # the other byte order reads the same bytes as different colours
    other = "yuv422_yuy2" if encoding == "yuv422" else "yuv422"
    assert np.abs(rgb_msg(packed, other).astype(float) - expected).max() > 50


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The Bayer mosaic a sensor with ``pattern`` (its top-left 2x2 block, row-major, ROS's
    naming) records of ``rgb``."""
    channel = {"r": 0, "g": 1, "b": 2}
    out = np.empty(rgb.shape[:2], np.uint8)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns_demosaic_a_flat_colour_back_to_that_colour(pattern: str) -> None:
    colour = np.array([200, 100, 30], np.uint8)
    flat = np.broadcast_to(colour, (8, 12, 3)).copy()
    rgb = rgb_msg(_mosaic(flat, pattern), f"bayer_{pattern}8")
    inner = rgb[2:-2, 2:-2]  # borders are extrapolated by OpenCV
    np.testing.assert_array_equal(inner, np.broadcast_to(colour, inner.shape))
    # any other pattern name reads the same mosaic as another colour
    for wrong in {"rggb", "bggr", "gbrg", "grbg"} - {pattern}:
        wrong_rgb = rgb_msg(_mosaic(flat, pattern), f"bayer_{wrong}8")[2:-2, 2:-2]
        assert np.abs(wrong_rgb.astype(int) - colour).max() > 50, wrong


def test_bayer_of_a_smooth_image_comes_back_close() -> None:
    yy, xx = np.mgrid[0:24, 0:32]
    smooth = np.stack([xx * 7, yy * 9, 255 - xx * 4], -1).clip(0, 255).astype(np.uint8)
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        rgb = rgb_msg(_mosaic(smooth, pattern), f"bayer_{pattern}8")
        err = np.abs(rgb[2:-2, 2:-2].astype(int) - smooth[2:-2, 2:-2])
        assert err.max() <= 8, (pattern, err.max())


def test_8uc1_is_mono8_and_8uc3_is_bgr8() -> None:
    gray = OPENCV["mono8"][0]
    np.testing.assert_array_equal(rgb_msg(gray, "8UC1"), rgb_msg(gray, "mono8"))
    bgr = OPENCV["8UC3"][0]
    np.testing.assert_array_equal(rgb_msg(bgr, "8UC3"), rgb_msg(bgr, "bgr8"))


def test_yuv422_of_odd_width_is_a_malformed_image() -> None:
    with pytest.raises(MalformedImageError, match="7 pixels wide.*must be even"):
        image_to_rgb(msg(np.zeros((2, 7, 2), np.uint8), "yuv422"))


# --------------------------------------------------------------------------- 16-bit depth

RAMP12 = np.linspace(0, 4095, H * W).round().astype(np.uint16).reshape(H, W)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_12_bit_image_is_not_nearly_black_with_auto(encoding: str) -> None:
    auto = rgb_msg(RAMP12, encoding)
    shifted8 = rgb_msg(RAMP12, encoding, bit_depth=16)  # cv_bridge / the old >> 8
    assert shifted8.max() == 15 and shifted8.mean() < 8  # what the issue saw: nearly black
    assert auto.max() == 255 and auto.mean() > 120
    np.testing.assert_array_equal(auto[..., 0], RAMP12 >> 4)
    np.testing.assert_array_equal(auto, rgb_msg(RAMP12, encoding, bit_depth=12))


def test_bit_depth_shifts_and_clips() -> None:
    values = np.array([[0, 255, 256, 1023, 1024, 4095, 65535]], np.uint16)
    np.testing.assert_array_equal(reduce_16bit(values, 10), [[0, 63, 64, 255, 255, 255, 255]])
    np.testing.assert_array_equal(reduce_16bit(values, 12), [[0, 15, 16, 63, 64, 255, 255]])
    np.testing.assert_array_equal(reduce_16bit(values, 16), [[0, 0, 1, 3, 4, 15, 255]])
    np.testing.assert_array_equal(reduce_16bit(values, 8), [[0, 255, 255, 255, 255, 255, 255]])
    np.testing.assert_array_equal(
        reduce_16bit(np.array([[0, 1, 15, 16]], np.uint16), 4), [[0, 16, 240, 255]]
    )


def test_auto_bit_depth_follows_the_image_maximum() -> None:
    # 8-bit data in a 16-bit container is kept as it is (never stretched up)
    small = np.array([[0, 7, 200]], np.uint16)
    np.testing.assert_array_equal(reduce_16bit(small), [[0, 7, 200]])
    # a 10-bit maximum: >> 2; a 16-bit maximum: >> 8; all zeros stays zero
    np.testing.assert_array_equal(reduce_16bit(np.array([[4, 1000]], np.uint16)), [[1, 250]])
    np.testing.assert_array_equal(reduce_16bit(np.array([[512, 65535]], np.uint16)), [[2, 255]])
    np.testing.assert_array_equal(reduce_16bit(np.zeros((2, 2), np.uint16)), np.zeros((2, 2)))


@pytest.mark.parametrize("bad", [-1, 17, 2.5, True, "12"])
def test_bad_bit_depth_is_refused_with_the_allowed_range(bad) -> None:
    with pytest.raises(ValueError, match=r"bit_depth must be 0 \(auto.*1\.\.16"):
        image_to_rgb(msg(RAMP12, "mono16"), bad)


def test_bigendian_mono16_uses_the_bit_depth_too() -> None:
    m = msg(RAMP12, "mono16")
    m.data = RAMP12.astype(">u2").reshape(-1).view(np.uint8).copy()
    m.is_bigendian = 1
    np.testing.assert_array_equal(image_to_rgb(m, 12)[..., 0], RAMP12 >> 4)
