"""Self-describing checkpoints: architecture, hyper-parameters, labels, provenance, tensors.

Files are written with ``torch.save`` and read with ``torch.load(weights_only=True)``, which
only rebuilds tensors and plain containers: loading a checkpoint can never run code.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stereo_semantic_ros.labels import CITYSCAPES_19, LabelSet
from stereo_semantic_ros.networks import get_model

FORMAT = "stereo_semantic_ros.checkpoint/1"

# Mean and std (0..255 units, RGB) used when a checkpoint carries no statistics of its own.
DEFAULT_MEAN = (127.5, 127.5, 127.5)
DEFAULT_STD = (64.0, 64.0, 64.0)


class CheckpointError(ValueError):
    """A weights file that cannot be used: missing, unsafe, not ours, or not matching the model."""


@dataclass
class Checkpoint:
    """Everything needed to rebuild a trained network and describe where it came from.

    Attributes:
        architecture: registry key, e.g. ``"esp_joint"``.
        hyper_parameters: keyword arguments of the architecture's builder.
        state_dict: the tensors.
        label_set: classes, in train-id order, that the segmentation head predicts.
        mean, std: per-channel RGB normalisation in 0..255 units, from the training set.
        provenance: training data, command, machine, duration, git revision.
        metrics: evaluation figures measured on this checkpoint.
        class_weights: segmentation loss weights w = 1/ln(c + p_class) from the training set.
        training_state: optimiser/scheduler state and step for resuming (empty in shipped weights).
    """

    architecture: str
    hyper_parameters: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    label_set: LabelSet = CITYSCAPES_19
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    class_weights: list[float] | None = None
    training_state: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "architecture": self.architecture,
            "hyper_parameters": _plain(self.hyper_parameters),
            "label_set": self.label_set.to_dict(),
            "mean": list(self.mean),
            "std": list(self.std),
            "provenance": self.provenance,
            "metrics": self.metrics,
            "class_weights": self.class_weights,
            "training_state": self.training_state,
            "state_dict": self.state_dict,
        }

    def build_model(self) -> nn.Module:
        """The architecture with these weights loaded (strictly), in eval mode."""
        model = get_model(self.architecture, **self.hyper_parameters)
        load_state_dict_checked(model, self.state_dict, source=self.architecture)
        return model.eval()


def _plain(value: Any) -> Any:
    # tuples become lists so the file holds only what weights_only loading accepts everywhere
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temporary file + rename), so a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(checkpoint.to_dict(), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: the file is missing, is not a checkpoint of this package, or holds
            Python objects other than tensors and plain containers (which are refused unrun).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):
            raise CheckpointError(
                f"cannot read weights file {path}: not a torch checkpoint or corrupt"
            ) from None
        raise CheckpointError(
            f"refusing to load {path}: it contains Python objects besides tensors and plain "
            f"containers, which could run code when loaded. Only use checkpoints written by "
            f"stereo-semantic-train ({_unsupported_global(str(exc))})"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"cannot read weights file {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a stereo_semantic_ros checkpoint (expected format {FORMAT!r}, found "
            f"{data.get('format') if isinstance(data, dict) else type(data).__name__!r})"
        )
    try:
        return Checkpoint(
            architecture=str(data["architecture"]),
            hyper_parameters=dict(data["hyper_parameters"]),
            state_dict=dict(data["state_dict"]),
            label_set=LabelSet.from_dict(data["label_set"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            provenance=dict(data.get("provenance") or {}),
            metrics=dict(data.get("metrics") or {}),
            class_weights=data.get("class_weights"),
            training_state=dict(data.get("training_state") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is an incomplete checkpoint: {exc!r}") from None


def _unsupported_global(message: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return f"it references {found.group(1)}" if found else "unsupported object"


def _summarise(keys: list[str]) -> str:
    """Keys grouped by module (first two name parts) with counts, so a long list stays readable."""
    groups: dict[str, int] = {}
    for key in keys:
        prefix = ".".join(key.split(".")[:2])
        groups[prefix] = groups.get(prefix, 0) + 1
    single = {".".join(k.split(".")[:2]): k for k in keys}
    shown = [f"{p}.* ({n})" if n > 1 else single[p] for p, n in list(groups.items())[:10]]
    return ", ".join(shown) + (f" (+{len(groups) - 10} more modules)" if len(groups) > 10 else "")


def load_state_dict_checked(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = ""
) -> None:
    """``load_state_dict(strict=True)`` with an error that lists what does not fit.

    Raises:
        CheckpointError: naming missing keys, unexpected keys and shape mismatches.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or shapes:
        first = (
            f" (e.g. {shapes[0]}: checkpoint {tuple(state_dict[shapes[0]].shape)} vs model "
            f"{tuple(own[shapes[0]].shape)})"
            if shapes
            else ""
        )
        parts = [
            f"missing keys: {_summarise(missing)}" if missing else "",
            f"unexpected keys: {_summarise(unexpected)}" if unexpected else "",
            f"shape mismatches: {_summarise(shapes)}{first}" if shapes else "",
        ]
        raise CheckpointError(
            f"weights{f' ({source})' if source else ''} do not fit {type(model).__name__}: "
            + "; ".join(p for p in parts if p)
            + ". Were they trained for another architecture or hyper-parameters?"
        )
    model.load_state_dict(state_dict, strict=True)
