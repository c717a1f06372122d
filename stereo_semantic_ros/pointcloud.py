"""Point clouds as numpy structured arrays, laid out exactly as the published PointCloud2.

====== ====== ======= =============================================================
field  offset type    meaning
====== ====== ======= =============================================================
x      0      float32 metres, left optical frame (x right)
y      4      float32 metres (y down)
z      8      float32 metres along the optical axis; NaN (all of x, y, z) = invalid
rgb    12     float32 uint32 ``(r << 16) | (g << 8) | b`` reinterpreted as float32
label  16     uint32  class id of the label set, 255 = unknown
conf.  20     float32 optional: stereo confidence in [0, 1]
====== ====== ======= =============================================================

A point is 20 bytes, 24 with confidence; no padding. No ROS imports here:
:mod:`stereo_semantic_ros.ros.conversions` turns these arrays into messages.

Who reads it, and why this layout:

* x, y, z, rgb are stereo_image_proc's cloud with ``avoid_point_cloud_padding`` (16 bytes),
  so RViz's RGB8 colour transformer and every stereo_image_proc consumer read it unchanged.
* ``label`` is uint32 because PCL's ``pcl::PointXYZRGBL`` registers ``(std::uint32_t, label)``
  (``common/include/pcl/impl/point_types.hpp``) and ``pcl::fromROSMsg`` maps a message field to
  a point member only when name *and* datatype match (``FieldMatches`` in
  ``PCLPointField.h``). A uint8 label does not match: PCL up to 1.14 (Humble, Jazzy, Kilted on
  Ubuntu) warns "Failed to find match for field 'label'" and leaves every label 0; 1.15 casts it
  with a warning per cloud. ``rgb`` float32 matches PCL's ``rgba`` member by PCL's own special
  case for the name "rgb".
* Offsets are NOT PCL's in-memory struct (x 0, y 4, z 8, padding, rgba 16, label 20, 32 bytes):
  fromROSMsg copies by name, so any offsets work. Matching them would spare one copy per point
  (PCL then copies the 24 mapped bytes of a point at once instead of x..z and rgb..label
  separately) but cost 60 % more bytes on the wire (32 vs 20), and PCL's single-memcpy path
  for a whole cloud is not taken for ``PointXYZRGBL`` either way (it needs the mapped bytes to
  fill the whole 32-byte point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_XYZ_RGB_LABEL = (
    ("x", "<f4", 0),
    ("y", "<f4", 4),
    ("z", "<f4", 8),
    ("rgb", "<f4", 12),
    ("label", "<u4", 16),
)
_CONFIDENCE = ("confidence", "<f4", 20)


def cloud_dtype(with_confidence: bool = False) -> np.dtype:
    """Structured dtype of one point: 20 bytes, or 24 with the ``confidence`` field (see the
    module docstring for the layout and why ``label`` is uint32).

    Little-endian whatever the host, because the message says ``is_bigendian = False``.
    """
    fields = _XYZ_RGB_LABEL + ((_CONFIDENCE,) if with_confidence else ())
    return np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": [f[1] for f in fields],
            "offsets": [f[2] for f in fields],
            "itemsize": 24 if with_confidence else 20,
        }
    )


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pack uint8 colours ``(..., 3)`` (R, G, B) into float32 ``(...)`` as PCL does.

    The uint32 ``(r << 16) | (g << 8) | b`` (alpha byte 0) is reinterpreted, not converted,
    as float32. Its top byte is zero, so the float is never NaN and survives copies.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(
            f"pack_rgb expects a uint8 array of shape (..., 3), got {rgb.dtype} {rgb.shape}"
        )
    packed = rgb[..., 0].astype(np.uint32) << 16
    packed |= rgb[..., 1].astype(np.uint32) << 8
    packed |= rgb[..., 2]
    return packed.view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`: float32 ``(...)`` -> uint8 ``(..., 3)`` RGB."""
    packed = np.asarray(packed)
    if packed.dtype.kind != "f" or packed.dtype.itemsize != 4:
        # A float64 here has already lost the bit pattern; converting it back would be wrong.
        raise ValueError(f"unpack_rgb expects float32 packed colours, got {packed.dtype}")
    # Reinterpret, never convert: a PCL colour with alpha 255 and red >= 128 is a NaN float,
    # and a float conversion could quiet it and flip a colour bit. Same byte order, unsigned view.
    bits = packed.view(packed.dtype.str.replace("f", "u"))
    out = np.empty(packed.shape + (3,), dtype=np.uint8)
    out[..., 0] = (bits >> 16) & 0xFF
    out[..., 1] = (bits >> 8) & 0xFF
    out[..., 2] = bits & 0xFF
    return out


@dataclass(frozen=True)
class PointCloudOptions:
    """What the ``points2`` output contains.

    Attributes:
        organized: True -> an (H, W) cloud that keeps invalid points as NaN (like
            stereo_image_proc); False -> a dense (N,) cloud of valid points only.
        stride: keep every ``stride``-th pixel in both directions (>= 1).
        max_depth: points with z farther than this many metres become invalid (> 0; inf = off).
        with_confidence: add the float32 ``confidence`` field.
    """

    organized: bool = True
    stride: int = 1
    max_depth: float = math.inf
    with_confidence: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.stride, bool) or not isinstance(self.stride, (int, np.integer)):
            raise ValueError(f"point cloud stride must be an integer >= 1, got {self.stride!r}")
        if self.stride < 1:
            raise ValueError(
                f"point cloud stride must be >= 1 (1 = every pixel), got {self.stride}"
            )
        try:
            max_depth = float(self.max_depth)
        except (TypeError, ValueError):
            raise ValueError(
                f"point cloud max_depth must be a number of metres, got {self.max_depth!r}"
            ) from None
        if math.isnan(max_depth) or max_depth <= 0:
            raise ValueError(
                f"point cloud max_depth must be > 0 metres (inf = no limit), got {self.max_depth}"
            )


def apply_stride_and_range(
    xyz: np.ndarray, stride: int = 1, max_depth: float = math.inf
) -> np.ndarray:
    """CPU version of what the pipeline does on the GPU before :func:`build_cloud`.

    Args:
        xyz: (H, W, 3) float32 points in metres, NaN where invalid.
        stride: keep pixels ``[::stride, ::stride]``; slice the colour, label and confidence
            images the same way.
        max_depth: points with z > max_depth metres become NaN (all three coordinates).

    Returns:
        A new (ceil(H/stride), ceil(W/stride), 3) float32 array; the input is not modified.
    """
    PointCloudOptions(stride=stride, max_depth=max_depth)  # one place for the validation
    xyz = _check_xyz(xyz)
    out = np.array(xyz[::stride, ::stride], dtype=np.float32, copy=True)
    if math.isfinite(max_depth):
        out[out[..., 2] > max_depth] = np.nan
    return out


def build_cloud(
    xyz: np.ndarray,
    rgb: np.ndarray,
    labels: np.ndarray,
    confidence: np.ndarray | None = None,
    organized: bool = True,
) -> np.ndarray:
    """Assemble the structured point array for ``points2``.

    Args:
        xyz: (H, W, 3) float32 metres in the left optical frame; NaN where invalid.
        rgb: (H, W, 3) uint8 RGB colour of each point.
        labels: (H, W) uint8 class ids (255 = unknown); stored as uint32 (PCL's label type).
        confidence: (H, W) float32 in [0, 1], or None for a cloud without that field.
        organized: True -> shape (H, W) keeping invalid (NaN) points; False -> shape (N,)
            holding only the points whose x, y and z are all finite, in row-major order.

    Returns:
        Array of :func:`cloud_dtype` ``(confidence is not None)``.
    """
    xyz = _check_xyz(xyz)
    h, w = xyz.shape[:2]
    rgb = np.asarray(rgb)
    labels = np.asarray(labels)
    if rgb.shape != (h, w, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 ({h}, {w}, 3) like xyz, got {rgb.dtype} {rgb.shape}")
    if labels.shape != (h, w) or labels.dtype != np.uint8:
        raise ValueError(f"labels must be uint8 ({h}, {w}), got {labels.dtype} {labels.shape}")
    if confidence is not None:
        confidence = np.asarray(confidence)
        if confidence.shape != (h, w) or confidence.dtype.kind != "f":
            raise ValueError(
                f"confidence must be float ({h}, {w}), got {confidence.dtype} {confidence.shape}"
            )

    n = h * w
    if organized:
        shape: tuple[int, ...] = (h, w)

        def pick(a: np.ndarray) -> np.ndarray:
            return a.reshape(n, *a.shape[2:])
    else:
        # Per-channel isfinite and take() on flat indices: several times faster than
        # isfinite(xyz).all(axis=2) and boolean indexing of (H, W, 3) arrays.
        keep = np.isfinite(xyz[..., 0]) & np.isfinite(xyz[..., 1]) & np.isfinite(xyz[..., 2])
        index = np.flatnonzero(keep)
        shape = (index.size,)

        def pick(a: np.ndarray) -> np.ndarray:
            return a.reshape(n, *a.shape[2:]).take(index, axis=0)

    # zeros, not empty: no byte of a message or a bag is left to chance, should the layout get
    # padding again
    cloud = np.zeros(math.prod(shape), dtype=cloud_dtype(confidence is not None))
    pts = pick(xyz)
    cloud["x"] = pts[:, 0]
    cloud["y"] = pts[:, 1]
    cloud["z"] = pts[:, 2]
    cloud["rgb"] = pack_rgb(pick(rgb))
    cloud["label"] = pick(labels)
    if confidence is not None:
        cloud["confidence"] = pick(confidence)
    return cloud.reshape(shape)


def _check_xyz(xyz: np.ndarray) -> np.ndarray:
    xyz = np.asarray(xyz)
    if xyz.ndim != 3 or xyz.shape[2] != 3 or xyz.dtype.kind != "f":
        raise ValueError(f"xyz must be a float (H, W, 3) array, got {xyz.dtype} {xyz.shape}")
    return xyz
