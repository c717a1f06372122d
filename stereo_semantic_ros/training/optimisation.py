"""The network and everything that updates it: loss weighting, Adam, the step schedule, AMP.

Adam with the learning rate multiplied by ``train.lr_decay`` at the recipe's milestones
(:meth:`~stereo_semantic_ros.training.config.TrainConfig.milestone_steps`) and the task losses
combined by the recipe's :class:`~stereo_semantic_ros.losses.LossWeighting` (fixed, GradNorm
or uncertainty); the defaults are the ESP joint paper's. AMP (fp16 autocast with a
GradScaler) only on CUDA. With ``loss.seg_warp`` the network also runs on the mirrored pair
and the warp method's loss (:func:`~stereo_semantic_ros.losses.warped_fusion_loss`) is added.
With ``loss.cross_view`` (pseudo_mtl) a single-image network runs on both images of the pair
and is trained with :func:`~stereo_semantic_ros.mono_losses.pseudo_label_losses`; with
``loss.contrastive`` (synchronized) the CLIP-style loss of
:func:`~stereo_semantic_ros.mono_losses.contrastive_loss` is added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from stereo_semantic_ros.losses import (
    LossWeighting,
    make_weighting,
    task_losses,
    warped_fusion_loss,
)
from stereo_semantic_ros.mono_losses import (
    CROSS_VIEW_TERMS,
    CrossViewWeights,
    contrastive_loss,
    pseudo_label_losses,
)
from stereo_semantic_ros.networks import geometry_of, get_model_builder
from stereo_semantic_ros.networks.contract import network_traits
from stereo_semantic_ros.training.config import ConfigError, TrainConfig
from stereo_semantic_ros.training.distributed import DistInfo, unwrap

# a few non-finite losses are skipped; more than this many means the run has diverged
MAX_NONFINITE_STEPS = 20


@dataclass(frozen=True)
class SegWarp:
    """The recipe's ``loss.seg_warp*`` settings (see :class:`LossSection`); weight 0 = off."""

    weight: float = 0.0
    disparity: str = "ground_truth"
    border_columns: int = 0
    dilation: int = 8


@dataclass(frozen=True)
class CrossView:
    """The recipe's ``loss.cross_view`` (see :class:`CrossViewSection`)."""

    confidence: bool = True
    weights: CrossViewWeights = CrossViewWeights()


@dataclass
class Optimisation:
    """What one training step uses and changes; built by :func:`build_optimisation`."""

    model: nn.Module
    hyper_parameters: dict[str, Any]
    weighting: LossWeighting
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    scaler: torch.amp.GradScaler
    use_amp: bool
    grad_clip: float
    device: torch.device
    class_weights: torch.Tensor | None = None
    max_disparity: int | None = None
    max_depth: float | None = None
    skipped_nonfinite: int = 0
    seg_warp: SegWarp = SegWarp()
    cross_view: CrossView | None = None
    contrastive: float = 0.0

    @property
    def extra_log_columns(self) -> list[str]:
        """Log columns beyond the tasks' and the weighting's."""
        columns = ["loss_seg_warp", "seg_warp_trusted"] if self.seg_warp.weight > 0 else []
        if self.cross_view is not None:
            columns += [f"loss_{t}" for t in CROSS_VIEW_TERMS]
            columns += ["loss_cross_view", "cross_view_trusted"]
        if self.contrastive > 0:
            columns += ["loss_contrastive"]
        return columns

    @property
    def network(self) -> nn.Module:
        """The model without a DistributedDataParallel wrapper: what checkpoints hold."""
        return unwrap(self.model)

    @property
    def tasks(self) -> list[str]:
        return self.hyper_parameters["tasks"]

    def start(self, info: DistInfo, class_weights: Sequence[float] | None) -> None:
        """Ready the (possibly resumed) model for the first step: wrap it for DDP under
        torchrun, switch it to training mode and put the class weights on the device."""
        if info.enabled:
            if self.device.type == "cuda":
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.model.train()
        self.class_weights = (
            torch.tensor(class_weights, dtype=torch.float32, device=self.device)
            if class_weights is not None
            else None
        )
        self.max_disparity = network_traits(self.network).max_disparity
        # a depth network's own range (HybridNet's), beyond the contract; None for the others
        self.max_depth = getattr(self.network, "max_depth", None)

    def step(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        target: Mapping[str, torch.Tensor],
        step: int,
    ) -> tuple[dict[str, float], float, float]:
        """One optimiser step on a normalised batch.

        Returns the weighting's metrics (``loss``, ``loss_<task>``, ``weight_<task>``...), the
        global gradient norm (NaN when the loss was not finite and the update was skipped) and
        the learning rate the step used. ``step`` (1-based) only names the step in errors.
        """
        device = self.device
        if self.cross_view is not None:
            total, metrics, outputs = self._cross_view_losses(left, right, target)
        else:
            total, metrics, outputs = self._losses(left, right, target)
        if self.contrastive > 0:
            con = contrastive_loss(self.network, outputs, target)
            total = total + self.contrastive * con
            metrics = {**metrics, "loss_contrastive": float(con.detach())}
            metrics["loss"] = float(total.detach())
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(total):
            self.skipped_nonfinite += 1
            if self.skipped_nonfinite > MAX_NONFINITE_STEPS:
                raise RuntimeError(
                    f"the loss was not finite in {self.skipped_nonfinite} steps (last at step "
                    f"{step}); lower train.lr or check the data"
                )
            grad_norm = float("nan")
        else:
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            if self.grad_clip > 0:
                grad_norm = float(nn.utils.clip_grad_norm_(params, self.grad_clip))
            else:
                grad_norm = float(
                    torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
                )
            self.scaler.step(self.optimizer)
            self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        if device.type == "cuda":
            # step times in the log are the GPU's, not the kernel launches'
            torch.cuda.synchronize(device)
        return metrics, grad_norm, lr

    def _forward(self, left: torch.Tensor, right: torch.Tensor | None) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            return self.model(left, right)

    def _losses(
        self, left: torch.Tensor, right: torch.Tensor, target: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        """The task losses (and the warp method's) of a batch: ``(total, metrics, outputs)``."""
        warp = self.seg_warp.weight > 0
        b = left.shape[0]
        if warp:
            # the mirrored pair (views swapped) in the same batch: its segmentation, flipped
            # back, is the right view's
            left, right = torch.cat([left, right.flip(-1)]), torch.cat([right, left.flip(-1)])
        stereo = "disparity" in self.tasks and geometry_of(self.network) == "disparity"
        outputs = self._forward(left, right if stereo else None)
        right_logits = outputs["seg_logits"][b:].flip(-1) if warp else None
        outputs = {k: v[:b] for k, v in outputs.items()}
        terms = task_losses(
            outputs,
            target,
            class_weights=self.class_weights,
            max_disparity=self.max_disparity,
            max_depth=self.max_depth,
        )
        total, metrics = self.weighting.combine(terms)
        if right_logits is not None:
            warp_loss, warp_metrics = self._seg_warp_loss(outputs, right_logits, target)
            total = total + self.seg_warp.weight * warp_loss
            metrics = {**metrics, **warp_metrics, "loss_seg_warp": float(warp_loss.detach())}
            metrics["loss"] = float(total.detach())
        return total, metrics, outputs

    def _cross_view_losses(
        self, left: torch.Tensor, right: torch.Tensor, target: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        """pseudo_mtl's losses: the single-image network on both images (one batch of 2B), the
        supervised task losses through the weighting, the cross-view terms with their weights.
        Returns ``(total, metrics, left-view outputs)``."""
        assert self.cross_view is not None
        b = left.shape[0]
        outputs = self._forward(torch.cat([left, right]), None)
        out_l = {k: v[:b] for k, v in outputs.items()}
        out_r = {k: v[b:] for k, v in outputs.items()}
        tasks, cross, extra = pseudo_label_losses(
            out_l,
            out_r,
            target,
            confidence=self.cross_view.confidence,
            class_weights=self.class_weights,
            max_disparity=self.max_disparity,
        )
        total, metrics = self.weighting.combine(tasks)
        weights = self.cross_view.weights.as_dict()
        weighted = sum((weights[k] * v for k, v in cross.items() if weights[k] > 0), total * 0.0)
        total = total + weighted
        metrics = {**metrics, **extra}
        metrics.update({f"loss_{k}": float(v.detach()) for k, v in cross.items()})
        metrics["loss_cross_view"] = float(weighted.detach())
        metrics["loss"] = float(total.detach())
        return total, metrics, out_l

    def _seg_warp_loss(
        self,
        outputs: Mapping[str, torch.Tensor],
        right_logits: torch.Tensor,
        target: Mapping[str, torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The warp method's loss with the ground-truth or the predicted (detached) disparity."""
        if "labels" not in target:
            raise ValueError("loss.seg_warp needs left-view labels in the training data")
        if self.seg_warp.disparity == "ground_truth":
            if "disparity" not in target or "valid" not in target:
                raise ValueError(
                    "loss.seg_warp_disparity: ground_truth needs disparity ground truth in the "
                    "training data; use predicted"
                )
            disparity = target["disparity"]
            trusted = target["valid"] & target.get("noc", target["valid"])
        else:
            disparity, trusted = outputs["disparity"].detach(), None
        return warped_fusion_loss(
            outputs["seg_logits"],
            right_logits,
            disparity,
            target["labels"],
            trusted=trusted,
            border_columns=self.seg_warp.border_columns,
            dilation=self.seg_warp.dilation,
            class_weights=self.class_weights,
        )


def build_optimisation(cfg: TrainConfig, num_classes: int, device: torch.device) -> Optimisation:
    """A freshly initialised model (seed the RNGs first) and its optimisation, on ``device``."""
    tcfg = cfg.train
    tasks = list(tcfg.tasks)
    hyper = dict(cfg.model.hyper_parameters, num_classes=num_classes, tasks=tasks)
    model = get_model_builder(cfg.model.architecture)(**hyper).to(device)
    weighting = make_weighting(
        cfg.loss.weighting,
        tasks,
        w_disp=cfg.loss.w_disp,
        w_seg=cfg.loss.w_seg,
        model=model,
        gradnorm_alpha=cfg.loss.gradnorm_alpha,
        gradnorm_lr=cfg.loss.gradnorm_lr,
        gradnorm_parameter=cfg.loss.gradnorm_parameter,
    ).to(device)
    param_groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    extra = weighting.parameters_for_network_optimizer()
    if extra:
        param_groups.append({"params": extra, "weight_decay": 0.0})
    optimizer = torch.optim.Adam(
        param_groups, lr=tcfg.lr, betas=tuple(tcfg.betas), weight_decay=tcfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=cfg.milestone_steps(), gamma=tcfg.lr_decay
    )
    use_amp = tcfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    cross_view = None
    if cfg.loss.cross_view is not None:
        if geometry_of(model) != "depth":
            raise ConfigError(
                f"loss.cross_view runs a single-image network on each view; "
                f"{cfg.model.architecture} is a stereo network (geometry "
                f"{geometry_of(model)!r}): use pseudo_mtl (or another depth network)"
            )
        cv = cfg.loss.cross_view
        cross_view = CrossView(
            confidence=cv.confidence,
            weights=CrossViewWeights(
                d_lr=cv.d_lr, d_l=cv.d_l, d_r=cv.d_r, s_lr=cv.s_lr, s_l=cv.s_l, s_r=cv.s_r
            ),
        )
    if cfg.loss.contrastive > 0 and not callable(getattr(model, "contrastive_embeddings", None)):
        raise ConfigError(
            f"loss.contrastive needs a network with contrastive_embeddings (synchronized); "
            f"{cfg.model.architecture} has none"
        )
    return Optimisation(
        model=model,
        hyper_parameters=hyper,
        weighting=weighting,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        use_amp=use_amp,
        grad_clip=tcfg.grad_clip,
        device=device,
        seg_warp=SegWarp(
            weight=cfg.loss.seg_warp,
            disparity=cfg.loss.seg_warp_disparity,
            border_columns=cfg.loss.seg_warp_border,
            dilation=cfg.loss.seg_warp_dilation,
        ),
        cross_view=cross_view,
        contrastive=cfg.loss.contrastive,
    )
