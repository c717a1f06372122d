"""ROS 2 messages as ``rosbags`` objects: the type store, builders from arrays, rclpy adapter.

Bags are written with ``rosbags`` alone (no ROS install). Two sources of messages feed them:

* :func:`image_msg`, :func:`compressed_image_msg`, :func:`camera_info_msg`,
  :func:`disparity_msg`, :func:`cloud_msg` build ``rosbags`` messages straight from numpy
  arrays (make-bag; replay builds the node's outputs with them,
  :data:`stereo_semantic_ros.replay.loop.ROSBAGS_MESSAGES`: no rclpy needed). The replay tests
  check that these equal, field by field, what the live node publishes;
* :func:`from_rclpy` adapts an rclpy message field by field into the ``rosbags`` class of the
  same type, so :func:`serialize` gives the CDR bytes rclpy puts on the wire (tested against
  ``rclpy.serialization``).

Message definitions and RIHS01 type hashes written into a bag's metadata come from
:func:`typestore` (the newest ROS 2 store of the installed ``rosbags``); for the types used
here they are identical from Humble to the newest release.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.ros.conversions import _POINTFIELD_TYPES, ENCODING_LAYOUT, compress_image

#: The types this package writes or reads in bags.
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DISPARITY_IMAGE = "stereo_msgs/msg/DisparityImage"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"

# rosbags base type name -> numpy dtype of an array of it (CDR is little-endian here)
_BASE_DTYPES: dict[str, str] = {
    "bool": "bool",
    "byte": "u1",
    "char": "u1",
    "int8": "i1",
    "uint8": "u1",
    "int16": "<i2",
    "uint16": "<u2",
    "int32": "<i4",
    "uint32": "<u4",
    "int64": "<i8",
    "uint64": "<u8",
    "float32": "<f4",
    "float64": "<f8",
}


class MessageConversionError(ValueError):
    """A message that cannot be turned into the ``rosbags`` type it claims to be."""


@functools.cache
def typestore() -> Typestore:
    """The newest ROS 2 type store the installed ``rosbags`` knows (cached).

    ``Stores`` lists distributions in release order; ``LATEST`` and ``EMPTY`` are not
    distributions. Humble, Jazzy, Kilted and later share the definitions (and hashes) of
    every type this package writes.
    """
    ros2 = [store for store in Stores if store.name.startswith("ROS2_")]
    return get_typestore(ros2[-1])


def store_name() -> str:
    """Name of the store :func:`typestore` uses, e.g. ``ros2_kilted`` (for reports)."""
    ros2 = [store for store in Stores if store.name.startswith("ROS2_")]
    return ros2[-1].name.lower()


def header(stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header with ``stamp`` from integer nanoseconds."""
    ts = typestore()
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    time_cls = ts.types["builtin_interfaces/msg/Time"]
    return ts.types["std_msgs/msg/Header"](
        stamp=time_cls(sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def image_msg(array: np.ndarray, encoding: str, hdr: Any) -> Any:
    """sensor_msgs/Image holding a copy of ``array`` (little-endian, unpadded rows).

    Args:
        array: (H, W) or (H, W, C) with the element type of ``encoding`` (uint8 for the 8-bit
            encodings, uint16 for mono16, float32 for 32FC1).
        encoding: one of rgb8, bgr8, rgba8, bgra8, mono8, mono16, 32FC1.
        hdr: a header from :func:`header`.
    """
    if encoding not in ENCODING_LAYOUT:
        raise MessageConversionError(
            f"cannot build an image with encoding {encoding!r}; "
            f"supported: {', '.join(ENCODING_LAYOUT)}"
        )
    dtype, channels = ENCODING_LAYOUT[encoding]
    arr = np.asarray(array)
    ndim = 2 if channels == 1 else 3
    if (
        arr.ndim != ndim
        or (channels > 1 and arr.shape[2] != channels)
        or (arr.dtype.kind != dtype.kind or arr.dtype.itemsize != dtype.itemsize)
    ):
        raise MessageConversionError(
            f"encoding {encoding} needs a {dtype.name} array with {channels} channel(s), got "
            f"{arr.dtype.name} {arr.shape}"
        )
    height, width = arr.shape[:2]
    data = np.ascontiguousarray(arr.astype(dtype, copy=False)).reshape(-1).view(np.uint8)
    return typestore().types[IMAGE](
        header=hdr,
        height=int(height),
        width=int(width),
        encoding=encoding,
        is_bigendian=0,
        step=int(width * channels * dtype.itemsize),
        data=data.copy(),
    )


def compressed_image_msg(array: np.ndarray, fmt: str, hdr: Any, quality: int = 95) -> Any:
    """sensor_msgs/CompressedImage of ``array`` as image_transport's ``compressed`` plugin
    publishes it: ``format`` ``"rgb8; jpeg compressed bgr8"`` and the like.

    Args:
        array: (H, W, 3) uint8 RGB, (H, W) uint8 grey or (H, W) uint16 grey (png only).
        fmt: ``jpeg`` or ``png`` (see
            :func:`~stereo_semantic_ros.ros.conversions.compress_image`).
        hdr: a header from :func:`header`.
        quality: JPEG quality 1..100.
    """
    try:
        fmt_string, data = compress_image(array, fmt, quality)
    except ValueError as exc:
        raise MessageConversionError(str(exc)) from None
    return typestore().types[COMPRESSED_IMAGE](header=hdr, format=fmt_string, data=data.copy())


def camera_info_msg(calib: StereoCalibration, hdr: Any, right: bool = False) -> Any:
    """sensor_msgs/CameraInfo of one camera of a rectified pair, as camera_calibration writes it.

    K and P hold the rectified intrinsics, R is the identity, distortion is plumb_bob with zero
    coefficients (the images are rectified). The right camera's ``P[0,3] = -fx * B`` and its
    ``K[0,2] = P[0,2] = cx_right = cx + doffs``, from which
    :func:`~stereo_semantic_ros.ros.conversions.calibration_from_camera_info` recovers the
    baseline and doffs.
    """
    ts = typestore()
    p_left, p_right = calib.projection_matrices()
    p = p_right if right else p_left
    k = p[:, :3]
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return ts.types[CAMERA_INFO](
        header=hdr,
        height=int(calib.height),
        width=int(calib.width),
        distortion_model="plumb_bob",
        d=np.zeros(5, dtype=np.float64),
        k=k.reshape(-1).astype(np.float64),
        r=np.eye(3).reshape(-1),
        p=p.reshape(-1).astype(np.float64),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def valid_window(disparity: np.ndarray, min_disparity: float) -> tuple[int, int, int, int]:
    """(x_offset, y_offset, width, height) bounding box of the pixels ``>= min_disparity``;
    (0, 0, 0, 0) when there are none (as ``conversions.disparity_to_msg`` computes it)."""
    valid = np.isfinite(disparity) & (disparity >= min_disparity)
    rows = np.flatnonzero(valid.any(axis=1))
    if not rows.size:
        return 0, 0, 0, 0
    cols = np.flatnonzero(valid[rows[0] : rows[-1] + 1].any(axis=0))
    return (
        int(cols[0]),
        int(rows[0]),
        int(cols[-1] - cols[0] + 1),
        int(rows[-1] - rows[0] + 1),
    )


def disparity_msg(
    disparity: np.ndarray,
    hdr: Any,
    calib: StereoCalibration,
    min_disparity: float,
    max_disparity: float,
    delta_d: float,
) -> Any:
    """stereo_msgs/DisparityImage (32FC1, pixels) filled like stereo_image_proc's.

    Args:
        disparity: (H, W) pixels; invalid pixels must already be below ``min_disparity``
            (non-finite values are written as ``min_disparity - 1``).
        calib: gives ``f = fx`` (pixels) and ``T = baseline`` (metres); the disparity stays the
            raw shift, its depth is ``f * T / (d + calib.doffs)`` (see
            :func:`~stereo_semantic_ros.ros.conversions.disparity_to_msg`).
    """
    d = np.asarray(disparity, dtype=np.float32)
    if d.ndim != 2:
        raise MessageConversionError(f"disparity must be (H, W), got shape {d.shape}")
    d = np.where(np.isfinite(d), d, np.float32(min_disparity - 1.0)).astype(np.float32)
    x, y, w, h = valid_window(d, min_disparity)
    ts = typestore()
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=x, y_offset=y, height=h, width=w, do_rectify=False
    )
    return ts.types[DISPARITY_IMAGE](
        header=hdr,
        image=image_msg(d, "32FC1", hdr),
        f=float(calib.fx),
        t=float(calib.baseline),
        valid_window=roi,
        min_disparity=float(min_disparity),
        max_disparity=float(max_disparity),
        delta_d=float(delta_d),
    )


def cloud_msg(cloud: np.ndarray, hdr: Any) -> Any:
    """sensor_msgs/PointCloud2 of a structured point array (fields, offsets and datatypes from
    its dtype; ``is_dense`` only when every x, y, z is finite), as
    :func:`~stereo_semantic_ros.ros.conversions.cloud_to_msg` fills it."""
    points = np.asarray(cloud)
    if points.dtype.names is None or points.ndim not in (1, 2):
        raise MessageConversionError(
            f"a cloud is an (H, W) or (N,) structured array, got {points.dtype} {points.shape}"
        )
    height, width = points.shape if points.ndim == 2 else (1, points.shape[0])
    ts = typestore()
    field_cls = ts.types["sensor_msgs/msg/PointField"]
    layout = [(name, *points.dtype.fields[name][:2]) for name in points.dtype.names]
    unknown = [name for name, dtype, _ in layout if dtype not in _POINTFIELD_TYPES]
    if unknown:
        raise MessageConversionError(f"cloud fields {unknown} are not little-endian scalars")
    xyz = [points[a] for a in ("x", "y", "z") if a in points.dtype.names]
    return ts.types[POINT_CLOUD2](
        header=hdr,
        height=int(height),
        width=int(width),
        fields=[
            field_cls(name=name, offset=int(offset), datatype=_POINTFIELD_TYPES[dtype], count=1)
            for name, dtype, offset in layout
        ],
        is_bigendian=False,
        point_step=int(points.dtype.itemsize),
        row_step=int(points.dtype.itemsize * width),
        data=np.ascontiguousarray(points).reshape(-1).view(np.uint8).copy(),
        is_dense=all(bool(np.isfinite(v).all()) for v in xyz),
    )


def serialize(msg: Any, msgtype: str | None = None) -> bytes:
    """CDR bytes of a ``rosbags`` message (or of an rclpy one, adapted by :func:`from_rclpy`)."""
    if not hasattr(msg, "__msgtype__"):
        msg = from_rclpy(msg)
    return bytes(typestore().serialize_cdr(msg, msgtype or msg.__msgtype__))


def msgtype_of(msg: Any) -> str:
    """``pkg/msg/Name`` of an rclpy or a ``rosbags`` message."""
    name = getattr(msg, "__msgtype__", None)
    if name:
        return str(name)
    cls = type(msg)
    package = cls.__module__.split(".")[0]
    return f"{package}/msg/{cls.__name__}"


def from_rclpy(msg: Any, msgtype: str | None = None) -> Any:
    """The ``rosbags`` message with the contents of an rclpy message (a ``rosbags`` one is
    returned unchanged).

    Walks the type store's field definitions, so every field of the type is carried and an
    rclpy message of a different definition fails loudly instead of being written short.
    ``uint8[]`` data (``array.array`` in rclpy) is viewed, not copied, until serialisation.

    Raises:
        MessageConversionError: a field is missing or has a value that does not fit its type.
    """
    if hasattr(msg, "__msgtype__"):
        return msg
    msgtype = msgtype or msgtype_of(msg)
    ts = typestore()
    if msgtype not in ts.fielddefs:
        raise MessageConversionError(f"type {msgtype} is not in the {store_name()} type store")
    return _convert_message(msg, msgtype, ts)


def _convert_message(msg: Any, msgtype: str, ts: Typestore) -> Any:
    _, fields = ts.fielddefs[msgtype]
    values = {}
    for name, (nodetype, detail) in fields:
        try:
            value = getattr(msg, name)
        except AttributeError:
            raise MessageConversionError(
                f"{type(msg).__name__} has no field {name!r} of {msgtype}"
            ) from None
        values[name] = _convert_value(value, int(nodetype), detail, ts, f"{msgtype}.{name}")
    return ts.types[msgtype](**values)


# rosbags Nodetype values (stable since rosbags 0.9): BASE=1, NAME=2, ARRAY=3, SEQUENCE=4
_BASE, _NAME, _ARRAY, _SEQUENCE = 1, 2, 3, 4


def _convert_value(value: Any, nodetype: int, detail: Any, ts: Typestore, where: str) -> Any:
    if nodetype == _NAME:
        return _convert_message(value, detail, ts)
    if nodetype == _BASE:
        return _convert_base(value, detail[0], where)
    if nodetype in (_ARRAY, _SEQUENCE):
        (sub_type, sub_detail), _size = detail
        sub_type = int(sub_type)
        if sub_type == _BASE and sub_detail[0] in _BASE_DTYPES:
            dtype = np.dtype(_BASE_DTYPES[sub_detail[0]])
            if isinstance(value, (bytes, bytearray, memoryview)) or (
                hasattr(value, "typecode") and dtype.itemsize == 1
            ):
                # rclpy keeps uint8[] as array.array('B') (or bytes): a zero-copy view
                return np.frombuffer(value, dtype=np.uint8).view(dtype)
            return np.asarray(value, dtype=dtype)
        return [_convert_value(v, sub_type, sub_detail, ts, where) for v in value]
    raise MessageConversionError(f"{where}: unsupported field kind {nodetype}")


def _convert_base(value: Any, base: str, where: str) -> Any:
    if base == "string" or base == "wstring":
        return str(value)
    if base == "bool":
        return bool(value)
    if base in ("byte", "char") and isinstance(value, (bytes, str)):
        # rclpy holds byte fields as 1-byte bytes and char fields as 1-char str
        raw = value.encode("latin-1") if isinstance(value, str) else value
        return int.from_bytes(raw or b"\0", "little")
    if base.startswith("float"):
        return float(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MessageConversionError(f"{where}: {value!r} is not a valid {base}") from None
