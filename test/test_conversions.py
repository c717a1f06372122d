"""Messages <-> arrays: images of every encoding, DisparityImage, PointCloud2, CameraInfo.

The PointCloud2 decoder below is written from the message's own fields, independently of the
encoder, and messages also go through rclpy's serializer to prove they are publishable.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 message packages")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from stereo_msgs.msg import DisparityImage  # noqa: E402

from stereo_semantic_ros.calibration import CalibrationError, StereoCalibration  # noqa: E402
from stereo_semantic_ros.pointcloud import build_cloud, cloud_dtype  # noqa: E402
from stereo_semantic_ros.ros.conversions import (  # noqa: E402
    ARRAY_ENCODINGS,
    SUPPORTED_ENCODINGS,
    EncodingError,
    MalformedImageError,
    array_to_image,
    calibration_from_camera_info,
    cloud_to_msg,
    disparity_to_msg,
    image_to_array,
    image_to_rgb,
    stamp_to_ns,
)

H, W = 5, 7
RNG = np.random.default_rng(42)
RGB = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, size=(H, W, 1), dtype=np.uint8)
GRAY8 = RNG.integers(0, 256, size=(H, W), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, size=(H, W), dtype=np.uint16)

# encoding -> (array in that encoding, the RGB image_to_rgb must give or None)
SAMPLES = {
    "rgb8": (RGB, RGB),
    "bgr8": (np.ascontiguousarray(RGB[..., ::-1]), RGB),
    "rgba8": (np.concatenate([RGB, ALPHA], axis=2), RGB),
    "bgra8": (np.concatenate([RGB[..., ::-1], ALPHA], axis=2), RGB),
    "mono8": (GRAY8, np.repeat(GRAY8[..., None], 3, axis=2)),
    "mono16": (GRAY16, np.repeat((GRAY16 // 256).astype(np.uint8)[..., None], 3, axis=2)),
    "8UC1": (GRAY8, np.repeat(GRAY8[..., None], 3, axis=2)),
    "8UC3": (np.ascontiguousarray(RGB[..., ::-1]), RGB),
    "16UC1": (GRAY16, None),
    "32FC1": (RNG.uniform(-10, 100, size=(H, W)).astype(np.float32), None),
    # compared with OpenCV's own conversions in test_encodings.py
    "yuv422": (RNG.integers(0, 256, size=(H, W + 1, 2), dtype=np.uint8), None),
    "yuv422_yuy2": (RNG.integers(0, 256, size=(H, W + 1, 2), dtype=np.uint8), None),
    "bayer_rggb8": (GRAY8, None),
    "bayer_bggr8": (GRAY8, None),
    "bayer_gbrg8": (GRAY8, None),
    "bayer_grbg8": (GRAY8, None),
}


def _header(sec=12, nanosec=345, frame="left_optical"):
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame)


def _raw_image(encoding, height, width, step, data, bigendian=False):
    msg = Image()
    msg.encoding, msg.height, msg.width, msg.step = encoding, height, width, step
    msg.is_bigendian = bigendian
    msg.data = bytes(data)
    return msg


def test_encoding_tables():
    assert SUPPORTED_ENCODINGS == (
        "rgb8",
        "bgr8",
        "rgba8",
        "bgra8",
        "mono8",
        "mono16",
        "8UC1",
        "8UC3",
        "16UC1",
        "yuv422",
        "yuv422_yuy2",
        "bayer_rggb8",
        "bayer_bggr8",
        "bayer_gbrg8",
        "bayer_grbg8",
    )
    assert set(ARRAY_ENCODINGS) == set(SAMPLES)
    assert set(SUPPORTED_ENCODINGS) <= set(ARRAY_ENCODINGS)


@pytest.mark.parametrize("encoding", list(SAMPLES))
def test_every_encoding_round_trips_through_image(encoding):
    arr = SAMPLES[encoding][0]
    msg = array_to_image(arr, encoding, _header())
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding) == (H, arr.shape[1], encoding)
    assert msg.step == arr.shape[1] * arr.itemsize * (1 if arr.ndim == 2 else arr.shape[2])
    assert msg.is_bigendian == 0 and len(msg.data) == msg.step * H
    assert msg.header.stamp.sec == 12 and msg.header.frame_id == "left_optical"
    back = image_to_array(msg)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    # and through the wire format, as a subscriber receives it
    received = deserialize_message(serialize_message(msg), Image)
    np.testing.assert_array_equal(image_to_array(received), arr)


@pytest.mark.parametrize("encoding", [e for e in SUPPORTED_ENCODINGS if SAMPLES[e][1] is not None])
def test_image_to_rgb_gives_expected_rgb(encoding):
    arr, expected = SAMPLES[encoding]
    rgb = image_to_rgb(array_to_image(arr, encoding))
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, expected)


def test_image_to_array_is_zero_copy_view_of_message_data():
    msg = array_to_image(RGB, "rgb8")
    view = image_to_array(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, dtype=np.uint8))
    msg.data[0] = (int(msg.data[0]) + 1) % 256  # mutate the message ...
    assert view[0, 0, 0] == msg.data[0]  # ... and the view sees it
    received = deserialize_message(serialize_message(msg), Image)
    assert type(received.data).__name__ == "array"  # rclpy hands out array.array('B')
    assert np.shares_memory(image_to_array(received), np.frombuffer(received.data, dtype=np.uint8))
    # rgb8 without padding goes to the network without a copy as well
    assert np.shares_memory(image_to_rgb(received), np.frombuffer(received.data, np.uint8))


def test_array_to_image_copies():
    arr = RGB.copy()
    msg = array_to_image(arr, "rgb8")
    arr[:] = 0
    np.testing.assert_array_equal(image_to_array(msg), RGB)


def test_padded_step_rgb8_built_by_hand():
    step = W * 3 + 5
    data = bytearray(b"\xee" * (step * H))
    for v in range(H):
        data[v * step : v * step + W * 3] = RGB[v].tobytes()
    msg = _raw_image("rgb8", H, W, step, data)
    arr = image_to_array(msg)
    assert arr.shape == (H, W, 3)
    np.testing.assert_array_equal(arr, RGB)
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


def test_padded_odd_step_mono16_built_by_hand():
    step = W * 2 + 3  # rows not even 2-byte aligned
    data = bytearray(b"\x55" * (step * H))
    for v in range(H):
        data[v * step : v * step + W * 2] = GRAY16[v].astype("<u2").tobytes()
    arr = image_to_array(_raw_image("mono16", H, W, step, data))
    assert arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, GRAY16)


def test_bigendian_mono16_built_by_hand():
    data = bytes([0x01, 0x02, 0xAB, 0xCD, 0x00, 0xFF, 0xFF, 0x00, 0x12, 0x34, 0x80, 0x00])
    msg = _raw_image("mono16", 2, 3, 6, data, bigendian=True)
    arr = image_to_array(msg)
    assert arr.dtype == np.uint16 and arr.dtype.isnative
    np.testing.assert_array_equal(arr, [[0x0102, 0xABCD, 0x00FF], [0xFF00, 0x1234, 0x8000]])
    np.testing.assert_array_equal(
        image_to_rgb(msg)[..., 0], [[0x01, 0xAB, 0x00], [0xFF, 0x12, 0x80]]
    )
    little = _raw_image("mono16", 2, 3, 6, data, bigendian=False)
    assert image_to_array(little)[0, 0] == 0x0201


def test_bigendian_32fc1_built_by_hand():
    values = np.array([[1.5, -2.25], [np.inf, 1e-3]], dtype=np.float32)
    msg = _raw_image("32FC1", 2, 2, 8, values.astype(">f4").tobytes(), bigendian=True)
    arr = image_to_array(msg)
    assert arr.dtype == np.float32 and arr.dtype.isnative
    np.testing.assert_array_equal(arr, values)


def test_unknown_encoding_raises_encoding_error_naming_alternatives():
    msg = _raw_image("nv21", 2, 2, 4, bytes(8))
    with pytest.raises(EncodingError) as info:
        image_to_rgb(msg)
    text = str(info.value)
    assert "'nv21'" in text and all(e in text for e in SUPPORTED_ENCODINGS)
    assert isinstance(info.value, ValueError) and info.value.encoding == "nv21"
    with pytest.raises(EncodingError, match="nv21"):
        image_to_array(msg)
    # depth encodings are arrays, but not network inputs
    with pytest.raises(EncodingError, match="32FC1"):
        image_to_rgb(array_to_image(SAMPLES["32FC1"][0], "32FC1"))
    with pytest.raises(EncodingError, match="bayer_rggb16"):
        array_to_image(GRAY16, "bayer_rggb16")


def test_truncated_or_inconsistent_messages_raise_clear_errors():
    good = array_to_image(RGB, "rgb8")
    truncated = _raw_image("rgb8", H, W, W * 3, bytes(good.data)[:-10])
    with pytest.raises(MalformedImageError, match=r"needs 105 bytes.*has 95.*truncated"):
        image_to_array(truncated)
    too_long = _raw_image("rgb8", H, W, W * 3, bytes(good.data) + b"\0")
    with pytest.raises(ValueError, match="needs 105 bytes"):
        image_to_array(too_long)
    small_step = _raw_image("rgb8", H, W, W * 3 - 1, bytes((W * 3 - 1) * H))
    with pytest.raises(MalformedImageError, match=r"step 20 is smaller than .* 21"):
        image_to_rgb(small_step)
    assert issubclass(MalformedImageError, ValueError)


def test_array_to_image_rejects_wrong_dtype_or_shape():
    with pytest.raises(ValueError, match=r"32FC1 needs a float32 .* got float64"):
        array_to_image(np.zeros((2, 2)), "32FC1")
    with pytest.raises(ValueError, match=r"rgb8 needs a uint8 array of shape \(H, W, 3\)"):
        array_to_image(np.zeros((2, 2, 4), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="mono16"):
        array_to_image(np.zeros((2, 2), np.uint8), "mono16")


def test_array_to_image_handles_non_contiguous_and_big_endian_arrays():
    msg = array_to_image(RGB[:, ::2], "rgb8")
    np.testing.assert_array_equal(image_to_array(msg), RGB[:, ::2])
    msg = array_to_image(GRAY16.astype(">u2"), "mono16")
    assert msg.is_bigendian == 0
    np.testing.assert_array_equal(image_to_array(msg), GRAY16)


def test_readers_accept_rosbags_messages():
    typesys = pytest.importorskip("rosbags.typesys")
    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    BagImage = store.types["sensor_msgs/msg/Image"]
    BagHeader = store.types["std_msgs/msg/Header"]
    BagTime = store.types["builtin_interfaces/msg/Time"]
    raw = np.frombuffer(SAMPLES["bgra8"][0].tobytes(), np.uint8).copy()
    msg = BagImage(
        header=BagHeader(stamp=BagTime(sec=1, nanosec=2), frame_id="l"),
        height=H,
        width=W,
        encoding="bgra8",
        is_bigendian=0,
        step=W * 4,
        data=raw,
    )
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    assert np.shares_memory(image_to_array(msg), raw)
    assert stamp_to_ns(msg.header.stamp) == 1_000_000_002


# ----------------------------------------------------------------------------- disparity


def _calib(width=8, height=6):
    return StereoCalibration(
        fx=720.0, fy=720.0, cx=4.0, cy=3.0, baseline=0.54, width=width, height=height
    )


def test_disparity_to_msg_fields_and_valid_window():
    d = np.full((6, 8), -1.0, dtype=np.float32)  # invalid border everywhere
    d[1:4, 2:6] = 10.0  # valid block rows 1..3, cols 2..5
    d[2, 3] = -1.0  # an invalid pixel inside the block
    d[3, 5] = np.nan  # NaN counts as invalid
    d[5, 0] = np.nan
    header = _header()
    msg = disparity_to_msg(
        d, header, _calib(), min_disparity=0.0, max_disparity=127.0, delta_d=0.0625
    )
    assert isinstance(msg, DisparityImage)
    assert msg.header.stamp.sec == 12 and msg.image.header.frame_id == "left_optical"
    assert msg.f == pytest.approx(720.0) and msg.t == pytest.approx(0.54)
    assert (msg.min_disparity, msg.max_disparity, msg.delta_d) == (0.0, 127.0, 0.0625)
    roi = msg.valid_window
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (2, 1, 4, 3)
    assert msg.image.encoding == "32FC1" and (msg.image.height, msg.image.width) == (6, 8)
    img = image_to_array(msg.image)
    assert np.isfinite(img).all()  # NaN written as min_disparity - 1
    assert img[3, 5] == -1.0 and img[5, 0] == -1.0
    np.testing.assert_array_equal(img[np.isfinite(d)], d[np.isfinite(d)])
    assert np.isnan(d[3, 5])  # caller's array untouched
    received = deserialize_message(serialize_message(msg), DisparityImage)
    assert received.valid_window.width == 4


def test_disparity_valid_window_touching_edges_and_all_invalid():
    d = np.full((6, 8), 3.0, dtype=np.float32)
    d[0, 0] = 1.0  # below min_disparity = 2
    msg = disparity_to_msg(d, _header(), _calib(), 2.0, 66.0, 1 / 16)
    roi = msg.valid_window
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (0, 0, 8, 6)
    d[:] = np.nan
    roi = disparity_to_msg(d, _header(), _calib(), 0.0, 64.0, 1.0).valid_window
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (0, 0, 0, 0)


def test_disparity_to_msg_rejects_bad_arguments():
    d = np.ones((6, 8), np.float32)
    with pytest.raises(ValueError, match=r"calibration is for 16x12 .* disparity is 8x6"):
        disparity_to_msg(d, _header(), _calib(16, 12), 0.0, 64.0, 1.0)
    with pytest.raises(ValueError, match="min_disparity < max_disparity"):
        disparity_to_msg(d, _header(), _calib(), 64.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="delta_d"):
        disparity_to_msg(d, _header(), _calib(), 0.0, 64.0, 0.0)
    with pytest.raises(ValueError, match="2-D"):
        disparity_to_msg(d[None], _header(), _calib(), 0.0, 64.0, 1.0)
    # size 0 means "unknown" in StereoCalibration, so no size check then
    disparity_to_msg(d, _header(), _calib(0, 0), 0.0, 64.0, 1.0)


# ----------------------------------------------------------------------------- point cloud

_DATATYPES = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}


def _decode_cloud(msg):
    """Independent PointCloud2 reader: one strided view per field, from msg.fields only."""
    buf = bytes(msg.data)
    assert len(buf) == msg.row_step * msg.height
    assert msg.row_step == msg.point_step * msg.width
    n = msg.height * msg.width
    endian = ">" if msg.is_bigendian else "<"
    out = {}
    for f in msg.fields:
        assert f.count == 1
        dtype = np.dtype(endian + _DATATYPES[f.datatype])
        assert f.offset + dtype.itemsize <= msg.point_step
        out[f.name] = np.ndarray(
            shape=(n,), dtype=dtype, buffer=buf, offset=f.offset, strides=(msg.point_step,)
        ).reshape(msg.height, msg.width)
    return out


def _unpack(packed_f32):
    bits = packed_f32.view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(np.uint8)


def _cloud_inputs(h=6, w=9, seed=3):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-3, 30, size=(h, w, 3)).astype(np.float32)
    invalid = rng.random((h, w)) < 0.3
    xyz[invalid] = np.nan
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 19, size=(h, w), dtype=np.uint8)
    labels[invalid] = 255
    conf = rng.random((h, w)).astype(np.float32)
    return xyz, rgb, labels, conf, invalid


def test_cloud_fields_match_contract():
    xyz, rgb, labels, conf, _ = _cloud_inputs()
    msg = cloud_to_msg(build_cloud(xyz, rgb, labels, conf, organized=True), _header())
    got = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert got == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
        ("rgb", 12, 7, 1),
        ("label", 16, 6, 1),  # UINT32, as pcl::PointXYZRGBL
        ("confidence", 20, 7, 1),
    ]
    assert msg.point_step == 24 and msg.is_bigendian is False
    plain = cloud_to_msg(build_cloud(xyz, rgb, labels, None), _header())
    assert [f.name for f in plain.fields] == ["x", "y", "z", "rgb", "label"]
    assert plain.point_step == 20


def test_organized_cloud_decodes_to_same_points():
    xyz, rgb, labels, conf, invalid = _cloud_inputs()
    msg = cloud_to_msg(build_cloud(xyz, rgb, labels, conf, organized=True), _header(7, 8))
    msg = deserialize_message(serialize_message(msg), PointCloud2)  # as a subscriber sees it
    assert (msg.height, msg.width) == (6, 9) and msg.row_step == 9 * 24
    assert msg.is_dense is False
    assert stamp_to_ns(msg.header.stamp) == 7_000_000_008
    pts = _decode_cloud(msg)
    for i, axis in enumerate("xyz"):
        np.testing.assert_array_equal(pts[axis], xyz[..., i])
    assert np.isnan(pts["z"][invalid]).all() and np.isfinite(pts["z"][~invalid]).all()
    np.testing.assert_array_equal(_unpack(pts["rgb"]), rgb)
    np.testing.assert_array_equal(pts["label"], labels)
    np.testing.assert_array_equal(pts["confidence"], conf)


def test_dense_cloud_decodes_to_valid_points_only():
    xyz, rgb, labels, conf, invalid = _cloud_inputs()
    msg = cloud_to_msg(build_cloud(xyz, rgb, labels, None, organized=False), _header())
    valid = ~invalid
    assert (msg.height, msg.width) == (1, int(valid.sum())) and 0 < msg.width < 54
    assert msg.is_dense is True
    pts = _decode_cloud(msg)
    assert "confidence" not in pts
    np.testing.assert_array_equal(np.stack([pts[a][0] for a in "xyz"], axis=1), xyz[valid])
    np.testing.assert_array_equal(_unpack(pts["rgb"][0]), rgb[valid])
    np.testing.assert_array_equal(pts["label"][0], labels[valid])
    assert (pts["label"][0] != 255).all()


def test_hand_computed_point_bytes():
    xyz = np.array([[[1.0, -2.0, 3.5]]], dtype=np.float32)
    rgb = np.array([[[255, 0, 0]]], dtype=np.uint8)
    msg = cloud_to_msg(build_cloud(xyz, rgb, np.array([[13]], np.uint8)), _header())
    expected = (
        np.array([1.0, -2.0, 3.5], "<f4").tobytes() + bytes([0, 0, 0xFF, 0]) + bytes([13, 0, 0, 0])
    )
    assert bytes(msg.data) == expected


def test_is_dense_flag_and_empty_cloud():
    xyz, rgb, labels, _, _ = _cloud_inputs()
    xyz = np.nan_to_num(xyz, nan=1.0)
    # an organized cloud with no invalid point is truthfully dense
    assert cloud_to_msg(build_cloud(xyz, rgb, labels), _header()).is_dense is True
    xyz[0, 0] = np.nan
    assert cloud_to_msg(build_cloud(xyz, rgb, labels), _header()).is_dense is False
    xyz[:] = np.nan
    empty = cloud_to_msg(build_cloud(xyz, rgb, labels, organized=False), _header())
    assert (empty.height, empty.width, len(empty.data), empty.is_dense) == (1, 0, 0, True)


def test_cloud_to_msg_rejects_non_structured_or_big_endian():
    with pytest.raises(ValueError, match="structured"):
        cloud_to_msg(np.zeros((3, 3), np.float32), _header())
    with pytest.raises(ValueError, match="shape"):
        cloud_to_msg(np.zeros((2, 2, 2), cloud_dtype()), _header())
    bad = np.zeros(3, dtype=[("x", ">f4"), ("y", "<f4")])
    with pytest.raises(ValueError, match="'x'.*little-endian"):
        cloud_to_msg(bad, _header())


# ----------------------------------------------------------------------------- calibration


def _camera_info(p, width=1242, height=375):
    info = CameraInfo()
    info.width, info.height = width, height
    info.p = np.asarray(p, dtype=np.float64).reshape(12)
    return info


def _kitti_like_pair(tx=-388.8):
    p_left = [720.0, 0.0, 609.5, 0.0, 0.0, 720.0, 172.8, 0.0, 0.0, 0.0, 1.0, 0.0]
    p_right = list(p_left)
    p_right[3] = tx
    return _camera_info(p_left), _camera_info(p_right)


def test_calibration_from_camera_info():
    left, right = _kitti_like_pair()
    calib = calibration_from_camera_info(left, right)
    assert calib.fx == 720.0 and calib.fy == 720.0
    assert (calib.cx, calib.cy) == (609.5, 172.8)
    assert calib.baseline == pytest.approx(0.54)
    assert (calib.width, calib.height) == (1242, 375)
    # and it reproduces the P matrices it came from
    _, p_right = calib.projection_matrices()
    assert p_right[0, 3] == pytest.approx(-388.8)


def test_calibration_errors():
    left, right = _kitti_like_pair(tx=0.0)
    with pytest.raises(CalibrationError, match="zero stereo baseline"):
        calibration_from_camera_info(left, right)
    left, right = _kitti_like_pair(tx=+388.8)  # left/right swapped
    with pytest.raises(CalibrationError, match="baseline must be positive"):
        calibration_from_camera_info(left, right)
    left, right = _kitti_like_pair()
    with pytest.raises(CalibrationError, match="left camera_info has no projection matrix"):
        calibration_from_camera_info(CameraInfo(width=1242, height=375), right)
    right.width = 1240
    with pytest.raises(CalibrationError, match=r"1242x375 but right is 1240x375"):
        calibration_from_camera_info(left, right)
    assert issubclass(CalibrationError, ValueError)


def test_stamp_to_ns():
    assert stamp_to_ns(Time(sec=3, nanosec=5)) == 3_000_000_005
    assert stamp_to_ns(Time(sec=1_700_000_000, nanosec=999_999_999)) == 1_700_000_000_999_999_999
    assert stamp_to_ns(Time()) == 0


def test_readers_work_without_ros_message_packages():
    """The replay tool runs on laptops without ROS: readers must not import ROS modules."""
    code = (
        "import sys\n"
        "for m in ('rclpy', 'sensor_msgs', 'sensor_msgs.msg', 'stereo_msgs', 'stereo_msgs.msg',"
        " 'std_msgs', 'std_msgs.msg', 'builtin_interfaces', 'builtin_interfaces.msg'):\n"
        "    sys.modules[m] = None\n"
        "from types import SimpleNamespace as NS\n"
        "from stereo_semantic_ros.ros import conversions as c\n"
        "m = NS(encoding='bgr8', height=1, width=2, step=6, is_bigendian=0, data=bytes(range(6)))\n"
        "print(c.image_to_rgb(m).tolist())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[[[2, 1, 0], [5, 4, 3]]]"
