"""Rectified stereo calibration: the numbers that turn disparity into metric depth and points.

Sign convention, stated once for the whole package: disparity ``d`` is positive and a left
pixel ``(u, v)`` matches the right pixel ``(u - d, v)``. Depth ``Z = fx * baseline / (d + doffs)``
metres, where ``doffs = cx_right - cx_left`` is the principal-point offset of the rectified pair
(Middlebury's ``doffs``; stereo_image_proc subtracts ``cx_left - cx_right``). Most rigs are
rectified with equal principal points (doffs = 0); Middlebury and some calibrations are not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np


class CalibrationError(ValueError):
    """A calibration that cannot describe a rectified stereo pair."""


def projection_matrix(p: Sequence[float] | np.ndarray, side: str) -> np.ndarray:
    """A CameraInfo ``P`` (12 numbers, row-major) as a finite 3x4 float64 matrix.

    Raises:
        CalibrationError: not 12 numbers, or a NaN / infinite entry; the message names ``side``.
    """
    try:
        flat = np.asarray(p, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{side} projection matrix P is not numeric: {exc}") from None
    if flat.size != 12:
        raise CalibrationError(
            f"{side} projection matrix P has {flat.size} entries, a 3x4 P needs 12 "
            "(a corrupt or truncated camera_info)"
        )
    if not np.isfinite(flat).all():
        raise CalibrationError(
            f"{side} projection matrix P has non-finite entries ({flat.tolist()}); "
            "the camera_info is corrupt"
        )
    return flat.reshape(3, 4)


@dataclass(frozen=True)
class StereoCalibration:
    """Pinhole intrinsics of the rectified left camera plus the stereo baseline.

    Attributes:
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels.
        baseline: distance between the optical centres in metres (> 0).
        width, height: image size the intrinsics refer to (0 = unknown).
        doffs: ``cx_right - cx_left`` in pixels, the principal-point offset of the right camera;
            a disparity ``d`` is at depth ``fx * baseline / (d + doffs)``.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float
    width: int = 0
    height: int = 0
    doffs: float = 0.0

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy, self.baseline, self.doffs)
        if not all(np.isfinite(v) for v in values):
            raise CalibrationError(f"calibration has non-finite values: {values}")
        if self.fx <= 0 or self.fy <= 0:
            raise CalibrationError(
                f"focal length must be positive (fx={self.fx}, fy={self.fy}); "
                "is the camera_info's P matrix filled in?"
            )
        if self.baseline <= 0:
            raise CalibrationError(
                f"stereo baseline must be positive, got {self.baseline} m; the right camera_info's "
                "P[0,3] must hold -fx*B (rectify the pair with image_proc / camera_calibration)"
            )
        if not math.isfinite(float(self.fx) * float(self.baseline)):
            # every depth is fx * B / d: an overflowing product makes each one inf
            raise CalibrationError(
                f"fx * baseline = {self.fx} * {self.baseline} overflows; the focal length or the "
                "right camera_info's P[0,3] is corrupt"
            )

    @classmethod
    def from_projection_matrices(
        cls,
        p_left: Sequence[float] | np.ndarray,
        p_right: Sequence[float] | np.ndarray,
        width: int = 0,
        height: int = 0,
    ) -> StereoCalibration:
        """Build from the 3x4 projection matrices of a rectified pair (CameraInfo.p).

        ``B = -P_right[0,3] / P_right[0,0]`` as in image_geometry's StereoCameraModel, and
        ``doffs = P_right[0,2] - P_left[0,2]`` (the right camera's principal point may differ).
        """
        pl = projection_matrix(p_left, "left")
        pr = projection_matrix(p_right, "right")
        if pr[0, 0] <= 0:
            raise CalibrationError(
                f"right projection matrix has P[0,0] = {pr[0, 0]}, not a positive focal length; "
                "camera_info not calibrated"
            )
        baseline = -float(pr[0, 3]) / float(pr[0, 0])  # inf on overflow, refused below
        return cls(
            fx=float(pl[0, 0]),
            fy=float(pl[1, 1]),
            cx=float(pl[0, 2]),
            cy=float(pl[1, 2]),
            baseline=float(baseline),
            width=int(width),
            height=int(height),
            doffs=float(pr[0, 2] - pl[0, 2]),
        )

    @property
    def cx_right(self) -> float:
        """Principal point u of the rectified right camera."""
        return self.cx + self.doffs

    def projection_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(P_left, P_right) 3x4 matrices of this rectified pair."""
        p_left = np.array(
            [[self.fx, 0.0, self.cx, 0.0], [0.0, self.fy, self.cy, 0.0], [0.0, 0.0, 1.0, 0.0]]
        )
        p_right = p_left.copy()
        p_right[0, 2] = self.cx_right
        p_right[0, 3] = -self.fx * self.baseline
        return p_left, p_right

    def scaled(self, sx: float, sy: float) -> StereoCalibration:
        """Calibration of the same cameras after resizing the images by (sx, sy)."""
        return replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=round(self.width * sx),
            height=round(self.height * sy),
            doffs=self.doffs * sx,
        )

    def depth_from_disparity(self, disparity: np.ndarray) -> np.ndarray:
        """Metric depth ``fx * B / (d + doffs)`` for positive disparities with a positive
        denominator, NaN elsewhere."""
        d = np.asarray(disparity, dtype=np.float32)
        shifted = d + np.float32(self.doffs)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.float32(self.fx * self.baseline) / shifted
        return np.where((d > 0) & (shifted > 0), z, np.float32(np.nan)).astype(np.float32)

    def disparity_from_depth(self, depth: np.ndarray) -> np.ndarray:
        """Disparity ``fx * B / Z - doffs`` for positive finite depths, 0 (invalid) elsewhere."""
        z = np.asarray(depth, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.float32(self.fx * self.baseline) / z - np.float32(self.doffs)
        ok = np.isfinite(z) & (z > 0) & (d > 0)
        return np.where(ok, d, np.float32(0.0)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StereoCalibration:
        return cls(
            **{k: data[k] for k in ("fx", "fy", "cx", "cy", "baseline") if k in data},
            width=int(data.get("width", 0)),
            height=int(data.get("height", 0)),
            doffs=float(data.get("doffs", 0.0)),
        )
