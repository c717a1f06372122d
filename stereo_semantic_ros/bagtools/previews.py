"""PNG previews of replayed frames, spread over the bag (``<OUT>/previews/``).

For each chosen frame: the left image, the node's ``disparity/color`` and ``semantic/color``
(the published images where those topics are enabled, else the same colourings of the
pipeline's result), the ground truth where the bag has it, each as a PNG, and a sheet of all
of them side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stereo_semantic_ros.bagtools.replay_frame import FrameOutcome
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.ros.conversions import image_to_array
from stereo_semantic_ros.ros.settings import disparity_range
from stereo_semantic_ros.visualize import colorize_disparity, colorize_labels, save_png, tile


def preview_plan(n_frames: int, count: int) -> set[int]:
    """Indices of at most ``count`` of ``n_frames`` processed frames, evenly spread from the first
    (to the last where 1 < ``count`` <= ``n_frames``)."""
    if count <= 0 or n_frames <= 0:
        return set()
    return {round(k * (n_frames - 1) / max(1, count - 1)) for k in range(min(count, n_frames))}


def save_previews(
    directory: Path,
    index: int,
    pipeline: StereoPipeline,
    outcome: FrameOutcome,
    gt_disp_msg: Any,
    gt_label_msg: Any,
) -> list[str]:
    """Write the previews of processed frame ``index``; returns the paths written.

    Args:
        gt_disp_msg, gt_label_msg: the frame's ground-truth messages, or None.
    """
    result = outcome.result
    top = disparity_range(pipeline)
    palette = pipeline.label_set.palette()
    cells = [outcome.left_rgb]
    names = ["left"]
    # the published images where those topics are enabled, so the previews show what RViz does
    disp_color = (
        image_to_array(outcome.messages["disparity/color"])
        if "disparity/color" in outcome.messages
        else (colorize_disparity(result.disparity, top) if result.disparity is not None else None)
    )
    sem_color = (
        image_to_array(outcome.messages["semantic/color"])
        if "semantic/color" in outcome.messages
        else (colorize_labels(result.labels, palette) if result.labels is not None else None)
    )
    for name, img in (("disparity", disp_color), ("semantic", sem_color)):
        if img is not None:
            cells.append(np.ascontiguousarray(img))
            names.append(name)
    if gt_disp_msg is not None:
        gt = image_to_array(gt_disp_msg.image).astype(np.float32)
        cells.append(colorize_disparity(np.where(gt >= gt_disp_msg.min_disparity, gt, 0), top))
        names.append("gt_disparity")
    if gt_label_msg is not None:
        cells.append(colorize_labels(image_to_array(gt_label_msg), palette))
        names.append("gt_labels")
    base = Path(directory) / f"frame_{index:05d}"
    paths = []
    for name, img in zip(names, cells):
        paths.append(str(save_png(f"{base}_{name}.png", img)))
    sheet = tile(cells, cols=2, labels=names, pad=2)
    paths.append(str(save_png(f"{base}_sheet.png", sheet)))
    return paths
