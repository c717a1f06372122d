"""What carries a run across sessions: ``last.pt``'s training state, and the checkpoints.

``last.pt`` holds, beside the weights, the optimiser, scheduler, AMP scaler and loss-weighting
states, the RNG states, the step and the wall time so far (:func:`make_checkpoint`);
``--resume`` continues from it (:func:`resume_training`). ``final.pt`` is the same checkpoint
without the training state.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo_semantic_ros.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.resources import ResourceError, resolve_weights
from stereo_semantic_ros.training import LAST, PROG
from stereo_semantic_ros.training.config import ConfigError, TrainConfig
from stereo_semantic_ros.training.distributed import DistInfo
from stereo_semantic_ros.training.optimisation import Optimisation


@dataclass
class RunState:
    """How far a run has got over all its sessions (saved in ``last.pt``)."""

    step: int = 0
    elapsed_s: float = 0.0
    sessions: int = 0
    best: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The torch, CUDA, NumPy and Python RNG states, as tensors and plain values: weights-only
    loading refuses NumPy arrays."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
    }


def restore_rng(state: Mapping[str, Any], device: torch.device) -> None:
    """Set the RNGs to a :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    random.setstate((state["python_version"], tuple(state["python"]), None))


def scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    # MultiStepLR keeps its milestones in a collections.Counter, which weights_only loading
    # refuses; store a plain dict and rebuild the Counter on resume.
    state = dict(scheduler.state_dict())
    if "milestones" in state:
        state["milestones"] = {int(k): int(v) for k, v in state["milestones"].items()}
    return state


def load_scheduler_state(
    scheduler: Any, state: dict[str, Any], milestones: Sequence[int], decay: float
) -> bool:
    """Restore a MultiStepLR; returns True when the recipe's milestones differ from the saved
    ones (e.g. ``--max-steps`` raised to train longer), in which case the learning rate is
    recomputed for the saved step on the new schedule."""
    from collections import Counter

    state = dict(state)
    saved = sorted(int(k) for k in state.get("milestones", {}))
    state["milestones"] = Counter({int(m): 1 for m in milestones})
    scheduler.load_state_dict(state)
    if saved == sorted(milestones):
        return False
    step = int(state["last_epoch"])
    factor = decay ** sum(1 for m in milestones if m <= step)
    lrs = []
    for group in scheduler.optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
        lrs.append(group["lr"])
    scheduler._last_lr = lrs
    return True


def open_resume_checkpoint(resume: str, out: Path) -> tuple[Path | None, Checkpoint | None]:
    """The checkpoint ``--resume`` names (``auto``: ``out/last.pt`` if there; ``none``) and
    its path; refuses one without training state."""
    resume_path: Path | None = None
    if resume == "auto":
        resume_path = out / LAST if (out / LAST).is_file() else None
    elif resume != "none":
        resume_path = Path(resume)
        if not resume_path.is_file():
            raise ConfigError(f"--resume {resume}: no such checkpoint")
    ckpt: Checkpoint | None = None
    if resume_path is not None:
        ckpt = load_checkpoint(resume_path, map_location="cpu")
        if not ckpt.training_state:
            raise CheckpointError(
                f"{resume_path} has no training state (a final/shipped checkpoint?); resume "
                f"from a last.pt written during training"
            )
    return resume_path, ckpt


def open_init_checkpoints(cfg: TrainConfig) -> list[Checkpoint]:
    """The checkpoints ``train.init_weights`` names (one, a list, or none), each checked against
    the recipe's model: a second stage fine-tunes the same network, so a different architecture
    or hyper-parameter (but ``tasks``) is a :class:`ConfigError` naming both."""
    names = cfg.train.init_weights
    names = [names] if isinstance(names, str) else list(names)
    ckpts = []
    for name in (n for n in names if n):
        try:
            path = resolve_weights(name)
        except ResourceError as exc:
            raise ConfigError(f"train.init_weights: {exc}") from None
        ckpt = load_checkpoint(path)  # type: ignore[arg-type]  # never None for a non-empty name
        want = dict(cfg.model.hyper_parameters)
        have = {k: v for k, v in ckpt.hyper_parameters.items() if k not in ("tasks", "num_classes")}
        if ckpt.architecture != cfg.model.architecture or have != want:
            raise ConfigError(
                f"train.init_weights {path} holds {ckpt.architecture} {have}, but the recipe's "
                f"model is {cfg.model.architecture} {want}; a fine-tuning stage keeps the "
                "network as it is"
            )
        ckpts.append(ckpt)
    return ckpts


def initial_state_dict(model: torch.nn.Module, ckpts: Sequence[Checkpoint]) -> dict[str, Any]:
    """The start of a fine-tuning stage: each of ``model``'s parameters and buffers from the
    first of ``ckpts`` that holds it with its shape (so ``[depth.pt, segmentation.pt]`` gives
    pseudo_mtl the depth network's encoder and the segmentation network's decoder).

    Raises:
        ConfigError: an entry no checkpoint holds (a task none of them was trained for).
    """
    merged: dict[str, Any] = {}
    for key, value in model.state_dict().items():
        for ckpt in ckpts:
            have = ckpt.state_dict.get(key)
            if have is not None and tuple(have.shape) == tuple(value.shape):
                merged[key] = have
                break
    missing = [k for k in model.state_dict() if k not in merged]
    if missing:
        sources = ", ".join(str(c.source) for c in ckpts)
        raise ConfigError(
            f"train.init_weights ({sources}) holds no weights for {len(missing)} entries of the "
            f"network, e.g. {', '.join(missing[:3])}: add a checkpoint trained for that task "
            "(tasks held: " + "; ".join(str(c.hyper_parameters.get("tasks")) for c in ckpts) + ")"
        )
    return merged


def resume_training(
    opt: Optimisation,
    ckpt: Checkpoint,
    resume_path: Path | None,
    cfg: TrainConfig,
    info: DistInfo,
) -> RunState:
    """Load the weights and the training state of ``ckpt`` into ``opt`` and the RNGs; the
    progress so far, counting this session as a new one."""
    ts = ckpt.training_state
    opt.model.load_state_dict(ckpt.state_dict)
    opt.optimizer.load_state_dict(ts["optimizer"])
    if (
        load_scheduler_state(
            opt.scheduler, ts["scheduler"], cfg.milestone_steps(), cfg.train.lr_decay
        )
        and info.main
    ):
        print(
            f"{PROG}: note: the step budget or milestones changed since {resume_path}; "
            f"learning rate continues on the new schedule (milestones "
            f"{cfg.milestone_steps()}, lr now {opt.optimizer.param_groups[0]['lr']:.3g})",
            file=sys.stderr,
        )
    if ts.get("scaler"):
        opt.scaler.load_state_dict(ts["scaler"])
    opt.weighting.load_state_dict(ts["weighting"])
    state = RunState(
        step=int(ts["step"]),
        elapsed_s=float(ts["elapsed_s"]),
        sessions=int(ts.get("sessions", 0)) + 1,
        best=dict(ts.get("best", {})),
        last_val=dict(ts.get("last_val", {})),
    )
    restore_rng(ts["rng"], opt.device)
    if int(ts.get("world_size", 1)) != info.world_size and info.main:
        print(
            f"{PROG}: note: resuming a {ts.get('world_size')}-process run with "
            f"{info.world_size} process(es); the data order changes",
            file=sys.stderr,
        )
    return state


def make_checkpoint(
    cfg: TrainConfig,
    opt: Optimisation,
    state: RunState,
    *,
    label_set: LabelSet,
    stats: Mapping[str, Any],
    class_weights: list[float] | None,
    provenance: dict[str, Any],
    history: list[dict[str, Any]],
    elapsed_s: float,
    world_size: int,
    final: bool,
) -> Checkpoint:
    """The run's weights as a self-describing checkpoint; with the training state to resume
    from unless ``final``."""
    training_state: dict[str, Any] = {}
    if not final:
        training_state = {
            "step": state.step,
            "elapsed_s": elapsed_s,
            "sessions": state.sessions,
            "best": state.best,
            "last_val": state.last_val,
            "optimizer": opt.optimizer.state_dict(),
            "scheduler": scheduler_state(opt.scheduler),
            "scaler": opt.scaler.state_dict() if opt.use_amp else {},
            "weighting": opt.weighting.state_dict(),
            "rng": rng_state(opt.device),
            "dataset_stats": {k: v for k, v in stats.items() if k not in ("mean", "std")},
            "world_size": world_size,
            "history": history,
        }
    metrics = {"validation": state.last_val, "best_validation": state.best}
    return Checkpoint(
        architecture=cfg.model.architecture,
        hyper_parameters=opt.hyper_parameters,
        state_dict={k: v.detach().cpu() for k, v in opt.network.state_dict().items()},
        label_set=label_set,
        mean=tuple(stats["mean"]),  # type: ignore[arg-type]
        std=tuple(stats["std"]),  # type: ignore[arg-type]
        provenance=provenance,
        metrics=metrics if state.last_val else {},
        class_weights=class_weights,
        training_state=training_state,
    )
