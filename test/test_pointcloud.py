"""Point-cloud layout, colour packing and the CPU stride / range filter; the published cloud read
as PCL's ``pcl::fromROSMsg`` reads it into a ``pcl::PointXYZRGBL``."""

import math

import numpy as np
import pytest

from stereo_semantic_ros.pointcloud import (
    PointCloudOptions,
    apply_stride_and_range,
    build_cloud,
    cloud_dtype,
    pack_rgb,
    unpack_rgb,
)


def _scene(h=4, w=5, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-5, 40, size=(h, w, 3)).astype(np.float32)
    xyz[0, 0] = np.nan  # fully invalid point
    xyz[2, 3, 2] = np.nan  # partly invalid point counts as invalid
    xyz[3, 1, 0] = np.inf
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 19, size=(h, w), dtype=np.uint8)
    labels[0, 0] = 255
    conf = rng.uniform(0, 1, size=(h, w)).astype(np.float32)
    return xyz, rgb, labels, conf


def test_cloud_dtype_layout():
    dt = cloud_dtype(False)
    assert dt.names == ("x", "y", "z", "rgb", "label")
    assert [dt.fields[n][1] for n in dt.names] == [0, 4, 8, 12, 16]
    assert [dt.fields[n][0] for n in dt.names] == [np.dtype("<f4")] * 4 + [np.dtype("<u4")]
    assert dt.itemsize == 20
    dtc = cloud_dtype(True)
    assert dtc.names[-1] == "confidence"
    assert dtc.fields["confidence"][1] == 20 and dtc.fields["confidence"][0] == np.dtype("<f4")
    assert dtc.itemsize == 24


@pytest.mark.parametrize(
    "rgb, expected",
    [
        ((255, 0, 0), 0x00FF0000),
        ((0, 255, 0), 0x0000FF00),
        ((0, 0, 255), 0x000000FF),
        ((1, 2, 3), 0x00010203),
        ((255, 255, 255), 0x00FFFFFF),
        ((0, 0, 0), 0),
    ],
)
def test_pack_rgb_matches_hand_computed_uint32(rgb, expected):
    packed = pack_rgb(np.array(rgb, dtype=np.uint8))
    assert packed.dtype == np.float32 and packed.shape == ()
    assert int(packed.view(np.uint32)) == expected
    assert tuple(unpack_rgb(packed)) == rgb


def test_pack_unpack_round_trip_and_alpha_nan():
    rgb = np.random.default_rng(1).integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    packed = pack_rgb(rgb)
    assert packed.shape == (7, 9) and not np.isnan(packed).any()
    np.testing.assert_array_equal(unpack_rgb(packed), rgb)
    # A PCL colour with alpha 255 and red >= 128 is a (signalling) NaN as float32; unpacking
    # must read its bits, not a quieted copy (that would turn red 0x9A into 0xDA).
    rgba = np.array([0xFF9A3456], dtype=np.uint32).view(np.float32)
    assert np.isnan(rgba[0])
    np.testing.assert_array_equal(unpack_rgb(rgba), [[0x9A, 0x34, 0x56]])
    # Big-endian float32 storage of the same bits gives the same colour.
    be = packed.astype(">f4")
    np.testing.assert_array_equal(unpack_rgb(be), rgb)


def test_pack_unpack_reject_wrong_types():
    with pytest.raises(ValueError, match=r"uint8 array of shape \(\.\.\., 3\)"):
        pack_rgb(np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        pack_rgb(np.zeros((2, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="float32"):
        unpack_rgb(np.zeros(3, dtype=np.float64))


def test_build_cloud_organized_keeps_every_pixel():
    xyz, rgb, labels, conf = _scene()
    cloud = build_cloud(xyz, rgb, labels, None, organized=True)
    assert cloud.shape == (4, 5) and cloud.dtype == cloud_dtype(False)
    for i, axis in enumerate("xyz"):
        np.testing.assert_array_equal(cloud[axis], xyz[..., i])  # NaN == NaN here
    np.testing.assert_array_equal(unpack_rgb(cloud["rgb"]), rgb)
    np.testing.assert_array_equal(cloud["label"], labels)
    assert np.isnan(cloud["z"][0, 0])
    # the label's upper bytes are zero (little-endian uint32 of a class id <= 255)
    raw = cloud.reshape(-1).view(np.uint8).reshape(-1, 20)
    np.testing.assert_array_equal(raw[:, 16], labels.reshape(-1))
    assert not raw[:, 17:20].any()


def test_build_cloud_dense_drops_non_finite_points_in_row_major_order():
    xyz, rgb, labels, conf = _scene()
    cloud = build_cloud(xyz, rgb, labels, conf, organized=False)
    keep = np.isfinite(xyz).all(axis=2)
    assert keep.sum() == 20 - 3
    assert cloud.shape == (17,) and cloud.dtype == cloud_dtype(True)
    np.testing.assert_array_equal(np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1), xyz[keep])
    np.testing.assert_array_equal(unpack_rgb(cloud["rgb"]), rgb[keep])
    np.testing.assert_array_equal(cloud["label"], labels[keep])
    np.testing.assert_array_equal(cloud["confidence"], conf[keep])
    assert np.isfinite(cloud["z"]).all()
    raw = cloud.view(np.uint8).reshape(-1, 24)
    np.testing.assert_array_equal(raw[:, 16], labels[keep])
    assert not raw[:, 17:20].any()


def test_build_cloud_all_invalid_dense_is_empty():
    xyz, rgb, labels, _ = _scene()
    xyz[:] = np.nan
    cloud = build_cloud(xyz, rgb, labels, organized=False)
    assert cloud.shape == (0,) and cloud.dtype.itemsize == 20


def test_build_cloud_rejects_mismatched_inputs():
    xyz, rgb, labels, conf = _scene()
    with pytest.raises(ValueError, match="xyz"):
        build_cloud(xyz[..., :2], rgb, labels)
    with pytest.raises(ValueError, match="rgb must be uint8"):
        build_cloud(xyz, rgb[:3], labels)
    with pytest.raises(ValueError, match="labels must be uint8"):
        build_cloud(xyz, rgb, labels.astype(np.int32))
    with pytest.raises(ValueError, match="confidence"):
        build_cloud(xyz, rgb, labels, conf[:, :2])


def test_apply_stride_and_range():
    xyz = np.zeros((5, 7, 3), dtype=np.float32)
    xyz[..., 2] = np.arange(35, dtype=np.float32).reshape(5, 7)
    xyz[..., 0] = 1.0
    out = apply_stride_and_range(xyz, stride=2, max_depth=20.0)
    assert out.shape == (3, 4, 3)
    expected_z = xyz[::2, ::2, 2]
    far = expected_z > 20.0
    assert far.any() and (~far).any()
    assert np.isnan(out[far]).all()  # x, y and z all invalid
    np.testing.assert_array_equal(out[~far][:, 2], expected_z[~far])
    assert not np.isnan(xyz).any()  # input untouched
    same = apply_stride_and_range(xyz)
    np.testing.assert_array_equal(same, xyz)
    assert not np.shares_memory(same, xyz)
    with pytest.raises(ValueError, match="stride"):
        apply_stride_and_range(xyz, stride=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stride": 0}, "stride must be >= 1"),
        ({"stride": -2}, "stride must be >= 1"),
        ({"stride": 1.5}, "integer"),
        ({"stride": True}, "integer"),
        ({"max_depth": 0.0}, "max_depth must be > 0"),
        ({"max_depth": -3}, "max_depth must be > 0"),
        ({"max_depth": math.nan}, "max_depth must be > 0"),
        ({"max_depth": "far"}, "number"),
    ],
)
def test_point_cloud_options_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PointCloudOptions(**kwargs)


def test_point_cloud_options_defaults():
    opts = PointCloudOptions()
    assert opts.organized is True and opts.stride == 1
    assert opts.max_depth == math.inf and opts.with_confidence is False
    assert PointCloudOptions(stride=np.int64(4), max_depth=30).stride == 4


# --------------------------------------------------------------------------- read as PCL does

# sensor_msgs/PointField datatypes
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_NUMPY = {UINT8: "u1", UINT32: "<u4", FLOAT32: "<f4"}
# pcl::PointXYZRGBL as POINT_CLOUD_REGISTER_POINT_STRUCT registers it (PCL 1.12 to 1.15,
# common/include/pcl/impl/point_types.hpp): member name, datatype
PCL_XYZRGBL = (("x", FLOAT32), ("y", FLOAT32), ("z", FLOAT32), ("rgba", UINT32), ("label", UINT32))


def _pcl_matches(member: str, datatype: int, field) -> bool:
    """PCL's FieldMatches<PointT, Tag>: name and datatype must both match (count 1); the rgba
    member also takes a field named "rgb" of FLOAT32 or UINT32 (PCL's special case)."""
    if field.count not in (0, 1):
        return False
    if member == "rgba" and field.name == "rgb":
        return field.datatype in (FLOAT32, UINT32)
    return field.name == member and field.datatype == datatype


def pcl_from_ros_msg(msg) -> tuple[np.ndarray, list[str]]:
    """The message decoded as pcl::fromROSMsg fills a PointCloud<PointXYZRGBL> (PCL <= 1.14):
    every member that a field matches (createMapping), read at that field's offset with the
    member's type; members without a match are left out and listed (PCL warns and keeps their
    default, 0 for the label)."""
    names, formats, offsets, unmatched = [], [], [], []
    for member, datatype in PCL_XYZRGBL:
        field = next((f for f in msg.fields if _pcl_matches(member, datatype, f)), None)
        if field is None:
            unmatched.append(member)
            continue
        names.append(member)
        formats.append(_NUMPY[datatype])  # the member's type: PCL copies the bytes into it
        offsets.append(field.offset)
    dtype = np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step}
    )
    assert not msg.is_bigendian and msg.row_step == msg.point_step * msg.width
    data = np.frombuffer(bytes(msg.data), dtype=dtype, count=msg.width * msg.height)
    return data.reshape(msg.height, msg.width), unmatched


def _rclpy_cloud_msg(cloud: np.ndarray):
    pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 message packages")
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Header

    from stereo_semantic_ros.ros.conversions import cloud_to_msg

    # through the serializer: what a subscriber (pcl_ros, a PCL node) receives
    msg = cloud_to_msg(cloud, Header(frame_id="left_camera_optical_frame"))
    return deserialize_message(serialize_message(msg), PointCloud2)


def _rosbags_cloud_msg(cloud: np.ndarray):
    from stereo_semantic_ros.bagtools import messages

    return messages.cloud_msg(cloud, messages.header(5, "left_camera_optical_frame"))


@pytest.mark.parametrize("make_msg", [_rclpy_cloud_msg, _rosbags_cloud_msg], ids=["node", "replay"])
@pytest.mark.parametrize("with_confidence", [False, True])
def test_pcl_from_ros_msg_reads_every_point_xyzrgbl_member(make_msg, with_confidence):
    xyz, rgb, labels, conf = _scene()
    labels[1, 1] = 18  # the last Cityscapes class; 255 = unknown is at [0, 0]
    cloud = build_cloud(xyz, rgb, labels, conf if with_confidence else None)
    msg = make_msg(cloud)
    by_name = {f.name: (f.offset, f.datatype) for f in msg.fields}
    assert by_name["label"] == (16, UINT32)
    assert by_name["rgb"] == (12, FLOAT32)  # stereo_image_proc's packed colour
    assert msg.point_step == (24 if with_confidence else 20)

    points, unmatched = pcl_from_ros_msg(msg)
    assert unmatched == []
    assert points.shape == (4, 5)
    np.testing.assert_array_equal(points["label"], labels.astype(np.uint32))
    for i, axis in enumerate("xyz"):
        np.testing.assert_array_equal(points[axis], xyz[..., i])
    # PCL's rgba member holds 0x00RRGGBB: its b, g, r bytes are the colour
    rgba = points["rgba"]
    np.testing.assert_array_equal((rgba >> 16) & 0xFF, rgb[..., 0])
    np.testing.assert_array_equal((rgba >> 8) & 0xFF, rgb[..., 1])
    np.testing.assert_array_equal(rgba & 0xFF, rgb[..., 2])


def test_a_uint8_label_is_what_pcl_loses():
    """The regression this layout fixes: the same cloud with a uint8 label (the old layout)
    leaves PCL's label member unmatched, so every label would read 0."""
    xyz, rgb, labels, _ = _scene()
    old = np.dtype(
        {
            "names": ["x", "y", "z", "rgb", "label"],
            "formats": ["<f4", "<f4", "<f4", "<f4", "u1"],
            "offsets": [0, 4, 8, 12, 16],
            "itemsize": 20,
        }
    )
    cloud = np.zeros(labels.shape, old)
    for i, axis in enumerate("xyz"):
        cloud[axis] = xyz[..., i]
    cloud["rgb"] = pack_rgb(rgb)
    cloud["label"] = labels
    _, unmatched = pcl_from_ros_msg(_rosbags_cloud_msg(cloud))
    assert unmatched == ["label"]
