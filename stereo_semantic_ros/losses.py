"""Training losses: class-weighted cross-entropy, masked smooth-L1 disparity, and their sum.

Each loss returns ``(loss, metrics)`` so the training loop logs what it optimises.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stereo_semantic_ros.labels import IGNORE_LABEL


def class_weights_from_frequencies(pixel_counts: np.ndarray, c: float = 1.02) -> np.ndarray:
    """ENet/ESP class weights ``w = 1 / ln(c + p_class)``; with c = 1.02 they lie in [1, ~50].

    Args:
        pixel_counts: (C,) labelled pixels per class over the training set.
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("class weights need at least one labelled pixel in the training set")
    return (1.0 / np.log(c + counts / total)).astype(np.float32)


def segmentation_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over (B, C, H, W) logits and (B, H, W) int64 labels, 255 ignored."""
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    if not (labels != IGNORE_LABEL).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, weight=weights, ignore_index=IGNORE_LABEL)


def disparity_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (paper eq. 2-3) over valid pixels; (B, 1, H, W) each, disparity in pixels."""
    mask = valid & torch.isfinite(target)
    if not mask.any():
        return pred.sum() * 0.0
    return F.smooth_l1_loss(pred.float()[mask], target[mask], beta=1.0)


def joint_loss(
    outputs: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    *,
    w_disp: float = 5.0,
    w_seg: float = 1.0,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``w_disp * L_d + w_seg * L_s`` (paper eq. 5, defaults 5 and 1) over the tasks present.

    ``batch`` holds ``disparity`` (B,1,H,W) float, ``valid`` (B,1,H,W) bool and
    ``labels`` (B,H,W) int64.
    """
    terms: dict[str, torch.Tensor] = {}
    if "disparity" in outputs and "disparity" in batch:
        terms["disp"] = disparity_loss(outputs["disparity"], batch["disparity"], batch["valid"])
    if "seg_logits" in outputs and "labels" in batch:
        terms["seg"] = segmentation_loss(outputs["seg_logits"], batch["labels"], class_weights)
    if not terms:
        raise ValueError("nothing to train: the outputs and the batch share no task")
    total = w_disp * terms.get("disp", 0.0) + w_seg * terms.get("seg", 0.0)
    metrics = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
    metrics["loss"] = float(total.detach())  # type: ignore[union-attr]
    return total, metrics  # type: ignore[return-value]
