"""PNG previews of replayed frames, spread over the bag (``<OUT>/previews/``).

For each chosen frame, one PNG per picture, exactly as the node would publish it (so they can be
compared with the output bag pixel for pixel): the left image, ``disparity/color`` and
``semantic/color`` (the published images where those topics are enabled, else the same
colourings of the pipeline's result) and, where the bag has ground truth, the KITTI error map
and the ground-truth disparity and labels. ``frame_NNNNN_sheet.png`` puts them side by side for
people: titled, enlarged when small, disparity with its colour bar (px), the error map with its
key and label images with a legend of the classes they contain.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from stereo_semantic_ros.evaluation.scorer import GroundTruth
from stereo_semantic_ros.frames.step import FrameOutcome
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.ros.conversions import image_to_array
from stereo_semantic_ros.ros.settings import disparity_range
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

# sheet order, two per row: each prediction next to its ground truth
SHEET_ORDER = ("left", "error", "disparity", "gt_disparity", "semantic", "gt_labels")
SHEET_TITLES = {
    "left": "left image",
    "error": "disparity error vs ground truth",
    "disparity": "disparity (network)",
    "gt_disparity": "ground-truth disparity",
    "semantic": "semantic (network)",
    "gt_labels": "ground-truth labels",
}


def preview_plan(n_frames: int, count: int) -> set[int]:
    """Indices of at most ``count`` of ``n_frames`` processed frames, evenly spread from the first
    (to the last where 1 < ``count`` <= ``n_frames``)."""
    if count <= 0 or n_frames <= 0:
        return set()
    return {round(k * (n_frames - 1) / max(1, count - 1)) for k in range(min(count, n_frames))}


def preview_images(
    left_rgb: np.ndarray,
    disparity: np.ndarray | None,
    labels: np.ndarray | None,
    max_disparity: float,
    label_set: LabelSet,
    gt_disparity: np.ndarray | None = None,
    gt_valid: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
    disp_color: np.ndarray | None = None,
    sem_color: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The preview pictures of one frame, ``{name: (H, W, 3) uint8 RGB}`` in :data:`SHEET_ORDER`.

    Args:
        disparity, labels: the pipeline's result (None where not computed).
        max_disparity: top of the disparity colour scale, px (the node's: the network's range).
        gt_disparity, gt_valid: ground truth and the mask of pixels that have it.
        disp_color, sem_color: the published ``disparity/color`` / ``semantic/color`` images;
            None colours ``disparity`` / ``labels`` the way the node does.
    """
    palette = label_set.palette()
    found: dict[str, np.ndarray | None] = {"left": left_rgb}
    if disp_color is None and disparity is not None:
        disp_color = colorize_disparity(disparity, max_disparity)
    found["disparity"] = disp_color
    if sem_color is None and labels is not None:
        sem_color = colorize_labels(labels, palette)
    found["semantic"] = sem_color
    if gt_disparity is not None:
        valid = gt_valid if gt_valid is not None else np.isfinite(gt_disparity) & (gt_disparity > 0)
        found["gt_disparity"] = colorize_disparity(np.where(valid, gt_disparity, 0), max_disparity)
        if disparity is not None:
            found["error"] = colorize_error(disparity, gt_disparity, valid)
    if gt_labels is not None:
        found["gt_labels"] = colorize_labels(gt_labels, palette)
    return {
        name: np.ascontiguousarray(found[name])
        for name in SHEET_ORDER
        if found.get(name) is not None
    }


def preview_sheet(
    images: Mapping[str, np.ndarray],
    max_disparity: float,
    label_set: LabelSet,
    labels: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`preview_images` side by side, two per row, with titles, colour bars and legends.

    Args:
        labels, gt_labels: the label maps behind ``semantic`` and ``gt_labels`` (their legends
            list the classes present in each).
    """
    palette = label_set.palette()
    keys = {"semantic": labels, "gt_labels": gt_labels}
    cells, titles = [], []
    for name, img in images.items():
        big = enlarge(img)
        if name in ("disparity", "gt_disparity"):
            big = with_colorbar(big, max_disparity)
        elif name == "error":
            big = with_error_legend(big)
        elif name in keys and keys[name] is not None:
            big = with_legend(big, keys[name], label_set.names, palette)
        cells.append(big)
        titles.append(SHEET_TITLES.get(name, name))
    return tile(cells, cols=2, labels=titles, pad=4)


def save_previews(
    directory: Path,
    index: int,
    pipeline: StereoPipeline,
    outcome: FrameOutcome,
    truth: GroundTruth,
) -> list[str]:
    """Write the previews of processed frame ``index``; returns the paths written."""
    result = outcome.result
    assert result is not None and outcome.left_rgb is not None
    top = disparity_range(pipeline)
    # the published images where those topics are enabled, so the previews show what RViz does
    msgs = outcome.messages
    disp_color = image_to_array(msgs["disparity/color"]) if "disparity/color" in msgs else None
    sem_color = image_to_array(msgs["semantic/color"]) if "semantic/color" in msgs else None
    images = preview_images(
        outcome.left_rgb,
        result.disparity,
        result.labels,
        top,
        pipeline.label_set,
        truth.disparity,
        truth.valid,
        truth.labels,
        disp_color=disp_color,
        sem_color=sem_color,
    )
    base = Path(directory) / f"frame_{index:05d}"
    paths = [str(save_png(f"{base}_{name}.png", img)) for name, img in images.items()]
    sheet = preview_sheet(images, top, pipeline.label_set, result.labels, truth.labels)
    paths.append(str(save_png(f"{base}_sheet.png", sheet)))
    return paths
