"""Evaluation pictures: one tiled sheet per sample, every predictor next to the ground truth."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.evaluation.predictors import PipelinePredictor, Prediction, Predictor
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.ros.settings import disparity_range
from stereo_semantic_ros.visualize import (
    colorize_disparity,
    colorize_error,
    colorize_labels,
    enlarge,
    tile,
    with_colorbar,
    with_error_legend,
    with_legend,
)

__all__ = ["picture_disparity_range", "sample_picture"]


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
    for p in predictors:
        if isinstance(p, PipelinePredictor):
            return disparity_range(p.pipeline)
    return None
