"""Messages <-> numpy arrays: the only place where message data is read or written.

Readers (:func:`image_to_array`, :func:`image_to_rgb`, :func:`compressed_to_rgb`,
:func:`calibration_from_camera_info`, :func:`stamp_to_ns`) only use message attributes, so they
accept rclpy messages and the ``rosbags`` message classes alike, and work without a ROS install.
Writers build rclpy messages and import ``sensor_msgs`` / ``stereo_msgs`` when first called.

Input images are read as cv_bridge reads them (the encodings of :data:`SUPPORTED_ENCODINGS`,
colour conversions by OpenCV with cv_bridge's conversion codes), except for 16-bit grey, which
is reduced with the sensor's real bit depth (:func:`reduce_16bit`) instead of cv_bridge's
``* 255 / 65535``. sensor_msgs/CompressedImage (image_transport's ``compressed`` plugin: JPEG or
PNG) is decoded with ``cv2.imdecode``.

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

import cv2
import numpy as np

from stereo_semantic_ros.calibration import (
    CalibrationError,
    StereoCalibration,
    projection_matrix,
)

if TYPE_CHECKING:
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
    from std_msgs.msg import Header
    from stereo_msgs.msg import DisparityImage

__all__ = [
    "ARRAY_ENCODINGS",
    "COMPRESSED_FORMATS",
    "SUPPORTED_ENCODINGS",
    "CalibrationError",
    "EncodingError",
    "MalformedImageError",
    "array_to_image",
    "calibration_from_camera_info",
    "cloud_to_msg",
    "compress_image",
    "compressed_to_rgb",
    "disparity_to_msg",
    "image_to_array",
    "image_to_rgb",
    "is_compressed",
    "reduce_16bit",
    "rgb_to_compressed",
    "stamp_to_ns",
]

#: Encodings accepted for the stereo input images (what cv_bridge converts to rgb8, plus the
#: generic 8UC1/8UC3/16UC1 that ``cv_bridge.cv2_to_imgmsg`` writes for OpenCV images).
SUPPORTED_ENCODINGS: tuple[str, ...] = (
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

#: Codecs of sensor_msgs/CompressedImage that :func:`compressed_to_rgb` reads (those of
#: image_transport's ``compressed`` plugin that carry 8/16-bit camera images).
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")

#: encoding -> (little-endian element dtype, channels); the one table of image layouts
ENCODING_LAYOUT: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype("u1"), 3),
    "bgr8": (np.dtype("u1"), 3),
    "rgba8": (np.dtype("u1"), 4),
    "bgra8": (np.dtype("u1"), 4),
    "mono8": (np.dtype("u1"), 1),
    "mono16": (np.dtype("<u2"), 1),
    "8UC1": (np.dtype("u1"), 1),
    "8UC3": (np.dtype("u1"), 3),
    "16UC1": (np.dtype("<u2"), 1),
    "32FC1": (np.dtype("<f4"), 1),
    # packed 4:2:2, two bytes a pixel: U Y0 V Y1 (yuv422, i.e. UYVY) or Y0 U Y1 V (YUY2)
    "yuv422": (np.dtype("u1"), 2),
    "yuv422_yuy2": (np.dtype("u1"), 2),
    # the raw colour-filter mosaic, one byte a pixel; the name is the top-left 2x2 block
    "bayer_rggb8": (np.dtype("u1"), 1),
    "bayer_bggr8": (np.dtype("u1"), 1),
    "bayer_gbrg8": (np.dtype("u1"), 1),
    "bayer_grbg8": (np.dtype("u1"), 1),
}

# encoding -> cv2.cvtColor code to RGB, cv_bridge's (cv_bridge.cpp, getConversionCodes). ROS
# names a Bayer mosaic by its top-left 2x2 block, OpenCV's classic names by the block at row 1,
# column 1, so bayer_rggb8 is COLOR_BayerBG2RGB. (Newer OpenCV also has COLOR_BayerRGGB2RGB...
# aliases in ROS's naming, equal to these; the classic names exist in every OpenCV 3/4/5.)
_CVT_TO_RGB: dict[str, int] = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
_GRAY8 = ("mono8", "8UC1")
_GRAY16 = ("mono16", "16UC1")

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
    """An image encoding (or CompressedImage format) this package cannot read or write."""

    def __init__(
        self,
        encoding: str,
        supported: tuple[str, ...] = SUPPORTED_ENCODINGS,
        what: str = "image encoding",
        advice: str = "Convert the stream (e.g. with image_proc) or publish one of these.",
    ) -> None:
        self.encoding = encoding
        super().__init__(
            f"unsupported {what} {encoding!r}; supported: {', '.join(supported)}. " + advice
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


def image_to_rgb(msg: Image | CompressedImage, bit_depth: int = 0) -> np.ndarray:
    """An input image as the network wants it: (H, W, 3) uint8 RGB, C-contiguous.

    bgr8/8UC3 are reordered (8UC3 is an OpenCV image, so BGR, as cv_bridge writes it), alpha is
    dropped, mono8/8UC1 replicated to three channels, mono16/16UC1 reduced to 8 bits by
    :func:`reduce_16bit` with ``bit_depth`` and replicated, yuv422 (UYVY) / yuv422_yuy2 and the
    8-bit Bayer mosaics converted by OpenCV with cv_bridge's codes (Bayer: bilinear demosaicing).
    An rgb8 message without row padding is returned as a view of its data.

    A sensor_msgs/CompressedImage (a message with ``format`` and no ``encoding``) goes to
    :func:`compressed_to_rgb`, so callers need not tell the two apart.

    Args:
        msg: a sensor_msgs/Image (rclpy or rosbags) or CompressedImage.
        bit_depth: for 16-bit grey only, see :func:`reduce_16bit`: 0 = from the image's maximum,
            else the sensor's bit depth 1..16.

    Raises:
        EncodingError: the encoding is not one of :data:`SUPPORTED_ENCODINGS`.
        MalformedImageError: see :func:`image_to_array`; also a yuv422 image of odd width.
        ValueError: ``bit_depth`` outside 0..16.
    """
    if is_compressed(msg):
        return compressed_to_rgb(msg, bit_depth)
    encoding = msg.encoding
    if encoding not in SUPPORTED_ENCODINGS:
        raise EncodingError(encoding, SUPPORTED_ENCODINGS, what="input image encoding")
    _check_bit_depth(bit_depth)
    pixels = image_to_array(msg)
    if encoding == "rgb8" and pixels.flags.c_contiguous:
        return pixels
    if encoding in _CVT_TO_RGB:
        if encoding.startswith("yuv") and pixels.shape[1] % 2:
            raise MalformedImageError(
                f"{encoding} image is {pixels.shape[1]} pixels wide: 4:2:2 packs two pixels "
                "into four bytes, so its width must be even (mislabelled encoding?)"
            )
        return cv2.cvtColor(np.ascontiguousarray(pixels), _CVT_TO_RGB[encoding])
    if encoding in _GRAY8 or encoding in _GRAY16:
        gray = reduce_16bit(pixels, bit_depth) if encoding in _GRAY16 else pixels
        return _gray_to_rgb(gray)
    return _reorder(pixels, bgr=encoding.startswith("bgr") or encoding == "8UC3")


def reduce_16bit(values: np.ndarray, bit_depth: int = 0) -> np.ndarray:
    """16-bit grey (or colour) values -> uint8, keeping the sensor's real range.

    A 10- or 12-bit sensor published as mono16 fills only 0..1023 or 0..4095; ``>> 8`` (and
    cv_bridge's ``* 255 / 65535``, the same up to rounding) leaves it at 0..3 or 0..15, nearly
    black. Here the value is shifted by ``bit_depth - 8`` instead (truncating; values above the
    stated depth are clipped to 255; a depth below 8 shifts left):

    * ``bit_depth`` 1..16: the sensor's bit depth, the same mapping on every frame (16 gives
      ``>> 8``, cv_bridge's mapping up to rounding);
    * ``bit_depth`` 0 (auto): the bit length of this image's maximum, at least 8: a 12-bit
      image whose brightest pixel is 4000 is shifted by 4, one that already fits 0..255 is
      kept as it is. The mapping is per image, so a frame that is darker by more than a factor of
      two (or a left and right image whose maxima straddle a power of two) is scaled differently;
      set the real bit depth for a stable mapping.

    Args:
        values: an unsigned integer array (uint16, or uint8 which is returned unchanged).
        bit_depth: 0 or 1..16, see above.

    Raises:
        ValueError: ``bit_depth`` outside 0..16.
    """
    _check_bit_depth(bit_depth)
    if values.dtype == np.uint8:
        return values
    depth = bit_depth or max(8, int(values.max()).bit_length() if values.size else 8)
    if depth >= 8:
        return np.minimum(values >> (depth - 8), 255).astype(np.uint8)
    return np.minimum(values.astype(np.uint32) << (8 - depth), 255).astype(np.uint8)


def _check_bit_depth(bit_depth: int) -> None:
    if (
        isinstance(bit_depth, bool)
        or not isinstance(bit_depth, (int, np.integer))
        or not (0 <= bit_depth <= 16)
    ):
        raise ValueError(
            f"bit_depth must be 0 (auto: from the image's maximum) or the sensor's bit depth "
            f"1..16, got {bit_depth!r}"
        )


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


# (channels, stored as BGR) -> cvtColor code to RGB; cvtColor is 4-10x faster than a numpy copy
# per channel (1242x375 bgr8: 0.3 ms against 2.6 ms)
_REORDER = {
    (3, True): cv2.COLOR_BGR2RGB,
    (4, True): cv2.COLOR_BGRA2RGB,
    (4, False): cv2.COLOR_RGBA2RGB,
}


def _reorder(pixels: np.ndarray, bgr: bool) -> np.ndarray:
    """RGB from 3- or 4-channel pixels in RGB(A) or BGR(A) order, alpha dropped."""
    code = _REORDER.get((pixels.shape[2], bgr))
    return np.ascontiguousarray(pixels) if code is None else cv2.cvtColor(pixels, code)


# --------------------------------------------------------------------------- compressed


def is_compressed(msg: Any) -> bool:
    """Whether ``msg`` is a sensor_msgs/CompressedImage (it has ``format``, no ``encoding``)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def _parse_format(fmt: str) -> tuple[str, str, str]:
    """image_transport's ``format`` -> (original encoding, codec, encoding of the compressed data).

    ``"rgb8; jpeg compressed bgr8"`` -> ``("rgb8", "jpeg", "bgr8")``; ``"mono16; png compressed "``
    -> ``("mono16", "png", "")``; ``"jpeg"`` (older publishers) -> ``("", "jpeg", "")``.
    """
    fmt = str(fmt).strip()
    if ";" not in fmt:
        return "", fmt.lower(), ""
    encoding, rest = (part.strip() for part in fmt.split(";", 1))
    words = rest.split()
    codec = words[0].lower() if words else ""
    packed = words[2] if len(words) > 2 and words[1] == "compressed" else ""
    return encoding, codec, packed


def compressed_to_rgb(msg: CompressedImage, bit_depth: int = 0) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG or PNG) as (H, W, 3) uint8 RGB.

    ``format`` is read as image_transport's ``compressed`` plugin writes it:
    ``"<encoding>; <jpeg|png> compressed <bgr8|mono8|...>"`` (colour data is BGR unless the
    part after ``compressed`` names an rgb encoding), or a bare ``"jpeg"`` / ``"png"`` from older
    publishers. The bytes are decoded with ``cv2.imdecode`` whatever the codec says (it reads
    the file signature). 16-bit PNG goes through :func:`reduce_16bit` with ``bit_depth``; a
    Bayer image sent as PNG (``"bayer_rggb8; png compressed "``: the raw mosaic) is demosaiced
    as :func:`image_to_rgb` does. JPEG carries 8 bits only: a 10/12-bit camera should be sent as
    PNG to keep its range.

    Raises:
        EncodingError: ``compressedDepth`` (a depth image, not a camera image), a codec outside
            :data:`COMPRESSED_FORMATS`, or an original encoding outside
            :data:`SUPPORTED_ENCODINGS`.
        MalformedImageError: no data, or data that does not decode (corrupt or truncated).
        ValueError: ``bit_depth`` outside 0..16.
    """
    fmt = str(msg.format)
    encoding, codec, packed = _parse_format(fmt)
    if "compresseddepth" in fmt.lower():
        raise EncodingError(
            fmt,
            COMPRESSED_FORMATS,
            what="CompressedImage format",
            advice="This is compressed_depth_image_transport's depth encoding, not a camera "
            "image: subscribe to the camera's '<image>/compressed' (or raw) topic instead.",
        )
    if codec not in ("", "jpg", *COMPRESSED_FORMATS):
        raise EncodingError(
            fmt,
            COMPRESSED_FORMATS,
            what="CompressedImage format",
            advice="Publish with image_transport's 'compressed' plugin set to jpeg or png "
            "(parameter '<image>.compressed.format'), or send raw images.",
        )
    if encoding and encoding not in SUPPORTED_ENCODINGS:
        raise EncodingError(encoding, SUPPORTED_ENCODINGS, what="compressed input image encoding")
    _check_bit_depth(bit_depth)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise MalformedImageError(
            f"CompressedImage (format {fmt!r}) has no data: an empty message; is the camera "
            "driver publishing before it has a frame?"
        )
    try:
        pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        pixels = None
    if pixels is None or pixels.size == 0:
        raise MalformedImageError(
            f"CompressedImage (format {fmt!r}): its {data.size} bytes do not decode as an image "
            f"(first bytes {bytes(data[:8]).hex(' ')}): corrupt or truncated data, or not "
            f"{' or '.join(COMPRESSED_FORMATS)}; check the publisher's image_transport plugin"
        )
    if pixels.dtype not in (np.uint8, np.uint16):
        raise EncodingError(
            f"{fmt} ({pixels.dtype.name} pixels)",
            ("8-bit", "16-bit"),
            what="CompressedImage pixel type",
            advice="Camera images are 8- or 16-bit integers; send those.",
        )
    if pixels.ndim == 2:
        if encoding in _CVT_TO_RGB and encoding.startswith("bayer") and not packed:
            return cv2.cvtColor(reduce_16bit(pixels, bit_depth), _CVT_TO_RGB[encoding])
        return _gray_to_rgb(reduce_16bit(pixels, bit_depth))
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise EncodingError(
            f"{fmt} (pixels of shape {pixels.shape})",
            ("1", "3", "4 channels"),
            what="CompressedImage channel count",
            advice="Send grey, BGR or BGRA images.",
        )
    return _reorder(reduce_16bit(pixels, bit_depth), bgr=not packed.startswith("rgb"))


def compress_image(
    image: np.ndarray, fmt: str = "jpeg", quality: int = 95
) -> tuple[str, np.ndarray]:
    """Encode an image as image_transport's ``compressed`` plugin does.

    Args:
        image: (H, W, 3) uint8 RGB, (H, W) uint8 grey, or (H, W) uint16 grey (PNG only).
        fmt: ``jpeg`` or ``png``.
        quality: JPEG quality 1..100 (image_transport's default is 95); unused for PNG.

    Returns:
        ``(format, data)``: the CompressedImage ``format`` string (``"rgb8; jpeg compressed
        bgr8"``, ``"mono8; png compressed "``, ...) and the encoded bytes as a uint8 array.
    """
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(COMPRESSED_FORMATS)}, got {fmt!r}")
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
        encoding, packed, pixels = "rgb8", "bgr8", np.ascontiguousarray(arr[..., ::-1])
    elif arr.ndim == 2 and arr.dtype == np.uint8:
        encoding, packed, pixels = "mono8", "mono8" if fmt == "jpeg" else "", arr
    elif arr.ndim == 2 and arr.dtype == np.uint16 and fmt == "png":
        encoding, packed, pixels = "mono16", "", arr
    else:
        raise ValueError(
            f"{fmt} needs an (H, W, 3) uint8 RGB or (H, W) uint8 grey image"
            + (" or (H, W) uint16 grey" if fmt == "png" else "")
            + f", got {arr.dtype.name} {arr.shape}"
        )
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, data = cv2.imencode("." + fmt, pixels, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {arr.dtype.name} {arr.shape} image as {fmt}")
    # image_transport writes "<encoding>; png compressed " with a trailing space for grey PNG
    return f"{encoding}; {fmt} compressed {packed}", data.reshape(-1)


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
        raise EncodingError(encoding, ARRAY_ENCODINGS, what="output image encoding")
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


def rgb_to_compressed(
    rgb: np.ndarray, fmt: str = "jpeg", header: Header | None = None, quality: int = 95
) -> CompressedImage:
    """A sensor_msgs/CompressedImage of ``rgb`` as image_transport's ``compressed`` plugin
    publishes it (see :func:`compress_image` for ``fmt``, ``quality`` and grey images).

    ``header`` is stored as given; a default Header when None.
    """
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    fmt_string, data = compress_image(rgb, fmt, quality)
    msg = _new_msg(CompressedImage)
    msg.header = header if header is not None else Header()
    msg.format = fmt_string
    msg.data = _to_byte_array(data)
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
