"""Write samples in the KITTI 2015 stereo / semantics on-disk layout.

For sample index ``i`` (name ``{i:06d}_10``) under ``<root>/<split>/``:

==========================  ======================================================================
``image_2/``                left image, 8-bit RGB PNG
``image_3/``                right image, 8-bit RGB PNG
``disp_occ_0/``             left disparity, uint16 PNG, ``round(d * 256)``, 0 = no ground truth
``disp_noc_0/``             as ``disp_occ_0`` but only non-occluded pixels (visible in the right)
``semantic/``               uint8 PNG of Cityscapes/KITTI *labelIds* (unlabelled = 0)
``semantic_rgb/``           the labels in the official Cityscapes colours (for viewing)
``calib_cam_to_cam/``       ``{i:06d}.txt`` with ``P_rect_02`` / ``P_rect_03`` (KITTI format)
==========================  ======================================================================

Extra ground truth that KITTI does not have (a KITTI loader may ignore it):

==========================  ======================================================================
``depth_0/``                left depth, uint16 PNG in centimetres (as Virtual KITTI 2), 0 = none
``disp_occ_right/``         right-view disparity, same encoding as ``disp_occ_0``
``semantic_right/``         right-view labelIds
==========================  ======================================================================

and ``<root>/synthetic_meta.json`` describing the generator, settings, seeds and statistics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.labels import CITYSCAPES_19, CITYSCAPES_ID_TO_TRAIN_ID

META_FILENAME = "synthetic_meta.json"
UNLABELED_ID = 0
"""Cityscapes labelId written for train id 255 (ignore)."""
DEPTH_SCALE = 100.0
"""depth_0 PNG units per metre (centimetres)."""

_TRAIN_TO_LABEL_ID = np.full(256, UNLABELED_ID, np.uint8)
for _label_id, _train_id in CITYSCAPES_ID_TO_TRAIN_ID.items():
    _TRAIN_TO_LABEL_ID[_train_id] = _label_id
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # fast; noisy images barely compress anyway


class KittiWriteError(ValueError):
    """A sample that cannot be written in the KITTI layout."""


def train_ids_to_label_ids(labels: np.ndarray) -> np.ndarray:
    """Map train ids (0..18, 255 ignore) to Cityscapes/KITTI labelIds (uint8)."""
    return _TRAIN_TO_LABEL_ID[np.asarray(labels, np.uint8)]


def encode_disparity(disparity: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """KITTI disparity PNG values: uint16 ``round(d * 256)``, 0 where invalid or masked out.

    Valid disparities that would round to 0 are stored as 1 (1/256 px) so they stay valid.
    """
    d = np.asarray(disparity, np.float64)
    valid = np.isfinite(d) & (d > 0)
    if mask is not None:
        valid &= mask
    if valid.any() and d[valid].max() * 256.0 > 65535:
        raise KittiWriteError(
            f"disparity {d[valid].max():.1f} px exceeds the KITTI 16-bit range (255.99 px); "
            "render at a smaller width or focal length"
        )
    out = np.zeros(d.shape, np.uint16)
    out[valid] = np.clip(np.rint(d[valid] * 256.0), 1, 65535).astype(np.uint16)
    return out


def encode_depth(depth: np.ndarray) -> np.ndarray:
    """uint16 centimetres, 0 where unknown (NaN/inf) and clipped at 655.35 m."""
    z = np.asarray(depth, np.float64)
    ok = np.isfinite(z) & (z > 0)
    out = np.zeros(z.shape, np.uint16)
    out[ok] = np.clip(np.rint(z[ok] * DEPTH_SCALE), 1, 65535).astype(np.uint16)
    return out


def calib_text(calib: StereoCalibration) -> str:
    """``calib_cam_to_cam`` file content for a rectified pair (cameras 02 = left, 03 = right).

    ``P_rect_03[0, 3] = -fx * B`` and ``P_rect_02[0, 3] = 0``, so both the usual
    ``B = -P3[0,3] / P3[0,0]`` and ``B = (P2[0,3] - P3[0,3]) / fx`` give the baseline.
    ``P_rect_03[0, 2]`` (and ``K_03[0, 2]``) hold the right camera's ``cx + doffs``, from which
    :func:`~stereo_semantic_ros.datasets.kitti.read_kitti_calib` reads ``doffs`` back.
    """
    p_left, p_right = calib.projection_matrices()
    size = f"{float(calib.width):.6e} {float(calib.height):.6e}"
    eye = " ".join(f"{v:.6e}" for v in np.eye(3).ravel())

    def row(values: np.ndarray) -> str:
        return " ".join(f"{v:.12e}" for v in np.asarray(values).ravel())

    lines = ["calib_time: synthetic", "corner_dist: 0.000000e+00"]
    for cam, p in (("02", p_left), ("03", p_right)):
        k = p[:, :3]
        lines += [
            f"S_{cam}: {size}",
            f"K_{cam}: {row(k)}",
            f"D_{cam}: {row(np.zeros(5))}",
            f"R_{cam}: {eye}",
            f"T_{cam}: {row(np.array([p[0, 3] / calib.fx, 0.0, 0.0]))}",
            f"S_rect_{cam}: {size}",
            f"R_rect_{cam}: {eye}",
            f"P_rect_{cam}: {row(p)}",
        ]
    return "\n".join(lines) + "\n"


def _write(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image, _PNG):
        raise OSError(f"could not write {path}")


def write_kitti_sample(
    root: str | Path, index: int, sample: StereoSample, split: str = "training"
) -> dict[str, Path]:
    """Write one sample; returns the written paths keyed by folder name.

    Needs ``sample.disparity``, ``valid``, ``noc`` and ``labels``; depth, right disparity and
    right labels (``sample.meta['right_labels']``) are written when present.
    """
    for key in ("disparity", "valid", "noc", "labels"):
        if getattr(sample, key) is None:
            raise KittiWriteError(
                f"sample {sample.name!r} has no {key}; cannot write KITTI ground truth"
            )
    if index < 0:
        raise KittiWriteError(f"sample index must be >= 0, got {index}")
    base = Path(root) / split
    stem = f"{index:06d}_10.png"
    images: dict[str, np.ndarray] = {
        "image_2": cv2.cvtColor(sample.left, cv2.COLOR_RGB2BGR),
        "image_3": cv2.cvtColor(sample.right, cv2.COLOR_RGB2BGR),
        "disp_occ_0": encode_disparity(sample.disparity, sample.valid),
        "disp_noc_0": encode_disparity(sample.disparity, sample.valid & sample.noc),
        "semantic": train_ids_to_label_ids(sample.labels),
        "semantic_rgb": cv2.cvtColor(CITYSCAPES_19.palette()[sample.labels], cv2.COLOR_RGB2BGR),
    }
    if sample.depth is not None:
        images["depth_0"] = encode_depth(sample.depth)
    if sample.right_disparity is not None:
        images["disp_occ_right"] = encode_disparity(sample.right_disparity)
    right_labels = sample.meta.get("right_labels")
    if isinstance(right_labels, np.ndarray):
        images["semantic_right"] = train_ids_to_label_ids(right_labels)
    written: dict[str, Path] = {}
    for folder, image in images.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        path = base / folder / stem
        _write(path, image)
        written[folder] = path
    calib_dir = base / "calib_cam_to_cam"
    calib_dir.mkdir(parents=True, exist_ok=True)
    calib_path = calib_dir / f"{index:06d}.txt"
    calib_path.write_text(calib_text(sample.calib))
    written["calib_cam_to_cam"] = calib_path
    return written


def read_meta(root: str | Path) -> dict[str, Any] | None:
    """The root's ``synthetic_meta.json`` or None when there is none."""
    path = Path(root) / META_FILENAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise KittiWriteError(
            f"{path} is not valid JSON ({exc}); delete it or pick another --out"
        ) from exc


def write_meta(root: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``<root>/synthetic_meta.json`` (pretty-printed, keys sorted)."""
    path = Path(root) / META_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


__all__ = [
    "DEPTH_SCALE",
    "META_FILENAME",
    "KittiWriteError",
    "calib_text",
    "encode_depth",
    "encode_disparity",
    "read_meta",
    "train_ids_to_label_ids",
    "write_kitti_sample",
    "write_meta",
]
