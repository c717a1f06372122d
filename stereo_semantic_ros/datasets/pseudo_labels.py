"""Pseudo labels as ``stereo-semantic-pseudo-label`` writes them: a stereo teacher's disparity,
confidence and (optionally) segmentation of both views of a user's recordings.

Layout under the root (``FRAME`` = the frame's name, ``000000``, ``000001``, ...)::

    pseudo_labels.json                 provenance (source, teacher, command, summary) and the
                                       frame list: name, stamp, calibration of each frame
    left/FRAME.png, right/FRAME.png    the rectified pair, 8-bit RGB
    disparity/FRAME.png                left-view pseudo disparity, uint16, d = value / 256,
    disparity_right/FRAME.png          0 = no pseudo label (KITTI's encoding); the right view's
    confidence/FRAME.png               the teacher's confidence in it, uint8, c = value / 255
    confidence_right/FRAME.png
    labels/FRAME.png                   the teacher's segmentation, uint8 train ids, 255 = none
    labels_right/FRAME.png             (only when the teacher segments)
    ground_truth/disparity/FRAME.png   the source's own ground truth where it had some (a bag's
    ground_truth/labels/FRAME.png      ground-truth topics): for evaluation only

Two splits read the same frames: ``pseudo`` (training; the default for recipes) gives the
teacher's labels as the sample's ground truth, with both views' disparity (mirroring works), the
right view's labels and the confidences in ``meta`` (:data:`~.base.CONFIDENCE_KEY`,
:data:`~.base.RIGHT_CONFIDENCE_KEY`); ``ground_truth`` (the default for ``stereo-semantic-eval``)
gives the source's own ground truth and never a pseudo label. Disparity follows
:mod:`stereo_semantic_ros.calibration` (left ``u`` matches right ``u - d``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import CalibrationError, StereoCalibration
from stereo_semantic_ros.datasets.base import (
    CONFIDENCE_KEY,
    RIGHT_CONFIDENCE_KEY,
    DatasetError,
    Disparity,
    SampleRecord,
    StereoDataset,
    Transform,
    consistent_disparity_mask,
    read_label_ids,
    read_png_uint16,
)
from stereo_semantic_ros.datasets.kitti import decode_kitti_disparity
from stereo_semantic_ros.datasets.sample import StereoSample

MANIFEST = "pseudo_labels.json"
LAYOUT_VERSION = 1
SPLITS = ("pseudo", "ground_truth")
DISPARITY_SCALE = 256.0
"""Disparity PNGs hold ``round(d * 256)`` (KITTI's encoding: up to 255.99 px, 1/256 px steps)."""
CONFIDENCE_SCALE = 255.0
"""Confidence PNGs hold ``round(c * 255)``."""
_LAYOUT = f"<root>/{MANIFEST} with left/, right/, disparity/ ... (stereo-semantic-pseudo-label)"


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The ``pseudo_labels.json`` of a pseudo-label directory.

    Raises:
        DatasetError: missing, unreadable, or of another layout version.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(
            f"pseudo_labels: {path} does not exist; expected {_LAYOUT}. Make the labels with "
            "`stereo-semantic-pseudo-label BAG --teacher PARAMS --out DIR`"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"pseudo_labels: cannot read {path}: {exc}") from None
    version = manifest.get("layout_version")
    if version != LAYOUT_VERSION:
        raise DatasetError(
            f"pseudo_labels: {path} has layout version {version!r}; this package reads "
            f"version {LAYOUT_VERSION}: make the labels again with this version"
        )
    return manifest


def calibration_from_dict(data: dict[str, Any]) -> StereoCalibration:
    return StereoCalibration(
        fx=float(data["fx"]),
        fy=float(data["fy"]),
        cx=float(data["cx"]),
        cy=float(data["cy"]),
        baseline=float(data["baseline"]),
        width=int(data.get("width", 0)),
        height=int(data.get("height", 0)),
        doffs=float(data.get("doffs", 0.0)),
    )


def encode_disparity(disparity: np.ndarray) -> np.ndarray:
    """(H, W) float pixels (<= 0 or non-finite: none) -> uint16 ``round(d * 256)``, 0 = none.
    Disparities of 256 px and more do not fit and are left out (0)."""
    d = np.nan_to_num(np.asarray(disparity, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    raw = np.rint(d * DISPARITY_SCALE)
    return np.where((d > 0) & (raw <= 65535), raw, 0).astype(np.uint16)


def encode_confidence(confidence: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] (non-finite: 0) -> uint8 ``round(c * 255)``."""
    c = np.nan_to_num(np.asarray(confidence, np.float64), nan=0.0)
    return np.rint(np.clip(c, 0.0, 1.0) * CONFIDENCE_SCALE).astype(np.uint8)


_IDENTITY = np.arange(256, dtype=np.uint8)


def read_confidence(path: Path) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a confidence PNG (single-channel 8-bit)."""
    return read_label_ids(path, _IDENTITY).astype(np.float32) / np.float32(CONFIDENCE_SCALE)


def read_train_ids(path: Path) -> np.ndarray:
    """(H, W) uint8 train ids (255 = none) as written, no id mapping."""
    return read_label_ids(path, _IDENTITY)


class PseudoLabels(StereoDataset):
    """A ``stereo-semantic-pseudo-label`` directory (module docstring).

    Args:
        root: the directory.
        split: ``pseudo`` (the teacher's labels; for training) or ``ground_truth`` (the
            source's own; for evaluation).
        augment: optional transform for training.
    """

    dataset_name = "pseudo_labels"

    def __init__(
        self, root: str | Path, split: str = "pseudo", *, augment: Transform | None = None
    ) -> None:
        root = Path(root)
        if split not in SPLITS:
            raise DatasetError(f"pseudo_labels: split must be one of {SPLITS}, got {split!r}")
        self.manifest = read_manifest(root)
        self.split = split
        frames = self.manifest.get("frames") or []
        self._calib: dict[str, StereoCalibration] = {}
        records = []
        for frame in frames:
            name = str(frame["name"])
            try:
                self._calib[name] = calibration_from_dict(frame["calib"])
            except (KeyError, TypeError, ValueError, CalibrationError) as exc:
                raise DatasetError(
                    f"pseudo_labels: frame {name} of {root / MANIFEST} has no usable "
                    f"calibration: {exc}"
                ) from None
            png = f"{name}.png"
            files = {"left": root / "left" / png, "right": root / "right" / png}
            if split == "pseudo":
                files["disparity"] = root / "disparity" / png
                files["right_disparity"] = root / "disparity_right" / png
                files["confidence"] = root / "confidence" / png
                files["right_confidence"] = root / "confidence_right" / png
                if frame.get("labels"):
                    files["labels"] = root / "labels" / png
                    files["right_labels"] = root / "labels_right" / png
            else:
                if frame.get("ground_truth_disparity"):
                    files["disparity"] = root / "ground_truth" / "disparity" / png
                if frame.get("ground_truth_labels"):
                    files["labels"] = root / "ground_truth" / "labels" / png
            records.append(
                SampleRecord(name=name, files=files, extra={"stamp_ns": frame.get("stamp_ns")})
            )
        if (
            split == "ground_truth"
            and records
            and not any("disparity" in r.files or "labels" in r.files for r in records)
        ):
            raise DatasetError(
                f"pseudo_labels: {root} holds no ground truth (its source had none); evaluate "
                "on the source itself, or use split 'pseudo' to score against the teacher"
            )
        super().__init__(records, root=root, augment=augment, layout=_LAYOUT)

    def read_calib(self, record: SampleRecord, width: int, height: int) -> StereoCalibration:
        calib = self._calib[record.name]
        if (calib.width, calib.height) not in ((width, height), (0, 0)):
            raise DatasetError(
                f"pseudo_labels: frame {record.name} is {width}x{height} but its calibration "
                f"is for {calib.width}x{calib.height}"
            )
        return calib

    def read_disparity(self, record: SampleRecord, calib: StereoCalibration) -> Disparity | None:
        path = record.path("disparity")
        if path is None:
            return None
        disparity, valid = decode_kitti_disparity(read_png_uint16(path))
        right = record.path("right_disparity")
        if right is None:
            noc = np.zeros_like(valid)  # no occlusion information
        else:
            other, _ = decode_kitti_disparity(read_png_uint16(right))
            noc = consistent_disparity_mask(disparity, other, partner_sign=-1)
        return Disparity(disparity, valid, noc)

    def read_right_disparity(
        self, record: SampleRecord, calib: StereoCalibration
    ) -> np.ndarray | None:
        path = record.path("right_disparity")
        return None if path is None else decode_kitti_disparity(read_png_uint16(path))[0]

    def read_labels(self, record: SampleRecord) -> np.ndarray | None:
        path = record.path("labels")
        return None if path is None else read_train_ids(path)

    def read_right_labels(self, record: SampleRecord) -> np.ndarray | None:
        path = record.path("right_labels")
        return None if path is None else read_train_ids(path)

    def load(self, index: int) -> StereoSample:
        """Read sample ``index`` without augmentation; the pseudo split's confidences go to
        ``meta``."""
        sample = super().load(index)
        record = self.records[index]
        for role, key in (
            ("confidence", CONFIDENCE_KEY),
            ("right_confidence", RIGHT_CONFIDENCE_KEY),
        ):
            path = record.path(role)
            if path is not None:
                confidence = read_confidence(path)
                if confidence.shape != sample.size:
                    raise DatasetError(
                        f"pseudo_labels: {path} is {confidence.shape[1]}x{confidence.shape[0]} "
                        f"but the images are {sample.size[1]}x{sample.size[0]}"
                    )
                sample.meta[key] = confidence
        return sample
