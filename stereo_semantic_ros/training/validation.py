"""Validation during training: the held-out split (``data.val``), every ``train.eval_every``
steps and at the end, scored through the evaluation CLI's code path (its one
:class:`~stereo_semantic_ros.evaluation.scorer.Scorer`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from stereo_semantic_ros.evaluation.predictors import PipelinePredictor
from stereo_semantic_ros.evaluation.runner import evaluate
from stereo_semantic_ros.pipeline import StereoPipeline

# log column -> where the evaluation report holds it
VAL_KEYS = {
    "val/epe_all": ("disparity", "all", "epe"),
    "val/bad3_all": ("disparity", "all", "bad3"),
    "val/epe_noc": ("disparity", "noc", "epe"),
    "val/miou": ("segmentation", "miou"),
}


def validate(
    model: nn.Module,
    dataset: Any,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    max_images: int | None,
) -> dict[str, float]:
    """Evaluate the current weights through the shared pipeline (the eval CLI's code path)."""
    was_training = model.training
    pipe = StereoPipeline(model, mean=mean, std=std, device=str(device))
    try:
        report = evaluate(
            PipelinePredictor(pipe, name="ours"),
            dataset,
            max_images=max_images,
            progress=False,
            warmup=False,
        )
    finally:
        model.train(was_training)
    method = report["methods"]["ours"]
    out: dict[str, float] = {}
    for key, path in VAL_KEYS.items():
        node: Any = method
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, (int, float)) and math.isfinite(node):
            out[key] = float(node) * (100.0 if key == "val/miou" else 1.0)
    return out


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of the validation metric ``key`` is better (errors, not mIoU)."""
    return "miou" not in key


def update_best(best: dict[str, float], values: Mapping[str, float]) -> None:
    """Keep in ``best`` each metric's best value so far."""
    for key, value in values.items():
        old = best.get(key)
        better = old is None or (value < old if lower_is_better(key) else value > old)
        if better:
            best[key] = value
