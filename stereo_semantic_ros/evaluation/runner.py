"""The evaluation loop: predictors over the same samples, each scored by one
:class:`~stereo_semantic_ros.evaluation.scorer.Scorer`, with its timing.

:func:`evaluate` accumulates, per predictor, pixel-weighted over the whole split, the figures
:mod:`stereo_semantic_ros.evaluation.scorer` describes (disparity on NOC and All pixels, density,
depth up to ``max_depth``, semantics for predictors that output labels, and the two-view
benchmark figures), plus the wall-clock milliseconds per image of each predictor's ``predict``
call (after one untimed warm-up call on the first sample).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.evaluation.confidence import ConfidenceCurve
from stereo_semantic_ros.evaluation.pictures import picture_disparity_range, sample_picture
from stereo_semantic_ros.evaluation.predictors import Prediction, Predictor
from stereo_semantic_ros.evaluation.scorer import GroundTruth, Scorer
from stereo_semantic_ros.labels import CITYSCAPES_19, LabelSet
from stereo_semantic_ros.metrics import DEPTH_CAP_M
from stereo_semantic_ros.visualize import save_png

__all__ = ["evaluate", "iterate_samples"]


# Exceptions that mean "this sample cannot be read or processed": the loaders raise DatasetError
# (a ValueError), OpenCV cv2.error, torch RuntimeError, the file system OSError. Anything else
# is a bug and is not swallowed.
_SAMPLE_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, cv2.error)


class _MethodState:
    """One predictor's scorer and timings."""

    def __init__(self, predictor: Predictor, label_set: LabelSet, max_depth: float | None):
        self.predictor = predictor
        self.scorer = Scorer(label_set, max_depth=max_depth, benchmark=True)
        self.times_ms: list[float] = []
        self.confidence_curve: ConfidenceCurve | None = None  # predictors that give confidence

    def update(self, sample: StereoSample, pred: Prediction, truth: GroundTruth) -> None:
        self.scorer.update(sample.calib, pred, truth)
        if pred.confidence is not None and pred.disparity is not None and truth.has_disparity:
            if self.confidence_curve is None:
                self.confidence_curve = ConfidenceCurve()
            self.confidence_curve.update(
                pred.disparity, pred.confidence, truth.disparity, truth.valid
            )

    def summary(self) -> dict[str, Any]:
        scores = self.scorer.summary()
        times = self.times_ms
        return {
            "disparity": scores["disparity"],
            "density": scores["density"],
            "segmentation": scores["segmentation"],
            "depth": scores["depth"],
            "benchmark": scores["benchmark"],
            "runtime_ms": {
                "mean": statistics.fmean(times) if times else math.nan,
                "median": statistics.median(times) if times else math.nan,
                "min": min(times) if times else math.nan,
                "max": max(times) if times else math.nan,
                "n": len(times),
            },
            "info": dict(getattr(self.predictor, "info", {}) or {}),
            "confidence_curve": self.confidence_curve,
        }


def iterate_samples(
    samples: Iterable[StereoSample],
) -> Iterator[tuple[str, StereoSample | None, str]]:
    """(name, sample or None, error) for each item; a failing item does not end the loop.

    Indexable data sets (``__len__`` + ``__getitem__``) are read index by index, so one corrupt
    file costs one sample; a plain iterator that raises is asked for its next item (a generator
    that raised is finished, which ends the loop).
    """
    if hasattr(samples, "__len__") and hasattr(samples, "__getitem__"):
        records = getattr(samples, "records", None)
        for i in range(len(samples)):  # type: ignore[arg-type]
            name = records[i].name if records is not None else str(i)
            try:
                sample = samples[i]  # type: ignore[index]
            except _SAMPLE_ERRORS as exc:
                yield name, None, f"{type(exc).__name__}: {exc}"
            else:
                yield sample.name or name, sample, ""
        return
    iterator = iter(samples)
    i = 0
    while True:
        try:
            sample = next(iterator)
        except StopIteration:
            return
        except _SAMPLE_ERRORS as exc:
            yield str(i), None, f"{type(exc).__name__}: {exc}"
        else:
            yield sample.name or str(i), sample, ""
        i += 1


def _check_sample(sample: StereoSample) -> None:
    if sample.disparity is None or sample.valid is None:
        raise ValueError("sample has no ground-truth disparity (is this a test split?)")


def evaluate(
    predictor: Predictor | Sequence[Predictor],
    samples: Iterable[StereoSample],
    *,
    label_set: LabelSet = CITYSCAPES_19,
    max_images: int | None = None,
    pictures_dir: str | Path | None = None,
    num_pictures: int = 4,
    progress: bool = True,
    max_depth: float | None = DEPTH_CAP_M,
    warmup: bool = True,
) -> dict[str, Any]:
    """Evaluate predictors on a split; every predictor sees the same samples.

    Args:
        predictor: one predictor or several (e.g. ``[ours, sgbm]``); names must differ.
        samples: StereoSamples with ground-truth disparity (a data set or any iterable).
        label_set: classes of the ground-truth train ids; a predictor with a ``label_set``
            attribute must predict the same classes.
        max_images: read at most this many samples (skipped ones included); None = all.
        pictures_dir: where to write a tiled PNG for each of the first ``num_pictures``
            evaluated samples; None writes none.
        progress: show a tqdm progress bar on stderr.
        max_depth: metres; larger ground-truth depths are left out of the depth metrics and
            predictions are clipped to it (None: no cap).
        warmup: run each predictor once, untimed, on the first sample (lazy initialisation
            and cuDNN autotuning are not per-image costs).

    Returns:
        ``{"num_images", "num_skipped", "skipped": [{"name", "reason"}], "label_set",
        "class_names", "max_depth", "pictures": [paths], "methods": {name: {...}}}``.
        Per method: ``disparity`` ``{"noc", "all"}`` as
        :func:`~stereo_semantic_ros.metrics.disparity_metrics` (px and %), ``density`` (%),
        ``segmentation`` as :meth:`ConfusionMatrix.to_dict` (fractions; None without labels),
        ``depth`` as :func:`~stereo_semantic_ros.metrics.depth_metrics`, ``runtime_ms``
        ``{"mean", "median", "min", "max", "n"}``, ``info`` and ``confidence_curve`` (a
        :class:`~stereo_semantic_ros.evaluation.confidence.ConfidenceCurve` for a predictor
        whose predictions carry a confidence, else None). A sample that fails to load
        or to be processed by any predictor is skipped for all of them and listed.
    """
    predictors = [predictor] if isinstance(predictor, Predictor) else list(predictor)
    if not predictors:
        raise ValueError("evaluate needs at least one predictor")
    names = [p.name for p in predictors]
    if len(set(names)) != len(names):
        raise ValueError(f"predictor names must differ, got {names}")
    for p in predictors:
        theirs = getattr(p, "label_set", None)
        if theirs is not None and tuple(theirs.names) != tuple(label_set.names):
            raise ValueError(
                f"predictor {p.name!r} predicts the classes of label set {theirs.name!r}, but "
                f"the ground truth uses {label_set.name!r}; evaluate with matching label sets"
            )
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1 or None, got {max_images}")
    states = {p.name: _MethodState(p, label_set, max_depth) for p in predictors}
    skipped: list[dict[str, str]] = []
    pictures: list[str] = []
    picture_top = picture_disparity_range(predictors)
    evaluated = 0

    total = len(samples) if hasattr(samples, "__len__") else None  # type: ignore[arg-type]
    if max_images is not None:
        total = max_images if total is None else min(total, max_images)
    bar = tqdm(total=total, disable=not progress, unit="img", desc="evaluate", file=sys.stderr)
    try:
        for count, (name, sample, error) in enumerate(iterate_samples(samples)):
            if max_images is not None and count >= max_images:
                break
            bar.update(1)
            if sample is None:
                skipped.append({"name": name, "reason": error})
                continue
            try:
                _check_sample(sample)
                if warmup and evaluated == 0:
                    for p in predictors:
                        p.predict(sample)
                preds: dict[str, Prediction] = {}
                times: dict[str, float] = {}
                for p in predictors:
                    t0 = time.perf_counter()
                    preds[p.name] = p.predict(sample)
                    times[p.name] = (time.perf_counter() - t0) * 1e3
                    _check_prediction(p.name, preds[p.name], sample)
                truth = GroundTruth.of_sample(sample)
                # Update only once every predictor has succeeded, so all rows share the split.
                for p in predictors:
                    states[p.name].update(sample, preds[p.name], truth)
                    states[p.name].times_ms.append(times[p.name])
            except _SAMPLE_ERRORS as exc:
                skipped.append({"name": name, "reason": f"{type(exc).__name__}: {exc}"})
                continue
            evaluated += 1
            if pictures_dir is not None and len(pictures) < num_pictures:
                path = Path(pictures_dir) / f"{len(pictures):03d}_{_safe(name)}.png"
                save_png(path, sample_picture(sample, preds, label_set, picture_top))
                pictures.append(str(path))
            bar.set_postfix(skipped=len(skipped))
    finally:
        bar.close()

    return {
        "num_images": evaluated,
        "num_skipped": len(skipped),
        "skipped": skipped,
        "label_set": label_set.name,
        "class_names": list(label_set.names),
        "max_depth": max_depth,
        "pictures": pictures,
        "methods": {name: st.summary() for name, st in states.items()},
    }


def _check_prediction(name: str, pred: Prediction, sample: StereoSample) -> None:
    for key in ("disparity", "labels"):
        value = getattr(pred, key)
        if value is not None and np.shape(value) != sample.size:
            raise ValueError(
                f"{name}: predicted {key} is {np.shape(value)} but the sample is {sample.size}"
            )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "sample"
