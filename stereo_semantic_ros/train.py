"""``stereo-semantic-train``: train a registered architecture from a YAML recipe.

Example::

    stereo-semantic-train --config config/train/esp_joint_synthetic.yaml --out runs/esp_joint
    # killed? the same command continues from runs/esp_joint/last.pt (--resume auto)
    torchrun --nproc_per_node=2 -m stereo_semantic_ros.train --config ...   # DDP

The recipe (see :class:`TrainConfig`) has four sections: ``model`` (architecture and its
hyper-parameters), ``data`` (dataset, split, crop, augmentation, validation split), ``train``
(steps, batch, optimiser, schedule, checkpointing, tasks) and ``loss`` (weighting).

What a run writes under ``--out``:

* ``last.pt``: every ``train.checkpoint_every`` steps and at the end, atomically; it holds the
  ``training_state`` (optimiser, scheduler, AMP scaler, loss weighting, RNG states, step)
  that ``--resume`` continues from;
* ``final.pt``: the trained weights without training state, with class weights, the
  normalisation statistics of the training images and the provenance (command, config,
  data, machine, git revision, wall time) -- load it with ``StereoPipeline.from_checkpoint``;
* ``log.csv`` and ``log.jsonl``: one row per optimiser step (validation columns filled every
  ``train.eval_every`` steps); ``curves.png``: the training curves; ``summary.json``.

Training follows the ESP joint paper (Sec. IV-B): Adam (0.9, 0.999), learning rate 5e-4
halved twice -- at epochs 400 and 500 of 600 there, here at 2/3 and 5/6 of the step budget --
images normalised with the training set's mean and std (through the same
:func:`~stereo_semantic_ros.preprocess.normalize` the pipeline uses), class weights
``1 / ln(1.02 + p_class)``, loss ``5 L_d + 1 L_s`` (or GradNorm / uncertainty weighting).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import inspect
import json
import math
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from stereo_semantic_ros.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from stereo_semantic_ros.labels import CITYSCAPES_19, IGNORE_LABEL
from stereo_semantic_ros.losses import (
    WEIGHTINGS,
    LossWeighting,
    class_weights_from_frequencies,
    make_weighting,
    task_losses,
)
from stereo_semantic_ros.networks import get_model_builder
from stereo_semantic_ros.preprocess import normalize

PROG = "stereo-semantic-train"
DATASET_TYPES = ("synthetic", "kitti2015", "cityscapes", "vkitti2")
TASKS = ("disparity", "segmentation")
LAST = "last.pt"
FINAL = "final.pt"


class ConfigError(ValueError):
    """A training recipe that cannot be used: unknown keys, wrong types or values."""


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """``model:`` -- ``architecture`` (registry key) and any keyword hyper-parameters of its
    builder (e.g. ``max_disparity``, ``volume_channels``). ``num_classes`` follows the label
    set and ``tasks`` comes from ``train.tasks``."""

    architecture: str = "esp_joint"
    hyper_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValDataConfig:
    """``data.val:`` -- a held-out split evaluated every ``train.eval_every`` steps."""

    root: str = ""
    type: str | None = None
    split: str | None = None
    file_list: str | None = None
    indices: list[int] | str | None = None
    max_images: int | None = None


@dataclass
class GenerateConfig:
    """``data.generate:`` -- render the synthetic split with ``stereo-semantic-synth`` first
    when ``data.root`` does not hold it yet (``type: synthetic`` only)."""

    count: int = 300
    width: int = 512
    height: int = 160
    seed: int = 0


@dataclass
class DataConfig:
    """``data:`` -- where the training samples come from and how they are augmented.

    ``type``: synthetic (our generator's KITTI-layout output, with right-view ground truth so
    mirroring works), kitti2015, cityscapes or vkitti2. ``split``: kitti2015 ``training``,
    cityscapes ``train``, vkitti2 a list of scenes. ``file_list``: kitti2015/synthetic only,
    a list of scenes (path relative to ``root``), e.g. the generator's ``train.txt`` /
    ``val.txt``. ``indices``: keep these sample positions (a list or a ``"start:stop"``
    range). ``crop``: ``[height, width]`` training crop, multiples of 8. ``augment``:
    ``default`` (the package's :meth:`Augmentor.for_training`), ``none``, or a mapping of
    Augmentor fields overriding the defaults. ``stats_max_images``: images used for the
    mean/std and class frequencies (all when null).
    """

    type: str = "synthetic"
    root: str = ""
    split: str | list[str] | None = None
    file_list: str | None = None
    indices: list[int] | str | None = None
    crop: list[int] | None = None
    augment: str | dict[str, Any] = "default"
    stats_max_images: int | None = None
    generate: GenerateConfig | None = None
    val: ValDataConfig | None = None


@dataclass
class TrainSection:
    """``train:`` -- the optimisation.

    ``milestones`` are steps where the learning rate is multiplied by ``lr_decay``; values
    below 1 are fractions of ``steps`` (the paper's 400 and 500 of 600 epochs -> 2/3, 5/6).
    ``amp`` only applies on CUDA (autocast fp16 + GradScaler). ``grad_clip``: max global L2
    norm (0 = off). ``threads``: torch CPU threads (0 = torch's default). ``device``: auto,
    cpu, cuda; under torchrun each rank takes cuda:LOCAL_RANK.
    """

    steps: int = 1000
    batch_size: int = 2
    lr: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    milestones: list[float] = field(default_factory=lambda: [2 / 3, 5 / 6])
    lr_decay: float = 0.5
    grad_clip: float = 10.0
    amp: bool = True
    seed: int = 0
    checkpoint_every: int = 500
    eval_every: int = 0
    log_every: int = 1
    num_workers: int = 2
    threads: int = 0
    device: str = "auto"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))


@dataclass
class LossSection:
    """``loss:`` -- ``weighting`` fixed (``w_disp * L_d + w_seg * L_s``), gradnorm or
    uncertainty; ``class_weight_c`` is c in ``w = 1 / ln(c + p_class)``."""

    weighting: str = "fixed"
    w_disp: float = 5.0
    w_seg: float = 1.0
    class_weight_c: float = 1.02
    class_weights: bool = True
    gradnorm_alpha: float = 1.5
    gradnorm_lr: float = 0.025
    gradnorm_parameter: str = "features.norm3.0.weight"


@dataclass
class TrainConfig:
    """A whole recipe; build it with :func:`load_config` / :func:`config_from_dict`."""

    model: ModelConfig
    data: DataConfig
    train: TrainSection = field(default_factory=TrainSection)
    loss: LossSection = field(default_factory=LossSection)
    name: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        model = out.pop("model")
        out["model"] = {"architecture": model["architecture"], **model["hyper_parameters"]}
        return out

    def milestone_steps(self) -> list[int]:
        steps = self.train.steps
        return sorted({int(round(m * steps)) if m < 1 else int(m) for m in self.train.milestones})


def _section(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"allowed in {where}: {', '.join(fields)}"
        )
    hints = inspect.get_annotations(cls, eval_str=True)
    values = {}
    for key, value in data.items():
        values[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a (simple) annotation; ints are accepted where floats are."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0]
            if len(errors) == 1
            else f"{where}: {value!r} fits none of {', '.join(_type_name(o) for o in options)}"
        )
    if dataclasses.is_dataclass(hint):
        return _section(hint, value, where)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Validate a parsed recipe.

    Raises:
        ConfigError: unknown sections or keys, wrong types, impossible values; the message
            names the key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a training config is a mapping of sections, got {type(data).__name__}")
    allowed = {"model", "data", "train", "loss", "name", "description"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; allowed: {sorted(allowed)}")
    for key in ("model", "data"):
        if key not in data:
            raise ConfigError(f"the config needs a '{key}:' section")
    model_data = dict(data["model"] or {})
    architecture = model_data.pop("architecture", "esp_joint")
    if not isinstance(architecture, str):
        raise ConfigError(f"model.architecture must be a string, got {architecture!r}")
    try:
        builder = get_model_builder(architecture)
    except ValueError as exc:
        raise ConfigError(f"model.architecture: {exc}") from None
    params = inspect.signature(builder).parameters
    for key in ("tasks", "num_classes"):
        if key in model_data:
            where = "train.tasks" if key == "tasks" else "the label set (19 classes)"
            raise ConfigError(f"model.{key} is not set in the model section; it comes from {where}")
    unknown = sorted(set(model_data) - set(params))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join('model.' + k for k in unknown)} for architecture "
            f"{architecture!r}; its hyper-parameters: "
            f"{', '.join(k for k in params if k not in ('tasks', 'num_classes'))}"
        )
    cfg = TrainConfig(
        model=ModelConfig(architecture, model_data),
        data=_section(DataConfig, data["data"], "data"),
        train=_section(TrainSection, data.get("train"), "train"),
        loss=_section(LossSection, data.get("loss"), "loss"),
        name=str(data.get("name") or ""),
        description=str(data.get("description") or ""),
    )
    _validate(cfg)
    return cfg


def _validate(cfg: TrainConfig) -> None:
    d, t, loss = cfg.data, cfg.train, cfg.loss
    if d.type not in DATASET_TYPES:
        raise ConfigError(f"data.type must be one of {', '.join(DATASET_TYPES)}, got {d.type!r}")
    if not d.root:
        raise ConfigError("data.root is required (the dataset's directory)")
    if d.generate is not None and d.type != "synthetic":
        raise ConfigError("data.generate only applies to data.type: synthetic")
    if d.crop is not None and (len(d.crop) != 2 or any(v <= 0 or v % 8 for v in d.crop)):
        raise ConfigError(f"data.crop must be [height, width], multiples of 8, got {d.crop}")
    if isinstance(d.augment, str) and d.augment not in ("default", "none"):
        raise ConfigError(f"data.augment must be 'default', 'none' or a mapping, got {d.augment!r}")
    if d.val is not None and not d.val.root:
        raise ConfigError("data.val.root is required when data.val is given")
    if t.steps < 1:
        raise ConfigError(f"train.steps must be >= 1, got {t.steps}")
    if t.batch_size < 1:
        raise ConfigError(f"train.batch_size must be >= 1, got {t.batch_size}")
    if t.lr <= 0 or not 0 < t.lr_decay <= 1:
        raise ConfigError(
            f"need train.lr > 0 and 0 < train.lr_decay <= 1, got {t.lr}, {t.lr_decay}"
        )
    if len(t.betas) != 2 or not all(0 <= b < 1 for b in t.betas):
        raise ConfigError(f"train.betas must be two numbers in [0, 1), got {t.betas}")
    if any(m <= 0 for m in t.milestones):
        raise ConfigError(f"train.milestones must be positive, got {t.milestones}")
    for key in ("checkpoint_every", "eval_every", "num_workers", "threads", "log_every"):
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {getattr(t, key)}")
    if not t.tasks or any(x not in TASKS for x in t.tasks) or len(set(t.tasks)) != len(t.tasks):
        raise ConfigError(f"train.tasks must be a non-empty subset of {list(TASKS)}, got {t.tasks}")
    if loss.weighting not in WEIGHTINGS:
        raise ConfigError(
            f"loss.weighting must be one of {', '.join(WEIGHTINGS)}, got {loss.weighting!r}"
        )
    if loss.class_weight_c <= 1.0:
        raise ConfigError(f"loss.class_weight_c must be > 1, got {loss.class_weight_c}")


def _set_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``section.key=value`` (value parsed as YAML) to a raw config mapping."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read and validate a YAML recipe, applying ``--set`` overrides first."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config is a mapping of sections")
    for assignment in overrides:
        _set_override(data, assignment)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def _indices(spec: list[int] | str | None, n: int, where: str) -> list[int] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        start, sep, stop = spec.partition(":")
        try:
            if not sep:
                raise ValueError
            chosen = list(range(n))[
                slice(int(start) if start else None, int(stop) if stop else None)
            ]
        except ValueError:
            raise ConfigError(f"{where} must be a list or 'start:stop', got {spec!r}") from None
    else:
        chosen = list(spec)
    bad = [i for i in chosen if not -n <= i < n]
    if bad:
        raise ConfigError(f"{where}: positions {bad[:5]} outside 0..{n - 1}")
    if not chosen:
        raise ConfigError(f"{where} selects no samples")
    return chosen


def open_dataset(
    kind: str,
    root: str | Path,
    split: str | list[str] | None,
    augment: Any = None,
    file_list: str | None = None,
) -> Dataset:
    """The dataset ``kind`` under ``root`` (lazy imports: only the one used is loaded)."""
    if file_list is not None and kind not in ("synthetic", "kitti2015"):
        raise ConfigError(f"a file_list only applies to synthetic and kitti2015 data, not {kind}")
    if kind in ("synthetic", "kitti2015"):
        from stereo_semantic_ros.datasets.kitti import Kitti2015

        extra: dict[str, Any] = {}
        if kind == "synthetic":
            # our generator also writes the right view's ground truth: mirroring can use it
            extra = {
                "right_disparity_dir": "disp_occ_right",
                "right_semantic_dir": "semantic_right",
            }
        if file_list is not None:
            extra["file_list"] = Path(root) / file_list
        return Kitti2015(root, str(split or "training"), augment=augment, **extra)
    if kind == "cityscapes":
        from stereo_semantic_ros.datasets.cityscapes import Cityscapes

        return Cityscapes(root, str(split or "train"), augment=augment)
    if kind == "vkitti2":
        from stereo_semantic_ros.datasets.vkitti2 import VirtualKitti2

        scenes = [split] if isinstance(split, str) else split
        return VirtualKitti2(root, scenes=scenes, augment=augment)
    raise ConfigError(f"unknown dataset type {kind!r}; choose one of {', '.join(DATASET_TYPES)}")


def build_augmentor(cfg: DataConfig, seed: int) -> Any:
    """The training :class:`~stereo_semantic_ros.augment.Augmentor` of the recipe (or None)."""
    from stereo_semantic_ros.augment import Augmentor

    crop = tuple(cfg.crop) if cfg.crop is not None else None
    rng = np.random.default_rng(seed)
    if cfg.augment == "none":
        return None if crop is None else Augmentor(rng=rng, crop_size=crop)  # type: ignore[arg-type]
    base = Augmentor.for_training(crop, rng)  # type: ignore[arg-type]
    if isinstance(cfg.augment, str):
        return base
    allowed = {f.name for f in dataclasses.fields(Augmentor)} - {"rng", "crop_size"}
    unknown = sorted(set(cfg.augment) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join('data.augment.' + k for k in unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    try:
        return dataclasses.replace(base, **cfg.augment)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data.augment: {exc}") from None


def ensure_synthetic(cfg: DataConfig) -> None:
    """Render the synthetic training split with the synth CLI when ``data.generate`` asks."""
    gen = cfg.generate
    if gen is None:
        return
    images = Path(cfg.root) / "training" / "image_2"
    have = len(list(images.glob("*_10.png"))) if images.is_dir() else 0
    if have >= gen.count:
        return
    from stereo_semantic_ros.synth import cli as synth_cli

    argv = [
        "--out",
        str(cfg.root),
        "--count",
        str(gen.count),
        "--width",
        str(gen.width),
        "--height",
        str(gen.height),
        "--seed",
        str(gen.seed),
        "--workers",
        "1",
    ]
    with contextlib.redirect_stdout(sys.stderr):
        code = synth_cli.main(argv)
    if code:
        raise ConfigError(f"data.generate: stereo-semantic-synth {' '.join(argv)} failed ({code})")


class _Subset(Dataset):
    """``Subset`` that keeps ``augment``/``reseed``/``load`` reachable for seeding and stats."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def load(self, i: int) -> Any:
        return self.dataset.load(self.indices[i])


def training_dataset(cfg: DataConfig, seed: int) -> Any:
    dataset = open_dataset(cfg.type, cfg.root, cfg.split, build_augmentor(cfg, seed), cfg.file_list)
    chosen = _indices(cfg.indices, len(dataset), "data.indices")
    return dataset if chosen is None else _Subset(dataset, chosen)


def validation_dataset(cfg: DataConfig) -> Any:
    if cfg.val is None:
        return None
    val = cfg.val
    dataset = open_dataset(val.type or cfg.type, val.root, val.split, None, val.file_list)
    chosen = _indices(val.indices, len(dataset), "data.val.indices")
    return dataset if chosen is None else _Subset(dataset, chosen)


def dataset_statistics(
    dataset: Any, num_classes: int, max_images: int | None = None
) -> dict[str, Any]:
    """Mean and std of the unaugmented images and the label frequencies of a training set.

    Returns ``{"mean": [3] (0..255 RGB), "std": [3], "class_pixels": [C], "images": n,
    "has_labels", "has_disparity", "size": [H, W] of the first sample}``. Both views count
    towards mean and std (the network normalises both the same way).
    """
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    sums = np.zeros(3)
    squares = np.zeros(3)
    pixels = 0
    counts = np.zeros(num_classes, np.int64)
    has_labels = has_disparity = False
    size: list[int] = []
    for i in range(n):
        sample = dataset.load(i)
        if not size:
            size = [int(v) for v in sample.size]
        for image in (sample.left, sample.right):
            flat = image.reshape(-1, 3).astype(np.float64)
            sums += flat.sum(0)
            squares += (flat**2).sum(0)
            pixels += flat.shape[0]
        if sample.labels is not None:
            has_labels = True
            labels = sample.labels[sample.labels != IGNORE_LABEL]
            counts += np.bincount(labels[labels < num_classes], minlength=num_classes)[:num_classes]
        has_disparity |= sample.disparity is not None
    mean = sums / max(pixels, 1)
    std = np.sqrt(np.maximum(squares / max(pixels, 1) - mean**2, 1e-6))
    return {
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "class_pixels": [int(v) for v in counts],
        "images": n,
        "has_labels": has_labels,
        "has_disparity": has_disparity,
        "size": size,
    }


class SkipSampler(Sampler[int]):
    """The first ``skip`` indices of ``base`` left out: resume in the middle of an epoch."""

    def __init__(self, base: Sampler[int], skip: int) -> None:
        self.base = base
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        for i, index in enumerate(self.base):
            if i >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Logging, provenance
# ---------------------------------------------------------------------------------------------


class RunLog:
    """Per-step CSV (fixed columns) and JSON-lines log; on resume, rows after the resumed
    step (written after the last checkpoint, before a kill) are dropped."""

    def __init__(self, out: Path, columns: Sequence[str], resume_step: int | None) -> None:
        self.csv_path = out / "log.csv"
        self.jsonl_path = out / "log.jsonl"
        self.columns = list(columns)
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.jsonl_path.is_file():
            for line in self.jsonl_path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    row = json.loads(line)
                    if int(row.get("step", 0)) <= resume_step:
                        self.rows.append(row)
        with open(self.csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, self.columns, extrasaction="ignore")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: _csv_value(row.get(k)) for k in self.columns})
        with open(self.jsonl_path, "w") as fh:
            for row in self.rows:
                fh.write(json.dumps(row) + "\n")
        self._csv = open(self.csv_path, "a", newline="")  # noqa: SIM115 (closed in close())
        self._writer = csv.DictWriter(self._csv, self.columns, extrasaction="ignore")
        self._jsonl = open(self.jsonl_path, "a")  # noqa: SIM115

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._writer.writerow({k: _csv_value(row.get(k)) for k in self.columns})
        self._jsonl.write(json.dumps(row) + "\n")
        self._csv.flush()
        self._jsonl.flush()

    def close(self) -> None:
        self._csv.close()
        self._jsonl.close()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


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
    root = Path(__file__).resolve().parent.parent
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


# ---------------------------------------------------------------------------------------------
# Distributed set-up
# ---------------------------------------------------------------------------------------------


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Read torchrun's environment; init NCCL on CUDA, gloo on CPU; pick the rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device {device_name!r} but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"train.device must be auto, cpu or cuda[:N], got {device_name!r}")
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info, device


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


# ---------------------------------------------------------------------------------------------
# Checkpoint state
# ---------------------------------------------------------------------------------------------


def _rng_state(device: torch.device) -> dict[str, Any]:
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


def _restore_rng(state: Mapping[str, Any], device: torch.device) -> None:
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


def _scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    # MultiStepLR keeps its milestones in a collections.Counter, which weights_only loading
    # refuses; store a plain dict and rebuild the Counter on resume.
    state = dict(scheduler.state_dict())
    if "milestones" in state:
        state["milestones"] = {int(k): int(v) for k, v in state["milestones"].items()}
    return state


def _load_scheduler_state(
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


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class RunState:
    step: int = 0
    elapsed_s: float = 0.0
    sessions: int = 0
    best: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)


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
    from stereo_semantic_ros.evaluate import PipelinePredictor, evaluate
    from stereo_semantic_ros.pipeline import StereoPipeline

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


def _lower_is_better(key: str) -> bool:
    return "miou" not in key


def _columns(tasks: Sequence[str], weighting: LossWeighting, with_val: bool) -> list[str]:
    cols = ["step", "epoch", "session", "lr", "loss"]
    cols += [f"loss_{t}" for t in tasks] + [f"weight_{t}" for t in tasks]
    if weighting.kind == "uncertainty":
        cols += [f"log_var_{t}" for t in tasks]
    if weighting.kind == "gradnorm":
        cols += [f"gradnorm_{t}" for t in tasks]
    cols += ["grad_norm", "step_s", "images_per_s", "elapsed_s"]
    if with_val:
        cols += list(VAL_KEYS)
    return cols


def _plot(out: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    from stereo_semantic_ros.visualize import plot_curves

    present = {c for r in rows for c, v in r.items() if isinstance(v, (int, float))}
    groups = {
        "loss": [c for c in columns if c.startswith("loss")],
        "task weights": [c for c in columns if c.startswith("weight_")],
        "learning rate": ["lr"],
        "validation disparity error (px)": [c for c in ("val/epe_all", "val/epe_noc")],
        "validation bad-3 (%)": ["val/bad3_all"],
        "validation mIoU (%)": ["val/miou"],
    }
    groups = {k: [c for c in v if c in present] for k, v in groups.items()}
    groups = {k: v for k, v in groups.items() if v}
    keep = {"step", *[c for v in groups.values() for c in v]}
    records = [{k: r.get(k) for k in keep} for r in rows]
    try:
        plot_curves(records, out / "curves.png", x="step", groups=groups, title=out.name)
    except ValueError as exc:  # e.g. nothing numeric yet; the curves are a convenience
        print(f"{PROG}: warning: no training curves: {exc}", file=sys.stderr)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train(
    cfg: TrainConfig,
    out: Path,
    *,
    resume: str = "auto",
    command: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or continue) a training; returns the summary also written to ``summary.json``.

    Args:
        resume: ``auto`` (continue from ``out/last.pt`` if it exists), ``none`` (start over)
            or the path of a ``last.pt`` to continue from.
        command: the command line, for the provenance.
    """
    threads = torch.get_num_threads()
    try:
        return _train(cfg, Path(out), resume, command, progress)
    finally:
        # train.threads is this run's setting, not the calling process's
        torch.set_num_threads(threads)


def _train(
    cfg: TrainConfig, out: Path, resume: str, command: Sequence[str], progress: bool
) -> dict[str, Any]:
    start_time = time.time()
    tcfg = cfg.train
    info, device = setup_distributed(tcfg.device)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    if device.type == "cpu":
        # Activations and gradients drift into denormal floats as training goes on, and x86
        # CPUs handle those in microcode: measured here, steps went from 2.6 s to 15 s within
        # a few iterations. Flushing them to zero costs no accuracy that matters.
        torch.set_flush_denormal(True)
    out = Path(out)
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        ensure_synthetic(cfg.data)
    _barrier(info)

    # ---- resume point
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

    # ---- data and its statistics
    seed = tcfg.seed
    dataset = training_dataset(cfg.data, seed + 7919 * info.rank)
    val_set = validation_dataset(cfg.data) if info.main else None
    label_set = CITYSCAPES_19
    tasks = list(tcfg.tasks)
    if ckpt is not None:
        stats = dict(ckpt.training_state["dataset_stats"])
        stats["mean"], stats["std"] = list(ckpt.mean), list(ckpt.std)
    else:
        stats = dataset_statistics(dataset, label_set.num_classes, cfg.data.stats_max_images)
    if "segmentation" in tasks and not stats["has_labels"]:
        raise ConfigError(f"train.tasks has segmentation but {cfg.data.root} has no labels")
    if "disparity" in tasks and not stats["has_disparity"]:
        raise ConfigError(f"train.tasks has disparity but {cfg.data.root} has no disparity")
    class_weights: list[float] | None = None
    if "segmentation" in tasks and cfg.loss.class_weights:
        if ckpt is not None and ckpt.class_weights is not None:
            class_weights = [float(v) for v in ckpt.class_weights]
        else:
            class_weights = class_weights_from_frequencies(
                np.asarray(stats["class_pixels"]), cfg.loss.class_weight_c
            ).tolist()
    mean, std = tuple(stats["mean"]), tuple(stats["std"])

    # ---- model, loss weighting, optimiser
    torch.manual_seed(seed)  # same initial weights on every rank
    np.random.seed(seed % 2**32)
    random.seed(seed)
    hyper = dict(cfg.model.hyper_parameters, num_classes=label_set.num_classes, tasks=tasks)
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
    state = RunState()
    if ckpt is not None:
        ts = ckpt.training_state
        model.load_state_dict(ckpt.state_dict)
        optimizer.load_state_dict(ts["optimizer"])
        if (
            _load_scheduler_state(scheduler, ts["scheduler"], cfg.milestone_steps(), tcfg.lr_decay)
            and info.main
        ):
            print(
                f"{PROG}: note: the step budget or milestones changed since {resume_path}; "
                f"learning rate continues on the new schedule (milestones "
                f"{cfg.milestone_steps()}, lr now {optimizer.param_groups[0]['lr']:.3g})",
                file=sys.stderr,
            )
        if ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        weighting.load_state_dict(ts["weighting"])
        state = RunState(
            step=int(ts["step"]),
            elapsed_s=float(ts["elapsed_s"]),
            sessions=int(ts.get("sessions", 0)) + 1,
            best=dict(ts.get("best", {})),
            last_val=dict(ts.get("last_val", {})),
        )
        _restore_rng(ts["rng"], device)
        if int(ts.get("world_size", 1)) != info.world_size and info.main:
            print(
                f"{PROG}: note: resuming a {ts.get('world_size')}-process run with "
                f"{info.world_size} process(es); the data order changes",
                file=sys.stderr,
            )
    if info.enabled:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    model.train()
    cw_tensor = (
        torch.tensor(class_weights, dtype=torch.float32, device=device)
        if class_weights is not None
        else None
    )
    max_disp = getattr(_unwrap(model), "max_disparity", None)

    # ---- data order: one DistributedSampler (also for a single process), resumable mid-epoch
    sampler = DistributedSampler(
        dataset,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    batches_per_epoch = len(sampler) // tcfg.batch_size
    if batches_per_epoch < 1:
        raise ConfigError(
            f"{len(dataset)} training samples over {info.world_size} process(es) do not make "
            f"one batch of {tcfg.batch_size}"
        )

    provenance_base = {
        "command": shlex.join(command) if command else PROG,
        "config": cfg.to_dict(),
        "data": data_description(cfg.data, dataset, stats),
        "machine": machine_info(device),
        "world_size": info.world_size,
        "git_revision": git_revision(),
        "torch_version": str(torch.__version__),
        "amp": use_amp,
        "steps": tcfg.steps,
    }
    # one entry per session (first run and every resume): how the weights were really made
    history = [dict(h) for h in (ckpt.training_state.get("history", []) if ckpt else [])]
    history.append(
        {
            "command": provenance_base["command"],
            "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "from_step": state.step,
            "to_step": state.step,
            "steps": tcfg.steps,
            "milestones": cfg.milestone_steps(),
            "git_revision": provenance_base["git_revision"],
        }
    )

    def checkpoint(final: bool) -> Checkpoint:
        elapsed = state.elapsed_s + (time.time() - session_start)
        history[-1]["to_step"] = state.step
        provenance = dict(
            provenance_base,
            wall_time_s=round(elapsed, 1),
            step=state.step,
            finished_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            history=history,
        )
        training_state: dict[str, Any] = {}
        if not final:
            training_state = {
                "step": state.step,
                "elapsed_s": elapsed,
                "sessions": state.sessions,
                "best": state.best,
                "last_val": state.last_val,
                "optimizer": optimizer.state_dict(),
                "scheduler": _scheduler_state(scheduler),
                "scaler": scaler.state_dict() if use_amp else {},
                "weighting": weighting.state_dict(),
                "rng": _rng_state(device),
                "dataset_stats": {k: v for k, v in stats.items() if k not in ("mean", "std")},
                "world_size": info.world_size,
                "history": history,
            }
        metrics = {"validation": state.last_val, "best_validation": state.best}
        return Checkpoint(
            architecture=cfg.model.architecture,
            hyper_parameters=hyper,
            state_dict={k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
            label_set=label_set,
            mean=mean,  # type: ignore[arg-type]
            std=std,  # type: ignore[arg-type]
            provenance=provenance,
            metrics=metrics if state.last_val else {},
            class_weights=class_weights,
            training_state=training_state,
        )

    columns = _columns(tasks, weighting, val_set is not None)
    log = RunLog(out, columns, state.step if ckpt is not None else None) if info.main else None
    if info.main:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        where = f"resuming at step {state.step + 1}" if ckpt is not None else "starting"
        print(
            f"{PROG}: {where} of {tcfg.steps}; {len(dataset)} training samples, batch "
            f"{tcfg.batch_size} x {info.world_size} process(es), {batches_per_epoch} steps per "
            f"epoch, device {device}, tasks {tasks}, weighting {weighting.kind}, "
            f"lr {tcfg.lr} x{tcfg.lr_decay} at steps {cfg.milestone_steps()}",
            file=sys.stderr,
        )

    session_start = time.time()
    bar = tqdm(
        total=tcfg.steps,
        initial=state.step,
        disable=not (progress and info.main),
        unit="step",
        desc="train",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )
    recent: list[float] = []
    skipped_nonfinite = 0
    try:
        while state.step < tcfg.steps:
            epoch, offset = divmod(state.step, batches_per_epoch)
            sampler.set_epoch(epoch)
            _reseed_augment(dataset, seed, epoch, info.rank)
            loader = DataLoader(
                dataset,
                batch_size=tcfg.batch_size,
                sampler=SkipSampler(sampler, offset * tcfg.batch_size),
                num_workers=tcfg.num_workers,
                collate_fn=_collate,
                worker_init_fn=_seed_worker,
                generator=torch.Generator().manual_seed(seed * 100003 + epoch * 31 + info.rank),
                drop_last=True,
                pin_memory=device.type == "cuda",
            )
            for batch in loader:
                t0 = time.time()
                state.step += 1
                left = normalize(batch["left"].to(device, non_blocking=True), mean, std)
                right = normalize(batch["right"].to(device, non_blocking=True), mean, std)
                target = {
                    k: batch[k].to(device, non_blocking=True)
                    for k in ("disparity", "valid", "labels")
                    if k in batch
                }
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    outputs = model(left, right if "disparity" in tasks else None)
                terms = task_losses(
                    outputs, target, class_weights=cw_tensor, max_disparity=max_disp
                )
                total, metrics = weighting.combine(terms)
                optimizer.zero_grad(set_to_none=True)
                if not torch.isfinite(total):
                    skipped_nonfinite += 1
                    if skipped_nonfinite > 20:
                        raise RuntimeError(
                            f"the loss was not finite in {skipped_nonfinite} steps (last at step "
                            f"{state.step}); lower train.lr or check the data"
                        )
                    grad_norm = float("nan")
                else:
                    scaler.scale(total).backward()
                    scaler.unscale_(optimizer)
                    params = [p for g in optimizer.param_groups for p in g["params"]]
                    if tcfg.grad_clip > 0:
                        grad_norm = float(nn.utils.clip_grad_norm_(params, tcfg.grad_clip))
                    else:
                        grad_norm = float(
                            torch.norm(
                                torch.stack([p.grad.norm() for p in params if p.grad is not None])
                            )
                        )
                    scaler.step(optimizer)
                    scaler.update()
                lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                step_s = time.time() - t0
                recent = (recent + [step_s])[-20:]
                row: dict[str, Any] = {
                    "step": state.step,
                    "epoch": epoch,
                    "session": state.sessions,
                    "lr": lr,
                    **metrics,
                    "grad_norm": grad_norm,
                    "step_s": step_s,
                    "images_per_s": tcfg.batch_size * info.world_size / max(np.mean(recent), 1e-9),
                    "elapsed_s": state.elapsed_s + time.time() - session_start,
                }
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{lr:.1e}", refresh=False)
                last = state.step >= tcfg.steps
                if (
                    val_set is not None
                    and info.main
                    and (last or (tcfg.eval_every and state.step % tcfg.eval_every == 0))
                ):
                    state.last_val = validate(
                        _unwrap(model),
                        val_set,
                        mean,
                        std,
                        device,
                        cfg.data.val.max_images,  # type: ignore[union-attr]
                    )
                    row.update(state.last_val)
                    for key, value in state.last_val.items():
                        old = state.best.get(key)
                        better = old is None or (
                            value < old if _lower_is_better(key) else value > old
                        )
                        if better:
                            state.best[key] = value
                    bar.write(
                        f"step {state.step}: "
                        + ", ".join(f"{k} {v:.3f}" for k, v in state.last_val.items())
                    )
                if log is not None and (
                    last
                    or tcfg.log_every <= 1
                    or state.step % tcfg.log_every == 0
                    or any(k in row for k in VAL_KEYS)
                ):
                    log.write(row)
                if last or (tcfg.checkpoint_every and state.step % tcfg.checkpoint_every == 0):
                    if info.main:
                        save_checkpoint(checkpoint(final=False), out / LAST)
                        assert log is not None
                        _plot(out, log.rows, columns)
                    _barrier(info)
                if last:
                    break
    finally:
        bar.close()
        if log is not None:
            log.close()

    summary: dict[str, Any] = {}
    if info.main:
        final = checkpoint(final=True)
        save_checkpoint(final, out / FINAL)
        assert log is not None
        _plot(out, log.rows, columns)
        losses = [r["loss"] for r in log.rows[-50:] if isinstance(r.get("loss"), float)]
        elapsed = state.elapsed_s + time.time() - session_start
        summary = {
            "steps": state.step,
            "sessions": state.sessions + 1,
            "wall_time_s": round(elapsed, 1),
            "wall_time_this_session_s": round(time.time() - start_time, 1),
            "device": str(device),
            "world_size": info.world_size,
            "machine": provenance_base["machine"],
            "train_loss_last50": float(np.mean(losses)) if losses else None,
            "skipped_nonfinite_steps": skipped_nonfinite,
            "validation": state.last_val,
            "best_validation": state.best,
            "final": str(out / FINAL),
            "last": str(out / LAST),
            "curves": str(out / "curves.png"),
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(
            f"{PROG}: done: {state.step} steps in {elapsed / 60:.1f} min "
            f"({summary['sessions']} session(s)); final loss {summary['train_loss_last50']}; "
            + (
                "validation "
                + ", ".join(f"{k} {v:.3f}" for k, v in state.last_val.items())
                + "; best "
                + ", ".join(f"{k} {v:.3f}" for k, v in state.best.items())
                if state.last_val
                else "no validation split"
            )
            + f"; weights {out / FINAL}",
            file=sys.stderr,
        )
    _barrier(info)
    return summary


def _collate(samples: Sequence[Any]) -> dict[str, Any]:
    from stereo_semantic_ros.datasets.base import collate

    return collate(samples)


def _seed_worker(worker_id: int) -> None:
    from stereo_semantic_ros.datasets.base import seed_worker

    seed_worker(worker_id)


def _reseed_augment(dataset: Any, seed: int, epoch: int, rank: int) -> None:
    """Per-epoch augmentation stream for ``num_workers = 0`` (workers reseed themselves)."""
    inner = getattr(dataset, "dataset", dataset)
    reseed = getattr(inner, "reseed", None)
    if callable(reseed):
        reseed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a stereo + semantics network from a YAML recipe; resumable, "
        "DistributedDataParallel when started with torchrun.",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML training recipe")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directory (default runs/<config name>); holds last.pt, final.pt, logs",
    )
    parser.add_argument(
        "--resume",
        default="auto",
        help="auto (continue from <out>/last.pt if present, default), none (start over), "
        "or the path of a last.pt",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="override train.steps (the learning-rate milestones given as fractions follow)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (YAML syntax), e.g. --set train.tasks=[disparity]",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = [PROG, *(sys.argv[1:] if argv is None else argv)]
    try:
        overrides = list(args.set)
        if args.max_steps is not None:
            overrides.append(f"train.steps={int(args.max_steps)}")
        cfg = load_config(args.config, overrides)
        out = args.out or Path("runs") / (cfg.name or args.config.stem)
        train(cfg, out, resume=args.resume, command=command, progress=not args.no_progress)
    except (ConfigError, CheckpointError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # dataset errors (DatasetError) and other bad input
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
