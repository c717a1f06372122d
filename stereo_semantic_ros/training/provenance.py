"""Provenance: how a checkpoint's weights were made, recorded in the checkpoint itself.

The command, the validated recipe, the data (with the synthetic generator's settings when the
data is ours), the machine, the git revision of the code, the wall time, and one entry per
session (the first run and every resume) with the steps it trained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo_semantic_ros.checkpoint import Checkpoint
from stereo_semantic_ros.training import PROG
from stereo_semantic_ros.training.config import DataConfig, TrainConfig


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model, core count, GPU name and software versions, for the provenance."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    return info


def git_revision() -> str | None:
    """``git describe``-like revision of the package's checkout (``+dirty`` when modified)."""
    root = Path(__file__).resolve().parents[2]  # the directory holding the package
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if rev.returncode:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


_SUBSET_KEYS = ("folder", "first_index", "count", "file_list", "base_seed")


def data_description(cfg: DataConfig, dataset: Any, stats: Mapping[str, Any]) -> dict[str, Any]:
    """The training data: recipe section, size, and the synthetic generator's record."""
    desc: dict[str, Any] = {
        "type": cfg.type,
        "root": str(cfg.root),
        "split": cfg.split,
        "file_list": cfg.file_list,
        "indices": cfg.indices,
        "num_samples": len(dataset),
        "image_size_hw": stats.get("size"),
        "crop_hw": cfg.crop,
        "augment": cfg.augment,
    }
    meta_path = Path(cfg.root) / "synthetic_meta.json"
    if meta_path.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            meta = json.loads(meta_path.read_text())
            # the generator's record of how the scenes were made (per-sample seeds left out)
            subsets = meta.get("subsets") or meta.get("splits") or {}
            desc["synthetic"] = {
                "generator": meta.get("generator"),
                "settings": meta.get("settings"),
                "subsets": {
                    name: {k: v for k, v in sub.items() if k in _SUBSET_KEYS}
                    for name, sub in subsets.items()
                    if isinstance(sub, dict)
                },
            }
    if cfg.val is not None:
        desc["validation"] = dataclasses.asdict(cfg.val)
    return desc


def run_provenance(
    cfg: TrainConfig,
    command: Sequence[str],
    dataset: Any,
    stats: Mapping[str, Any],
    device: torch.device,
    world_size: int,
    use_amp: bool,
) -> dict[str, Any]:
    """What this session knows of the run at its start; :func:`checkpoint_provenance` adds
    the progress."""
    return {
        "command": shlex.join(command) if command else PROG,
        "config": cfg.to_dict(),
        "data": data_description(cfg.data, dataset, stats),
        "machine": machine_info(device),
        "world_size": world_size,
        "git_revision": git_revision(),
        "torch_version": str(torch.__version__),
        "amp": use_amp,
        "steps": cfg.train.steps,
    }


def session_history(
    ckpt: Checkpoint | None, base: Mapping[str, Any], cfg: TrainConfig, from_step: int
) -> list[dict[str, Any]]:
    """The sessions of the resumed checkpoint (if any) and this one, starting at ``from_step``.

    A resumed run may have another command, step budget or code revision than its first
    session; one entry per session keeps how the weights were really made.
    """
    history = [dict(h) for h in (ckpt.training_state.get("history", []) if ckpt else [])]
    history.append(
        {
            "command": base["command"],
            "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "from_step": from_step,
            "to_step": from_step,
            "steps": cfg.train.steps,
            "milestones": cfg.milestone_steps(),
            "git_revision": base["git_revision"],
        }
    )
    return history


def checkpoint_provenance(
    base: Mapping[str, Any], history: list[dict[str, Any]], step: int, elapsed_s: float
) -> dict[str, Any]:
    """The provenance of a checkpoint written at ``step``; ends this session's history entry
    there."""
    history[-1]["to_step"] = step
    return dict(
        base,
        wall_time_s=round(elapsed_s, 1),
        step=step,
        finished_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        history=history,
    )
