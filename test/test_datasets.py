"""Each loader reads a tiny fixture, written here in its dataset's official layout and encoding,
into the one sample format; tensors, batches and worker seeding work on top of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from stereo_semantic_ros.augment import Augmentor
from stereo_semantic_ros.datasets.base import (
    RIGHT_LABELS_KEY,
    DatasetError,
    collate,
    consistent_disparity_mask,
    seed_worker,
    to_tensors,
)
from stereo_semantic_ros.datasets.cityscapes import Cityscapes
from stereo_semantic_ros.datasets.kitti import KITTI_TYPICAL_CALIB, Kitti2015
from stereo_semantic_ros.datasets.vkitti2 import VKITTI2_BASELINE, VirtualKitti2

H, W = 16, 40

# Cityscapes label ids and the train ids they must become (0 unlabeled and 14 guard rail have
# no train id).
LABEL_IDS = np.array([0, 7, 8, 11, 14, 21, 23, 24, 26, 33], dtype=np.uint8)
TRAIN_IDS = np.array([255, 0, 1, 2, 255, 8, 10, 11, 13, 18], dtype=np.uint8)


def write_png(path: Path, array: np.ndarray) -> None:
    """Write RGB (H, W, 3) uint8 or single-channel uint8/uint16 arrays as PNG (or JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), array), path


def rgb_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    image[..., 0] = 250  # a constant red channel catches BGR/RGB swaps
    image[..., 2] = 5
    return image


def label_id_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return LABEL_IDS[rng.integers(0, len(LABEL_IDS), size=(H, W))]


def expected_train_ids(ids: np.ndarray) -> np.ndarray:
    lut = dict(zip(LABEL_IDS.tolist(), TRAIN_IDS.tolist()))
    return np.vectorize(lut.get)(ids).astype(np.uint8)


def disparity_truth(seed: int) -> np.ndarray:
    """Disparities on the 1/256 grid in (0, 64), 0 in a quarter of the pixels (no ground truth)."""
    rng = np.random.default_rng(seed)
    d = rng.integers(1, 64 * 256, size=(H, W)) / 256.0
    d[rng.random((H, W)) < 0.25] = 0.0
    return d.astype(np.float32)


# --- KITTI 2015 -------------------------------------------------------------------------------

# A calib_cam_to_cam file as in data_scene_flow_calib.zip (lines are "key: values").
_KITTI_CALIB_LINES = {
    "calib_time": "09-Jan-2012 13:57:47",
    "corner_dist": "9.950000e-02",
    "S_00": "1.392000e+03 5.120000e+02",
    "K_00": "9.842439e+02 0.000000e+00 6.900000e+02 0.000000e+00 9.808141e+02 2.331966e+02 "
    "0.000000e+00 0.000000e+00 1.000000e+00",
    "P_rect_00": "7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 "
    "1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00",
    "S_rect_02": "1.242000e+03 3.750000e+02",
    "P_rect_02": "7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 "
    "1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03",
    "S_rect_03": "1.242000e+03 3.750000e+02",
    "P_rect_03": "7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 "
    "1.728540e+02 2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03",
}
KITTI_CALIB = "".join(f"{key}: {value}\n" for key, value in _KITTI_CALIB_LINES.items())
KITTI_BASELINE = (44.85728 + 339.5242) / 721.5377  # (P02[0,3] - P03[0,3]) / f


def make_kitti(root: Path, frames: int = 2, semantics: bool = True, calib: bool = True) -> dict:
    truth = {}
    base = root / "training"
    for i in range(frames):
        scene = f"{i:06d}"
        name = f"{scene}_10.png"
        left, right = rgb_image(10 * i), rgb_image(10 * i + 1)
        d_all = disparity_truth(i)
        noc = (d_all > 0) & (np.arange(W)[None, :] >= 8)  # a band of "occluded" pixels
        d_noc = np.where(noc, d_all, 0)
        write_png(base / "image_2" / name, left)
        write_png(base / "image_3" / name, right)
        write_png(base / "disp_occ_0" / name, np.round(d_all * 256).astype(np.uint16))
        write_png(base / "disp_noc_0" / name, np.round(d_noc * 256).astype(np.uint16))
        ids = label_id_image(i)
        if semantics:
            write_png(base / "semantic" / name, ids)
        if calib:
            (base / "calib_cam_to_cam").mkdir(parents=True, exist_ok=True)
            (base / "calib_cam_to_cam" / f"{scene}.txt").write_text(KITTI_CALIB)
        truth[f"{scene}_10"] = {"left": left, "right": right, "d": d_all, "noc": noc, "ids": ids}
    return truth


def test_kitti_reads_fixture(tmp_path: Path) -> None:
    truth = make_kitti(tmp_path)
    (tmp_path / "synthetic_meta.json").write_text("{}")  # the generator's extra file is ignored
    ds = Kitti2015(tmp_path)
    assert len(ds) == 2
    for i, sample in enumerate(ds):
        t = truth[f"{i:06d}_10"]
        assert sample.name == f"{i:06d}_10"
        assert sample.left.dtype == np.uint8 and sample.left.shape == (H, W, 3)
        assert np.array_equal(sample.left, t["left"]) and np.array_equal(sample.right, t["right"])
        assert sample.disparity.dtype == np.float32
        assert np.abs(sample.disparity - t["d"]).max() <= 1 / 256
        assert np.array_equal(sample.valid, t["d"] > 0)
        assert np.array_equal(sample.noc, t["noc"])
        assert sample.noc.sum() < sample.valid.sum()
        assert np.array_equal(sample.labels, expected_train_ids(t["ids"]))
        assert sample.calib.fx == pytest.approx(721.5377)
        assert sample.calib.cx == pytest.approx(609.5593)
        assert sample.calib.baseline == pytest.approx(KITTI_BASELINE, rel=1e-6)
        assert (sample.calib.width, sample.calib.height) == (W, H)
        z = sample.depth[sample.valid]
        np.testing.assert_allclose(z, 721.5377 * KITTI_BASELINE / t["d"][sample.valid], rtol=1e-4)
        assert np.isnan(sample.depth[~sample.valid]).all()
        assert sample.right_disparity is None


def test_kitti_semantics_optional_and_splits(tmp_path: Path) -> None:
    make_kitti(tmp_path, frames=3, semantics=False)
    ds = Kitti2015(tmp_path)
    assert ds[0].labels is None
    with pytest.raises(DatasetError, match="semantic"):
        Kitti2015(tmp_path, semantics=True)
    assert [r.name for r in Kitti2015(tmp_path, indices=[0, 2]).records] == [
        "000000_10",
        "000002_10",
    ]
    listing = tmp_path / "val.txt"
    listing.write_text("000001\nimage_2/000002_10.png\n")
    assert len(Kitti2015(tmp_path, file_list=listing)) == 2
    with pytest.raises(DatasetError, match="000007"):
        Kitti2015(tmp_path, indices=[7])


def test_kitti_missing_files_name_the_path(tmp_path: Path) -> None:
    make_kitti(tmp_path)
    missing = tmp_path / "training" / "image_3" / "000001_10.png"
    missing.unlink()
    with pytest.raises(DatasetError, match="missing file") as err:
        Kitti2015(tmp_path)
    assert str(missing) in str(err.value)

    with pytest.raises(DatasetError) as err:
        Kitti2015(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "training" / "image_2") in str(err.value)

    (tmp_path / "empty" / "training" / "image_2").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no samples found"):
        Kitti2015(tmp_path / "empty")


def test_kitti_unreadable_file_names_the_path(tmp_path: Path) -> None:
    make_kitti(tmp_path, frames=1)
    bad = tmp_path / "training" / "disp_occ_0" / "000000_10.png"
    bad.write_bytes(b"not a png")
    ds = Kitti2015(tmp_path)
    with pytest.raises(DatasetError, match="cannot decode") as err:
        ds[0]
    assert str(bad) in str(err.value)
    # an 8-bit disparity is the wrong encoding, not silently misread
    write_png(bad, np.zeros((H, W), dtype=np.uint8))
    with pytest.raises(DatasetError, match="16-bit"):
        ds[0]


def test_kitti_calibration_fallback_only_when_asked(tmp_path: Path) -> None:
    make_kitti(tmp_path, frames=1, calib=False)
    with pytest.raises(DatasetError, match="calib_cam_to_cam"):
        Kitti2015(tmp_path)
    sample = Kitti2015(tmp_path, default_calib=True)[0]
    assert sample.calib.fx == KITTI_TYPICAL_CALIB.fx
    assert sample.calib.baseline == KITTI_TYPICAL_CALIB.baseline
    assert (sample.calib.width, sample.calib.height) == (W, H)

    (tmp_path / "training" / "calib_cam_to_cam").mkdir()
    (tmp_path / "training" / "calib_cam_to_cam" / "000000.txt").write_text("P_rect_02: 1 2 3\n")
    with pytest.raises(DatasetError, match="12 numbers"):
        Kitti2015(tmp_path)[0]


def test_kitti_testing_split_and_right_view_dirs(tmp_path: Path) -> None:
    make_kitti(tmp_path, frames=1)
    testing = tmp_path / "testing"
    (tmp_path / "training").rename(testing)
    sample = Kitti2015(tmp_path, split="testing")[0]
    assert sample.disparity is None and sample.valid is None and sample.depth is None

    testing.rename(tmp_path / "training")
    d_right = disparity_truth(5)
    ids_right = label_id_image(5)
    write_png(tmp_path / "training/disp_occ_right/000000_10.png", (d_right * 256).astype(np.uint16))
    write_png(tmp_path / "training/semantic_right/000000_10.png", ids_right)
    sample = Kitti2015(
        tmp_path, right_disparity_dir="disp_occ_right", right_semantic_dir="semantic_right"
    )[0]
    assert np.abs(sample.right_disparity - d_right).max() <= 1 / 256
    assert np.array_equal(sample.meta[RIGHT_LABELS_KEY], expected_train_ids(ids_right))


# --- Cityscapes -------------------------------------------------------------------------------

CITYSCAPES_CAMERA = {
    "extrinsic": {
        "baseline": 0.209313,
        "pitch": 0.038,
        "roll": 0.0,
        "x": 1.7,
        "y": 0.1,
        "yaw": -0.0195,
        "z": 1.22,
    },
    "intrinsic": {"fx": 2262.52, "fy": 2265.3017905988554, "u0": 1096.98, "v0": 513.137},
}


def make_cityscapes(root: Path, split: str = "train") -> dict:
    truth = {}
    for i, stem in enumerate(["aachen_000000_000019", "bochum_000000_000313"]):
        city = stem.split("_")[0]
        rel = Path(split) / city
        left, right = rgb_image(20 + i), rgb_image(30 + i)
        d = disparity_truth(40 + i)
        raw = np.where(d > 0, np.round(d * 256) + 1, 0).astype(np.uint16)
        raw[0, :4] = 1  # p == 1: disparity exactly 0 (at infinity) -> no ground truth
        ids = label_id_image(50 + i)
        write_png(root / "leftImg8bit" / rel / f"{stem}_leftImg8bit.png", left)
        write_png(root / "rightImg8bit" / rel / f"{stem}_rightImg8bit.png", right)
        write_png(root / "disparity" / rel / f"{stem}_disparity.png", raw)
        write_png(root / "gtFine" / rel / f"{stem}_gtFine_labelIds.png", ids)
        camera = root / "camera" / rel / f"{stem}_camera.json"
        camera.parent.mkdir(parents=True, exist_ok=True)
        camera.write_text(json.dumps(CITYSCAPES_CAMERA))
        truth[stem] = {"left": left, "right": right, "raw": raw, "ids": ids}
    return truth


def test_cityscapes_reads_fixture(tmp_path: Path) -> None:
    truth = make_cityscapes(tmp_path)
    ds = Cityscapes(tmp_path, split="train")
    assert [r.name for r in ds.records] == sorted(truth)
    for sample in ds:
        t = truth[sample.name]
        assert np.array_equal(sample.left, t["left"]) and np.array_equal(sample.right, t["right"])
        valid = t["raw"] > 1
        expected = np.where(valid, (t["raw"].astype(np.float64) - 1) / 256, 0)
        assert np.array_equal(sample.valid, valid)
        assert np.abs(sample.disparity - expected).max() <= 1 / 256
        assert not sample.valid[0, :4].any()
        assert np.array_equal(sample.noc, sample.valid)  # no occlusion information
        assert np.array_equal(sample.labels, expected_train_ids(t["ids"]))
        assert sample.calib.fx == pytest.approx(2262.52)
        assert sample.calib.fy == pytest.approx(2265.3017905988554)
        assert (sample.calib.cx, sample.calib.cy) == pytest.approx((1096.98, 513.137))
        assert sample.calib.baseline == pytest.approx(0.209313)
        assert sample.meta["city"] == sample.name.split("_")[0]
    assert len(Cityscapes(tmp_path, cities=["bochum"])) == 1


def test_cityscapes_errors_name_the_path(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    with pytest.raises(DatasetError) as err:
        Cityscapes(tmp_path, split="val")
    assert str(tmp_path / "leftImg8bit" / "val") in str(err.value)

    camera = tmp_path / "camera/train/aachen/aachen_000000_000019_camera.json"
    camera.write_text(json.dumps({"intrinsic": {"fx": 1.0}}))
    ds = Cityscapes(tmp_path)
    with pytest.raises(DatasetError, match="baseline") as err:
        ds[0]
    assert str(camera) in str(err.value)

    camera.unlink()
    with pytest.raises(DatasetError, match="missing file") as err:
        Cityscapes(tmp_path)
    assert str(camera) in str(err.value)


def test_cityscapes_without_gtfine_has_no_labels(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    for path in sorted((tmp_path / "gtFine").rglob("*.png")):
        path.unlink()
    with pytest.raises(DatasetError, match="gtFine_labelIds"):
        Cityscapes(tmp_path)  # gtFine/train exists, so its files are required
    assert Cityscapes(tmp_path, semantics=False)[0].labels is None


# --- Virtual KITTI 2 --------------------------------------------------------------------------

VKITTI2_COLORS = """Category r g b
Terrain 210 0 200
Sky 90 200 255
Tree 0 199 0
Vegetation 90 240 0
Building 140 140 140
Road 100 60 100
GuardRail 250 100 255
TrafficSign 255 255 0
TrafficLight 200 200 0
Pole 255 130 0
Misc 80 80 80
Truck 160 60 60
Car 255 127 80
Van 0 139 139
Undefined 0 0 0
"""
# (colour, expected train id) per column band of the class image
VKITTI2_BANDS = [
    ((100, 60, 100), 0),  # Road -> road
    ((255, 127, 80), 13),  # Car -> car
    ((0, 139, 139), 13),  # Van -> car
    ((250, 100, 255), 4),  # GuardRail -> fence
    ((0, 199, 0), 8),  # Tree -> vegetation
    ((90, 240, 0), 8),  # Vegetation -> vegetation
    ((80, 80, 80), 255),  # Misc -> ignore
    ((0, 0, 0), 255),  # Undefined -> ignore
]
FX_VK = 50.0
DEPTH_CM = 666  # ground rows; d = 50 * B / 6.66 m, about 4 px


def make_vkitti2(root: Path, extrinsic_baseline: float | None = None) -> None:
    base = root / "Scene01" / "clone"
    smooth = np.zeros((H, W, 3), dtype=np.uint8)
    smooth[...] = (np.linspace(40, 200, W)[None, :, None]).astype(np.uint8)  # JPEG-friendly
    depth = np.full((H, W), DEPTH_CM, dtype=np.uint16)
    depth[: H // 2] = 65535  # sky
    classes = np.zeros((H, W, 3), dtype=np.uint8)
    classes[: H // 2] = (90, 200, 255)
    for k, (colour, _) in enumerate(VKITTI2_BANDS):
        classes[H // 2 :, k * 5 : (k + 1) * 5] = colour
    for frame in (0, 1):
        for cam in ("Camera_0", "Camera_1"):
            write_png(base / "frames/rgb" / cam / f"rgb_{frame:05d}.jpg", smooth)
            write_png(base / "frames/depth" / cam / f"depth_{frame:05d}.png", depth)
            write_png(base / "frames/classSegmentation" / cam / f"classgt_{frame:05d}.png", classes)
    (base / "colors.txt").write_text(VKITTI2_COLORS)
    rows = ["frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]"]
    rows += [f"{f} {c} {FX_VK} {FX_VK} 19.5 7.5" for f in (0, 1) for c in (0, 1)]
    (base / "intrinsic.txt").write_text("\n".join(rows) + "\n")
    if extrinsic_baseline is not None:
        rows = ["frame cameraID r1,1 r1,2 r1,3 t1 r2,1 r2,2 r2,3 t2 r3,1 r3,2 r3,3 t3 0 0 0 1"]
        c, s = np.cos(0.3), np.sin(0.3)  # a yaw, so t is not simply the centre
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        for frame in (0, 1):
            centre0 = np.array([10.0 + frame, 1.5, 3.0])
            centre1 = centre0 + rot.T @ np.array([extrinsic_baseline, 0.0, 0.0])
            for cam, centre in ((0, centre0), (1, centre1)):
                pose = np.eye(4)
                pose[:3, :3] = rot
                pose[:3, 3] = -rot @ centre
                rows.append(f"{frame} {cam} " + " ".join(f"{v:.9f}" for v in pose.ravel()))
        (base / "extrinsic.txt").write_text("\n".join(rows) + "\n")


def test_vkitti2_reads_fixture(tmp_path: Path) -> None:
    make_vkitti2(tmp_path)
    ds = VirtualKitti2(tmp_path)
    assert [r.name for r in ds.records] == ["Scene01/clone/00000", "Scene01/clone/00001"]
    sample = ds[1]
    assert sample.left.shape == (H, W, 3) and sample.left.dtype == np.uint8
    ramp = np.linspace(40, 200, W).astype(np.uint8)
    assert np.abs(sample.left[H // 2, :, 1].astype(int) - ramp).max() <= 8  # JPEG
    assert sample.calib.fx == FX_VK and sample.calib.baseline == VKITTI2_BASELINE
    d = FX_VK * VKITTI2_BASELINE / (DEPTH_CM / 100)
    ground = np.zeros((H, W), dtype=bool)
    ground[H // 2 :] = True
    assert np.array_equal(sample.valid, ground)  # sky (65535) has no disparity
    np.testing.assert_allclose(sample.disparity[ground], d, rtol=1e-5)
    assert (sample.disparity[~ground] == 0).all()
    np.testing.assert_allclose(sample.right_disparity[ground], d, rtol=1e-5)
    np.testing.assert_allclose(sample.depth[ground], DEPTH_CM / 100, rtol=1e-6)
    assert np.isnan(sample.depth[~ground]).all()
    # NOC: the match u - d must fall inside the right image
    cols = np.arange(W)[None, :]
    assert np.array_equal(sample.noc, ground & (np.rint(cols - d) >= 0))
    # labels: colours through colors.txt to train ids
    assert (sample.labels[: H // 2] == 10).all()  # sky
    for k, (_, train_id) in enumerate(VKITTI2_BANDS):
        assert (sample.labels[H // 2 :, k * 5 : (k + 1) * 5] == train_id).all(), k
    assert np.array_equal(sample.meta[RIGHT_LABELS_KEY], sample.labels)


def test_vkitti2_baseline_from_extrinsics(tmp_path: Path) -> None:
    make_vkitti2(tmp_path, extrinsic_baseline=0.5)
    sample = VirtualKitti2(tmp_path)[0]
    assert sample.calib.baseline == pytest.approx(0.5, rel=1e-6)
    assert VirtualKitti2(tmp_path, baseline=0.6)[0].calib.baseline == 0.6


def test_vkitti2_doffs_from_the_right_cameras_principal_point(tmp_path: Path) -> None:
    make_vkitti2(tmp_path)
    intrinsic = tmp_path / "Scene01" / "clone" / "intrinsic.txt"
    rows = ["frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]"]
    rows += [f"{f} {c} {FX_VK} {FX_VK} {19.5 + 2.0 * c} 7.5" for f in (0, 1) for c in (0, 1)]
    intrinsic.write_text("\n".join(rows) + "\n")
    sample = VirtualKitti2(tmp_path)[0]
    assert sample.calib.doffs == 2.0 and sample.calib.cx == 19.5
    ground = sample.valid
    d = FX_VK * VKITTI2_BASELINE / (DEPTH_CM / 100) - 2.0  # d = fx * B / Z - doffs
    np.testing.assert_allclose(sample.disparity[ground], d, rtol=1e-5)
    np.testing.assert_allclose(sample.right_disparity[ground], d, rtol=1e-5)
    np.testing.assert_allclose(sample.calib.depth_from_disparity(sample.disparity[ground]), 6.66)


def test_vkitti2_errors_name_the_path(tmp_path: Path) -> None:
    make_vkitti2(tmp_path)
    base = tmp_path / "Scene01" / "clone"
    depth = base / "frames/depth/Camera_1/depth_00001.png"
    depth.unlink()
    with pytest.raises(DatasetError, match="missing file") as err:
        VirtualKitti2(tmp_path)
    assert str(depth) in str(err.value)

    with pytest.raises(DatasetError) as err:
        VirtualKitti2(tmp_path, variations=("fog",))
    assert str(base.parent / "fog" / "frames" / "rgb" / "Camera_0") in str(err.value)

    make_vkitti2(tmp_path)
    classes = base / "frames/classSegmentation/Camera_0/classgt_00000.png"
    write_png(classes, np.full((H, W, 3), 7, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"\(7, 7, 7\) is not listed") as err:
        VirtualKitti2(tmp_path)[0]
    assert str(classes) in str(err.value)

    (base / "intrinsic.txt").write_text("frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]\n0 0 50\n")
    with pytest.raises(DatasetError, match="intrinsic.txt:2"):
        VirtualKitti2(tmp_path)


def test_vkitti2_sample_can_be_mirrored(tmp_path: Path) -> None:
    make_vkitti2(tmp_path)
    sample = VirtualKitti2(tmp_path)[0]
    out = Augmentor(rng=np.random.default_rng(0), mirror_prob=1.0)(sample)
    assert out.meta["mirrored"] is True
    assert np.array_equal(out.left, sample.right[:, ::-1])
    assert np.array_equal(out.labels, sample.meta[RIGHT_LABELS_KEY][:, ::-1])


# --- shared: consistency check, tensors, batches, workers -------------------------------------


def test_consistent_disparity_mask() -> None:
    left = np.full((1, 10), 2.0, dtype=np.float32)
    right = np.full((1, 10), 2.0, dtype=np.float32)
    right[0, 5] = 4.0  # left pixel 7 maps to right pixel 5, which disagrees
    mask = consistent_disparity_mask(left, right, partner_sign=-1)
    assert mask[0].tolist() == [False, False, True, True, True, True, True, False, True, True]
    with pytest.raises(ValueError, match="partner_sign"):
        consistent_disparity_mask(left, right, partner_sign=0)


def test_to_tensors_and_collate(tmp_path: Path) -> None:
    make_kitti(tmp_path)
    ds = Kitti2015(tmp_path)
    t = to_tensors(ds[0])
    assert t["left"].shape == (3, H, W) and t["left"].dtype == torch.float32
    assert float(t["left"][0].min()) == 250.0  # red channel, not normalised, RGB order
    assert t["disparity"].shape == (1, H, W) and t["disparity"].dtype == torch.float32
    assert t["valid"].dtype == torch.bool and t["noc"].shape == (1, H, W)
    assert t["labels"].shape == (H, W) and t["labels"].dtype == torch.int64
    assert int(t["labels"].max()) == 255
    assert t["fx"].shape == () and float(t["baseline"]) == pytest.approx(KITTI_BASELINE)

    loader = DataLoader(ds, batch_size=2, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["left"].shape == (2, 3, H, W)
    assert batch["disparity"].shape == (2, 1, H, W)
    assert batch["labels"].shape == (2, H, W) and batch["labels"].dtype == torch.int64
    assert batch["fx"].shape == (2,)
    assert batch["name"] == ["000000_10", "000001_10"]
    assert batch["calib"][0].fx == pytest.approx(721.5377)

    small = Kitti2015(tmp_path, augment=Augmentor(rng=np.random.default_rng(0), crop_size=(8, 16)))
    with pytest.raises(DatasetError, match="crop to one size"):
        collate([ds[0], small[1]])
    no_labels = Kitti2015(tmp_path, semantics=False)
    with pytest.raises(DatasetError, match="ground truth"):
        collate([ds[0], no_labels[1]])


def test_workers_get_distinct_augmentation_streams(tmp_path: Path) -> None:
    make_kitti(tmp_path, frames=1)
    ds = Kitti2015(tmp_path, indices=[0])
    ds.records = ds.records * 2  # the same frame twice: differences come from augmentation
    ds.augment = Augmentor(rng=np.random.default_rng(0), brightness=40.0, noise_std=3.0)

    def first_two(worker_init_fn) -> list[torch.Tensor]:  # noqa: ANN001
        torch.manual_seed(123)
        loader = DataLoader(
            ds, batch_size=1, num_workers=2, collate_fn=collate, worker_init_fn=worker_init_fn
        )
        return [batch["left"] for batch in loader]

    unseeded = first_two(None)
    # each worker's copy of the augmentor replays the same stream: identical "random" samples
    assert torch.equal(unseeded[0], unseeded[1])
    seeded = first_two(seed_worker)
    assert not torch.equal(seeded[0], seeded[1])
    assert all(torch.equal(a, b) for a, b in zip(seeded, first_two(seed_worker)))  # reproducible


def test_cityscapes_test_split_has_no_labels_and_refuses_them(tmp_path: Path) -> None:
    """The public test split's gtFine files are placeholders: never used as supervision."""
    make_cityscapes(tmp_path, split="test")
    ds = Cityscapes(tmp_path, split="test")
    assert len(ds) == 2 and ds[0].labels is None
    with pytest.raises(DatasetError, match="placeholder labels") as err:
        Cityscapes(tmp_path, split="test", semantics=True)
    assert str(tmp_path / "gtFine" / "test") in str(err.value)


def test_vkitti2_folder_names_match_case_insensitively(tmp_path: Path) -> None:
    """``classsegmentation`` (as the dataset's web page spells it) still yields the labels."""
    make_vkitti2(tmp_path)
    frames = tmp_path / "Scene01" / "clone" / "frames"
    (frames / "classSegmentation").rename(frames / "classsegmentation")
    (frames / "rgb").rename(frames / "RGB")
    sample = VirtualKitti2(tmp_path)[0]
    assert sample.labels is not None and (sample.labels[: H // 2] == 10).all()


def test_vkitti2_variations_are_selectable_in_a_recipe(tmp_path: Path) -> None:
    from stereo_semantic_ros.training.config import ConfigError, config_from_dict
    from stereo_semantic_ros.training.data import training_dataset

    make_vkitti2(tmp_path)
    shutil.copytree(tmp_path / "Scene01" / "clone", tmp_path / "Scene01" / "fog")
    recipe = {
        "model": {"architecture": "esp_joint"},
        "data": {"type": "vkitti2", "root": str(tmp_path), "augment": "none"},
    }
    assert len(training_dataset(config_from_dict(recipe).data, seed=0)) == 2  # clone only
    recipe["data"]["variations"] = ["clone", "fog"]
    names = [r.name for r in training_dataset(config_from_dict(recipe).data, seed=0).records]
    assert names == [f"Scene01/{v}/{f:05d}" for v in ("clone", "fog") for f in (0, 1)]
    recipe["data"]["type"] = "kitti2015"
    with pytest.raises(ConfigError, match="variations"):
        config_from_dict(recipe)
