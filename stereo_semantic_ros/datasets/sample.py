"""The one sample format every dataset loader, the generator, training and evaluation share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration


@dataclass
class StereoSample:
    """A rectified stereo pair with whatever ground truth its source has.

    Disparity follows the package convention (see :mod:`stereo_semantic_ros.calibration`):
    positive pixels, left pixel ``(u, v)`` matches right pixel ``(u - d, v)``.

    Attributes:
        left, right: (H, W, 3) uint8 RGB.
        calib: calibration of the rectified pair at this resolution.
        disparity: (H, W) float32 left-view disparity in pixels; 0 where ``valid`` is False.
        valid: (H, W) bool, pixels with ground-truth disparity ("All" in KITTI terms).
        noc: (H, W) bool, valid pixels also visible in the right view ("NOC").
        labels: (H, W) uint8 train ids, 255 = ignore.
        depth: (H, W) float32 metres, NaN where unknown.
        right_disparity: (H, W) float32 right-view disparity, 0 where unknown.
        name: identifier, unique within its dataset.
        meta: anything else the source wants to keep (paths, scene ids).
    """

    left: np.ndarray
    right: np.ndarray
    calib: StereoCalibration
    disparity: np.ndarray | None = None
    valid: np.ndarray | None = None
    noc: np.ndarray | None = None
    labels: np.ndarray | None = None
    depth: np.ndarray | None = None
    right_disparity: np.ndarray | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.left.shape != self.right.shape or self.left.ndim != 3 or self.left.shape[2] != 3:
            raise ValueError(
                f"sample {self.name!r}: left {self.left.shape} and right {self.right.shape} "
                "must both be (H, W, 3)"
            )
        h, w = self.left.shape[:2]
        for key in ("disparity", "valid", "noc", "labels", "depth", "right_disparity"):
            value = getattr(self, key)
            if value is not None and value.shape != (h, w):
                raise ValueError(f"sample {self.name!r}: {key} is {value.shape}, expected {(h, w)}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.left.shape[0], self.left.shape[1]
