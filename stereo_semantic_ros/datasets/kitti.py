"""KITTI 2015 stereo with its semantic labels, in the layout of the official downloads.

Expected under ``root`` (``data_scene_flow.zip``, ``data_scene_flow_calib.zip`` and
``data_semantics.zip`` unpacked into one directory)::

    <split>/image_2/XXXXXX_10.png          left, 8-bit RGB
    <split>/image_3/XXXXXX_10.png          right
    <split>/disp_occ_0/XXXXXX_10.png       "All" disparity, uint16, d = value / 256, 0 = none
    <split>/disp_noc_0/XXXXXX_10.png       "NOC" disparity, same encoding (optional)
    <split>/semantic/XXXXXX_10.png         uint8 Cityscapes label ids 0..33 (optional)
    <split>/calib_cam_to_cam/XXXXXX.txt    P_rect_02: / P_rect_03: lines, 12 floats each

The package's synthetic generator writes the same layout (plus a ``synthetic_meta.json``, which
this loader ignores), so one loader reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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

KITTI_TYPICAL_CALIB = StereoCalibration(
    fx=721.5377, fy=721.5377, cx=609.5593, cy=172.854, baseline=0.5327119, width=1242, height=375
)
"""P_rect_02 / P_rect_03 of the 2011_09_26 recordings (most of KITTI 2015). Other recording
days differ by a few pixels in f and c, so this is a fallback only used when asked for."""

_LAYOUT = "<root>/<split>/image_2/XXXXXX_10.png with image_3/ beside it (KITTI 2015 layout)"


class Kitti2015(StereoDataset):
    """KITTI 2015 stereo (frame ``_10`` of each scene) with optional semantic labels.

    Args:
        root: directory holding ``training/`` and/or ``testing/``.
        split: ``"training"`` (ground truth required) or ``"testing"`` (images only).
        indices: keep only these scene numbers (e.g. ``[0, 5, 199]``); for train/val splits.
        file_list: text file, one scene per line (``000012``, ``000012_10`` or
            ``image_2/000012_10.png``); combined with ``indices`` when both are given.
        semantics: True requires ``<split>/semantic/`` for every frame, False ignores it,
            None (default) uses it when the directory exists (labels are None otherwise).
        default_calib: when ``<split>/calib_cam_to_cam/`` is absent, False (default) is an
            error; True falls back to :data:`KITTI_TYPICAL_CALIB`, a StereoCalibration is used
            as given (either with each image's width and height). Ignored when the directory
            exists.
        right_disparity_dir, right_semantic_dir: names of directories under ``<split>/``
            holding the RIGHT view's disparity (KITTI encoding) and label ids, frame names as
            in ``image_3/``. Not part of KITTI; a renderer such as the synthetic generator can
            write them, and with them the mirror augmentation can use the sample.
        augment: optional transform for training (see :class:`StereoDataset`).

    ``labels`` are train ids (KITTI semantics uses Cityscapes label ids; ids without a train
    id become 255). ``depth`` is ``fx * B / (d + doffs)`` on valid pixels. Real KITTI has no
    right-view disparity, so the mirror augmentation skips its samples.
    """

    dataset_name = "kitti2015"

    def __init__(
        self,
        root: str | Path,
        split: str = "training",
        *,
        indices: Sequence[int] | None = None,
        file_list: str | Path | None = None,
        semantics: bool | None = None,
        default_calib: bool | StereoCalibration = False,
        right_disparity_dir: str | None = None,
        right_semantic_dir: str | None = None,
        augment: Transform | None = None,
    ) -> None:
        root = Path(root)
        if split not in ("training", "testing"):
            raise DatasetError(f"kitti2015: split must be 'training' or 'testing', got {split!r}")
        base = root / split
        if not (base / "image_2").is_dir():
            raise DatasetError(f"kitti2015: {base / 'image_2'} does not exist; expected {_LAYOUT}")
        scenes = sorted(p.name[: -len("_10.png")] for p in (base / "image_2").glob("*_10.png"))
        if not scenes:
            raise DatasetError(
                f"kitti2015: no samples found in {base / 'image_2'} (no *_10.png); "
                f"expected {_LAYOUT}"
            )
        scenes = _select(scenes, indices, file_list)

        has_gt = split == "training"
        use_noc = has_gt and (base / "disp_noc_0").is_dir()
        if semantics is None:
            semantics = (base / "semantic").is_dir()
        calib_dir = base / "calib_cam_to_cam"
        if calib_dir.is_dir():
            self._fallback: StereoCalibration | None = None
        elif default_calib is True:
            self._fallback = KITTI_TYPICAL_CALIB
        elif isinstance(default_calib, StereoCalibration):
            self._fallback = default_calib
        else:
            raise DatasetError(
                f"kitti2015: calibration directory {calib_dir} does not exist. Unpack "
                "data_scene_flow_calib.zip into the root, or pass default_calib=True to use "
                "KITTI's typical values (f = 721.5 px, B = 0.533 m)"
            )

        records = []
        for scene in scenes:
            frame = f"{scene}_10.png"
            files = {"left": base / "image_2" / frame, "right": base / "image_3" / frame}
            if has_gt:
                files["disparity"] = base / "disp_occ_0" / frame
                if use_noc:
                    files["noc"] = base / "disp_noc_0" / frame
            if semantics:
                files["labels"] = base / "semantic" / frame
            if right_disparity_dir is not None:
                files["right_disparity"] = base / right_disparity_dir / frame
            if right_semantic_dir is not None:
                files["right_labels"] = base / right_semantic_dir / frame
            if self._fallback is None:
                files["calib"] = calib_dir / f"{scene}.txt"
            records.append(SampleRecord(name=f"{scene}_10", files=files, extra={"scene": scene}))
        self._lut = id_lut(CITYSCAPES_ID_TO_TRAIN_ID)
        super().__init__(records, root=root, augment=augment, layout=_LAYOUT)

    def read_calib(self, record: SampleRecord, width: int, height: int) -> StereoCalibration:
        path = record.path("calib")
        if path is None:
            assert self._fallback is not None
            return replace(self._fallback, width=width, height=height)
        return read_kitti_calib(path, width, height)

    def read_disparity(self, record: SampleRecord, calib: StereoCalibration) -> Disparity | None:
        path = record.path("disparity")
        if path is None:
            return None
        disparity, valid = decode_kitti_disparity(read_png_uint16(path))
        noc_path = record.path("noc")
        if noc_path is None:
            # No NOC file: without occlusion information no pixel is known to be visible.
            noc = np.zeros_like(valid)
        else:
            _, noc = decode_kitti_disparity(read_png_uint16(noc_path))
            if noc.shape != valid.shape:
                raise DatasetError(f"{noc_path} is {noc.shape}, but {path} is {valid.shape}")
            noc &= valid
        return Disparity(disparity, valid, noc)

    def read_labels(self, record: SampleRecord) -> np.ndarray | None:
        path = record.path("labels")
        return None if path is None else read_label_ids(path, self._lut)

    def read_right_disparity(
        self, record: SampleRecord, calib: StereoCalibration
    ) -> np.ndarray | None:
        path = record.path("right_disparity")
        return None if path is None else decode_kitti_disparity(read_png_uint16(path))[0]

    def read_right_labels(self, record: SampleRecord) -> np.ndarray | None:
        path = record.path("right_labels")
        return None if path is None else read_label_ids(path, self._lut)


def decode_kitti_disparity(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KITTI uint16 disparity PNG -> (float32 disparity in pixels, valid). d = raw / 256."""
    valid = raw > 0
    return (raw.astype(np.float32) / np.float32(256.0)) * valid, valid


def read_kitti_calib(path: Path, width: int = 0, height: int = 0) -> StereoCalibration:
    """Rectified calibration from a KITTI ``calib_cam_to_cam`` file (P_rect_02 / P_rect_03).

    KITTI's projection matrices are relative to camera 0, so P_rect_02 has its own non-zero
    ``P[0,3]``; the left-right baseline is ``(P02[0,3] - P03[0,3]) / f``. ``P03[0,2]`` is the
    right camera's principal point: ``doffs = P03[0,2] - P02[0,2]`` (0 in real KITTI).
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DatasetError(f"cannot read KITTI calibration file {path}: {exc}") from exc
    matrices: dict[str, np.ndarray] = {}
    for line in text.splitlines():
        key, sep, values = line.partition(":")
        if sep and key.strip() in ("P_rect_02", "P_rect_03"):
            try:
                numbers = [float(v) for v in values.split()]
            except ValueError:
                numbers = []
            if len(numbers) != 12:
                raise DatasetError(
                    f"{path}: {key.strip()} needs 12 numbers, got {values.strip()!r}"
                )
            matrices[key.strip()] = np.asarray(numbers, dtype=np.float64).reshape(3, 4)
    for key in ("P_rect_02", "P_rect_03"):
        if key not in matrices:
            raise DatasetError(f"{path}: no '{key}:' line; is this a KITTI calib_cam_to_cam file?")
    p_left, p_right = matrices["P_rect_02"].copy(), matrices["P_rect_03"].copy()
    # Re-express both relative to the left camera, as from_projection_matrices expects.
    p_right[:, 3] -= p_left[:, 3]
    p_left[:, 3] = 0.0
    try:
        return StereoCalibration.from_projection_matrices(p_left, p_right, width, height)
    except CalibrationError as exc:
        raise DatasetError(f"{path}: {exc}") from exc


def _select(
    scenes: list[str], indices: Sequence[int] | None, file_list: str | Path | None
) -> list[str]:
    wanted: set[str] | None = None
    if indices is not None:
        wanted = {f"{int(i):06d}" for i in indices}
    if file_list is not None:
        try:
            lines = Path(file_list).read_text().split()
        except OSError as exc:
            raise DatasetError(f"kitti2015: cannot read file list {file_list}: {exc}") from exc
        listed = {Path(line).name.split("_")[0].split(".")[0] for line in lines}
        wanted = listed if wanted is None else wanted & listed
    if wanted is None:
        return scenes
    unknown = sorted(wanted - set(scenes))
    if unknown:
        raise DatasetError(
            f"kitti2015: requested scenes not in the image directory: {', '.join(unknown[:5])}"
            + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else "")
        )
    return [s for s in scenes if s in wanted]
