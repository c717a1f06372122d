"""Virtual KITTI 2, in the layout of its official downloads.

Expected under ``root`` (the rgb, depth, classSegmentation and textgt archives unpacked into
one directory), for each ``<scene>/<variation>`` such as ``Scene01/clone``::

    frames/rgb/Camera_0/rgb_00000.jpg                  left, 8-bit RGB
    frames/rgb/Camera_1/rgb_00000.jpg                  right
    frames/depth/Camera_{0,1}/depth_00000.png          uint16 depth in cm, 65535 = sky / far
    frames/classSegmentation/Camera_{0,1}/classgt_00000.png   RGB class colours (optional)
    colors.txt        "Category r g b" header, then e.g. "Terrain 210 0 200"
    intrinsic.txt     "frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]" header, then one row each
    extrinsic.txt     "frame cameraID r1,1 r1,2 r1,3 t1 ... 0 0 0 1" world->camera (optional)

Disparity is computed from depth, ``d = fx * B / Z - doffs``, for both cameras. The baseline is
the distance between the two camera centres in ``extrinsic.txt`` for that frame when the file is
present, else :data:`VKITTI2_BASELINE`, the stereo baseline VKITTI2 documents. ``doffs`` is the
right camera's ``K[0,2]`` minus the left one's from ``intrinsic.txt`` (0 in the official data;
0 when the right camera has no row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from stereo_semantic_ros.calibration import CalibrationError, StereoCalibration
from stereo_semantic_ros.datasets.base import (
    DatasetError,
    Disparity,
    SampleRecord,
    StereoDataset,
    Transform,
    _imread,
    check_files_exist,
    consistent_disparity_mask,
    read_png_uint16,
)
from stereo_semantic_ros.labels import CITYSCAPES_19, IGNORE_LABEL

VKITTI2_BASELINE = 0.532725
"""Metres between Camera_0 and Camera_1, as documented for Virtual KITTI 2."""

VKITTI2_FAR = 65535
"""Depth PNG value of sky and anything beyond 655.35 m: no disparity ground truth."""

VKITTI2_TO_CITYSCAPES: dict[str, str | None] = {
    "terrain": "terrain",
    "sky": "sky",
    "tree": "vegetation",
    "vegetation": "vegetation",
    "building": "building",
    "road": "road",
    # Cityscapes has "guard rail" but gives it no train id; a guard rail is a fence-like
    # barrier, so it trains "fence" here rather than being ignored.
    "guardrail": "fence",
    "trafficsign": "traffic sign",
    "trafficlight": "traffic light",
    "pole": "pole",
    "misc": None,
    "truck": "truck",
    "car": "car",
    "van": "car",
    "undefined": None,
}
"""VKITTI2 category (lower case) -> Cityscapes-19 class name; None and unlisted names -> 255."""

_LAYOUT = "<root>/SceneXX/<variation>/frames/rgb/Camera_0/rgb_XXXXX.jpg (Virtual KITTI 2)"


class VirtualKitti2(StereoDataset):
    """Virtual KITTI 2 stereo with dense disparity for both views and semantic labels.

    Args:
        root: directory holding ``Scene01``, ``Scene02``, ...
        scenes: scene directory names to use (default: every ``Scene*`` under root).
        variations: rendering variations (``"clone"``, ``"fog"``, ``"15-deg-left"``, ...).
        cameras: (left, right) camera directory names.
        semantics: True requires classSegmentation for every frame, False ignores it, None
            (default) uses it where ``frames/classSegmentation/`` exists.
        baseline: metres; overrides both ``extrinsic.txt`` and :data:`VKITTI2_BASELINE`.
        augment: optional transform for training.

    Samples have ``right_disparity`` (and right labels in ``meta``), so the mirror
    augmentation can use them. ``noc`` is the left-right consistency check of the two
    disparity maps (1 px), VKITTI2 having no occlusion masks of its own. ``depth`` is the
    rendered depth (NaN for sky / far).
    """

    dataset_name = "vkitti2"

    def __init__(
        self,
        root: str | Path,
        scenes: Sequence[str] | None = None,
        variations: Sequence[str] = ("clone",),
        cameras: tuple[str, str] = ("Camera_0", "Camera_1"),
        *,
        semantics: bool | None = None,
        baseline: float | None = None,
        augment: Transform | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"vkitti2: root {root} does not exist; expected {_LAYOUT}")
        if scenes is None:
            scenes = sorted(p.name for p in root.glob("Scene*") if p.is_dir())
        left_cam, right_cam = cameras
        self._camera_ids = (_camera_id(left_cam), _camera_id(right_cam))
        self._calibs: dict[tuple[str, str, int], StereoCalibration] = {}
        self._class_luts: dict[tuple[str, str], dict[int, int]] = {}

        records = []
        for scene in scenes:
            for variation in variations:
                base = root / scene / variation
                kinds = _kind_dirs(base)
                left_dir = base / "frames" / kinds["rgb"] / left_cam
                if not left_dir.is_dir():
                    raise DatasetError(f"vkitti2: {left_dir} does not exist; expected {_LAYOUT}")
                frames = sorted(int(p.stem.split("_")[-1]) for p in left_dir.glob("rgb_*.jpg"))
                use_labels = semantics
                if use_labels is None:
                    use_labels = (base / "frames" / kinds["classSegmentation"]).is_dir()
                if use_labels:
                    self._class_luts[(scene, variation)] = read_vkitti2_colors(base / "colors.txt")
                self._read_calibs(scene, variation, base, frames, baseline)
                for frame in frames:
                    files = {
                        "left": _frame_file(base, kinds, "rgb", left_cam, frame),
                        "right": _frame_file(base, kinds, "rgb", right_cam, frame),
                        "depth": _frame_file(base, kinds, "depth", left_cam, frame),
                        "right_depth": _frame_file(base, kinds, "depth", right_cam, frame),
                    }
                    if use_labels:
                        seg = "classSegmentation"
                        files["labels"] = _frame_file(base, kinds, seg, left_cam, frame)
                        files["right_labels"] = _frame_file(base, kinds, seg, right_cam, frame)
                    records.append(
                        SampleRecord(
                            name=f"{scene}/{variation}/{frame:05d}",
                            files=files,
                            extra={"scene": scene, "variation": variation, "frame": frame},
                        )
                    )
        super().__init__(records, root=root, augment=augment, layout=_LAYOUT)

    def _read_calibs(
        self,
        scene: str,
        variation: str,
        base: Path,
        frames: list[int],
        baseline: float | None,
    ) -> None:
        intrinsic_path = base / "intrinsic.txt"
        extrinsic_path = base / "extrinsic.txt"
        check_files_exist([intrinsic_path], "vkitti2")
        intrinsics = read_vkitti2_table(intrinsic_path, 4)
        extrinsics = None
        if baseline is None and extrinsic_path.is_file():
            extrinsics = read_vkitti2_table(extrinsic_path, 16)
        left_id, right_id = self._camera_ids
        for frame in frames:
            row = intrinsics.get((frame, left_id))
            if row is None:
                raise DatasetError(f"{intrinsic_path}: no row for frame {frame} camera {left_id}")
            b = baseline
            if b is None and extrinsics is not None:
                b = _baseline_from_extrinsics(extrinsics, frame, left_id, right_id, extrinsic_path)
            if b is None:
                b = VKITTI2_BASELINE
            right_row = intrinsics.get((frame, right_id))
            doffs = float(right_row[2] - row[2]) if right_row is not None else 0.0
            try:
                calib = StereoCalibration(
                    fx=row[0], fy=row[1], cx=row[2], cy=row[3], baseline=b, doffs=doffs
                )
            except CalibrationError as exc:
                raise DatasetError(f"{intrinsic_path} frame {frame}: {exc}") from exc
            self._calibs[(scene, variation, frame)] = calib

    def read_calib(self, record: SampleRecord, width: int, height: int) -> StereoCalibration:
        key = (record.extra["scene"], record.extra["variation"], record.extra["frame"])
        return replace(self._calibs[key], width=width, height=height)

    def _disparity(self, path: Path, calib: StereoCalibration) -> tuple[np.ndarray, np.ndarray]:
        depth = decode_vkitti2_depth(read_png_uint16(path))
        valid = np.isfinite(depth)
        with np.errstate(divide="ignore", invalid="ignore"):
            disparity = np.float32(calib.fx * calib.baseline) / depth
        if calib.doffs:  # d = fx * B / Z - doffs; a pixel whose d is not > 0 has no match
            disparity = disparity - np.float32(calib.doffs)
            valid = valid & (disparity > 0)
        return np.where(valid, disparity, np.float32(0.0)).astype(np.float32), valid

    def read_disparity(self, record: SampleRecord, calib: StereoCalibration) -> Disparity:
        disparity, valid = self._disparity(record.files["depth"], calib)
        right, _ = self._disparity(record.files["right_depth"], calib)
        if right.shape != disparity.shape:
            raise DatasetError(
                f"{record.files['right_depth']} is {right.shape}, but "
                f"{record.files['depth']} is {disparity.shape}"
            )
        noc = consistent_disparity_mask(disparity, right, partner_sign=-1)
        return Disparity(disparity, valid, noc)

    def read_right_disparity(self, record: SampleRecord, calib: StereoCalibration) -> np.ndarray:
        return self._disparity(record.files["right_depth"], calib)[0]

    def read_depth(
        self, record: SampleRecord, calib: StereoCalibration, gt: Disparity | None
    ) -> np.ndarray:
        return decode_vkitti2_depth(read_png_uint16(record.files["depth"]))

    def _labels(self, record: SampleRecord, role: str) -> np.ndarray | None:
        path = record.path(role)
        if path is None:
            return None
        lut = self._class_luts[(record.extra["scene"], record.extra["variation"])]
        return decode_vkitti2_classes(path, lut)

    def read_labels(self, record: SampleRecord) -> np.ndarray | None:
        return self._labels(record, "labels")

    def read_right_labels(self, record: SampleRecord) -> np.ndarray | None:
        return self._labels(record, "right_labels")


def decode_vkitti2_depth(raw: np.ndarray) -> np.ndarray:
    """VKITTI2 uint16 depth PNG (cm) -> float32 metres, NaN for 0 and 65535 (sky / far)."""
    valid = (raw > 0) & (raw < VKITTI2_FAR)
    return np.where(valid, raw.astype(np.float32) / np.float32(100.0), np.float32(np.nan)).astype(
        np.float32
    )


def read_vkitti2_table(path: Path, n_values: int) -> dict[tuple[int, int], list[float]]:
    """Rows of intrinsic.txt / extrinsic.txt: (frame, cameraID) -> the following numbers."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    table: dict[tuple[int, int], list[float]] = {}
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or parts[0] == "frame":  # blank line or the header
            continue
        try:
            frame, camera = int(parts[0]), int(parts[1])
            values = [float(v) for v in parts[2:]]
        except (ValueError, IndexError):
            values = []
        if len(values) != n_values:
            raise DatasetError(
                f"{path}:{number}: expected 'frame cameraID' and {n_values} numbers, got {line!r}"
            )
        table[(frame, camera)] = values
    return table


def read_vkitti2_colors(path: Path) -> dict[int, int]:
    """colors.txt -> {packed 0xRRGGBB colour: train id} via :data:`VKITTI2_TO_CITYSCAPES`."""
    check_files_exist([path], "vkitti2")
    lut: dict[int, int] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].lower() == "category":
            continue
        try:
            r, g, b = (int(v) for v in parts[-3:])
            name = "".join(parts[:-3]).lower()
        except ValueError:
            name = ""
        if not name or not all(0 <= v <= 255 for v in (r, g, b)):
            raise DatasetError(f"{path}:{number}: expected 'Category r g b', got {line!r}")
        target = VKITTI2_TO_CITYSCAPES.get(name)
        lut[(r << 16) | (g << 8) | b] = (
            IGNORE_LABEL if target is None else CITYSCAPES_19.index(target)
        )
    if not lut:
        raise DatasetError(f"{path}: no categories listed")
    return lut


def decode_vkitti2_classes(path: Path, lut: dict[int, int]) -> np.ndarray:
    """(H, W) uint8 train ids from a classgt PNG; a colour missing from colors.txt is an error."""
    image = _imread(path, cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    ids = np.empty(len(colours), dtype=np.uint8)
    for i, colour in enumerate(colours.tolist()):
        if colour not in lut:
            rgb_text = f"({colour >> 16}, {(colour >> 8) & 255}, {colour & 255})"
            raise DatasetError(f"{path}: colour {rgb_text} is not listed in colors.txt")
        ids[i] = lut[colour]
    return ids[inverse.reshape(packed.shape)]


_FILE_PATTERNS = {
    "rgb": "rgb_{:05d}.jpg",
    "depth": "depth_{:05d}.png",
    "classSegmentation": "classgt_{:05d}.png",
}


def _kind_dirs(base: Path) -> dict[str, str]:
    """The folder name of each kind under ``base/frames``, matched case-insensitively (the
    dataset's web page spells ``classsegmentation`` where the archives hold
    ``classSegmentation``); the canonical name where the folder is missing."""
    frames = base / "frames"
    present = {p.name.lower(): p.name for p in frames.iterdir()} if frames.is_dir() else {}
    return {kind: present.get(kind.lower(), kind) for kind in _FILE_PATTERNS}


def _frame_file(base: Path, kinds: dict[str, str], kind: str, camera: str, frame: int) -> Path:
    return base / "frames" / kinds[kind] / camera / _FILE_PATTERNS[kind].format(frame)


def _camera_id(name: str) -> int:
    try:
        return int(name.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        raise DatasetError(f"vkitti2: camera name {name!r} is not of the form 'Camera_N'") from None


def _baseline_from_extrinsics(
    table: dict[tuple[int, int], list[float]], frame: int, left: int, right: int, path: Path
) -> float:
    centres = []
    for camera in (left, right):
        row = table.get((frame, camera))
        if row is None:
            raise DatasetError(f"{path}: no row for frame {frame} camera {camera}")
        pose = np.asarray(row, dtype=np.float64).reshape(4, 4)
        # world->camera [R | t]: the camera centre is -R^T t.
        centres.append(-pose[:3, :3].T @ pose[:3, 3])
    return float(np.linalg.norm(centres[1] - centres[0]))
