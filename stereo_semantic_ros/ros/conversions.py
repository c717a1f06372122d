"""Messages <-> numpy arrays: the only place where message data is read or written.

Readers (:func:`image_to_array`, :func:`image_to_rgb`, :func:`calibration_from_camera_info`,
:func:`stamp_to_ns`) only use message attributes, so they accept rclpy messages and the
``rosbags`` message classes alike, and work without a ROS install. Writers build rclpy
messages and import ``sensor_msgs`` / ``stereo_msgs`` when first called.

rclpy stores ``uint8[]`` fields (``Image.data``, ``PointCloud2.data``) as ``array.array('B')``,
both on received messages and after any assignment (the setter wraps whatever it is given in
``array.array('B', value)``). Consequences used here:

* reading: ``np.frombuffer(msg.data, np.uint8)`` is a zero-copy view;
* writing: hand the setter an ``array.array`` filled with ``frombytes`` from the numpy buffer.
  A ``bytes`` object costs an extra copy and a ``memoryview`` is iterated element by element
  (hundreds of times slower), so neither is used;
* since Jazzy the setter *copies* an ``array.array`` again unless the message was created with
  ``check_fields=True`` (then it keeps the object after checking its typecode). Image and
  PointCloud2 are therefore created that way where the field exists: one memcpy per message
  instead of two (a 1242x375 32FC1 image: 0.1 ms instead of 2.5 ms here).
"""

from __future__ import annotations

import array as pyarray
from typing import TYPE_CHECKING, Any

import numpy as np

from stereo_semantic_ros.calibration import (
    CalibrationError,
    StereoCalibration,
    projection_matrix,
)

if TYPE_CHECKING:
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from std_msgs.msg import Header
    from stereo_msgs.msg import DisparityImage

__all__ = [
    "ARRAY_ENCODINGS",
    "SUPPORTED_ENCODINGS",
    "CalibrationError",
    "EncodingError",
    "MalformedImageError",
    "array_to_image",
    "calibration_from_camera_info",
    "cloud_to_msg",
    "disparity_to_msg",
    "image_to_array",
    "image_to_rgb",
    "stamp_to_ns",
]

#: Encodings accepted for the stereo input images.
SUPPORTED_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16")

#: encoding -> (little-endian element dtype, channels); the one table of image layouts
ENCODING_LAYOUT: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype("u1"), 3),
    "bgr8": (np.dtype("u1"), 3),
    "rgba8": (np.dtype("u1"), 4),
    "bgra8": (np.dtype("u1"), 4),
    "mono8": (np.dtype("u1"), 1),
    "mono16": (np.dtype("<u2"), 1),
    "8UC1": (np.dtype("u1"), 1),
    "16UC1": (np.dtype("<u2"), 1),
    "32FC1": (np.dtype("<f4"), 1),
}

#: Every encoding :func:`image_to_array` and :func:`array_to_image` handle: the inputs plus
#: the single-channel encodings of depth, disparity and ground truth.
ARRAY_ENCODINGS: tuple[str, ...] = tuple(ENCODING_LAYOUT)

# numpy dtype -> sensor_msgs/PointField datatype constant (values fixed by the message definition)
_POINTFIELD_TYPES: dict[np.dtype, int] = {
    np.dtype("i1"): 1,
    np.dtype("u1"): 2,
    np.dtype("<i2"): 3,
    np.dtype("<u2"): 4,
    np.dtype("<i4"): 5,
    np.dtype("<u4"): 6,
    np.dtype("<f4"): 7,
    np.dtype("<f8"): 8,
}


class EncodingError(ValueError):
    """An image encoding this package cannot read or write."""

    def __init__(
        self, encoding: str, supported: tuple[str, ...] = SUPPORTED_ENCODINGS, what: str = "image"
    ) -> None:
        self.encoding = encoding
        super().__init__(
            f"unsupported {what} encoding {encoding!r}; supported: {', '.join(supported)}. "
            "Convert the stream (e.g. with image_proc) or publish one of these."
        )


class MalformedImageError(ValueError):
    """An Image whose height, width, step and data length do not agree."""


# --------------------------------------------------------------------------- readers


def image_to_array(msg: Image) -> np.ndarray:
    """Pixels of a sensor_msgs/Image as numpy, without copying where possible.

    Args:
        msg: an Image (rclpy or rosbags) with an encoding in :data:`ARRAY_ENCODINGS`.

    Returns:
        (H, W) for single-channel encodings, (H, W, C) otherwise; dtype uint8, uint16 or
        float32 in native byte order. Where that needs no conversion the result is a view into
        ``msg.data`` (rows padded beyond ``width * bytes_per_pixel`` are sliced off, so the
        view is then not C-contiguous); data in the other byte order is converted into a new
        array.
        Writing into a view writes into the message: copy first if the message is shared.

    Raises:
        EncodingError: the encoding is not in :data:`ARRAY_ENCODINGS`.
        MalformedImageError: no pixels (width or height 0), or step or data length does not
            match height and width.
    """
    encoding = msg.encoding
    if encoding not in ENCODING_LAYOUT:
        raise EncodingError(encoding, ARRAY_ENCODINGS)
    dtype, channels = ENCODING_LAYOUT[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        # numpy reshapes an empty buffer to (0, 0) happily; the failure would surface later,
        # deep in the network, as a traceback instead of this drop reason
        raise MalformedImageError(
            f"{encoding} image is {width}x{height}: it has no pixels (an empty message; is the "
            "camera driver publishing before it has a frame?)"
        )
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise MalformedImageError(
            f"{encoding} image {width}x{height}: step {step} is smaller than "
            f"width * bytes_per_pixel = {row_bytes}"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise MalformedImageError(
            f"{encoding} image {width}x{height} with step {step} needs {step * height} bytes of "
            f"data, message has {data.size} (truncated or mislabelled message)"
        )
    rows = data.reshape(height, step)
    if step != row_bytes:
        rows = rows[:, :row_bytes]
    pixels = rows.view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    if not pixels.dtype.isnative:  # the message's byte order differs from this host's
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def image_to_rgb(msg: Image) -> np.ndarray:
    """An input image as the network wants it: (H, W, 3) uint8 RGB, C-contiguous.

    bgr* is reordered, alpha dropped, mono replicated to three channels and mono16 reduced to
    8 bits by ``>> 8``. An rgb8 message without row padding is returned as a view of its data.

    Raises:
        EncodingError: the encoding is not one of :data:`SUPPORTED_ENCODINGS`.
        MalformedImageError: see :func:`image_to_array`.
    """
    encoding = msg.encoding
    if encoding not in SUPPORTED_ENCODINGS:
        raise EncodingError(encoding, SUPPORTED_ENCODINGS, what="input image")
    pixels = image_to_array(msg)
    if encoding == "rgb8" and pixels.flags.c_contiguous:
        return pixels
    # One strided copy per channel: ~5x faster than ascontiguousarray of a reversed view.
    rgb = np.empty(pixels.shape[:2] + (3,), dtype=np.uint8)
    if encoding in ("mono8", "mono16"):
        gray = (pixels >> 8).astype(np.uint8) if encoding == "mono16" else pixels
        for dst in range(3):
            rgb[..., dst] = gray
    else:
        order = (2, 1, 0) if encoding.startswith("bgr") else (0, 1, 2)
        for dst, src in enumerate(order):
            rgb[..., dst] = pixels[..., src]
    return rgb


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time (``sec``, ``nanosec``) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def calibration_from_camera_info(left: CameraInfo, right: CameraInfo) -> StereoCalibration:
    """Stereo calibration of a rectified pair from its two CameraInfo messages.

    Focal length and principal point come from the left P, the baseline from the right P:
    ``B = -P_right[0,3] / P_right[0,0]`` metres (image_geometry's convention), and the right
    camera's principal point gives ``doffs = P_right[0,2] - P_left[0,2]`` pixels (0 for most
    rigs; depth is ``fx * B / (d + doffs)``). ``width`` and ``height`` are the CameraInfo's
    image size.

    Raises:
        CalibrationError: sizes differ; a P matrix is unfilled, not 12 finite numbers or has a
            negative focal length; or the baseline is not > 0.
    """
    if (left.width, left.height) != (right.width, right.height):
        raise CalibrationError(
            f"left camera_info is {left.width}x{left.height} but right is "
            f"{right.width}x{right.height}; both must describe the same rectified image size"
        )
    p_left = projection_matrix(left.p, "left camera_info")
    p_right = projection_matrix(right.p, "right camera_info")
    for side, p in (("left", p_left), ("right", p_right)):
        if p[0, 0] == 0 or p[1, 1] == 0:
            raise CalibrationError(
                f"{side} camera_info has no projection matrix (P[0,0]={p[0, 0]}, "
                f"P[1,1]={p[1, 1]}): the camera is uncalibrated; calibrate and rectify it first"
            )
        if p[0, 0] < 0 or p[1, 1] < 0:
            # a negative right fx would otherwise flip the sign of B = -P[0,3] / fx unnoticed
            raise CalibrationError(
                f"{side} camera_info has a negative focal length (P[0,0]={p[0, 0]}, "
                f"P[1,1]={p[1, 1]}); a rectified camera's P has fx, fy > 0"
            )
    if p_right[0, 3] == 0:
        raise CalibrationError(
            "right camera_info has P[0,3] = 0, i.e. zero stereo baseline; it must hold "
            "-fx * baseline (was left's camera_info published on the right topic?)"
        )
    return StereoCalibration.from_projection_matrices(
        p_left, p_right, width=int(left.width), height=int(left.height)
    )


# --------------------------------------------------------------------------- writers


def array_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """A sensor_msgs/Image holding a copy of ``array``.

    Args:
        array: (H, W) or (H, W, C) with the dtype and channel count of ``encoding``
            (uint8 for the 8-bit encodings, uint16 for mono16/16UC1, float32 for 32FC1).
        encoding: one of :data:`ARRAY_ENCODINGS`.
        header: stored as given (not copied); a default Header when None.

    Returns:
        Image with ``step = width * bytes_per_pixel`` and ``is_bigendian = False``.
    """
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    if encoding not in ENCODING_LAYOUT:
        raise EncodingError(encoding, ARRAY_ENCODINGS, what="output image")
    dtype, channels = ENCODING_LAYOUT[encoding]
    arr = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if (
        arr.ndim != expected_ndim
        or (channels > 1 and arr.shape[2] != channels)
        or arr.dtype.kind != dtype.kind
        or arr.dtype.itemsize != dtype.itemsize
    ):
        shape = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(
            f"encoding {encoding} needs a {dtype.name} array of shape {shape}, "
            f"got {arr.dtype.name} {arr.shape}"
        )
    msg = _new_msg(Image)
    msg.header = header if header is not None else Header()
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = False
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = _to_byte_array(arr.astype(dtype, copy=False))
    return msg


def disparity_to_msg(
    disparity: np.ndarray,
    header: Header,
    calib: StereoCalibration,
    min_disparity: float,
    max_disparity: float,
    delta_d: float,
) -> DisparityImage:
    """A stereo_msgs/DisparityImage like stereo_image_proc's.

    Args:
        disparity: (H, W) float32 pixels, positive (see :mod:`stereo_semantic_ros.calibration`);
            values below ``min_disparity`` are invalid. Non-finite values are written as
            ``min_disparity - 1`` so every consumer that tests ``d < min_disparity`` drops them.
        header: for the message and its image (the left image's header).
        calib: calibration at the disparity image's resolution; gives ``f = fx`` (pixels) and
            ``T = baseline`` (metres). The message has no field for ``calib.doffs``: the
            disparity is published as the raw shift ``u_left - u_right`` and its depth is
            ``f * T / (d + doffs)`` with doffs from the camera_infos' P matrices (image_geometry's
            ``StereoCameraModel.getZ``), which is ``f * T / d`` only when doffs is 0. (The
            DisparityImage.msg comment and stereo_image_proc's disparity node instead pre-adjust,
            ``d - (cx_l - cx_r)``, which image_geometry's Q matrix then applies a second time;
            raw keeps ``min/max_disparity`` the searched range and the node's outputs consistent.)
        min_disparity, max_disparity: the range the matcher searched, pixels.
        delta_d: smallest disparity step the matcher resolves, pixels.

    ``valid_window`` is the bounding box of the pixels with ``disparity >= min_disparity``,
    measured on this array; all-invalid gives a zero-size window at (0, 0).
    """
    from sensor_msgs.msg import RegionOfInterest
    from stereo_msgs.msg import DisparityImage

    d = np.asarray(disparity, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"disparity must be a 2-D (H, W) array, got shape {d.shape}")
    h, w = d.shape
    if (calib.width and calib.width != w) or (calib.height and calib.height != h):
        raise ValueError(
            f"calibration is for {calib.width}x{calib.height} but the disparity is {w}x{h}; "
            "f must match the disparity's resolution, pass calib.scaled(sx, sy)"
        )
    if not (
        np.isfinite(min_disparity) and np.isfinite(max_disparity) and min_disparity < max_disparity
    ):
        raise ValueError(
            f"need finite min_disparity < max_disparity, got {min_disparity}, {max_disparity}"
        )
    if not (np.isfinite(delta_d) and delta_d > 0):
        raise ValueError(f"delta_d must be a positive number of pixels, got {delta_d}")

    finite = np.isfinite(d)
    if not finite.all():
        d = np.where(finite, d, np.float32(min_disparity - 1.0))
    valid = d >= min_disparity
    roi = RegionOfInterest()
    rows = np.flatnonzero(valid.any(axis=1))
    if rows.size:
        cols = np.flatnonzero(valid[rows[0] : rows[-1] + 1].any(axis=0))
        roi.y_offset, roi.height = int(rows[0]), int(rows[-1] - rows[0] + 1)
        roi.x_offset, roi.width = int(cols[0]), int(cols[-1] - cols[0] + 1)

    msg = DisparityImage()
    msg.header = header
    msg.image = array_to_image(d, "32FC1", header)
    msg.f = float(calib.fx)
    msg.t = float(calib.baseline)
    msg.valid_window = roi
    msg.min_disparity = float(min_disparity)
    msg.max_disparity = float(max_disparity)
    msg.delta_d = float(delta_d)
    return msg


def cloud_to_msg(cloud: np.ndarray, header: Header) -> PointCloud2:
    """A sensor_msgs/PointCloud2 carrying a structured point array.

    Args:
        cloud: output of :func:`stereo_semantic_ros.pointcloud.build_cloud` (or any
            structured array of scalar little-endian numeric fields): (H, W) organized or
            (N,) dense.
        header: the left image's header (the cloud is in its optical frame).

    Fields, offsets and datatypes come from the dtype; ``point_step`` is its itemsize.
    ``is_dense`` is True only when no point has a non-finite x, y or z, so an organized cloud
    with invalid points says False like stereo_image_proc's.
    """
    from sensor_msgs.msg import PointCloud2, PointField

    cloud = np.asarray(cloud)
    if cloud.dtype.names is None:
        raise ValueError(f"cloud must be a structured array, got dtype {cloud.dtype}")
    if cloud.ndim == 2:
        height, width = cloud.shape
    elif cloud.ndim == 1:
        height, width = 1, cloud.shape[0]
    else:
        raise ValueError(f"cloud must be (H, W) organized or (N,) dense, got shape {cloud.shape}")

    fields = []
    for name in cloud.dtype.names:
        field_dtype, offset = cloud.dtype.fields[name][:2]
        # Native-order dtypes equal their '<' spelling on little-endian hosts only.
        datatype = _POINTFIELD_TYPES.get(field_dtype)
        if datatype is None:
            raise ValueError(
                f"cloud field {name!r} has dtype {field_dtype.str}; PointCloud2 fields here must "
                "be little-endian scalars of " + ", ".join(d.str for d in _POINTFIELD_TYPES)
            )
        fields.append(PointField(name=name, offset=int(offset), datatype=datatype, count=1))

    is_dense = True
    for axis in ("x", "y", "z"):
        if axis in cloud.dtype.names and not np.isfinite(cloud[axis]).all():
            is_dense = False
            break

    msg = _new_msg(PointCloud2)
    msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step = int(cloud.dtype.itemsize)
    msg.row_step = msg.point_step * msg.width
    msg.data = _to_byte_array(cloud)
    msg.is_dense = is_dense
    return msg


def _to_byte_array(arr: np.ndarray) -> pyarray.array:
    """One memcpy from numpy into the ``array.array('B')`` rclpy keeps for uint8[] fields."""
    out = pyarray.array("B")
    out.frombytes(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    return out


def _new_msg(msg_type: type) -> Any:
    """A message whose uint8[] setter keeps the array.array it is given (see module notes)."""
    if "_check_fields" in getattr(msg_type, "__slots__", ()):
        return msg_type(check_fields=True)
    return msg_type()  # before Jazzy: no such option, and the setter keeps array.array anyway
