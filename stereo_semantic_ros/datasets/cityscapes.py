"""Cityscapes stereo with fine semantic labels, in the layout of the official downloads.

Expected under ``root`` (``leftImg8bit_trainvaltest``, ``rightImg8bit_trainvaltest``,
``disparity_trainvaltest``, ``camera_trainvaltest`` and ``gtFine_trainvaltest`` unpacked into
one directory), for each ``<split>/<city>/<city>_<seq>_<frame>``::

    leftImg8bit/...   _leftImg8bit.png        left, 8-bit RGB
    rightImg8bit/...  _rightImg8bit.png       right
    disparity/...     _disparity.png          uint16: d = (p - 1) / 256 for p > 0, p = 0 invalid
    camera/...        _camera.json            extrinsic.baseline [m], intrinsic.fx/fy/u0/v0 [px]
    gtFine/...        _gtFine_labelIds.png    uint8 label ids 0..33 (optional)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stereo_semantic_ros.calibration import CalibrationError, StereoCalibration
from stereo_semantic_ros.datasets.base import (
    DatasetError,
    Disparity,
    SampleRecord,
    StereoDataset,
    Transform,
    read_label_ids,
    read_png_uint16,
)
from stereo_semantic_ros.labels import CITYSCAPES_ID_TO_TRAIN_ID, id_lut

_LAYOUT = "<root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png"
_SUFFIX = "_leftImg8bit.png"


class Cityscapes(StereoDataset):
    """Cityscapes stereo pairs with SGM disparity, camera calibration and gtFine labels.

    Args:
        root: directory holding ``leftImg8bit/``, ``rightImg8bit/``, ``disparity/``,
            ``camera/`` and optionally ``gtFine/``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"train_extra"``.
        cities: keep only these cities (e.g. ``["aachen"]``).
        semantics: True requires ``gtFine/<split>/`` labels for every frame, False ignores
            them, None (default) uses them when ``gtFine/<split>/`` exists. The ``test``
            split has no labels (its gtFine files are placeholders): True is refused there.
        augment: optional transform for training.

    Cityscapes disparity comes from semi-global matching without an occlusion mask, so
    ``noc`` equals ``valid``. ``p == 1`` (disparity exactly 0, infinitely far) is counted as
    invalid, since 0 means "no ground truth" in the package's sample format.
    """

    dataset_name = "cityscapes"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        cities: Sequence[str] | None = None,
        semantics: bool | None = None,
        augment: Transform | None = None,
    ) -> None:
        root = Path(root)
        left_dir = root / "leftImg8bit" / split
        if not left_dir.is_dir():
            raise DatasetError(f"cityscapes: {left_dir} does not exist; expected {_LAYOUT}")
        lefts = sorted(left_dir.glob(f"*/*{_SUFFIX}"))
        if cities is not None:
            lefts = [p for p in lefts if p.parent.name in set(cities)]
        if split == "test":
            # the public test split's gtFine files are placeholders (every pixel unlabelled):
            # as supervision they would silently zero the loss and empty the mIoU
            if semantics:
                raise DatasetError(
                    f"cityscapes: {root / 'gtFine' / 'test'} holds placeholder labels only (the "
                    "test split is scored by the benchmark server); train and validate on "
                    "'train' or 'val'"
                )
            semantics = False
        if semantics is None:
            semantics = (root / "gtFine" / split).is_dir()

        records = []
        for left in lefts:
            city = left.parent.name
            stem = left.name[: -len(_SUFFIX)]
            rel = Path(split) / city
            files = {
                "left": left,
                "right": root / "rightImg8bit" / rel / f"{stem}_rightImg8bit.png",
                "disparity": root / "disparity" / rel / f"{stem}_disparity.png",
                "calib": root / "camera" / rel / f"{stem}_camera.json",
            }
            if semantics:
                files["labels"] = root / "gtFine" / rel / f"{stem}_gtFine_labelIds.png"
            records.append(SampleRecord(name=stem, files=files, extra={"city": city}))
        self._lut = id_lut(CITYSCAPES_ID_TO_TRAIN_ID)
        super().__init__(records, root=root, augment=augment, layout=_LAYOUT)

    def read_calib(self, record: SampleRecord, width: int, height: int) -> StereoCalibration:
        return read_cityscapes_camera(record.files["calib"], width, height)

    def read_disparity(self, record: SampleRecord, calib: StereoCalibration) -> Disparity:
        disparity, valid = decode_cityscapes_disparity(read_png_uint16(record.files["disparity"]))
        return Disparity(disparity, valid, valid.copy())

    def read_labels(self, record: SampleRecord) -> np.ndarray | None:
        path = record.path("labels")
        return None if path is None else read_label_ids(path, self._lut)


def decode_cityscapes_disparity(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cityscapes uint16 disparity PNG -> (float32 disparity, valid). d = (p - 1) / 256."""
    valid = raw > 1
    disparity = (raw.astype(np.float32) - np.float32(1.0)) / np.float32(256.0)
    return np.where(valid, disparity, np.float32(0.0)).astype(np.float32), valid


def read_cityscapes_camera(path: Path, width: int = 0, height: int = 0) -> StereoCalibration:
    """Rectified calibration from a Cityscapes ``*_camera.json``.

    The file has one principal point for both rectified views, so ``doffs`` is 0.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read Cityscapes camera file {path}: {exc}") from exc
    try:
        intrinsic, extrinsic = data["intrinsic"], data["extrinsic"]
        values = {
            "fx": float(intrinsic["fx"]),
            "fy": float(intrinsic["fy"]),
            "cx": float(intrinsic["u0"]),
            "cy": float(intrinsic["v0"]),
            "baseline": float(extrinsic["baseline"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f"{path}: expected intrinsic.fx/fy/u0/v0 and extrinsic.baseline numbers ({exc!r})"
        ) from exc
    try:
        return StereoCalibration(**values, width=width, height=height, doffs=0.0)
    except CalibrationError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
