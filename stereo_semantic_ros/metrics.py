"""Evaluation metrics for disparity, metric depth and semantic segmentation (numpy only).

Every metric comes in two forms: a function for one image and an accumulator that sums the
per-pixel quantities over a data set, so that data-set figures are pixel-weighted the way the
KITTI devkit computes them (a large image counts more than a small one), not a mean of per-image
means. ``Accumulator.compute()`` after updating with several images equals the function applied
to all those images concatenated.

Conventions:

* Disparities are in pixels, depths in metres; arrays are (H, W) (any shape works as long as
  ``pred``, ``gt`` and ``valid`` agree).
* Percentages (``bad*``, ``d1``) are in percent (0..100); depth ``delta*`` are fractions (0..1),
  as the respective literatures report them.
* A metric over zero pixels is NaN, with ``n == 0``; nothing raises for an empty mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stereo_semantic_ros.labels import IGNORE_LABEL

__all__ = [
    "BENCHMARK_THRESHOLDS",
    "DEPTH_CAP_M",
    "BenchmarkAccumulator",
    "ConfusionMatrix",
    "DepthAccumulator",
    "DisparityAccumulator",
    "MetricInputError",
    "benchmark_disparity_metrics",
    "depth_metrics",
    "disparity_metrics",
]


DEPTH_CAP_M = 80.0
"""Range cap of every depth metric in metres (the usual KITTI cap): ground truth beyond it is
not scored and predictions are clipped to it, in evaluation and replay alike."""


class MetricInputError(ValueError):
    """The arrays handed to a metric do not fit together (shape, range, class count)."""


def _check_same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise MetricInputError(
            f"shape mismatch: {listing}; pass arrays of the same (H, W) shape "
            "(resize the prediction to the ground-truth resolution first)"
        )


def _as_mask(valid: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if valid is None:
        return np.ones(shape, dtype=bool)
    return np.asarray(valid).astype(bool, copy=False)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# Disparity
# --------------------------------------------------------------------------------------------

# Order of the running sums kept by DisparityAccumulator.
_DISP_FIELDS = ("abs_err", "bad1", "bad2", "bad3", "d1", "n")


def _scored_pixels(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and ground truth (float64, 1D) of the pixels that are scored."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    mask = _as_mask(valid, gt.shape)
    _check_same_shape(pred=pred, gt=gt, valid=mask)
    # A ground truth that is NaN/inf cannot be scored, whatever the mask says.
    mask = mask & np.isfinite(gt)
    return pred[mask].astype(np.float64), gt[mask].astype(np.float64)


def _disparity_sums(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    p, g = _scored_pixels(pred, gt, valid)
    # NaN/inf/negative predictions are "no answer": score them as pred = 0 for the EPE and as
    # wrong for every threshold metric, so that a network cannot improve its scores by
    # abstaining (KITTI's devkit similarly fills holes rather than skipping them).
    bad_pred = ~(np.isfinite(p) & (p >= 0))
    p[bad_pred] = 0.0
    err = np.abs(p - g)
    d1 = (err > 3.0) & (err > 0.05 * np.abs(g))
    return np.array(
        [
            err.sum(),
            np.count_nonzero((err > 1.0) | bad_pred),
            np.count_nonzero((err > 2.0) | bad_pred),
            np.count_nonzero((err > 3.0) | bad_pred),
            np.count_nonzero(d1 | bad_pred),
            g.size,
        ],
        dtype=np.float64,
    )


def _disparity_from_sums(sums: np.ndarray) -> dict[str, float]:
    abs_err, bad1, bad2, bad3, d1, n = (float(v) for v in sums)
    return {
        "epe": _ratio(abs_err, n),
        "bad1": 100.0 * _ratio(bad1, n),
        "bad2": 100.0 * _ratio(bad2, n),
        "bad3": 100.0 * _ratio(bad3, n),
        "d1": 100.0 * _ratio(d1, n),
        "n": n,
    }


def disparity_metrics(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
) -> dict[str, float]:
    """Disparity errors of one image over the pixels where ``valid`` is True.

    Args:
        pred: predicted disparity in pixels, any float dtype. NaN, +-inf and negative values
            mean "no prediction" and are scored as the worst case: the pixel counts as bad for
            ``bad1/bad2/bad3/d1`` regardless of its ground truth, and contributes ``|gt|`` to
            the EPE (as if pred were 0).
        gt: ground-truth disparity in pixels, same shape. Non-finite ground truth is skipped
            even where ``valid`` is True.
        valid: bool mask of pixels to score (e.g. ``StereoSample.valid`` for KITTI "All",
            ``StereoSample.noc`` for "NOC"); None scores every pixel with finite ``gt``.

    Returns:
        ``epe``: mean absolute error (px); ``bad1``, ``bad2``, ``bad3``: percent of scored pixels
        with error > 1, 2, 3 px; ``d1``: KITTI 2015 D1, percent of scored pixels with error
        > 3 px **and** > 5 % of the ground truth; ``n``: number of scored pixels (float).
        With ``n == 0`` every metric is NaN.
    """
    return _disparity_from_sums(_disparity_sums(pred, gt, valid))


class DisparityAccumulator:
    """Pixel-weighted disparity metrics over many images (KITTI devkit style).

    Use one instance per region, e.g. one for "NOC" (``sample.noc``) and one for "All"
    (``sample.valid``).
    """

    def __init__(self) -> None:
        self._sums = np.zeros(len(_DISP_FIELDS), dtype=np.float64)

    def update(
        self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
    ) -> dict[str, float]:
        """Add one image (same arguments as :func:`disparity_metrics`); returns its metrics."""
        sums = _disparity_sums(pred, gt, valid)
        self._sums += sums
        return _disparity_from_sums(sums)

    def compute(self) -> dict[str, float]:
        """Metrics over every pixel added so far (NaN with ``n == 0`` before any update)."""
        return _disparity_from_sums(self._sums)

    def reset(self) -> None:
        self._sums[:] = 0.0


# --------------------------------------------------------------------------------------------
# Disparity, two-view benchmark style (Middlebury / ETH3D)
# --------------------------------------------------------------------------------------------

BENCHMARK_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
"""Error thresholds (px) of the Middlebury / ETH3D "bad-k" figures."""


def _bad_key(threshold: float) -> str:
    return f"bad{threshold:g}"


def _benchmark_sums(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None, thresholds: Sequence[float]
) -> np.ndarray:
    p, g = _scored_pixels(pred, gt, valid)
    has = np.isfinite(p) & (p > 0)
    err = np.abs(np.where(has, p, 0.0) - g)
    sums = [float(g.size), float(np.count_nonzero(has)), err.sum(), err[has].sum()]
    sums += [np.count_nonzero((err > t) | ~has) for t in thresholds]
    sums += [np.count_nonzero((err > t) & has) for t in thresholds]
    return np.asarray(sums, dtype=np.float64)


def _benchmark_from_sums(sums: np.ndarray, thresholds: Sequence[float]) -> dict[str, object]:
    n, n_pred, abs_dense, abs_pred = (float(v) for v in sums[:4])
    k = len(thresholds)
    dense: dict[str, float] = {"epe": _ratio(abs_dense, n), "n": n}
    predicted: dict[str, float] = {"epe": _ratio(abs_pred, n_pred), "n": n_pred}
    for i, t in enumerate(thresholds):
        dense[_bad_key(t)] = 100.0 * _ratio(float(sums[4 + i]), n)
        predicted[_bad_key(t)] = 100.0 * _ratio(float(sums[4 + k + i]), n_pred)
    return {"dense": dense, "predicted": predicted, "density": 100.0 * _ratio(n_pred, n)}


def benchmark_disparity_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray | None = None,
    thresholds: Sequence[float] = BENCHMARK_THRESHOLDS,
) -> dict[str, object]:
    """Middlebury / ETH3D style disparity figures of one image, dense and on predicted pixels.

    A prediction is valid where it is finite and > 0 (the package's "no answer" is -1).

    Returns:
        ``dense``: every scored pixel counts, one without a valid prediction as wrong for every
        ``bad-k`` and with error ``|gt|`` in the EPE (as :func:`disparity_metrics`);
        ``predicted``: only the scored pixels the method predicts (the sparse view of SGBM);
        each ``{"epe", "bad0.5", "bad1", "bad2", "bad4", "n"}`` (px, %, pixel count);
        ``density``: % of scored pixels with a valid prediction.
    """
    return _benchmark_from_sums(_benchmark_sums(pred, gt, valid, thresholds), thresholds)


class BenchmarkAccumulator:
    """Pixel-weighted :func:`benchmark_disparity_metrics` over many images."""

    def __init__(self, thresholds: Sequence[float] = BENCHMARK_THRESHOLDS) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        self._sums = np.zeros(4 + 2 * len(self.thresholds), dtype=np.float64)

    def update(
        self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
    ) -> dict[str, object]:
        sums = _benchmark_sums(pred, gt, valid, self.thresholds)
        self._sums += sums
        return _benchmark_from_sums(sums, self.thresholds)

    def compute(self) -> dict[str, object]:
        return _benchmark_from_sums(self._sums, self.thresholds)

    @property
    def count(self) -> int:
        """Scored pixels so far."""
        return int(self._sums[0])


# --------------------------------------------------------------------------------------------
# Depth
# --------------------------------------------------------------------------------------------

_DEPTH_FIELDS = (
    "delta1",
    "delta2",
    "delta3",
    "abs_rel",
    "sq_rel",
    "sq_err",
    "sq_log",
    "log",
    "n",
    "n_gt",
)


def _depth_sums(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None, max_depth: float | None
) -> np.ndarray:
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    mask = _as_mask(valid, gt.shape)
    _check_same_shape(pred=pred, gt=gt, valid=mask)
    with np.errstate(invalid="ignore"):
        gt_ok = mask & np.isfinite(gt) & (gt > 0)
        if max_depth is not None:
            gt_ok &= gt <= max_depth
        both = gt_ok & np.isfinite(pred) & (pred > 0)
    p = pred[both].astype(np.float64)
    if max_depth is not None:
        # a near-zero disparity is a depth of thousands of metres; capped like the ground
        # truth, it counts as "far" instead of dominating RMSE and SqRel
        p = np.minimum(p, max_depth)
    g = gt[both].astype(np.float64)
    ratio = np.maximum(p / g, g / p)
    diff = p - g
    d = np.log(p) - np.log(g)
    return np.array(
        [
            np.count_nonzero(ratio < 1.25),
            np.count_nonzero(ratio < 1.25**2),
            np.count_nonzero(ratio < 1.25**3),
            (np.abs(diff) / g).sum(),
            (diff**2 / g).sum(),
            (diff**2).sum(),
            (d**2).sum(),
            d.sum(),
            p.size,
            np.count_nonzero(gt_ok),
        ],
        dtype=np.float64,
    )


def _depth_from_sums(sums: np.ndarray) -> dict[str, float]:
    s = dict(zip(_DEPTH_FIELDS, (float(v) for v in sums), strict=True))
    n = s["n"]
    mean_d2 = _ratio(s["sq_log"], n)
    mean_d = _ratio(s["log"], n)
    # Clamp tiny negative values from floating-point cancellation before the square root.
    sie = max(mean_d2 - mean_d**2, 0.0) if n > 0 else float("nan")
    return {
        "delta1": _ratio(s["delta1"], n),
        "delta2": _ratio(s["delta2"], n),
        "delta3": _ratio(s["delta3"], n),
        "abs_rel": _ratio(s["abs_rel"], n),
        "sq_rel": _ratio(s["sq_rel"], n),
        "rmse": float(np.sqrt(_ratio(s["sq_err"], n))),
        "rmse_log": float(np.sqrt(mean_d2)),
        "silog": float(np.sqrt(sie)),
        "sie": sie,
        "coverage": _ratio(n, s["n_gt"]),
        "n": n,
    }


def depth_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray | None = None,
    max_depth: float | None = DEPTH_CAP_M,
) -> dict[str, float]:
    """Standard monocular/stereo depth metrics of one image.

    Pixels are scored where ``valid & isfinite(gt) & 0 < gt <= max_depth & isfinite(pred) &
    pred > 0``, with the prediction clipped to ``max_depth`` (Eigen et al.'s protocol, which the
    KITTI depth benchmarks follow), so ground truth and prediction share one range.
    Unlike :func:`disparity_metrics`, pixels without a usable prediction are *excluded* (a depth
    of 0 or inf has no logarithm); ``coverage`` reports the fraction of usable ground-truth
    pixels that had a usable prediction, so that excluding them cannot go unnoticed.

    Args:
        pred: predicted depth in metres.
        gt: ground-truth depth in metres, same shape (NaN or <= 0 where unknown).
        valid: optional bool mask of pixels to consider (e.g. a crop).
        max_depth: the range cap in metres (:data:`DEPTH_CAP_M` by default); None: no cap.

    Returns:
        With ``d = ln(pred) - ln(gt)`` and means over the ``n`` scored pixels:
        ``delta1/2/3``: fraction with ``max(pred/gt, gt/pred) < 1.25, 1.25**2, 1.25**3``;
        ``abs_rel = mean(|pred - gt| / gt)``; ``sq_rel = mean((pred - gt)**2 / gt)`` (m);
        ``rmse = sqrt(mean((pred - gt)**2))`` (m); ``rmse_log = sqrt(mean(d**2))``;
        ``sie = mean(d**2) - mean(d)**2``, the scale-invariant error of Eigen et al. (2014),
        eq. 1 with lambda = 1, as HybridNet reports it; ``silog = sqrt(sie)`` (natural log, not
        multiplied by 100 as the KITTI depth benchmark prints it);
        ``coverage``: n / number of usable ground-truth pixels; ``n``: scored pixel count.
        With ``n == 0`` every metric is NaN.
    """
    return _depth_from_sums(_depth_sums(pred, gt, valid, max_depth))


class DepthAccumulator:
    """Pixel-weighted depth metrics over many images.

    Every metric, ``silog``/``sie`` included, is computed from per-pixel sums over all images,
    i.e. as if the images were one. (The KITTI depth benchmark instead averages a per-image
    SILog; use :func:`depth_metrics` per image for that.)
    """

    def __init__(self, max_depth: float | None = DEPTH_CAP_M) -> None:
        self.max_depth = max_depth
        self._sums = np.zeros(len(_DEPTH_FIELDS), dtype=np.float64)

    def update(
        self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
    ) -> dict[str, float]:
        """Add one image (arguments as :func:`depth_metrics`, capped at ``max_depth``)."""
        sums = _depth_sums(pred, gt, valid, self.max_depth)
        self._sums += sums
        return _depth_from_sums(sums)

    def compute(self) -> dict[str, float]:
        return _depth_from_sums(self._sums)

    def reset(self) -> None:
        self._sums[:] = 0.0


# --------------------------------------------------------------------------------------------
# Semantic segmentation
# --------------------------------------------------------------------------------------------


class ConfusionMatrix:
    """Confusion matrix for semantic segmentation, rows = ground truth, columns = prediction.

    Ground-truth pixels equal to ``ignore_index`` are skipped. A predicted id outside
    ``[0, num_classes)`` (in particular 255, "unknown / not confident") is kept in an extra
    column: it is a miss (false negative) for the true class but a false positive for no class.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_LABEL) -> None:
        if num_classes < 1:
            raise MetricInputError(f"num_classes must be >= 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise MetricInputError(
                f"ignore_index {ignore_index} is a valid class id for {num_classes} classes; "
                "use an id outside [0, num_classes), normally 255"
            )
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        # Last column counts predictions that are not a class id.
        self._counts = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    @property
    def matrix(self) -> np.ndarray:
        """(K, K) int64 counts, ``matrix[gt, pred]``, predictions of known classes only."""
        return self._counts[:, : self.num_classes].copy()

    @property
    def unknown(self) -> np.ndarray:
        """(K,) int64: per true class, pixels predicted as an id outside ``[0, K)``."""
        return self._counts[:, self.num_classes].copy()

    @property
    def total(self) -> int:
        """Number of scored (non-ignored) ground-truth pixels."""
        return int(self._counts.sum())

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one label map pair; both (H, W) integer train ids of the same shape."""
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        _check_same_shape(pred=pred, gt=gt)
        for name, arr in (("pred", pred), ("gt", gt)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise MetricInputError(
                    f"{name} must hold integer train ids, got dtype {arr.dtype}; "
                    "take the argmax of the scores first"
                )
        keep = gt != self.ignore_index
        g = gt[keep].astype(np.int64)
        p = pred[keep].astype(np.int64)
        if g.size and (g.min() < 0 or g.max() >= self.num_classes):
            bad = np.unique(g[(g < 0) | (g >= self.num_classes)])[:10]
            raise MetricInputError(
                f"ground truth holds ids {bad.tolist()} outside [0, {self.num_classes}) that are "
                f"not the ignore index {self.ignore_index}; map raw ids to train ids first"
            )
        k1 = self.num_classes + 1
        p[(p < 0) | (p >= self.num_classes)] = self.num_classes
        self._counts += np.bincount(g * k1 + p, minlength=self.num_classes * k1).reshape(
            self.num_classes, k1
        )

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix's counts (e.g. from a worker process)."""
        if other.num_classes != self.num_classes:
            raise MetricInputError(
                f"cannot merge a {other.num_classes}-class matrix into a "
                f"{self.num_classes}-class one"
            )
        self._counts += other._counts

    def reset(self) -> None:
        self._counts[:] = 0

    def iou(self) -> np.ndarray:
        """(K,) float64 intersection over union per class; NaN where a class is in neither
        the ground truth nor the prediction."""
        tp = np.diag(self._counts).astype(np.float64)
        gt_count = self._counts.sum(axis=1).astype(np.float64)
        pred_count = self._counts[:, : self.num_classes].sum(axis=0).astype(np.float64)
        union = gt_count + pred_count - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> float:
        """Mean IoU over classes whose IoU is defined (NaN if none is)."""
        return _nanmean(self.iou())

    def class_recall(self) -> np.ndarray:
        """(K,) float64 per-class accuracy (recall); NaN for classes absent from the gt."""
        tp = np.diag(self._counts).astype(np.float64)
        gt_count = self._counts.sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(gt_count > 0, tp / gt_count, np.nan)

    def global_accuracy(self) -> float:
        """Global accuracy G: correctly labelled pixels / scored pixels."""
        return _ratio(np.trace(self._counts), self.total)

    def class_accuracy(self) -> float:
        """Class accuracy C: mean per-class recall over classes present in the ground truth."""
        return _nanmean(self.class_recall())

    def to_dict(self, label_names: Sequence[str] | None = None) -> dict[str, object]:
        """Summary: ``miou``, ``global_accuracy``, ``class_accuracy``, ``n`` (scored pixels) and
        ``iou``, a ``{class name: IoU}`` dict (names default to ``class_<id>``)."""
        if label_names is None:
            label_names = [f"class_{i}" for i in range(self.num_classes)]
        if len(label_names) != self.num_classes:
            raise MetricInputError(f"{len(label_names)} label names for {self.num_classes} classes")
        return {
            "miou": self.miou(),
            "global_accuracy": self.global_accuracy(),
            "class_accuracy": self.class_accuracy(),
            "n": float(self.total),
            "iou": {str(n): float(v) for n, v in zip(label_names, self.iou(), strict=True)},
        }


def _nanmean(values: np.ndarray) -> float:
    # np.nanmean warns on all-NaN input; an empty evaluation is a normal case here.
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")
