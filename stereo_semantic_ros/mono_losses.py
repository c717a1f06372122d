"""Losses of the single-image networks trained on both views of a pair: pseudo_mtl's confidence
weighted pseudo-label regression and cross-view consistency (seed 003), and synchronized's
CLIP-style contrastive loss (seed 004).

Pseudo-MTL (seed 003, Sec. 3.2). The network runs on the left and on the right image; the
teacher's pseudo disparities ``d_pgt_l``, ``d_pgt_r`` (pixels) and confidences ``c_l``, ``c_r``
supervise it. With ``G(a; b)`` the warp of a map ``a`` into the other view with that view's
pseudo disparity ``b`` (:func:`~stereo_semantic_ros.losses.warp_right_to_left`,
:func:`warp_left_to_right`) and ``L_reg(c, a, b) = sum_p c(p) |a(p) - b(p)| / sum_p c(p)``
(paper eq. 1)::

    L_d    = L_reg(c_l, d_l, d_pgt_l) + L_reg(c_r, d_r, d_pgt_r)
    L_s    = H(s_l, s_gt_l) + H(s_r, s_gt_r)
    L_d,lr = L_reg(c_l, d_l, G(d_r; d_pgt_l)) + L_reg(c_r, G(d_l; d_pgt_r), d_r)
    L_d,l  = L_reg(c_l, d_pgt_l, G(d_r; d_pgt_l)) + L_reg(c_l, d_l, G(d_pgt_r; d_pgt_l))
    L_d,r  = L_reg(c_r, G(d_l; d_pgt_r), d_pgt_r) + L_reg(c_r, G(d_pgt_l; d_pgt_r), d_r)
    L_s,lr = c_l . H(s_l, G(s_r; d_pgt_l)) + c_r . H(G(s_l; d_pgt_r), s_r)
    L_s,l  = c_l . H(s_gt_l, G(s_r; d_pgt_l)) + c_l . H(s_l, G(s_gt_r; d_pgt_l))
    L_s,r  = c_r . H(G(s_l; d_pgt_r), s_gt_r) + c_r . H(G(s_gt_l; d_pgt_r), s_r)
    L      = a_d L_d + a_s L_s + a_d,lr L_d,lr + a_d,l L_d,l + a_d,r L_d,r
             + a_s,lr L_s,lr + a_s,l L_s,l + a_s,r L_s,r

with the paper's weights a_d 850, a_s 2.5 (the recipe's ``loss.w_disp`` / ``loss.w_seg``) and
:class:`CrossViewWeights` (0.5, 1, 1, 0.5, 1.5, 1.5). Where the paper is vague, the choices:

* ``d`` is the disparity as a fraction of the image width the network sees, ``(fx * B / Z -
  doffs) / W`` for a predicted depth ``Z`` and ``d_pgt / W`` for the teacher (Monodepth's unit,
  the only one in which a_d = 850 and a_s = 2.5 weigh the two tasks alike; see
  :mod:`stereo_semantic_ros.networks.pseudo_mtl`). Depth and disparity of one scene point are the
  same in both views of a rectified pair, so warped maps compare directly.
* Where a warp leaves the image (or, for a warped pseudo label, lands on a pixel without one)
  the pixel's weight is 0; pseudo labels at or above the network's ``max_disparity`` are left
  out, as ground truth is for the other architectures.
* ``H`` between a prediction and labels is the per-pixel cross-entropy with the labels as the
  target (255 ignored), whatever the argument order (the paper writes the left view first, not
  the target first). ``H`` between two predictions (``L_s,lr``) is the symmetric soft
  cross-entropy ``-(p_a . log p_b + p_b . log p_a) / 2``; both sides get gradients. Labels are
  warped by nearest neighbour (a bilinear warp would mix class ids), logits bilinearly.
* ``c . H`` is normalised like ``L_reg``: the confidence-weighted mean over the pixels counted.
  The supervised ``L_s`` keeps the package's class weights; the consistency terms do not.
* Without confidence (the ablation's "w/o confidence", and data without a confidence map) ``c``
  is 1 wherever the pseudo label exists.

Synchronized (seed 004, Sec. 3.1): :func:`clip_loss`, CLIP's symmetric InfoNCE between the
embeddings of the depth maps and of the segmentation maps of a batch (a map's partner is the other
task's map of the same image; the other images of the batch are the negatives).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from stereo_semantic_ros.labels import IGNORE_LABEL
from stereo_semantic_ros.losses import (
    depth_from_disparity,
    segmentation_loss,
    warp_right_to_left,
)

CROSS_VIEW_TERMS = ("d_lr", "d_l", "d_r", "s_lr", "s_l", "s_r")
"""The six cross-view consistency losses, in the paper's order (log columns ``loss_<term>``)."""
WARP_VALID = 0.999
"""A warped validity mask above this: every bilinear neighbour of the warp had a pseudo label."""


@dataclass(frozen=True)
class CrossViewWeights:
    """a_d,lr, a_d,l, a_d,r, a_s,lr, a_s,l, a_s,r: the paper's values (Sec. 4.2) by default."""

    d_lr: float = 0.5
    d_l: float = 1.0
    d_r: float = 1.0
    s_lr: float = 0.5
    s_l: float = 1.5
    s_r: float = 1.5

    def __post_init__(self) -> None:
        bad = {k: v for k, v in asdict(self).items() if not v >= 0}
        if bad:
            raise ValueError(f"cross-view loss weights must be >= 0, got {bad}")

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


# --- warps ------------------------------------------------------------------------------------


def warp_left_to_right(
    left: torch.Tensor, right_disparity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring a left-view map into the right view: ``out[..., v, u] = left[..., v, u + d_r]``.

    The mirror image of :func:`~stereo_semantic_ros.losses.warp_right_to_left` (flipping both
    views turns one into the other): bilinear between columns, differentiable.

    Args:
        left: (B, C, H, W) any map of the left image.
        right_disparity: (B, 1, H, W) right-view disparity in pixels (>= 0).

    Returns:
        the warped (B, C, H, W) map (zero outside the left image) and (B, 1, H, W) bool
        ``inside``.
    """
    warped, inside = warp_right_to_left(left.flip(-1), right_disparity.flip(-1))
    return warped.flip(-1), inside.flip(-1)


def warp_labels(labels: torch.Tensor, disparity: torch.Tensor, *, to: str) -> torch.Tensor:
    """Warp (B, H, W) class ids into the other view by nearest neighbour.

    Args:
        labels: (B, H, W) int64 ids of the source view (255 = ignore).
        disparity: (B, 1, H, W) disparity of the TARGET view, pixels.
        to: ``"left"`` (a right-view map: ``out[v, u] = labels[v, round(u - d)]``) or
            ``"right"`` (a left-view map: ``out[v, u] = labels[v, round(u + d)]``).

    Returns:
        (B, H, W) int64, 255 where the source column falls outside the image.
    """
    if to not in ("left", "right"):
        raise ValueError(f"to must be 'left' or 'right', got {to!r}")
    w = labels.shape[-1]
    u = torch.arange(w, device=labels.device, dtype=torch.float32).view(1, 1, w)
    d = torch.nan_to_num(disparity[:, 0].float(), nan=0.0)
    src = torch.round(u - d if to == "left" else u + d)
    inside = (src >= 0) & (src <= w - 1)
    picked = labels.gather(-1, src.clamp(0, w - 1).long())
    return torch.where(inside, picked, torch.full_like(picked, IGNORE_LABEL))


# --- the weighted means -----------------------------------------------------------------------


def confidence_l1(weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``L_reg`` (paper eq. 1): ``sum c |a - b| / sum c``; 0 (with gradients) when ``sum c = 0``.

    Args:
        weight: (B, 1, H, W) per-pixel confidence ``c`` >= 0 (0 = not counted).
        a, b: (B, 1, H, W) maps in one unit.
    """
    total = weight.sum()
    diff = (a.float() - b.float()).abs()
    diff = torch.where(weight > 0, diff, torch.zeros_like(diff))  # a hole's value never counts
    if not total > 0:
        return (a.sum() + b.sum()) * 0.0
    return (weight * diff).sum() / total


def weighted_cross_entropy(
    weight: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """``c . H(s, s_gt)`` normalised: the per-pixel cross-entropy of (B, C, H, W) ``logits``
    against (B, H, W) ``labels`` (255 ignored), weighted by (B, 1, H, W) ``weight`` and divided by
    the weight of the pixels counted."""
    counted = (labels != IGNORE_LABEL) & (weight[:, 0] > 0)
    if not counted.any():
        return logits.sum() * 0.0
    ce = F.cross_entropy(
        logits.float(), labels.masked_fill(~counted, 0), reduction="none"
    )  # (B, H, W)
    w = torch.where(counted, weight[:, 0].float(), torch.zeros_like(ce))
    return (w * ce).sum() / w.sum()


def weighted_soft_cross_entropy(
    weight: torch.Tensor, logits_a: torch.Tensor, logits_b: torch.Tensor
) -> torch.Tensor:
    """``c . H(s_a, s_b)`` between two predictions, symmetric:
    ``-(p_a . log p_b + p_b . log p_a) / 2`` per pixel, weighted by ``weight`` and normalised."""
    total = weight.sum()
    if not total > 0:
        return (logits_a.sum() + logits_b.sum()) * 0.0
    log_a = F.log_softmax(logits_a.float(), 1)
    log_b = F.log_softmax(logits_b.float(), 1)
    ce = -0.5 * (log_a.exp() * log_b + log_b.exp() * log_a).sum(1, keepdim=True)
    ce = torch.where(weight > 0, ce, torch.zeros_like(ce))
    return (weight * ce).sum() / total


# --- pseudo_mtl's losses ----------------------------------------------------------------------


@dataclass
class ViewTargets:
    """Both views' pseudo labels of a batch, in the loss's units.

    ``disp_l``/``disp_r``: (B, 1, H, W) pixels, 0 where no pseudo label; ``conf_l``/``conf_r``:
    (B, 1, H, W) weights in [0, 1], 0 where no pseudo label; ``labels_l``/``labels_r``: (B, H, W)
    int64 or None.
    """

    disp_l: torch.Tensor
    disp_r: torch.Tensor
    conf_l: torch.Tensor
    conf_r: torch.Tensor
    labels_l: torch.Tensor | None
    labels_r: torch.Tensor | None


def view_targets(
    batch: Mapping[str, torch.Tensor],
    *,
    confidence: bool = True,
    max_disparity: float | None = None,
) -> ViewTargets:
    """The two views' pseudo labels of a training batch.

    ``batch`` holds ``disparity`` and ``valid`` (the left view), ``right_disparity`` (0 =
    unknown), and optionally ``confidence`` / ``right_confidence`` (B, 1, H, W) in [0, 1] (the
    teacher's; absent: 1 where the disparity exists), ``labels`` / ``right_labels`` (B, H, W).

    Raises:
        ValueError: no right-view disparity in the batch (the data has no right-view labels).
    """
    if "disparity" not in batch or "right_disparity" not in batch:
        raise ValueError(
            "the cross-view losses (loss.cross_view) need both views' disparity in the training "
            "data: pseudo labels from stereo-semantic-pseudo-label (data.type: pseudo_labels) or "
            "data with right-view ground truth (data.type: synthetic)"
        )
    disp_l = torch.nan_to_num(batch["disparity"].float(), nan=0.0)
    disp_r = torch.nan_to_num(batch["right_disparity"].float(), nan=0.0)
    valid_l = batch.get("valid", disp_l > 0) & (disp_l > 0)
    valid_r = disp_r > 0
    if max_disparity is not None:
        valid_l = valid_l & (disp_l < max_disparity)
        valid_r = valid_r & (disp_r < max_disparity)
    conf_l, conf_r = valid_l.float(), valid_r.float()
    if confidence:
        if "confidence" in batch:
            conf_l = conf_l * batch["confidence"].float().clamp(0.0, 1.0)
        if "right_confidence" in batch:
            conf_r = conf_r * batch["right_confidence"].float().clamp(0.0, 1.0)
    return ViewTargets(
        disp_l=torch.where(valid_l, disp_l, torch.zeros_like(disp_l)),
        disp_r=torch.where(valid_r, disp_r, torch.zeros_like(disp_r)),
        conf_l=conf_l,
        conf_r=conf_r,
        labels_l=batch.get("labels"),
        labels_r=batch.get("right_labels"),
    )


def disparity_of_depth(depth: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``fx * B / Z - doffs`` (pixels) of a (B, 1, H, W) depth in metres, per sample's
    calibration (``fx``, ``baseline``, optional ``doffs`` (B,) in the batch)."""
    if "fx" not in batch or "baseline" not in batch:
        raise ValueError("a depth output needs fx and baseline in the batch for d = fx * B / Z")
    fb = (batch["fx"] * batch["baseline"]).float().view(-1, 1, 1, 1)
    d = fb / depth.float()
    if "doffs" in batch:
        d = d - batch["doffs"].float().view(-1, 1, 1, 1)
    return d


def pseudo_label_losses(
    out_l: Mapping[str, torch.Tensor],
    out_r: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    *,
    confidence: bool = True,
    class_weights: torch.Tensor | None = None,
    max_disparity: float | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, float]]:
    """Pseudo-MTL's losses of one batch (module docstring), unweighted.

    Args:
        out_l, out_r: the network's outputs on the left and on the right images (``depth``
            (B, 1, H, W) metres and/or ``seg_logits`` (B, C, H, W)).
        batch: see :func:`view_targets`; also ``fx``, ``baseline`` (, ``doffs``) for depth.
        confidence: weight by the teacher's confidence (False: 1 where a pseudo label exists).
        class_weights: (C,) for the supervised ``L_s``.
        max_disparity: pseudo labels at or above it are left out.

    Returns:
        ``(tasks, cross_view, metrics)``: ``{"disparity": L_d, "segmentation": L_s}`` (the tasks
        the outputs have), ``{term: L_term}`` for the :data:`CROSS_VIEW_TERMS` those tasks allow,
        and ``{"cross_view_trusted": fraction of left pixels with a weight after the warp}``.
    """
    t = view_targets(batch, confidence=confidence, max_disparity=max_disparity)
    width = float(t.disp_l.shape[-1])

    def to_left(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return warp_right_to_left(a, t.disp_l)

    def to_right(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return warp_left_to_right(a, t.disp_r)

    # weights after a warp: confidence where the source column is inside the other image
    _, inside_l = to_left(t.conf_r)
    _, inside_r = to_right(t.conf_l)
    c_l = t.conf_l * inside_l.float()
    c_r = t.conf_r * inside_r.float()
    tasks: dict[str, torch.Tensor] = {}
    cross: dict[str, torch.Tensor] = {}
    if "depth" in out_l:
        p_l = disparity_of_depth(out_l["depth"], batch) / width
        p_r = disparity_of_depth(out_r["depth"], batch) / width
        g_l, g_r = t.disp_l / width, t.disp_r / width
        warped_valid_r, _ = to_left((t.disp_r > 0).float())
        warped_valid_l, _ = to_right((t.disp_l > 0).float())
        p_r_in_l, p_l_in_r = to_left(p_r)[0], to_right(p_l)[0]
        g_r_in_l, g_l_in_r = to_left(g_r)[0], to_right(g_l)[0]
        tasks["disparity"] = confidence_l1(t.conf_l, p_l, g_l) + confidence_l1(t.conf_r, p_r, g_r)
        cross["d_lr"] = confidence_l1(c_l, p_l, p_r_in_l) + confidence_l1(c_r, p_l_in_r, p_r)
        cross["d_l"] = confidence_l1(c_l, g_l, p_r_in_l) + confidence_l1(
            c_l * (warped_valid_r > WARP_VALID), p_l, g_r_in_l
        )
        cross["d_r"] = confidence_l1(c_r, p_l_in_r, g_r) + confidence_l1(
            c_r * (warped_valid_l > WARP_VALID), g_l_in_r, p_r
        )
    if "seg_logits" in out_l:
        s_l, s_r = out_l["seg_logits"], out_r["seg_logits"]
        s_r_in_l, s_l_in_r = to_left(s_r)[0], to_right(s_l)[0]
        if t.labels_l is None:
            raise ValueError("the segmentation task needs left-view labels in the training data")
        tasks["segmentation"] = segmentation_loss(s_l, t.labels_l, class_weights)
        cross["s_lr"] = weighted_soft_cross_entropy(
            c_l, s_l, s_r_in_l
        ) + weighted_soft_cross_entropy(c_r, s_l_in_r, s_r)
        cross["s_l"] = weighted_cross_entropy(c_l, s_r_in_l, t.labels_l)
        if t.labels_r is not None:
            tasks["segmentation"] = tasks["segmentation"] + segmentation_loss(
                s_r, t.labels_r, class_weights
            )
            cross["s_l"] = cross["s_l"] + weighted_cross_entropy(
                c_l, s_l, warp_labels(t.labels_r, t.disp_l, to="left")
            )
            cross["s_r"] = weighted_cross_entropy(c_r, s_l_in_r, t.labels_r)
        else:
            cross["s_r"] = s_l.sum() * 0.0
        cross["s_r"] = cross["s_r"] + weighted_cross_entropy(
            c_r, s_r, warp_labels(t.labels_l, t.disp_r, to="right")
        )
    if not tasks:
        raise ValueError("nothing to train: the outputs have neither depth nor seg_logits")
    metrics = {"cross_view_trusted": float((c_l > 0).float().mean())}
    return tasks, cross, metrics


# --- synchronized's contrastive loss ----------------------------------------------------------


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric contrastive loss between two batches of embeddings.

    ``logits = exp(logit_scale) * a_n @ b_n.T`` with L2-normalised rows; the loss is the mean of
    the cross-entropies of the rows and of the columns against the diagonal (row ``i`` of ``a``
    belongs with row ``i`` of ``b``). A batch of one has no negatives: the loss is 0.

    Args:
        a, b: (N, D) embeddings of the two modalities (depth maps, segmentation maps).
        logit_scale: () log of the inverse temperature (CLIP learns it, from log(1 / 0.07)).
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two (N, D) embeddings of one shape, got {a.shape} and {b.shape}")
    a = F.normalize(a.float(), dim=1)
    b = F.normalize(b.float(), dim=1)
    logits = logit_scale.float().exp() * a @ b.t()
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def contrastive_loss(
    network: torch.nn.Module,
    outputs: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """synchronized's contrastive loss of a batch: :func:`clip_loss` between the network's
    embeddings (``network.contrastive_embeddings``, ``network.clip_logit_scale``) of its predicted
    depth and segmentation maps, plus the same between the batch's ground-truth (or pseudo) maps
    where it has both (``disparity`` with ``fx``/``baseline``, and ``labels``).

    The paper trains its CLIP model on ground-truth pairs and adds its score for the predicted
    pair to both task losses; here one set of map encoders learns from both pairs in the same
    step: the ground-truth pair teaches them what belongs together, the predicted pair passes
    that on to the two task networks.

    Args:
        outputs: ``depth`` (B, 1, H, W) metres and ``seg_logits`` (B, C, H, W).
        batch: see above; ``valid`` marks the disparity ground truth.
    """
    if "depth" not in outputs or "seg_logits" not in outputs:
        raise ValueError("the contrastive loss needs both the depth and the segmentation output")
    probs = torch.softmax(outputs["seg_logits"].float(), 1)
    a, b = network.contrastive_embeddings(outputs["depth"], probs)
    loss = clip_loss(a, b, network.clip_logit_scale)
    if all(k in batch for k in ("disparity", "valid", "fx", "baseline", "labels")):
        depth, valid = depth_from_disparity(
            batch["disparity"], batch["valid"], batch["fx"], batch["baseline"], batch.get("doffs")
        )
        depth = torch.where(valid, depth, torch.full_like(depth, float("nan")))
        labels = batch["labels"]
        known = labels != IGNORE_LABEL
        onehot = F.one_hot(labels.masked_fill(~known, 0), probs.shape[1]).permute(0, 3, 1, 2)
        onehot = onehot.float() * known[:, None].float()
        a, b = network.contrastive_embeddings(depth, onehot)
        loss = loss + clip_loss(a, b, network.clip_logit_scale)
    return loss
