"""Training losses: class-weighted cross-entropy, masked smooth-L1 disparity, and their sum.

Networks whose geometric output is ``depth`` (``geometry = "depth"``, e.g. hybridnet) are
supervised on depth instead: the HybridNet paper's linear and mean-variance-normalised
Euclidean losses (:func:`depth_linear_loss`, :func:`depth_normalized_loss`), with the
ground-truth depth ``fx * B / (d + doffs)`` from the batch's disparity and calibration.

Each loss returns ``(loss, metrics)`` so the training loop logs what it optimises. How the
task losses are weighted is a :class:`LossWeighting`: fixed weights (the paper's 5 and 1),
GradNorm, or homoscedastic uncertainty, chosen by ``loss.weighting`` in the training config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from stereo_semantic_ros.labels import IGNORE_LABEL
from stereo_semantic_ros.networks.contract import TASKS


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


MVN_EPS = 1e-3
"""Added to the standard deviation (metres) by :func:`depth_normalized_loss`: a map flatter
than a millimetre is not blown up (Caffe's MVN layer adds 1e-9, which lets an untrained,
nearly constant prediction explode)."""


def depth_linear_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """HybridNet's ``L_DL``: squared Euclidean distance between predicted and ground-truth depth
    in linear space, averaged over the valid pixels of the batch.

    Args:
        pred, target: (B, 1, H, W) depth in metres.
        valid: (B, 1, H, W) bool, pixels with ground truth (non-finite targets are left out too).
    """
    mask = valid & torch.isfinite(target)
    if not mask.any():
        return pred.sum() * 0.0
    return (pred.float()[mask] - target[mask]).square().mean()


def mean_variance_normalize(
    x: torch.Tensor, mask: torch.Tensor, eps: float = MVN_EPS
) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` per image over its ``mask`` pixels (Caffe's MVN layer,
    restricted to the pixels with ground truth); (B, 1, H, W) in and out, 0 outside ``mask``.
    The standard deviation is the population one (divided by the pixel count)."""
    m = mask.to(x.dtype)
    n = m.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)
    x = torch.where(mask, x, torch.zeros_like(x))
    mean = x.sum(dim=(1, 2, 3), keepdim=True) / n
    var = ((x - mean).square() * m).sum(dim=(1, 2, 3), keepdim=True) / n
    return torch.where(mask, (x - mean) / (var.sqrt() + eps), torch.zeros_like(x))


def depth_normalized_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, eps: float = MVN_EPS
) -> torch.Tensor:
    """HybridNet's ``L_DN``: squared Euclidean distance between the prediction and the ground
    truth, each mean-variance normalised per image over the valid pixels
    (:func:`mean_variance_normalize`), averaged over the valid pixels of the batch. Images
    with fewer than two valid pixels (no variance) are left out. Shapes as
    :func:`depth_linear_loss`."""
    mask = valid & torch.isfinite(target)
    mask = mask & (mask.sum(dim=(1, 2, 3), keepdim=True) >= 2)
    if not mask.any():
        return pred.sum() * 0.0
    target = torch.where(mask, target, torch.zeros_like(target))
    p = mean_variance_normalize(pred.float(), mask, eps)
    t = mean_variance_normalize(target.float(), mask, eps)
    return (p[mask] - t[mask]).square().mean()


def depth_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """HybridNet's depth loss ``L_DL + L_DN`` (paper Sec. 4); shapes as in
    :func:`depth_linear_loss`."""
    return depth_linear_loss(pred, target, valid) + depth_normalized_loss(pred, target, valid)


def depth_from_disparity(
    disparity: torch.Tensor,
    valid: torch.Tensor,
    fx: torch.Tensor,
    baseline: torch.Tensor,
    doffs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth depth ``fx * B / (d + doffs)`` (metres) of a batch and where it exists.

    Args:
        disparity: (B, 1, H, W) pixels; valid: (B, 1, H, W) bool.
        fx, baseline: (B,) pixels and metres, each sample's calibration at this resolution.
        doffs: (B,) pixels, ``cx_right - cx_left``; None means 0. Adding a 0 is exact, so a
            zero ``doffs`` gives the very floats of ``fx * B / d``.

    Returns:
        depth (B, 1, H, W), 0 where invalid; valid & (d > 0) & (d + doffs > 0).
    """
    valid = valid & (disparity > 0) & torch.isfinite(disparity)
    fb = (fx * baseline).to(disparity.dtype).view(-1, 1, 1, 1)
    shifted = disparity
    if doffs is not None:
        shifted = disparity + doffs.to(disparity.dtype).view(-1, 1, 1, 1)
        valid = valid & (shifted > 0)
    depth = torch.where(valid, fb / shifted.clamp_min(1e-6), torch.zeros_like(disparity))
    return depth, valid


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


# --- the warp method of the corr_mtl paper (seed 000, Sec. 5.4 and 6.1) ----------------------


def warp_right_to_left(
    right: torch.Tensor, disparity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring a right-view map into the left view: ``out[..., v, u] = right[..., v, u - d]``.

    Bilinear between columns (the paper's "bilinear warp on right image"); differentiable in
    ``right`` and in ``disparity``.

    Args:
        right: (B, C, H, W) anything defined on the right image (logits, features, one-hot).
        disparity: (B, 1, H, W) left-view disparity in pixels (left-referenced, >= 0).

    Returns:
        the warped (B, C, H, W) map, zero where ``u - d`` falls outside the right image, and
        (B, 1, H, W) bool ``inside``: whether it did not.
    """
    if disparity.shape[1] != 1 or disparity.shape[-2:] != right.shape[-2:]:
        raise ValueError(
            f"disparity must be (B, 1, H, W) matching {tuple(right.shape)}, "
            f"got {tuple(disparity.shape)}"
        )
    b, _, h, w = right.shape
    disp = torch.nan_to_num(disparity.float(), nan=0.0)
    u = torch.arange(w, device=right.device, dtype=torch.float32).view(1, 1, 1, w)
    v = torch.arange(h, device=right.device, dtype=torch.float32).view(1, h, 1)
    src = u - disp  # (B, 1, H, W) source column in the right image
    inside = (src >= 0) & (src <= w - 1)
    grid = torch.stack(
        [2 * src[:, 0] / max(w - 1, 1) - 1, (2 * v / max(h - 1, 1) - 1).expand(b, h, w)], -1
    )
    warped = F.grid_sample(
        right.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return warped.to(right.dtype), inside


def visible_in_right(disparity: torch.Tensor) -> torch.Tensor:
    """Left pixels the right camera sees, judged from the left disparity alone.

    Left pixel ``u`` lands on right column ``x(u) = u - d(u)``. It is occluded when a pixel
    further right lands at or left of it (``x(u') <= x(u)`` for some ``u' > u``: that pixel
    is nearer and covers it in the right view).

    Args:
        disparity: (B, 1, H, W) pixels.

    Returns:
        (B, 1, H, W) bool, True where visible (inside the right image or not).
    """
    w = disparity.shape[-1]
    u = torch.arange(w, device=disparity.device, dtype=torch.float32)
    x = u - torch.nan_to_num(disparity.float(), nan=0.0)
    # min over u' > u of x(u'): a running minimum from the right, shifted by one column
    from_right = torch.cummin(x.flip(-1), dim=-1).values.flip(-1)
    beyond = F.pad(from_right[..., 1:], (0, 1), value=float("inf"))
    return x < beyond


def warp_trust_mask(
    disparity: torch.Tensor,
    trusted: torch.Tensor | None = None,
    *,
    border_columns: int = 0,
    dilation: int = 8,
) -> torch.Tensor:
    """Where a right-view map warped with ``disparity`` may be used (paper Sec. 6.1).

    The paper found the warped right segmentation wrong where the ground-truth disparity is
    missing (occlusions, "most of them on the left border of an object"), next to such holes,
    and in the first ~60 image columns, where the right camera sees nothing useful; it masks
    those columns and dilates the untrusted regions with an 8x8 kernel.

    Args:
        disparity: (B, 1, H, W) left-view disparity used for the warp, pixels.
        trusted: (B, 1, H, W) bool, pixels whose disparity is valid and visible in the right
            view (e.g. ground-truth ``valid & noc``); None: :func:`visible_in_right` of
            ``disparity``.
        border_columns: the first columns of the left image that are always masked.
        dilation: side of the square kernel the untrusted region is dilated with (1 = none).

    Returns:
        (B, 1, H, W) bool, True where the warped map is trusted.
    """
    if dilation < 1 or border_columns < 0:
        raise ValueError(
            f"need dilation >= 1 and border_columns >= 0, got {dilation}, {border_columns}"
        )
    if trusted is None:
        trusted = visible_in_right(disparity)
    w = disparity.shape[-1]
    src = torch.arange(w, device=disparity.device).view(1, 1, 1, w) - disparity
    trusted = trusted & torch.isfinite(disparity) & (src >= 0) & (src <= w - 1)
    untrusted = (~trusted).float()
    if dilation > 1:
        before = (dilation - 1) // 2
        untrusted = F.max_pool2d(
            F.pad(untrusted, (before, dilation - 1 - before, before, dilation - 1 - before)),
            dilation,
            stride=1,
        )
    keep = untrusted == 0
    if border_columns:
        keep[..., :border_columns] = False
    return keep


def warped_fusion_loss(
    left_logits: torch.Tensor,
    right_logits: torch.Tensor,
    disparity: torch.Tensor,
    labels: torch.Tensor,
    *,
    trusted: torch.Tensor | None = None,
    border_columns: int = 0,
    dilation: int = 8,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The corr_mtl paper's warp method (Algorithm 1) as a training loss.

    The right view's segmentation logits are warped into the left view with ``disparity``
    and added to the left logits where :func:`warp_trust_mask` trusts them; the fused logits
    are scored against the left labels with the (class-weighted) cross-entropy:

        L_warp = CE(left_logits + mask * warp(right_logits, d), labels)

    Gradients reach both views' logits (and ``disparity`` if it requires them).

    Args:
        left_logits, right_logits: (B, C, H, W) segmentation logits of the two views.
        disparity: (B, 1, H, W) left-view disparity in pixels (ground truth in the paper).
        labels: (B, H, W) int64 left-view train ids, 255 ignored.
        trusted, border_columns, dilation: see :func:`warp_trust_mask`.

    Returns:
        ``(loss, metrics)``; metrics: ``seg_warp_trusted``, the fraction of pixels fused.
    """
    if left_logits.shape != right_logits.shape:
        raise ValueError(
            f"left logits {tuple(left_logits.shape)} and right {tuple(right_logits.shape)} differ"
        )
    keep = warp_trust_mask(disparity, trusted, border_columns=border_columns, dilation=dilation)
    warped, _ = warp_right_to_left(right_logits, disparity)
    fused = left_logits + torch.where(keep, warped, torch.zeros_like(warped))
    loss = segmentation_loss(fused, labels, class_weights)
    return loss, {"seg_warp_trusted": float(keep.float().mean())}


# --- multi-task loss weighting ---------------------------------------------------------------

TASK_OF_OUTPUT = {"disparity": "disparity", "depth": "disparity", "seg_logits": "segmentation"}
"""Network output key -> task name (the names used by ``train.tasks`` and the network): the
geometric task is ``disparity`` (what the node publishes) whether the network outputs
disparity or depth."""

WEIGHTINGS = ("fixed", "gradnorm", "uncertainty")


def task_losses(
    outputs: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    *,
    class_weights: torch.Tensor | None = None,
    max_disparity: float | None = None,
    max_depth: float | None = None,
) -> dict[str, torch.Tensor]:
    """The unweighted loss of every task both the outputs and the batch have.

    Args:
        outputs: network outputs (``disparity`` (B,1,H,W) px or ``depth`` (B,1,H,W) metres,
            ``seg_logits`` (B,C,H,W)).
        batch: ``disparity`` (B,1,H,W) float px, ``valid`` (B,1,H,W) bool, ``labels`` (B,H,W)
            int64 (255 ignored); for ``depth`` outputs also ``fx`` and ``baseline`` (B,) and
            optionally ``doffs`` (B,; 0 when absent).
        max_disparity: when given, ground truth at or above it is left out of ``L_d``: the
            soft-argmin cannot reach it, so it would only pull every other pixel upwards. For
            depth outputs likewise (the pipeline invalidates disparities beyond the range).
        max_depth: when given, ground-truth depth above it is left out of a depth output's
            loss (the network's output range ends there).

    The ``disparity`` task's loss is the smooth-L1 :func:`disparity_loss` for a disparity
    output and HybridNet's :func:`depth_loss` (``L_DL + L_DN``) against ``fx * B / (d + doffs)``
    for a depth output.

    Returns:
        ``{"disparity": L_d, "segmentation": L_s}`` (the tasks present), scalar tensors.
    """
    terms: dict[str, torch.Tensor] = {}
    if "disparity" in outputs and "disparity" in batch:
        valid = batch["valid"]
        if max_disparity is not None:
            valid = valid & (batch["disparity"] < max_disparity)
        terms["disparity"] = disparity_loss(outputs["disparity"], batch["disparity"], valid)
    elif "depth" in outputs and "disparity" in batch:
        if "fx" not in batch or "baseline" not in batch:
            raise ValueError("a depth output needs fx and baseline in the batch for fx * B / d")
        valid = batch["valid"]
        if max_disparity is not None:
            valid = valid & (batch["disparity"] < max_disparity)
        target, valid = depth_from_disparity(
            batch["disparity"], valid, batch["fx"], batch["baseline"], batch.get("doffs")
        )
        if max_depth is not None:
            valid = valid & (target <= max_depth)
        terms["disparity"] = depth_loss(outputs["depth"], target, valid)
    if "seg_logits" in outputs and "labels" in batch:
        terms["segmentation"] = segmentation_loss(
            outputs["seg_logits"], batch["labels"], class_weights
        )
    if not terms:
        raise ValueError("nothing to train: the outputs and the batch share no task")
    return terms


class LossWeighting(nn.Module):
    """Combines per-task losses into the one loss the network is trained on.

    Subclasses hold their own state (fixed weights, GradNorm's adaptive weights and optimiser,
    or learnable log-variances) and save it through ``state_dict`` / ``extra_state`` so a
    resumed run continues with the same weighting.
    """

    kind = "fixed"

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        tasks = tuple(tasks)
        unknown = [t for t in tasks if t not in TASKS]
        if not tasks or unknown:
            raise ValueError(
                f"loss weighting: tasks must be a non-empty subset of {TASKS}, got {tasks}"
            )
        self.tasks = tasks

    def weights(self) -> dict[str, float]:
        """The current effective weight of every task (what multiplies its loss)."""
        raise NotImplementedError

    def combine(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``(total, metrics)``: the loss to back-propagate and what to log about it."""
        raise NotImplementedError

    def parameters_for_network_optimizer(self) -> list[nn.Parameter]:
        """Parameters of the weighting that the network's optimiser should train (if any)."""
        return []

    def _check(self, terms: dict[str, torch.Tensor]) -> None:
        missing = [t for t in self.tasks if t not in terms]
        if missing:
            raise ValueError(
                f"loss weighting for tasks {self.tasks} got no loss for {missing}; does the "
                "batch carry that ground truth and the network that output?"
            )

    def _metrics(self, terms: dict[str, torch.Tensor], total: torch.Tensor) -> dict[str, float]:
        metrics = {f"loss_{t}": float(terms[t].detach()) for t in self.tasks}
        metrics.update({f"weight_{t}": w for t, w in self.weights().items()})
        metrics["loss"] = float(total.detach())
        return metrics


class FixedWeighting(LossWeighting):
    """``w_disp * L_d + w_seg * L_s`` (paper eq. 5; 5 and 1 by default)."""

    kind = "fixed"

    def __init__(self, tasks: Sequence[str], w_disp: float = 5.0, w_seg: float = 1.0) -> None:
        super().__init__(tasks)
        self._w = {"disparity": float(w_disp), "segmentation": float(w_seg)}

    def weights(self) -> dict[str, float]:
        return {t: self._w[t] for t in self.tasks}

    def combine(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        self._check(terms)
        total = sum(self._w[t] * terms[t] for t in self.tasks)
        return total, self._metrics(terms, total)  # type: ignore[arg-type]


class GradNorm(LossWeighting):
    """GradNorm adaptive loss balancing (Chen et al., ICML 2018).

    Each task ``i`` has a weight ``w_i``; the network is trained on ``sum_i w_i L_i`` with the
    weights held constant, and the weights are trained on

        L_grad = sum_i | G_i - mean(G) * r_i ** alpha |,

    where ``G_i = || d(w_i L_i) / dW ||`` is the norm of the task's gradient at the last layer
    ``W`` all tasks share, ``r_i = (L_i / L_i(0)) / mean_j(L_j / L_j(0))`` is the task's
    relative inverse training rate, and the target ``mean(G) * r_i ** alpha`` is a constant.
    A task that has trained less (larger ``r_i``) gets a larger gradient, i.e. a larger weight.
    After each update the weights are renormalised to sum to the number of tasks.

    Args:
        tasks: the tasks; a single task makes GradNorm a no-op (its weight stays 1).
        shared_parameter: ``W``; for the ESP joint network the weight of the last layer of the
            shared feature extractor (see :func:`shared_parameter`).
        alpha: strength of the pull towards equal training rates (paper: 0.12 .. 3; 1.5 here).
        lr: learning rate of the weights' own Adam optimiser.
        initial: initial weights by task (renormalised to sum to the number of tasks); all
            equal when None.
    """

    kind = "gradnorm"

    def __init__(
        self,
        tasks: Sequence[str],
        shared_parameter: torch.Tensor,
        *,
        alpha: float = 1.5,
        lr: float = 0.025,
        initial: dict[str, float] | None = None,
    ) -> None:
        super().__init__(tasks)
        if alpha < 0:
            raise ValueError(f"GradNorm alpha must be >= 0, got {alpha}")
        if lr <= 0:
            raise ValueError(f"GradNorm lr must be > 0, got {lr}")
        if not shared_parameter.requires_grad:
            raise ValueError("GradNorm's shared parameter must require gradients")
        self.alpha = float(alpha)
        self.lr = float(lr)
        init = torch.tensor([float((initial or {}).get(t, 1.0)) for t in self.tasks])
        if (init <= 0).any():
            raise ValueError(f"GradNorm initial weights must be > 0, got {initial}")
        self.task_weights = nn.Parameter(init * len(self.tasks) / init.sum())
        self.register_buffer("initial_losses", torch.full((len(self.tasks),), float("nan")))
        # a plain attribute, not a submodule: the shared parameter belongs to the network
        self._shared = [shared_parameter]
        self.optimizer = torch.optim.Adam([self.task_weights], lr=self.lr)
        self.last_grad_norms: dict[str, float] = {}

    def weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in zip(self.tasks, self.task_weights.detach())}

    def combine(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Update the task weights (when training) and return the loss with the old weights.

        Must be called before the network's ``backward`` (it differentiates the task losses
        w.r.t. the shared layer with ``retain_graph=True``).
        """
        self._check(terms)
        losses = torch.stack([terms[t].float() for t in self.tasks])
        weights = self.task_weights.detach().clone()
        total = (weights.to(losses.device) * losses).sum()
        if self.training and len(self.tasks) > 1 and losses.requires_grad:
            self.update(losses)
        metrics = self._metrics(terms, total)
        # the weights the loss above was computed with, as Chen et al. log them
        metrics.update({f"weight_{t}": float(w) for t, w in zip(self.tasks, weights)})
        metrics.update({f"gradnorm_{t}": g for t, g in self.last_grad_norms.items()})
        return total, metrics

    def update(self, losses: torch.Tensor) -> None:
        """One GradNorm step on the task weights for the (T,) task losses (graph attached)."""
        (shared,) = self._shared
        if torch.isnan(self.initial_losses).any():
            self.initial_losses.copy_(losses.detach().to(self.initial_losses.device))
        raw_norms = []
        for i in range(len(self.tasks)):
            grad = torch.autograd.grad(losses[i], shared, retain_graph=True, allow_unused=True)[0]
            raw_norms.append(
                torch.zeros((), device=shared.device) if grad is None else grad.float().norm()
            )
        norms = torch.stack(raw_norms).to(self.task_weights.device)
        rates = losses.detach().to(norms.device) / self.initial_losses.clamp_min(1e-12)
        if dist.is_available() and dist.is_initialized():
            # every rank must move the weights identically: agree on the measured quantities
            both = torch.stack([norms, rates]).to(shared.device)
            dist.all_reduce(both)
            norms, rates = (both / dist.get_world_size()).to(self.task_weights.device)
        inverse_rate = rates / rates.mean().clamp_min(1e-12)
        grad_norms = self.task_weights * norms  # G_i, differentiable in w_i
        target = (grad_norms.mean() * inverse_rate**self.alpha).detach()
        gradnorm_loss = (grad_norms - target).abs().sum()
        self.optimizer.zero_grad(set_to_none=True)
        (weight_grad,) = torch.autograd.grad(gradnorm_loss, self.task_weights)
        self.task_weights.grad = weight_grad
        self.optimizer.step()
        with torch.no_grad():
            self.task_weights.clamp_(min=1e-3)
            self.task_weights.mul_(len(self.tasks) / self.task_weights.sum())
        self.last_grad_norms = {t: float(g) for t, g in zip(self.tasks, grad_norms.detach())}

    def get_extra_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class UncertaintyWeighting(LossWeighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    Every task has a learnable ``s_i = log sigma_i^2`` trained with the network:

        regression (disparity):      0.5 * exp(-s) * L + 0.5 * s
        classification (semantics):        exp(-s) * L + 0.5 * s

    so a task whose loss stays large (is noisy) is down-weighted, and ``s`` cannot run off to
    infinity because of its own penalty. ``s_i`` start at 0.
    """

    kind = "uncertainty"
    REGRESSION = ("disparity",)

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in self.tasks})

    def _factor(self, task: str) -> float:
        return 0.5 if task in self.REGRESSION else 1.0

    def weights(self) -> dict[str, float]:
        return {
            t: self._factor(t) * float(torch.exp(-self.log_vars[t].detach())) for t in self.tasks
        }

    def combine(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        self._check(terms)
        total = sum(
            self._factor(t) * torch.exp(-self.log_vars[t]) * terms[t].float()
            + 0.5 * self.log_vars[t]
            for t in self.tasks
        )
        metrics = self._metrics(terms, total)  # type: ignore[arg-type]
        metrics.update({f"log_var_{t}": float(self.log_vars[t].detach()) for t in self.tasks})
        return total, metrics  # type: ignore[return-value]

    def parameters_for_network_optimizer(self) -> list[nn.Parameter]:
        """The log-variances: optimised together with the network (same optimiser)."""
        return list(self.log_vars.values())


def shared_parameter(model: nn.Module, name: str = "features.norm3.0.weight") -> nn.Parameter:
    """The parameter GradNorm measures task gradients at (by ``named_parameters`` name).

    The default is the scale of the ESP feature extractor's last normalisation layer: its
    output f3 feeds the classifier (f4) and, through the cost volume, the disparity, so it is
    the last layer every task's gradient passes through.
    """
    params = dict(model.named_parameters())
    if name not in params:
        own = getattr(model, "gradnorm_parameter", None)
        if own in params:
            hint = f"set loss.gradnorm_parameter: {own} (its last shared layer)"
        else:
            near = [k for k in params if k.startswith("features.")][-5:]
            hint = f"last feature-extractor parameters: {near}"
        raise ValueError(
            f"GradNorm shared parameter {name!r} is not a parameter of "
            f"{type(model).__name__}; {hint}"
        )
    return params[name]


def make_weighting(
    kind: str,
    tasks: Sequence[str],
    *,
    w_disp: float = 5.0,
    w_seg: float = 1.0,
    model: nn.Module | None = None,
    gradnorm_alpha: float = 1.5,
    gradnorm_lr: float = 0.025,
    gradnorm_parameter: str = "features.norm3.0.weight",
) -> LossWeighting:
    """Build the ``loss.weighting`` of a training config: fixed, gradnorm or uncertainty.

    GradNorm needs the ``model`` (to find the shared parameter) and starts from the fixed
    weights' ratio; uncertainty weighting starts from ``s_i = 0``.
    """
    if kind == "fixed":
        return FixedWeighting(tasks, w_disp, w_seg)
    if kind == "gradnorm":
        if model is None:
            raise ValueError("GradNorm weighting needs the model to find its shared layer")
        return GradNorm(
            tasks,
            shared_parameter(model, gradnorm_parameter),
            alpha=gradnorm_alpha,
            lr=gradnorm_lr,
            initial={"disparity": w_disp, "segmentation": w_seg},
        )
    if kind == "uncertainty":
        return UncertaintyWeighting(tasks)
    raise ValueError(f"loss weighting must be one of {', '.join(WEIGHTINGS)}, got {kind!r}")
