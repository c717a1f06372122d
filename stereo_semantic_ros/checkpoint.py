"""Self-describing checkpoints: architecture, hyper-parameters, labels, provenance, tensors.

Files are written with ``torch.save`` and read with ``torch.load(weights_only=True)``, which
only rebuilds tensors and plain containers: loading a checkpoint can never run code.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stereo_semantic_ros.labels import CITYSCAPES_19, LabelSet
from stereo_semantic_ros.networks import get_model_builder, hyper_parameters

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
        source: the file it was loaded from ('' when built in memory); named in errors, not saved.
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
    source: str = field(default="", compare=False, repr=False)

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
        """The architecture with these weights loaded (strictly), in eval mode.

        Raises:
            CheckpointError: an unknown architecture or hyper-parameter, or weights that do not
                fit; naming :attr:`source` when the checkpoint came from a file.
        """
        where = f"{self.source}: " if self.source else ""
        try:
            builder = get_model_builder(self.architecture)
            known = hyper_parameters(self.architecture)
        except ValueError as exc:
            raise CheckpointError(f"{where}{exc}") from None
        unknown = sorted(str(k) for k in self.hyper_parameters if k not in known)
        if unknown:
            raise CheckpointError(
                f"{where}unknown hyper-parameter(s) {', '.join(unknown)} for architecture "
                f"{self.architecture!r}; the checkpoint was written by another version or edited"
            )
        try:
            model = builder(**self.hyper_parameters)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{where}hyper-parameters {self.hyper_parameters} do not build a "
                f"{self.architecture!r} network: {exc}"
            ) from None
        source = f"{self.source}, {self.architecture}" if self.source else self.architecture
        load_state_dict_checked(model, self.state_dict, source=source)
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


def weights_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be a weights file before reading it (missing, a directory, a device,
    empty), or None. Devices and FIFOs are refused unread: reading one may never end."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"weights file {path} does not exist"
    except OSError as exc:
        return f"cannot read weights file {path}: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return f"weights file {path} is a directory, not a checkpoint file"
    if not stat.S_ISREG(st.st_mode):
        return (
            f"weights file {path} is not a regular file ({_file_kind(st.st_mode)}); give a "
            "checkpoint written by stereo-semantic-train"
        )
    if st.st_size == 0:
        return f"weights file {path} is empty (0 bytes): not a checkpoint"
    return None


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a plain file"


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: naming ``path`` and the reason: the file is missing, not a regular file,
            empty, unreadable, not a checkpoint of this package (whatever the bytes are), holds
            Python objects other than tensors and plain containers (refused unrun), lacks a
            field, or holds non-finite tensors or normalisation statistics.
    """
    path = Path(path)
    problem = weights_file_problem(path)
    if problem is not None:
        raise CheckpointError(problem)
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
    except OSError as exc:
        raise CheckpointError(f"cannot read weights file {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - torch's readers fail on foreign bytes in any way
        # (IndexError on /etc/passwd, KeyError on other text, RuntimeError on a truncated zip)
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"cannot read weights file {path}: not a torch checkpoint or corrupt "
            f"({type(exc).__name__}{': ' + first if first else ''})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a stereo_semantic_ros checkpoint (expected format {FORMAT!r}, found "
            f"{data.get('format') if isinstance(data, dict) else type(data).__name__!r})"
        )
    try:
        ckpt = Checkpoint(
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
            source=str(path),
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path} is an incomplete checkpoint: {exc!r}") from None
    problem = _value_problem(ckpt)
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}")
    return ckpt


def _value_problem(ckpt: Checkpoint) -> str | None:
    """What makes the tensors or statistics unusable, or None.

    A NaN or infinite weight, mean or std turns every output into NaN (and every label into
    class 0 after argmax): refusing the file here means such a network never starts.
    """
    for name, values in (("mean", ckpt.mean), ("std", ckpt.std)):
        if len(values) != 3:
            return f"normalisation {name} must hold 3 values (RGB), found {len(values)}"
    if not all(math.isfinite(v) for v in ckpt.mean):
        return f"normalisation mean {list(ckpt.mean)} is not finite"
    if not all(math.isfinite(v) and v > 0 for v in ckpt.std):
        return f"normalisation std {list(ckpt.std)} must be finite and > 0 in every channel"
    for key, tensor in ckpt.state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            return f"state_dict entry {key} is not a tensor ({type(tensor).__name__})"
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                return (
                    f"tensor {key} holds non-finite values ({bad} of {tensor.numel()} NaN or "
                    "Inf): the weights are corrupt or training diverged"
                )
    return None


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
