"""Training data: the recipe's datasets, their statistics, and the order batches come in.

The training images are normalised with the training set's own mean and std and the
segmentation loss is weighted per class by ``1 / ln(c + p_class)`` (ESP joint paper,
Sec. IV-B); both are computed once by :func:`training_statistics` and, on resume, taken from
the checkpoint so that a resumed run normalises exactly as it started. Batches come from one
:class:`~torch.utils.data.DistributedSampler` (also for a single process) per epoch, with the
batches a resumed run already took skipped (:class:`SkipSampler`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from stereo_semantic_ros.checkpoint import Checkpoint
from stereo_semantic_ros.datasets import registry
from stereo_semantic_ros.labels import IGNORE_LABEL
from stereo_semantic_ros.losses import class_weights_from_frequencies
from stereo_semantic_ros.preprocess import normalize
from stereo_semantic_ros.training.config import (
    ConfigError,
    DataConfig,
    TrainConfig,
    TrainSection,
)


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
    variations: list[str] | None = None,
) -> Dataset:
    """The training dataset ``kind`` under ``root``, from the one dataset table
    (:func:`stereo_semantic_ros.datasets.registry.open_dataset`); a request the table refuses
    (a test-only pair, an option the layout has no use for) is a :class:`ConfigError`."""
    try:
        return registry.open_dataset(
            kind,
            root,
            split,
            purpose="train",
            augment=augment,
            file_list=file_list,
            variations=variations,
        )
    except registry.DatasetUseError as exc:
        raise ConfigError(str(exc)) from None


def build_augmentor(cfg: DataConfig, seed: int) -> Any:
    """The training :class:`~stereo_semantic_ros.augment.Augmentor` of the recipe (or None)."""
    from stereo_semantic_ros.augment import PRESETS, Augmentor

    crop = tuple(cfg.crop) if cfg.crop is not None else None
    rng = np.random.default_rng(seed)
    if cfg.augment == "none":
        return None if crop is None else Augmentor(rng=rng, crop_size=crop)  # type: ignore[arg-type]
    # a preset name, or a mapping of Augmentor fields over a preset (``preset:``, default
    # ``default``)
    overrides = {} if isinstance(cfg.augment, str) else dict(cfg.augment)
    preset = cfg.augment if isinstance(cfg.augment, str) else overrides.pop("preset", "default")
    if preset not in PRESETS:
        raise ConfigError(
            f"data.augment preset must be one of {', '.join(PRESETS)}, got {preset!r}"
        )
    base = Augmentor.preset(preset, crop, rng)  # type: ignore[arg-type]
    if not overrides:
        return base
    allowed = {f.name for f in dataclasses.fields(Augmentor)} - {"rng", "crop_size"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join('data.augment.' + k for k in unknown)}; "
            f"allowed: preset, {', '.join(sorted(allowed))}"
        )
    try:
        return dataclasses.replace(base, **overrides)
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

    # rendering can take minutes; say what and why before the synth progress bar starts
    print(
        f"stereo-semantic-train: data.generate: {cfg.root} holds {have} of {gen.count} scenes; "
        f"rendering {gen.count} {gen.family} scenes of {gen.width}x{gen.height} (seed "
        f"{gen.seed}) on every core. Fewer for a quick try: --set data.generate.count=20",
        file=sys.stderr,
    )

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
        "0",  # one per core (at most 8); every scene has its own seed, so the split is the same
        "--family",
        gen.family,
        "--objects-fraction",
        str(gen.objects_fraction),
        "--objects-max-disparity",
        str(gen.objects_max_disparity),
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
    """The recipe's training samples, augmented by an augmentor seeded with ``seed``."""
    dataset = open_dataset(
        cfg.type, cfg.root, cfg.split, build_augmentor(cfg, seed), cfg.file_list, cfg.variations
    )
    chosen = _indices(cfg.indices, len(dataset), "data.indices")
    return dataset if chosen is None else _Subset(dataset, chosen)


def validation_dataset(cfg: DataConfig) -> Any:
    """The recipe's unaugmented validation samples, or None without ``data.val``."""
    if cfg.val is None:
        return None
    val = cfg.val
    dataset = open_dataset(
        val.type or cfg.type, val.root, val.split, None, val.file_list, val.variations
    )
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


def training_statistics(
    cfg: TrainConfig, dataset: Any, num_classes: int, ckpt: Checkpoint | None
) -> tuple[dict[str, Any], list[float] | None]:
    """The :func:`dataset_statistics` and class weights (None when not used) of the run.

    A resumed run takes them from the checkpoint rather than recounting: the weights were
    trained with those. Raises :class:`ConfigError` when a task has no ground truth.
    """
    tasks = cfg.train.tasks
    if ckpt is not None:
        stats = dict(ckpt.training_state["dataset_stats"])
        stats["mean"], stats["std"] = list(ckpt.mean), list(ckpt.std)
    else:
        stats = dataset_statistics(dataset, num_classes, cfg.data.stats_max_images)
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
    return stats, class_weights


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


def distributed_sampler(
    dataset: Any, rank: int, world_size: int, seed: int, batch_size: int
) -> tuple[DistributedSampler, int]:
    """The run's sampler and the number of whole batches an epoch gives each process."""
    sampler = DistributedSampler(
        dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    batches_per_epoch = len(sampler) // batch_size
    if batches_per_epoch < 1:
        raise ConfigError(
            f"{len(dataset)} training samples over {world_size} process(es) do not make "
            f"one batch of {batch_size}"
        )
    return sampler, batches_per_epoch


def epoch_loader(
    dataset: Any,
    sampler: DistributedSampler,
    epoch: int,
    skip_batches: int,
    tcfg: TrainSection,
    rank: int,
    device: torch.device,
) -> DataLoader:
    """The batches of ``epoch`` after the first ``skip_batches`` (those a resumed run took).

    The sampler's order depends only on the seed and the epoch, so a resumed run goes on
    with the samples the interrupted one had not reached yet in that epoch.
    """
    seed = tcfg.seed
    sampler.set_epoch(epoch)
    _reseed_augment(dataset, seed, epoch, rank)
    return DataLoader(
        dataset,
        batch_size=tcfg.batch_size,
        sampler=SkipSampler(sampler, skip_batches * tcfg.batch_size),
        num_workers=tcfg.num_workers,
        collate_fn=_collate,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed * 100003 + epoch * 31 + rank),
        drop_last=True,
        pin_memory=device.type == "cuda",
    )


TARGET_KEYS = (
    "disparity",
    "valid",
    "noc",
    "labels",
    "fx",
    "baseline",
    "doffs",
    "right_disparity",
    "right_labels",
    "confidence",
    "right_confidence",
)
"""The batch entries a training step sees (:func:`~.datasets.base.to_tensors`)."""


def batch_on_device(
    batch: Mapping[str, torch.Tensor],
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Normalised left and right images and the ground truth of a collated batch (with each
    sample's ``fx``, ``baseline`` and ``doffs``, which a depth network's loss needs for
    ``fx * B / (d + doffs)``, and the right view's disparity, labels and the teacher's
    confidences where the data has them, for the two-view losses)."""
    left = normalize(batch["left"].to(device, non_blocking=True), mean, std)
    right = normalize(batch["right"].to(device, non_blocking=True), mean, std)
    target = {k: batch[k].to(device, non_blocking=True) for k in TARGET_KEYS if k in batch}
    return left, right, target


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
