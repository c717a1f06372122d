"""Datasets as file lists: subclasses list files and supply readers, the base does the rest.

A dataset subclass does two things only: it lists its samples as :class:`SampleRecord` s (a name
plus the paths of the files of that sample) and it supplies readers for what is particular to
its format (how a disparity, a label or a calibration file is encoded). This base class checks
that the listed files exist, reads them into the one sample format,
:class:`~stereo_semantic_ros.datasets.sample.StereoSample`, runs the optional augmentation and
serves ``len`` / indexing for a :class:`torch.utils.data.DataLoader`.

Disparity sign convention: the one of :mod:`stereo_semantic_ros.calibration` -- disparity is
positive, a left pixel ``(u, v)`` matches the right pixel ``(u - d, v)``,
``Z = fx * B / (d + doffs)`` (``doffs = cx_right - cx_left``, 0 for most datasets).
Every reader converts its source encoding to that convention; 0 means "no ground truth".

For training, :func:`collate` turns a list of samples into a batch of tensors (see
:func:`to_tensors` for shapes, dtypes and value ranges) and :func:`seed_worker` gives every
DataLoader worker its own random stream::

    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2,
                        collate_fn=collate, worker_init_fn=seed_worker)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.sample import StereoSample

RIGHT_LABELS_KEY = "right_labels"
"""``StereoSample.meta`` key of the right view's (H, W) uint8 train ids, where a source has them.

The mirror augmentation needs the right view's labels; sources that have them (Virtual KITTI 2)
put them here and :mod:`stereo_semantic_ros.augment` keeps them aligned with the images.
"""
CONFIDENCE_KEY = "confidence"
RIGHT_CONFIDENCE_KEY = "right_confidence"
"""``StereoSample.meta`` keys of a stereo teacher's per-pixel confidence in its left / right
disparity, (H, W) float32 in [0, 1], where a source has them (pseudo labels,
:mod:`stereo_semantic_ros.datasets.pseudo_labels`); the augmentation keeps them aligned and
swaps them when it mirrors the pair."""
DENSE_META_KEYS = (RIGHT_LABELS_KEY, CONFIDENCE_KEY, RIGHT_CONFIDENCE_KEY)
"""The per-pixel arrays a sample may carry in ``meta``; geometric augmentation applies to them."""


class DatasetError(ValueError):
    """A dataset root, listing or file that cannot be read as the documented layout."""


@dataclass(frozen=True)
class SampleRecord:
    """What a subclass lists for one sample.

    Attributes:
        name: identifier, unique within the dataset (e.g. ``"000012_10"``).
        files: role -> path. ``"left"`` and ``"right"`` are required; the other roles
            (``"disparity"``, ``"noc"``, ``"labels"``, ``"calib"``, ...) mean whatever the
            subclass's readers make of them. Every listed path must exist.
        extra: anything else the readers need (frame numbers, camera ids).
    """

    name: str
    files: Mapping[str, Path]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def path(self, role: str) -> Path | None:
        return self.files.get(role)


class Disparity(NamedTuple):
    """A left-view disparity ground truth in the package convention.

    ``disparity`` (H, W) float32 pixels, 0 where ``valid`` is False; ``valid`` (H, W) bool
    ("All" pixels); ``noc`` (H, W) bool, the valid pixels also visible in the right view.
    """

    disparity: np.ndarray
    valid: np.ndarray
    noc: np.ndarray


Transform = Callable[[StereoSample], StereoSample]


class StereoDataset(Dataset):
    """Base of every on-disk stereo dataset: reading, checking, augmentation, indexing.

    Subclasses call ``super().__init__(records, ...)`` with their file list and override the
    ``read_*`` hooks that their format needs; :meth:`read_calib` is the only required one.

    Args:
        records: the samples, in a fixed (sorted) order.
        root: dataset root, named in error messages.
        augment: optional callable applied to every sample after reading (an
            :class:`~stereo_semantic_ros.augment.Augmentor` for training; ``None`` for
            evaluation, which then sees full, unmodified images).
        layout: one line describing the expected layout, quoted when nothing was found.
    """

    dataset_name = "stereo"

    def __init__(
        self,
        records: Sequence[SampleRecord],
        *,
        root: str | Path,
        augment: Transform | None = None,
        layout: str = "",
    ) -> None:
        self.root = Path(root)
        self.records: list[SampleRecord] = list(records)
        self.augment = augment
        if not self.records:
            hint = f"; expected {layout}" if layout else ""
            raise DatasetError(
                f"{self.dataset_name}: no samples found under {self.root}{hint}. "
                "Check the root directory and the split."
            )
        names = [r.name for r in self.records]
        if len(set(names)) != len(names):
            raise DatasetError(f"{self.dataset_name}: duplicate sample names under {self.root}")
        check_files_exist(
            (path for record in self.records for path in record.files.values()),
            self.dataset_name,
        )

    # --- hooks for subclasses -------------------------------------------------------------

    def read_calib(self, record: SampleRecord, width: int, height: int) -> StereoCalibration:
        """Calibration of the rectified pair at its stored resolution."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_calib")

    def read_disparity(self, record: SampleRecord, calib: StereoCalibration) -> Disparity | None:
        """Left-view disparity ground truth, or None when the sample has none (test splits)."""
        return None

    def read_right_disparity(
        self, record: SampleRecord, calib: StereoCalibration
    ) -> np.ndarray | None:
        """(H, W) float32 right-view disparity (0 = unknown), or None."""
        return None

    def read_labels(self, record: SampleRecord) -> np.ndarray | None:
        """(H, W) uint8 left-view train ids (255 = ignore), or None."""
        return None

    def read_right_labels(self, record: SampleRecord) -> np.ndarray | None:
        """(H, W) uint8 right-view train ids, or None. Stored under ``meta[RIGHT_LABELS_KEY]``."""
        return None

    def read_depth(
        self, record: SampleRecord, calib: StereoCalibration, gt: Disparity | None
    ) -> np.ndarray | None:
        """(H, W) float32 metres (NaN unknown). Default: ``fx * B / (d + doffs)`` on valid
        pixels."""
        if gt is None:
            return None
        return np.where(gt.valid, calib.depth_from_disparity(gt.disparity), np.float32(np.nan))

    # --- the part every dataset shares ----------------------------------------------------

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> StereoSample:
        sample = self.load(index)
        if self.augment is not None:
            sample = self.augment(sample)
        return sample

    def load(self, index: int) -> StereoSample:
        """Read sample ``index`` without augmentation."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.dataset_name}: index {index} out of range 0..{len(self) - 1}")
        record = self.records[index]
        left = read_rgb(record.files["left"])
        right = read_rgb(record.files["right"])
        if left.shape != right.shape:
            raise DatasetError(
                f"{record.files['left']} is {left.shape[1]}x{left.shape[0]} but "
                f"{record.files['right']} is {right.shape[1]}x{right.shape[0]}; "
                "a rectified pair must have one size"
            )
        height, width = left.shape[:2]
        calib = self.read_calib(record, width, height)
        gt = self.read_disparity(record, calib)
        labels = self.read_labels(record)
        right_disparity = self.read_right_disparity(record, calib)
        depth = self.read_depth(record, calib, gt)
        meta: dict[str, Any] = {
            "dataset": self.dataset_name,
            "files": {role: str(path) for role, path in record.files.items()},
            **dict(record.extra),
        }
        right_labels = self.read_right_labels(record)
        if right_labels is not None:
            meta[RIGHT_LABELS_KEY] = right_labels
        for role, array in (
            ("disparity", None if gt is None else gt.disparity),
            ("labels", labels),
            ("right_disparity", right_disparity),
            (RIGHT_LABELS_KEY, right_labels),
        ):
            if array is not None and array.shape[:2] != (height, width):
                raise DatasetError(
                    f"{self.dataset_name} sample {record.name}: {role} is "
                    f"{array.shape[1]}x{array.shape[0]} but the images are {width}x{height} "
                    f"({record.files.get(role, record.files['left'])})"
                )
        return StereoSample(
            left=left,
            right=right,
            calib=calib,
            disparity=None if gt is None else gt.disparity,
            valid=None if gt is None else gt.valid,
            noc=None if gt is None else gt.noc,
            labels=labels,
            depth=depth,
            right_disparity=right_disparity,
            name=record.name,
            meta=meta,
        )

    def reseed(self, seed: int) -> None:
        """Give this copy of the dataset its own augmentation stream (see :func:`seed_worker`)."""
        reseed = getattr(self.augment, "reseed", None)
        if callable(reseed):
            reseed(seed)


# --- readers shared by the loaders ----------------------------------------------------------


def check_files_exist(paths: Iterable[Path], what: str) -> None:
    """Raise :class:`DatasetError` naming the first missing path (and how many are missing)."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else ""
        raise DatasetError(f"{what}: missing file {missing[0]}{more}")


def _imread(path: Path, flags: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    # np.fromfile + imdecode instead of imread: same decoders, and an explicit failure
    # rather than imread's silent None for both "missing" and "corrupt".
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise DatasetError(f"cannot decode image file {path} (corrupt or not an image)")
    return image


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an 8-bit image file (grey files are replicated to 3 channels)."""
    image = _imread(path, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def read_png_uint16(path: Path) -> np.ndarray:
    """(H, W) uint16 from a single-channel 16-bit PNG (disparity and depth encodings)."""
    image = _imread(path, cv2.IMREAD_UNCHANGED)
    if image.dtype != np.uint16 or image.ndim != 2:
        raise DatasetError(
            f"{path} is {image.dtype} with shape {image.shape}; expected a single-channel "
            "16-bit PNG"
        )
    return image


def read_label_ids(path: Path, lut: np.ndarray) -> np.ndarray:
    """(H, W) uint8 train ids from a single-channel 8-bit label-id PNG through a 256-entry LUT."""
    image = _imread(path, cv2.IMREAD_UNCHANGED)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise DatasetError(
            f"{path} is {image.dtype} with shape {image.shape}; expected a single-channel "
            "8-bit label-id PNG (not the colour visualisation)"
        )
    return lut[image]


def consistent_disparity_mask(
    disparity: np.ndarray, other: np.ndarray, partner_sign: int, tolerance: float = 1.0
) -> np.ndarray:
    """Pixels whose disparity is confirmed by the other view's disparity (left-right check).

    Args:
        disparity: (H, W) disparity of this view, 0 = unknown.
        other: (H, W) disparity of the other view, 0 = unknown.
        partner_sign: -1 when this is the left view (partner column ``u - d``), +1 for the
            right view (partner column ``u + d``).
        tolerance: largest accepted difference in pixels.

    Returns:
        (H, W) bool: known, partner inside the image, and the partner's disparity agrees --
        i.e. the pixel is visible in both views (NOC).
    """
    if partner_sign not in (-1, 1):
        raise ValueError(f"partner_sign must be -1 (left view) or +1 (right), got {partner_sign}")
    h, w = disparity.shape
    cols = np.arange(w, dtype=np.float32)[None, :]
    partner = np.rint(cols + partner_sign * disparity).astype(np.int64)
    inside = (partner >= 0) & (partner < w) & (disparity > 0)
    partner = np.clip(partner, 0, w - 1)
    rows = np.arange(h)[:, None]
    other_at = other[rows, partner]
    return inside & (other_at > 0) & (np.abs(other_at - disparity) <= tolerance)


# --- tensors and batches --------------------------------------------------------------------


def to_tensors(sample: StereoSample) -> dict[str, torch.Tensor]:
    """One sample as tensors, ready for :func:`collate` or a batch of one.

    Keys (only those whose source field is present):
        ``left``, ``right``: (3, H, W) float32 RGB in [0, 255], NOT normalised -- the network's
            input normalisation belongs to the pipeline, so training and inference share it.
        ``disparity``: (1, H, W) float32 pixels, 0 where invalid.
        ``valid``, ``noc``: (1, H, W) bool.
        ``labels``: (H, W) int64 train ids, 255 = ignore (``CrossEntropyLoss(ignore_index=255)``).
        ``depth``: (1, H, W) float32 metres, NaN unknown.
        ``right_disparity``: (1, H, W) float32, 0 unknown.
        ``fx``, ``baseline``, ``doffs``: () float32, pixels, metres and pixels, for depth from
            disparity ``fx * B / (d + doffs)``.
        ``right_labels``: (H, W) int64, from ``meta[RIGHT_LABELS_KEY]``.
        ``confidence``, ``right_confidence``: (1, H, W) float32 in [0, 1], from ``meta``.
    """
    out: dict[str, torch.Tensor] = {
        "left": torch.from_numpy(np.ascontiguousarray(sample.left.transpose(2, 0, 1))).float(),
        "right": torch.from_numpy(np.ascontiguousarray(sample.right.transpose(2, 0, 1))).float(),
    }
    for key, dtype in (
        ("disparity", np.float32),
        ("valid", np.bool_),
        ("noc", np.bool_),
        ("depth", np.float32),
        ("right_disparity", np.float32),
    ):
        value = getattr(sample, key)
        if value is not None:
            out[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=dtype))[None]
    if sample.labels is not None:
        out["labels"] = torch.from_numpy(sample.labels.astype(np.int64))
    right_labels = sample.meta.get(RIGHT_LABELS_KEY)
    if right_labels is not None:
        out["right_labels"] = torch.from_numpy(np.asarray(right_labels).astype(np.int64))
    for key in (CONFIDENCE_KEY, RIGHT_CONFIDENCE_KEY):
        if sample.meta.get(key) is not None:
            value = np.ascontiguousarray(sample.meta[key], dtype=np.float32)
            out[key] = torch.from_numpy(value)[None]
    out["fx"] = torch.tensor(sample.calib.fx, dtype=torch.float32)
    out["baseline"] = torch.tensor(sample.calib.baseline, dtype=torch.float32)
    out["doffs"] = torch.tensor(sample.calib.doffs, dtype=torch.float32)
    return out


def collate(samples: Sequence[StereoSample]) -> dict[str, Any]:
    """DataLoader ``collate_fn``: stack :func:`to_tensors` of each sample along a new dim 0.

    Returns the keys of :func:`to_tensors` with a leading batch dimension, plus two non-tensor
    entries: ``name`` (list of str) and ``calib`` (list of StereoCalibration). All samples must
    have the same size (crop for training) and the same ground-truth fields; the right-view
    labels and the confidences (from ``meta``) are kept only when every sample has them (a
    mirrored sample gains right labels its unmirrored neighbours lack).
    """
    if not samples:
        raise ValueError("collate: empty batch")
    tensors = [to_tensors(s) for s in samples]
    optional = {"right_labels", *DENSE_META_KEYS}
    shared = set.intersection(*(set(t) for t in tensors)) & optional
    tensors = [{k: v for k, v in t.items() if k not in optional or k in shared} for t in tensors]
    keys = tensors[0].keys()
    for s, t in zip(samples, tensors):
        if t.keys() != keys:
            raise DatasetError(
                f"collate: sample {s.name!r} has fields {sorted(t)} but {samples[0].name!r} has "
                f"{sorted(keys)}; do not mix samples with and without ground truth in a batch"
            )
        if s.size != samples[0].size:
            raise DatasetError(
                f"collate: sample {s.name!r} is {s.size} but {samples[0].name!r} is "
                f"{samples[0].size}; crop to one size (Augmentor crop_size) or use batch_size=1"
            )
    batch: dict[str, Any] = {key: torch.stack([t[key] for t in tensors]) for key in keys}
    batch["name"] = [s.name for s in samples]
    batch["calib"] = [s.calib for s in samples]
    return batch


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a distinct, reproducible random stream per worker.

    PyTorch gives each worker ``base_seed + worker_id`` (``base_seed`` drawn from the main
    process's torch generator, so it changes per epoch and follows ``torch.manual_seed``).
    Without this, every worker's copy of the augmentor would replay the same numpy stream.
    Seeds numpy's and Python's global generators and reseeds every :class:`StereoDataset`
    inside the worker's dataset (through ConcatDataset / Subset wrappers).

    It deliberately leaves OpenCV's thread count alone: ``cv2.setNumThreads`` in a forked worker
    waits forever on the thread pool lock the parent held at fork time (a hung test run showed it).
    """
    info = torch.utils.data.get_worker_info()
    seed = int(info.seed) if info is not None else int(torch.initial_seed())
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if info is not None:
        for dataset in _walk_datasets(info.dataset):
            dataset.reseed(seed)


def _walk_datasets(dataset: Any) -> Iterable[StereoDataset]:
    if isinstance(dataset, StereoDataset):
        yield dataset
    for child in getattr(dataset, "datasets", ()):  # ConcatDataset
        yield from _walk_datasets(child)
    inner = getattr(dataset, "dataset", None)  # Subset
    if inner is not None:
        yield from _walk_datasets(inner)
