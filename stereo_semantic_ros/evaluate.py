"""Evaluation on a data split: disparity, depth and semantics, our network next to StereoSGBM.

:func:`evaluate` runs one or more predictors over the same samples and accumulates, per
predictor, pixel-weighted over the whole split (see :mod:`stereo_semantic_ros.metrics`):

* disparity EPE, bad-1/2/3 and KITTI D1 on NOC (``sample.noc``) and All (``sample.valid``) pixels;
  a pixel without a valid prediction (non-finite or <= 0) counts as an error, by the rule that
  :func:`~stereo_semantic_ros.metrics.disparity_metrics` documents, for every predictor alike;
  ``density`` is the percentage of All pixels that do have a valid prediction;
* mIoU, per-class IoU, global accuracy G and class-average accuracy C (predictors that output
  labels only);
* depth delta < 1.25^k, AbsRel, SqRel, RMSE, RMSE-log and the scale-invariant error, with depth
  ``fx * B / d`` from the predicted disparity and the sample's calibration, against
  ``sample.depth`` (or ``fx * B / d_gt`` on valid pixels where a sample has no depth), on
  ground-truth depths up to ``max_depth`` metres (80 m, the usual KITTI cap, by default),
  with predictions clipped to the same range (:data:`~stereo_semantic_ros.metrics.DEPTH_CAP_M`);
* wall-clock milliseconds per image of each predictor's ``predict`` call (after one untimed
  warm-up call on the first sample);
* two-view benchmark figures (Middlebury / ETH3D style, :class:`~stereo_semantic_ros.metrics.
  BenchmarkAccumulator`): EPE and bad-0.5/1/2/4 both dense (a pixel without a valid prediction
  is wrong) and on the pixels the method predicts, with the density, on All pixels and, where
  the samples have a non-occluded mask, on NOC pixels. The CLI prints and writes them as the
  main table for ``--dataset middlebury|eth3d`` and ``--data builtin:motorcycle``.

Our network is evaluated through the shared :class:`~stereo_semantic_ros.pipeline.StereoPipeline`
(:class:`PipelinePredictor`), so the figures describe exactly what the node runs; the baseline
is :class:`~stereo_semantic_ros.baselines.SgbmBaseline`.

The CLI (``stereo-semantic-eval``) writes ``metrics.json`` (full precision), ``metrics.md``
(figures rounded to 2 decimals) and one tiled PNG per pictured sample.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
from tqdm import tqdm

from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.labels import CITYSCAPES_19, LabelSet
from stereo_semantic_ros.metrics import (
    BENCHMARK_THRESHOLDS,
    DEPTH_CAP_M,
    BenchmarkAccumulator,
    ConfusionMatrix,
    DepthAccumulator,
    DisparityAccumulator,
)
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.visualize import (
    colorize_disparity,
    colorize_error,
    colorize_labels,
    enlarge,
    save_png,
    tile,
    with_colorbar,
    with_error_legend,
    with_legend,
)

__all__ = [
    "TWO_VIEW_DATASETS",
    "benchmark_table",
    "PipelinePredictor",
    "Prediction",
    "Predictor",
    "evaluate",
    "main",
    "markdown_report",
]

# Exceptions that mean "this sample cannot be read or processed": the loaders raise DatasetError
# (a ValueError), OpenCV cv2.error, torch RuntimeError, the file system OSError. Anything else
# is a bug and is not swallowed.
_SAMPLE_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, cv2.error)


@dataclass
class Prediction:
    """What a predictor returns for one sample, at the sample's resolution.

    Attributes:
        disparity: (H, W) float pixels, package sign convention; non-finite or <= 0 means
            "no answer". None if the predictor does not estimate disparity.
        labels: (H, W) integer train ids of the evaluation label set (255 = no answer), or
            None if the predictor has no semantics.
    """

    disparity: np.ndarray | None
    labels: np.ndarray | None = None


@runtime_checkable
class Predictor(Protocol):
    """Anything with a ``name`` and ``predict(sample) -> Prediction``.

    Optional attributes: ``info`` (a JSON-able dict recorded in the report) and ``label_set``
    (checked against the evaluation's label set).
    """

    name: str

    def predict(self, sample: StereoSample) -> Prediction: ...


class PipelinePredictor:
    """Our network, run by the shared :class:`StereoPipeline` exactly as the node runs it.

    Args:
        pipeline: a loaded pipeline (``StereoPipeline.from_checkpoint``).
        name: row name in the report.
        min_confidence: passed to ``StereoPipeline.run``; 0 keeps every pixel (dense output).
    """

    def __init__(
        self, pipeline: StereoPipeline, *, name: str = "ours", min_confidence: float = 0.0
    ) -> None:
        self.pipeline = pipeline
        self.name = name
        self.min_confidence = float(min_confidence)
        tasks = tuple(getattr(pipeline.model, "tasks", ("disparity", "segmentation")))
        self._outputs = tuple(
            out
            for out, task in (("disparity", "disparity"), ("labels", "segmentation"))
            if task in tasks
        )

    @property
    def label_set(self) -> LabelSet:
        return self.pipeline.label_set

    @property
    def info(self) -> dict[str, Any]:
        pipe = self.pipeline
        return {
            "algorithm": "StereoPipeline",
            "architecture": type(pipe.model).__name__,
            "outputs": list(self._outputs),
            "device": str(pipe.device),
            "precision": pipe.precision,
            "input_scale": pipe.input_scale,
            "min_confidence": self.min_confidence,
        }

    def predict(self, sample: StereoSample) -> Prediction:
        result = self.pipeline.run(
            sample.left,
            sample.right,
            sample.calib,
            outputs=self._outputs,
            min_confidence=self.min_confidence,
        )
        return Prediction(disparity=result.disparity, labels=result.labels)


# --------------------------------------------------------------------------------------------
# Accumulation
# --------------------------------------------------------------------------------------------


@dataclass
class _MethodState:
    predictor: Predictor
    num_classes: int
    noc: DisparityAccumulator = field(default_factory=DisparityAccumulator)
    all: DisparityAccumulator = field(default_factory=DisparityAccumulator)
    depth: DepthAccumulator = field(default_factory=DepthAccumulator)
    bench_all: BenchmarkAccumulator = field(default_factory=BenchmarkAccumulator)
    bench_noc: BenchmarkAccumulator = field(default_factory=BenchmarkAccumulator)
    confusion: ConfusionMatrix | None = None
    dense_pixels: int = 0
    scored_pixels: int = 0
    has_disparity: bool = False
    times_ms: list[float] = field(default_factory=list)

    def update(
        self, sample: StereoSample, pred: Prediction, gt_depth: np.ndarray, depth_mask: np.ndarray
    ) -> None:
        if pred.disparity is not None:
            self.has_disparity = True
            disp = np.asarray(pred.disparity, dtype=np.float32)
            self.all.update(disp, sample.disparity, sample.valid)
            self.bench_all.update(disp, sample.disparity, sample.valid)
            if sample.noc is not None:
                self.noc.update(disp, sample.disparity, sample.noc)
                self.bench_noc.update(disp, sample.disparity, sample.noc)
            ok = np.isfinite(disp) & (disp > 0)
            self.dense_pixels += int(np.count_nonzero(ok & sample.valid))
            self.scored_pixels += int(np.count_nonzero(sample.valid))
            self.depth.update(sample.calib.depth_from_disparity(disp), gt_depth, depth_mask)
        if pred.labels is not None and sample.labels is not None:
            if self.confusion is None:
                self.confusion = ConfusionMatrix(self.num_classes)
            self.confusion.update(np.asarray(pred.labels), sample.labels)

    def summary(self, label_set: LabelSet) -> dict[str, Any]:
        times = self.times_ms
        out: dict[str, Any] = {
            "disparity": (
                {"noc": self.noc.compute(), "all": self.all.compute()}
                if self.has_disparity
                else None
            ),
            "density": (
                100.0 * self.dense_pixels / self.scored_pixels if self.scored_pixels else math.nan
            ),
            "segmentation": (
                None if self.confusion is None else self.confusion.to_dict(label_set.names)
            ),
            "depth": self.depth.compute() if self.has_disparity else None,
            "benchmark": (
                {
                    "all": self.bench_all.compute(),
                    "noc": self.bench_noc.compute() if self.bench_noc.count else None,
                }
                if self.has_disparity
                else None
            ),
            "runtime_ms": {
                "mean": statistics.fmean(times) if times else math.nan,
                "median": statistics.median(times) if times else math.nan,
                "min": min(times) if times else math.nan,
                "max": max(times) if times else math.nan,
                "n": len(times),
            },
            "info": dict(getattr(self.predictor, "info", {}) or {}),
        }
        return out


def _gt_depth(sample: StereoSample) -> tuple[np.ndarray, np.ndarray]:
    if sample.depth is not None:
        depth = np.asarray(sample.depth, dtype=np.float32)
    else:
        depth = np.where(
            sample.valid, sample.calib.depth_from_disparity(sample.disparity), np.float32(np.nan)
        ).astype(np.float32)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(depth) & (depth > 0)
    return depth, mask


def _iterate(samples: Iterable[StereoSample]) -> Iterator[tuple[str, StereoSample | None, str]]:
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
        ``{"mean", "median", "min", "max", "n"}`` and ``info``. A sample that fails to load
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
    states = {
        p.name: _MethodState(p, label_set.num_classes, depth=DepthAccumulator(max_depth))
        for p in predictors
    }
    skipped: list[dict[str, str]] = []
    pictures: list[str] = []
    picture_top = picture_disparity_range(predictors)
    evaluated = 0

    total = len(samples) if hasattr(samples, "__len__") else None  # type: ignore[arg-type]
    if max_images is not None:
        total = max_images if total is None else min(total, max_images)
    bar = tqdm(total=total, disable=not progress, unit="img", desc="evaluate", file=sys.stderr)
    try:
        for count, (name, sample, error) in enumerate(_iterate(samples)):
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
                gt_depth, depth_mask = _gt_depth(sample)
                # Update only once every predictor has succeeded, so all rows share the split.
                for p in predictors:
                    states[p.name].update(sample, preds[p.name], gt_depth, depth_mask)
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
        "methods": {name: st.summary(label_set) for name, st in states.items()},
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


def sample_picture(
    sample: StereoSample,
    preds: Mapping[str, Prediction],
    label_set: LabelSet,
    max_disparity: float | None = None,
) -> np.ndarray:
    """One tiled RGB picture of a sample: input, disparities and KITTI error maps of every
    predictor next to the ground truth, label overlays next to the ground-truth labels.

    Disparities share one colour scale, shown by a colour bar beside each: 0 to
    ``max_disparity`` px (pass the network's range, :func:`picture_disparity_range`, so the
    colours are the node's ``disparity/color``), else to the ground truth's largest value.
    Error maps carry their key and label overlays a legend of the classes they contain; samples
    lower than :data:`~stereo_semantic_ros.visualize.PICTURE_MIN_HEIGHT` are enlarged.
    """
    gt = np.where(sample.valid, sample.disparity, 0.0).astype(np.float32)
    top = max_disparity
    if top is None:
        top = float(gt.max()) if gt.size and gt.max() > 0 else 1.0
    cells: list[np.ndarray] = [
        enlarge(sample.left),
        with_colorbar(enlarge(colorize_disparity(gt, top)), top),
    ]
    captions = ["left input", "ground truth disparity"]
    for name, pred in preds.items():
        if pred.disparity is None:
            continue
        disp = np.asarray(pred.disparity, dtype=np.float32)
        cells += [
            with_colorbar(enlarge(colorize_disparity(disp, top)), top),
            with_error_legend(enlarge(colorize_error(disp, sample.disparity, sample.valid))),
        ]
        captions += [f"{name} disparity", f"{name} error (KITTI)"]
    palette = label_set.palette()
    label_maps: list[tuple[str, np.ndarray]] = []
    if sample.labels is not None:
        label_maps.append(("ground truth labels", np.asarray(sample.labels).astype(np.uint8)))
    for name, pred in preds.items():
        if pred.labels is not None:
            label_maps.append((f"{name} labels", np.asarray(pred.labels).astype(np.uint8)))
    for caption, labels in label_maps:
        overlay = enlarge(colorize_labels(labels, palette, sample.left))
        cells.append(with_legend(overlay, labels, label_set.names, palette))
        captions.append(caption)
    return tile(cells, cols=2, labels=captions, pad=4)


def picture_disparity_range(predictors: Iterable[Predictor]) -> float | None:
    """Top of the pictures' disparity colour scale: the first :class:`PipelinePredictor`'s
    disparity range at input resolution (what the node colours ``disparity/color`` with), or
    None without one."""
    from stereo_semantic_ros.ros.settings import disparity_range

    for p in predictors:
        if isinstance(p, PipelinePredictor):
            return disparity_range(p.pipeline)
    return None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

_DASH = "-"


def _fmt(value: Any, scale: float = 1.0) -> str:
    if value is None:
        return _DASH
    v = float(value)
    return _DASH if math.isnan(v) else f"{v * scale:.2f}"


def main_table_rows(report: Mapping[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """(column headers, {method: formatted cells}) of the headline table of ``metrics.md``."""
    headers = ["Method"]
    for region in ("NOC", "All"):
        headers += [
            f"EPE {region}",
            f"bad-1 {region}",
            f"bad-2 {region}",
            f"bad-3 {region}",
            f"D1 {region}",
        ]
    headers += ["mIoU", "G", "C", "density", "ms/img"]
    rows: dict[str, list[str]] = {}
    for name, m in report["methods"].items():
        cells = [name]
        disp = m["disparity"] or {}
        for region in ("noc", "all"):
            d = disp.get(region, {})
            cells += [_fmt(d.get(k)) for k in ("epe", "bad1", "bad2", "bad3", "d1")]
        seg = m["segmentation"] or {}
        cells += [_fmt(seg.get(k), 100.0) for k in ("miou", "global_accuracy", "class_accuracy")]
        cells += [_fmt(m["density"] if m["disparity"] else None), _fmt(m["runtime_ms"]["mean"])]
        rows[name] = cells
    return headers, rows


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline_table(report: Mapping[str, Any]) -> str:
    headers, rows = main_table_rows(report)
    return _table(headers, rows.values())


def benchmark_table(report: Mapping[str, Any]) -> str:
    """Two-view benchmark table: one row per method and region (All, and NOC where scored)."""
    bads = [f"bad{t:g}" for t in BENCHMARK_THRESHOLDS]
    headers = ["Method", "Pixels"]
    headers += ["EPE"] + [f"bad-{t:g}" for t in BENCHMARK_THRESHOLDS]
    headers += ["EPE pred"] + [f"bad-{t:g} pred" for t in BENCHMARK_THRESHOLDS]
    headers += ["density", "ms/img"]
    rows = []
    for name, m in report["methods"].items():
        bench = m.get("benchmark") or {}
        for region, label in (("all", "All"), ("noc", "NOC")):
            b = bench.get(region)
            if not b:
                continue
            dense, pred = b["dense"], b["predicted"]
            rows.append(
                [name, label, _fmt(dense["epe"])]
                + [_fmt(dense[k]) for k in bads]
                + [_fmt(pred["epe"])]
                + [_fmt(pred[k]) for k in bads]
                + [_fmt(b["density"]), _fmt(m["runtime_ms"]["mean"])]
            )
    return _table(headers, rows)


BENCHMARK_NOTE = (
    "Two-view benchmark figures. EPE in pixels; bad-k: % of pixels with error > k px. Dense "
    "columns (EPE, bad-k): every ground-truth pixel of the region counts, a pixel without a "
    "valid prediction as wrong (EPE: as if it predicted 0). `pred` columns: only the pixels "
    "the method predicts. density: % of the region's ground-truth pixels with a valid "
    "prediction. All: every pixel with ground truth; NOC: the non-occluded ones (mask0nocc.png "
    "255), only where the data has the mask. ms/img: mean wall-clock time of one prediction "
    "(after a warm-up)."
)


def markdown_report(report: Mapping[str, Any], title: str = "Evaluation") -> str:
    """``metrics.md``: headline table, per-class IoU and depth tables, all to 2 decimals."""
    methods = report["methods"]
    parts = [f"# {title}", ""]
    ds = report.get("dataset")
    if ds:
        parts += [
            f"Data: {ds.get('name')} `{ds.get('root')}` split `{ds.get('split')}`: "
            f"{report['num_images']} images evaluated, {report['num_skipped']} skipped.",
            "",
        ]
    if report.get("two_view"):
        parts += ["## Two-view benchmark", "", benchmark_table(report), "", BENCHMARK_NOTE, ""]
        parts += ["## KITTI-style figures", ""]
    parts += [headline_table(report), ""]
    parts += [
        "EPE in pixels; bad-k: % of pixels with error > k px; D1: % with error > 3 px and > 5 % "
        "(KITTI 2015). NOC: non-occluded pixels, All: every pixel with ground truth. A pixel "
        "without a valid prediction counts as an error for every method; density: % of All "
        "pixels with a valid prediction. mIoU, G (global pixel accuracy), C (class-average "
        "accuracy) in %; `-`: the method has no such output. ms/img: mean wall-clock time of "
        "one prediction (after a warm-up).",
        "",
        "## Per-class IoU (%)",
        "",
    ]
    names = list(methods)
    class_rows = []
    for cls in report["class_names"]:
        row = [cls]
        for name in names:
            seg = methods[name]["segmentation"]
            row.append(_DASH if seg is None else _fmt(seg["iou"].get(cls), 100.0))
        class_rows.append(row)
    parts += [_table(["Class", *names], class_rows), ""]
    parts += [
        "`-`: no semantics, or the class is in neither the ground truth nor the prediction.",
        "",
        "## Depth",
        "",
    ]
    depth_headers = [
        "Method",
        "δ<1.25 (%)",
        "δ<1.25² (%)",
        "δ<1.25³ (%)",
        "AbsRel",
        "SqRel",
        "RMSE (m)",
        "RMSE-log",
        "SIE (×100)",
        "coverage (%)",
    ]
    depth_rows = []
    for name in names:
        d = methods[name]["depth"] or {}
        depth_rows.append(
            [name]
            + [_fmt(d.get(k), 100.0) for k in ("delta1", "delta2", "delta3")]
            + [_fmt(d.get(k)) for k in ("abs_rel", "sq_rel", "rmse", "rmse_log")]
            + [_fmt(d.get("sie"), 100.0), _fmt(d.get("coverage"), 100.0)]
        )
    max_depth = report.get("max_depth")
    cap = f"up to {max_depth:g} m" if max_depth is not None else "at any distance"
    parts += [
        _table(depth_headers, depth_rows),
        "",
        f"Depth = fx * B / disparity against ground-truth depth {cap}, on pixels where the "
        "method has a valid disparity (coverage: % of those ground-truth pixels). SIE: "
        "scale-invariant error mean(d²) - mean(d)², d = ln(pred) - ln(gt).",
        "",
    ]
    if report["num_skipped"]:
        parts += ["## Skipped samples", ""]
        parts += [f"- `{s['name']}`: {s['reason']}" for s in report["skipped"]]
        parts.append("")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

TWO_VIEW_DATASETS = ("middlebury", "eth3d")
"""Two-view benchmark layouts (:mod:`stereo_semantic_ros.datasets.middlebury`)."""
DATASETS = ("kitti2015", "cityscapes", "vkitti2", *TWO_VIEW_DATASETS)
DEFAULT_WEIGHTS = Path("models/esp_joint_mixed.pt")
_DEFAULT_SPLITS = {
    "kitti2015": "training",
    "cityscapes": "val",
    "vkitti2": "all scenes",
    "middlebury": "all scenes",
    "eth3d": "all scenes",
}


class _UsageError(ValueError):
    """Bad command-line input; reported in one line with exit code 2."""


def open_dataset(name: str, root: Path | str, split: str | None) -> Any:
    """The evaluation data set (no augmentation) of ``name`` under ``root``.

    ``split``: kitti2015 ``training`` (default; our synthetic scenes are written there too) or
    ``testing``; cityscapes ``train``/``val`` (default)/``test``; vkitti2 a comma-separated list
    of scenes (default: all); middlebury / eth3d a comma-separated list of scene directories
    (default: all). ``root`` ``builtin:motorcycle`` is the Middlebury 2014 Motorcycle pair
    scikit-image ships (any ``name`` of :data:`TWO_VIEW_DATASETS`; no download).
    """
    from stereo_semantic_ros.datasets.middlebury import is_builtin

    if is_builtin(root):
        from stereo_semantic_ros.datasets.middlebury import open_builtin

        if name not in TWO_VIEW_DATASETS:
            raise _UsageError(f"{root} is a two-view pair: use --dataset middlebury (or none)")
        return open_builtin(str(root))
    if name in TWO_VIEW_DATASETS:
        from stereo_semantic_ros.datasets.middlebury import TwoViewBenchmark

        scenes = [s for s in split.split(",") if s] if split else None
        return TwoViewBenchmark(root, name, scenes=scenes)
    if name == "kitti2015":
        from stereo_semantic_ros.datasets.kitti import Kitti2015

        return Kitti2015(root, split or "training")
    if name == "cityscapes":
        from stereo_semantic_ros.datasets.cityscapes import Cityscapes

        return Cityscapes(root, split or "val")
    if name == "vkitti2":
        from stereo_semantic_ros.datasets.vkitti2 import VirtualKitti2

        scenes = [s for s in split.split(",") if s] if split else None
        return VirtualKitti2(root, scenes=scenes)
    raise _UsageError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def max_gt_disparity(dataset: Any, max_images: int | None = None) -> float:
    """Largest valid ground-truth disparity (px) over the first ``max_images`` samples;
    samples that fail to load are passed over (the evaluation reports them)."""
    top = 0.0
    for count, (_, sample, _) in enumerate(_iterate(dataset)):
        if max_images is not None and count >= max_images:
            break
        if sample is None or sample.disparity is None or sample.valid is None:
            continue
        if sample.valid.any():
            top = max(top, float(np.nanmax(sample.disparity[sample.valid])))
    return top


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights_info(path: Path, pipeline: StereoPipeline) -> dict[str, Any]:
    ckpt = pipeline.checkpoint
    info: dict[str, Any] = {
        "path": str(path),
        "resolved_path": str(path.resolve()),
        "sha256": _sha256(path),
        "size_bytes": path.stat().st_size,
    }
    if ckpt is not None:
        info.update(
            architecture=ckpt.architecture,
            hyper_parameters=ckpt.hyper_parameters,
            label_set=ckpt.label_set.name,
            provenance=ckpt.provenance,
            stored_metrics=ckpt.metrics,
        )
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stereo-semantic-eval",
        description="Evaluate the network (through the shared pipeline) and OpenCV StereoSGBM "
        "on a data split: disparity, depth and semantic metrics, a Markdown table and pictures.",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help=f"checkpoint of the network (default: the --params file's weights, else "
        f"{DEFAULT_WEIGHTS})",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="the node's parameter YAML (e.g. config/esp_joint.yaml): the network is built "
        "from its architecture, weights (relative to models/), device, precision, "
        "max_disparity and input_scale, as the node builds it; --weights, --device, "
        "--precision and --input-scale override it",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="data set root, e.g. data/synth_val (KITTI 2015 layout), a Middlebury/ETH3D "
        "folder, or builtin:motorcycle (Middlebury 2014 Motorcycle from scikit-image)",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="on-disk layout of --data (default: kitti2015, which the synthetic generator "
        "writes; middlebury for builtin: pairs)",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="kitti2015: training|testing; cityscapes: train|val|test; "
        "vkitti2, middlebury, eth3d: comma-separated scenes",
    )
    parser.add_argument(
        "--baseline",
        choices=("sgbm", "sgbm+fill", "none"),
        default=None,
        help="classical baseline rows: sgbm (StereoSGBM), sgbm+fill (StereoSGBM and "
        "StereoSGBM+fill, its holes filled along rows) or none (default: sgbm+fill for "
        "middlebury/eth3d, sgbm otherwise)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/eval"), help="output directory (default: out/eval)"
    )
    parser.add_argument(
        "--max-images", type=int, default=None, help="evaluate only the first N samples"
    )
    parser.add_argument(
        "--device", default=None, help="auto, cpu, cuda or cuda:N (default: --params', else auto)"
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16"),
        default=None,
        help="default: --params', else fp32 (half precisions fall back to fp32 on a CPU)",
    )
    parser.add_argument(
        "--input-scale",
        type=float,
        default=None,
        help="resize factor of the pair before the network (default: --params', else 1.0)",
    )
    parser.add_argument(
        "--num-pictures", type=int, default=4, help="tiled PNGs to write (default: 4)"
    )
    parser.add_argument(
        "--max-depth",
        type=float,
        default=DEPTH_CAP_M,
        help=f"depth metric cap in metres (default: {DEPTH_CAP_M:g})",
    )
    parser.add_argument(
        "--sgbm-disparity-range",
        type=int,
        default=None,
        help="SGBM search range (multiple of 16); default: the split's largest "
        "ground-truth disparity (and, for two-view data, ndisp - 1) rounded up to a multiple "
        "of 16 (found by a first pass over the split, which this option skips)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``stereo-semantic-eval``; returns 0, or 2 for bad input (one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except _UsageError as exc:
        print(f"stereo-semantic-eval: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from stereo_semantic_ros.baselines import (
        SgbmBaseline,
        SgbmFilledBaseline,
        disparity_range_for,
    )
    from stereo_semantic_ros.datasets.base import DatasetError
    from stereo_semantic_ros.datasets.middlebury import is_builtin

    if args.max_images is not None and args.max_images < 1:
        raise _UsageError(f"--max-images must be >= 1, got {args.max_images}")
    builtin = is_builtin(args.data)
    if args.dataset is None:
        args.dataset = "middlebury" if builtin else "kitti2015"
    two_view = args.dataset in TWO_VIEW_DATASETS
    if args.baseline is None:
        args.baseline = "sgbm+fill" if two_view else "sgbm"
    if not builtin and not args.data.is_dir():
        raise _UsageError(f"data root {args.data} does not exist or is not a directory")
    try:
        dataset = open_dataset(args.dataset, args.data, args.split)
    except DatasetError as exc:
        raise _UsageError(str(exc)) from exc
    pipeline, weights_path = _build_pipeline(args)
    ours = PipelinePredictor(pipeline)
    label_set = CITYSCAPES_19  # every loader yields Cityscapes-19 train ids
    if tuple(pipeline.label_set.names) != tuple(label_set.names):
        raise _UsageError(
            f"{weights_path} predicts label set {pipeline.label_set.name!r}, but the "
            f"{args.dataset} loader gives {label_set.name!r} train ids"
        )
    predictors: list[Predictor] = [ours]
    sgbm_range_source = None
    if args.baseline in ("sgbm", "sgbm+fill"):
        if args.sgbm_disparity_range is not None:
            sgbm_range, sgbm_range_source = args.sgbm_disparity_range, "--sgbm-disparity-range"
        else:
            top = max_gt_disparity(dataset, args.max_images)
            sgbm_range_source = f"largest ground-truth disparity of the split: {top:.2f} px"
            ndisp = max_ndisp(dataset, args.max_images) if two_view else 0
            if ndisp:
                sgbm_range_source += f"; largest ndisp of the split: {ndisp:g} px"
                top = max(top, float(ndisp) - 1.0)
            sgbm_range = disparity_range_for(top)
        try:
            sgbm = SgbmBaseline(disparity_range=sgbm_range)
        except ValueError as exc:
            raise _UsageError(str(exc)) from exc
        predictors.append(sgbm)
        if args.baseline == "sgbm+fill":
            predictors.append(SgbmFilledBaseline(sgbm))

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate(
        predictors,
        dataset,
        label_set=label_set,
        max_images=args.max_images,
        pictures_dir=out / "pictures",
        num_pictures=args.num_pictures,
        progress=not args.no_progress,
        max_depth=args.max_depth,
    )
    report["dataset"] = {
        "name": args.dataset,
        "root": str(args.data),
        "split": args.split or _DEFAULT_SPLITS[args.dataset],
        "size": len(dataset),
    }
    report["two_view"] = two_view
    report["weights"] = (
        _weights_info(weights_path, pipeline) if weights_path is not None else {"path": None}
    )
    report["network"] = {
        "max_disparity": pipeline.max_disparity,
        "input_scale": pipeline.input_scale,
        "params": None if args.params is None else str(args.params),
    }
    if sgbm_range_source is not None:
        for name in ("StereoSGBM", "StereoSGBM+fill"):
            if name in report["methods"]:
                report["methods"][name]["info"]["disparity_range_source"] = sgbm_range_source
    report["command"] = " ".join(["stereo-semantic-eval", *_argv_of(args)])

    json_path = out / "metrics.json"
    md_path = out / "metrics.md"
    json_path.write_text(json.dumps(_jsonable(report), indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown_report(report, title=f"Evaluation on {args.data}"))

    if two_view:
        print(benchmark_table(report))
    else:
        print(headline_table(report))
    print()
    print(f"evaluated {report['num_images']} images, skipped {report['num_skipped']}")
    for s in report["skipped"]:
        print(f"  skipped {s['name']}: {s['reason']}")
    print(f"metrics:  {json_path}")
    print(f"table:    {md_path}")
    for p in report["pictures"]:
        print(f"picture:  {p}")
    return 0


def _build_pipeline(args: argparse.Namespace) -> tuple[StereoPipeline, Path | None]:
    """The network as ``--params`` (the node's YAML) and the explicit options describe it."""
    from stereo_semantic_ros.checkpoint import CheckpointError

    if args.params is None:
        weights = args.weights if args.weights is not None else DEFAULT_WEIGHTS
        if not weights.is_file():
            raise _UsageError(
                f"weights file {weights} does not exist; pass --weights PATH to a checkpoint "
                "written by stereo-semantic-train"
            )
        try:
            pipeline = StereoPipeline.from_checkpoint(
                weights,
                device=args.device or "auto",
                precision=args.precision or "fp32",
                input_scale=1.0 if args.input_scale is None else args.input_scale,
            )
        except (CheckpointError, ValueError) as exc:
            raise _UsageError(str(exc)) from exc
        return pipeline, weights
    from stereo_semantic_ros.ros.settings import NodeSettings

    try:
        settings = NodeSettings.from_yaml(args.params)
        changes: dict[str, Any] = {}
        if args.weights is not None:
            changes["weights"] = str(args.weights.resolve())
        for key in ("device", "precision", "input_scale"):
            if getattr(args, key) is not None:
                changes[key] = getattr(args, key)
        settings = settings.updated(**changes)
        weights_path = settings.weights_path()
        if weights_path is not None and not weights_path.is_file():
            raise _UsageError(f"weights file {weights_path} (from {args.params}) does not exist")
        pipeline = settings.build_pipeline()
    except (CheckpointError, ValueError, OSError) as exc:
        raise _UsageError(f"{args.params}: {exc}") from exc
    return pipeline, weights_path


def max_ndisp(dataset: Any, max_images: int | None = None) -> float:
    """Largest ``ndisp`` (the benchmarks' stated disparity bound) of the first samples' meta;
    0 when none states one."""
    top = 0.0
    records = getattr(dataset, "records", None)
    if records is not None:
        for record in records[:max_images]:
            top = max(top, float(record.extra.get("ndisp", 0) or 0))
        if top or not hasattr(dataset, "pair"):
            return top
    for count, (_, sample, _) in enumerate(_iterate(dataset)):
        if max_images is not None and count >= max_images:
            break
        if sample is not None:
            top = max(top, float(sample.meta.get("ndisp", 0) or 0))
    return top


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The effective options, so the report says how to reproduce it."""
    parts = []
    for key, value in sorted(vars(args).items()):
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        parts += [flag] if value is True else [flag, str(value)]
    return parts


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: an undefined metric (no pixels) is null
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
