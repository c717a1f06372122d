"""Classical stereo baseline: OpenCV StereoSGBM set up as ROS's ``stereo_image_proc`` sets it up.

``stereo_image_proc``'s ``disparity_node`` (ROS 2, ros-perception/image_pipeline,
``stereo_image_proc/src/stereo_image_proc/disparity_node.cpp``) runs OpenCV's block matchers on
MONO8 rectified images; with ``stereo_algorithm: 1`` it uses ``cv::StereoSGBM``. The defaults it
declares (and documents in ``stereo_image_proc/doc/components.rst``) are:

============================  =======  ==================================================
parameter                     default  used here
============================  =======  ==================================================
``prefilter_cap``             31       ``preFilterCap = 31``
``correlation_window_size``   15       ``blockSize = 15``
``min_disparity``             0        ``minDisparity = 0``
``disparity_range``           64       data set dependent, see below
``uniqueness_ratio``          15.0     ``uniquenessRatio = 15``
``speckle_size``              100      ``speckleWindowSize = 100``
``speckle_range``             4        ``speckleRange = 4``
``P1``                        200.0    ``P1 = 200``
``P2``                        400.0    ``P2 = 400``
``disp12_max_diff``           0        ``disp12MaxDiff = 0``
``full_dp``                   false    ``mode = MODE_SGBM``
``texture_threshold``         10       not used: a StereoBM-only setting
``prefilter_size``            9        not used: a StereoBM-only setting
============================  =======  ==================================================

(The node's own default algorithm is StereoBM, ``stereo_algorithm: 0``; the values above are what
it hands to StereoSGBM when SGBM is selected.) ``disparity_range`` is the one value that depends
on the camera: the node's 64 px would cut off near objects of a KITTI-like rig, so the baseline
searches ``disparity_range_for(max_gt_disparity)`` pixels -- the data set's largest disparity
rounded up to a multiple of 16, within the node's allowed 32..4096 -- as a user configuring the
node for that rig would.

Output conventions follow the package (see :mod:`stereo_semantic_ros.calibration` and
:mod:`stereo_semantic_ros.pipeline`): float32 disparity in pixels, ``INVALID_DISPARITY`` (-1)
where SGBM gives no answer. OpenCV returns fixed-point disparity, 16 times the true value, with
``(minDisparity - 1) * 16`` marking invalid pixels; by construction the left-most
``minDisparity + disparity_range`` columns are invalid (no right-image pixel to compare with).
A disparity of 0 has no finite depth and is likewise invalid here, as in the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.evaluation.predictors import Prediction
from stereo_semantic_ros.pipeline import INVALID_DISPARITY

__all__ = [
    "STEREO_IMAGE_PROC_SGBM_DEFAULTS",
    "SgbmBaseline",
    "SgbmFilledBaseline",
    "SgbmParams",
    "disparity_range_for",
    "fill_holes_rowwise",
]

_FIXED_POINT = 16  # OpenCV's block matchers return 16 * disparity as int16
_RANGE_LIMITS = (32, 4096)  # disparity_range bounds declared by disparity_node (step 16)


@dataclass(frozen=True)
class SgbmParams:
    """StereoSGBM settings, named as the ``stereo_image_proc`` parameters they mirror.

    Attributes:
        prefilter_cap: clip of the x-derivative prefilter (OpenCV ``preFilterCap``).
        correlation_window_size: odd matching block edge in pixels (``blockSize``).
        min_disparity: smallest disparity searched, pixels.
        disparity_range: number of disparities searched, a multiple of 16 (``numDisparities``).
        uniqueness_ratio: percent margin by which the best cost must beat the second best.
        speckle_size: connected regions smaller than this (pixels) are removed;
            0 disables the filter (``speckleWindowSize``).
        speckle_range: largest disparity step (pixels) inside one speckle region.
        p1, p2: smoothness penalties for disparity changes of 1 px and of more than 1 px.
        disp12_max_diff: largest left-right check difference in pixels; 0 is as strict as it
            gets (OpenCV disables the check only for negative values).
        full_dp: True runs the full 8-path variant (``MODE_HH``), False the 5-path ``MODE_SGBM``.
    """

    prefilter_cap: int = 31
    correlation_window_size: int = 15
    min_disparity: int = 0
    disparity_range: int = 64
    uniqueness_ratio: float = 15.0
    speckle_size: int = 100
    speckle_range: int = 4
    p1: float = 200.0
    p2: float = 400.0
    disp12_max_diff: int = 0
    full_dp: bool = False

    def __post_init__(self) -> None:
        if self.disparity_range <= 0 or self.disparity_range % _FIXED_POINT:
            raise ValueError(
                f"disparity_range must be a positive multiple of 16, got {self.disparity_range}; "
                "use disparity_range_for(max_disparity)"
            )
        if self.correlation_window_size < 1 or self.correlation_window_size % 2 == 0:
            raise ValueError(
                f"correlation_window_size must be odd and >= 1, got {self.correlation_window_size}"
            )
        if not 1 <= self.prefilter_cap <= 63:
            raise ValueError(f"prefilter_cap must be within 1..63, got {self.prefilter_cap}")
        if not 0 <= self.p1 < self.p2:
            raise ValueError(f"SGBM needs 0 <= P1 < P2, got P1={self.p1}, P2={self.p2}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


STEREO_IMAGE_PROC_SGBM_DEFAULTS = SgbmParams()
"""``stereo_image_proc`` disparity_node's declared defaults (``disparity_range`` 64 included)."""


def disparity_range_for(max_disparity: float) -> int:
    """Smallest multiple of 16 whose search (0 .. range - 1 px) covers ``max_disparity`` pixels,
    clamped to the 32..4096 that ``disparity_node`` accepts."""
    if not math.isfinite(max_disparity) or max_disparity < 0:
        raise ValueError(f"max_disparity must be finite and >= 0, got {max_disparity}")
    needed = math.ceil(max_disparity) + 1  # disparities 0..ceil(max) inclusive
    rounded = _FIXED_POINT * math.ceil(needed / _FIXED_POINT)
    return int(min(max(rounded, _RANGE_LIMITS[0]), _RANGE_LIMITS[1]))


class SgbmBaseline:
    """OpenCV StereoSGBM as a predictor for :func:`~stereo_semantic_ros.evaluation.runner.evaluate`.

    Args:
        params: matcher settings; default: ``stereo_image_proc``'s with ``disparity_range``.
        disparity_range: shortcut to override ``params.disparity_range`` (multiple of 16).

    It predicts disparity only (``labels`` is None): SGBM has no semantics.
    """

    name = "StereoSGBM"

    def __init__(
        self, params: SgbmParams | None = None, *, disparity_range: int | None = None
    ) -> None:
        params = params or STEREO_IMAGE_PROC_SGBM_DEFAULTS
        if disparity_range is not None:
            params = SgbmParams(**{**params.to_dict(), "disparity_range": int(disparity_range)})
        self.params = params
        p = params
        self._matcher = cv2.StereoSGBM.create(
            minDisparity=p.min_disparity,
            numDisparities=p.disparity_range,
            blockSize=p.correlation_window_size,
            P1=int(round(p.p1)),
            P2=int(round(p.p2)),
            disp12MaxDiff=p.disp12_max_diff,
            preFilterCap=p.prefilter_cap,
            uniquenessRatio=int(round(p.uniqueness_ratio)),
            speckleWindowSize=p.speckle_size,
            speckleRange=p.speckle_range,
            mode=cv2.StereoSGBM_MODE_HH if p.full_dp else cv2.StereoSGBM_MODE_SGBM,
        )

    @property
    def info(self) -> dict[str, Any]:
        """What the evaluation report records about this predictor."""
        return {
            "algorithm": "OpenCV StereoSGBM",
            "opencv": cv2.__version__,
            "params": self.params.to_dict(),
            "params_source": "ros-perception/image_pipeline stereo_image_proc disparity_node "
            "defaults (disparity_range from the data set)",
        }

    def compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Disparity of a rectified pair.

        Args:
            left, right: (H, W, 3) uint8 RGB or (H, W) uint8 grey, same size.

        Returns:
            (H, W) float32 pixels, ``INVALID_DISPARITY`` where SGBM has no positive answer.
        """
        grey = [_to_grey(img, name) for name, img in (("left", left), ("right", right))]
        if grey[0].shape != grey[1].shape:
            raise ValueError(
                f"left {grey[0].shape} and right {grey[1].shape} differ in size; "
                "a rectified pair has one size"
            )
        fixed = self._matcher.compute(grey[0], grey[1])
        disp = fixed.astype(np.float32) * np.float32(1.0 / _FIXED_POINT)
        # OpenCV's invalid code is (minDisparity - 1) * 16; with minDisparity >= 0 it and a
        # zero disparity both end up <= 0 and have no finite depth.
        return np.where(disp > 0, disp, np.float32(INVALID_DISPARITY)).astype(np.float32)

    def predict(self, sample: StereoSample) -> Prediction:
        """Evaluation hook (a :class:`~stereo_semantic_ros.evaluation.predictors.Predictor`):
        disparity only."""
        return Prediction(disparity=self.compute(sample.left, sample.right), labels=None)


def fill_holes_rowwise(disparity: np.ndarray) -> np.ndarray:
    """Dense disparity: every invalid pixel takes the smaller of its nearest valid neighbours to
    the left and to the right on its row (the background side of an occlusion), or the one
    neighbour it has at a row end; a row without any valid pixel stays invalid.

    Args:
        disparity: (H, W) pixels; non-finite or <= 0 is invalid.

    Returns:
        (H, W) float32, ``INVALID_DISPARITY`` only on rows with no valid pixel.
    """
    d = np.asarray(disparity, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"disparity must be (H, W), got {d.shape}")
    ok = np.isfinite(d) & (d > 0)
    h, w = d.shape
    cols = np.broadcast_to(np.arange(w), (h, w))
    # index of the nearest valid pixel at or left of each column (-1: none), and at or right (w)
    left_idx = np.maximum.accumulate(np.where(ok, cols, -1), axis=1)
    right_idx = np.minimum.accumulate(np.where(ok, cols, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    inf = np.float32(np.inf)
    left_val = np.where(left_idx >= 0, d[rows, np.clip(left_idx, 0, w - 1)], inf)
    right_val = np.where(right_idx < w, d[rows, np.clip(right_idx, 0, w - 1)], inf)
    filled = np.where(ok, d, np.minimum(left_val, right_val))
    return np.where(np.isfinite(filled), filled, np.float32(INVALID_DISPARITY)).astype(np.float32)


class SgbmFilledBaseline:
    """:class:`SgbmBaseline` followed by :func:`fill_holes_rowwise`: the dense classical row.

    A dense network answers every pixel, so the fair classical comparison fills SGBM's holes
    the simple way (the smaller disparity of the nearest valid pixels left and right). Its
    time includes SGBM's.
    """

    name = "StereoSGBM+fill"

    def __init__(self, sgbm: SgbmBaseline) -> None:
        self.sgbm = sgbm

    @property
    def info(self) -> dict[str, Any]:
        return {
            **self.sgbm.info,
            "post_processing": "invalid pixels take min(nearest valid left, nearest valid right) "
            "on their row",
        }

    def predict(self, sample: StereoSample) -> Prediction:
        disp = self.sgbm.compute(sample.left, sample.right)
        return Prediction(disparity=fill_holes_rowwise(disp), labels=None)


def _to_grey(img: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"{name} image must be uint8, got {a.dtype}")
    if a.ndim == 2:
        return np.ascontiguousarray(a)
    if a.ndim == 3 and a.shape[2] == 3:
        # stereo_image_proc matches MONO8 images: same luma conversion as cv_bridge's RGB->MONO8
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    raise ValueError(f"{name} image must be (H, W) or (H, W, 3), got {a.shape}")
