"""Synthetic stereo generator: geometry-consistent ground truth, reproducibility, KITTI layout."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.kitti import Kitti2015
from stereo_semantic_ros.labels import (
    CITYSCAPES_19,
    CITYSCAPES_ID_TO_TRAIN_ID,
    IGNORE_LABEL,
    id_lut,
)
from stereo_semantic_ros.synth import SynthConfigError, generate_sample
from stereo_semantic_ros.synth.cli import main as synth_main
from stereo_semantic_ros.synth.cli import sample_seed
from stereo_semantic_ros.synth.generator import MAX_DISPARITY
from stereo_semantic_ros.synth.kitti_writer import write_kitti_sample

W, H = 256, 96
SEEDS = (0, 1, 2, 3, 4)
SKY = CITYSCAPES_19.index("sky")
ROAD = CITYSCAPES_19.index("road")

# Mean |left - warped right| on NOC pixels. Both views get independent N(0, sigma) noise; the
# warped right pixel is a bilinear blend of two noisy pixels (weights a, 1-a), so the difference
# has std sigma * sqrt(1 + a^2 + (1-a)^2) <= sigma * sqrt(2), i.e. a mean absolute value of at
# most sqrt(2/pi) * sqrt(2) * sigma = 1.13 sigma. On top of that, bilinear interpolation of the
# rendered texture, 8-bit rounding and the pixels along silhouettes cost 1.2 grey levels on
# average (at most 1.7) in noise-free 256x96 renders of seeds 0..39 (measured), hence the
# 2.5 grey-level allowance. A disparity off by 3 px gives 2.5x the error or more.
NOISE_FACTOR = math.sqrt(2 / math.pi) * math.sqrt(2)
RENDER_ALLOWANCE = 2.5


@pytest.fixture(scope="module")
def samples():
    return {seed: generate_sample(seed, W, H) for seed in SEEDS}


def warp_error(sample, offset: float = 0.0) -> float:
    """Mean absolute difference between the left image and the right image sampled at
    ``u - d - offset`` (cv2.remap, bilinear), over NOC pixels."""
    h, w = sample.disparity.shape
    map_x = np.arange(w, dtype=np.float32)[None, :] - sample.disparity - np.float32(offset)
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    warped = cv2.remap(
        sample.right,
        map_x.astype(np.float32),
        map_y,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    diff = np.abs(warped.astype(np.float32) - sample.left.astype(np.float32)).mean(axis=2)
    return float(diff[sample.noc].mean())


@pytest.mark.parametrize("seed", SEEDS)
def test_right_warped_with_disparity_reproduces_left(samples, seed):
    s = samples[seed]
    assert s.noc.mean() > 0.5, "most of a street scene is visible in both views"
    limit = NOISE_FACTOR * s.meta["noise_sigma"] + RENDER_ALLOWANCE
    err = warp_error(s)
    wrong = warp_error(s, 3.0)
    assert err < limit, f"seed {seed}: warp error {err:.2f} >= {limit:.2f}"
    assert wrong > 2 * err and wrong > limit + 2, f"seed {seed}: d+3 gives only {wrong:.2f}"


def test_noise_free_warp_is_near_exact():
    s = generate_sample(7, W, H, noise=False)
    assert s.meta["noise_sigma"] == 0.0
    assert warp_error(s) < RENDER_ALLOWANCE
    assert warp_error(s, -3.0) > 3 * warp_error(s)


@pytest.mark.parametrize("seed", SEEDS)
def test_disparity_is_fx_b_over_depth(samples, seed):
    s = samples[seed]
    fb = s.calib.fx * s.calib.baseline
    v = s.valid
    assert v.any() and (~v).any()
    np.testing.assert_allclose(s.disparity[v], fb / s.depth[v], rtol=1e-6)
    assert np.all(s.disparity[~v] == 0) and np.all(np.isnan(s.depth[~v]))
    # the only pixels without ground truth are sky, as in KITTI
    assert np.array_equal(~v, s.labels == SKY)
    assert s.disparity.max() < MAX_DISPARITY
    assert not (s.noc & ~v).any()
    # the right view's disparity is consistent too: the left pixel's match shows the same depth
    assert (s.right_disparity >= 0).all() and (s.right_disparity > 0).mean() > 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_road_depth_lies_on_the_ground_plane(samples, seed):
    """Back-project road pixels with their depth: they must lie at camera height below it."""
    s = samples[seed]
    c = s.calib
    rot = np.asarray(s.meta["camera_rotation"])
    vv, uu = np.nonzero((s.labels == ROAD) & s.valid)
    assert vv.size > 100, f"seed {seed}: only {vv.size} road pixels to check"
    z = s.depth[vv, uu].astype(np.float64)
    pts_cam = np.stack([(uu - c.cx) / c.fx * z, (vv - c.cy) / c.fy * z, z], axis=1)
    height = (pts_cam @ rot.T)[:, 1]  # world y points down, the road is at y = camera height
    np.testing.assert_allclose(height, s.meta["camera_height"], atol=1e-3 + 1e-5 * z.max())


def test_same_seed_same_sample_different_seed_different():
    a = generate_sample(11, 128, 48)
    b = generate_sample(11, 128, 48)
    c = generate_sample(12, 128, 48)
    for key in ("left", "right", "disparity", "valid", "noc", "labels", "right_disparity"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    assert np.array_equal(a.depth, b.depth, equal_nan=True)
    assert not np.array_equal(a.left, c.left)
    assert not np.array_equal(a.disparity, c.disparity)


def test_every_class_appears_across_twenty_scenes(capsys):
    counts = np.zeros(256, np.int64)
    images_with = np.zeros(CITYSCAPES_19.num_classes, np.int64)
    for seed in range(20):
        labels = generate_sample(seed, W, H).labels
        c = np.bincount(labels.ravel(), minlength=256)
        counts += c
        images_with += c[: CITYSCAPES_19.num_classes] > 0
    allowed = set(range(CITYSCAPES_19.num_classes)) | {IGNORE_LABEL}
    assert set(np.nonzero(counts)[0]) <= allowed
    total = counts.sum()
    with capsys.disabled():
        print("\nclass pixel frequency over 20 scenes (% of pixels, scenes containing it):")
        for i, name in enumerate(CITYSCAPES_19.names):
            print(f"  {name:<14s} {100 * counts[i] / total:6.2f}%  {images_with[i]:2d}/20")
    missing = [n for i, n in enumerate(CITYSCAPES_19.names) if counts[i] == 0]
    assert not missing, f"classes never rendered: {missing}"
    assert images_with.min() >= 2, "every class should show up in more than one scene"


def _read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def _parse_calib(path):
    rows = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        rows[key] = value.split()
    return (
        np.array(rows["P_rect_02"], float).reshape(3, 4),
        np.array(rows["P_rect_03"], float).reshape(3, 4),
    )


def test_kitti_writer_layout_and_encoding(samples, tmp_path):
    s = samples[1]
    written = write_kitti_sample(tmp_path, 5, s)
    base = tmp_path / "training"
    expected = {
        "image_2",
        "image_3",
        "disp_occ_0",
        "disp_noc_0",
        "semantic",
        "semantic_rgb",
        "calib_cam_to_cam",
        "depth_0",
        "disp_occ_right",
        "semantic_right",
    }
    assert {p.name for p in base.iterdir()} == expected
    assert set(written) == expected
    for folder in expected - {"calib_cam_to_cam"}:
        assert (base / folder / "000005_10.png").is_file()
    assert (base / "calib_cam_to_cam" / "000005.txt").is_file()

    left = _read(base / "image_2" / "000005_10.png")
    assert left.dtype == np.uint8 and np.array_equal(left[..., ::-1], s.left)
    assert np.array_equal(_read(base / "image_3" / "000005_10.png")[..., ::-1], s.right)

    occ = _read(base / "disp_occ_0" / "000005_10.png")
    noc = _read(base / "disp_noc_0" / "000005_10.png")
    assert occ.dtype == np.uint16 and noc.dtype == np.uint16 and occ.shape == (H, W)
    assert np.array_equal(occ > 0, s.valid)
    assert np.array_equal(noc > 0, s.valid & s.noc)
    assert np.abs(occ[s.valid] / 256.0 - s.disparity[s.valid]).max() <= 1 / 512 + 1e-6
    assert s.noc.sum() > 0.5 * s.noc.size  # the comparison below is over most pixels
    assert np.array_equal(noc[s.noc], occ[s.noc])
    right = _read(base / "disp_occ_right" / "000005_10.png")
    rv = s.right_disparity > 0
    assert np.abs(right[rv] / 256.0 - s.right_disparity[rv]).max() <= 1 / 512 + 1e-6

    semantic = _read(base / "semantic" / "000005_10.png")
    assert semantic.dtype == np.uint8
    assert np.array_equal(id_lut(CITYSCAPES_ID_TO_TRAIN_ID)[semantic], s.labels)
    depth = _read(base / "depth_0" / "000005_10.png")
    assert depth.dtype == np.uint16 and np.array_equal(depth > 0, s.valid)
    assert np.abs(depth[s.valid] / 100.0 - s.depth[s.valid]).max() <= 0.005 + 1e-4

    p2, p3 = _parse_calib(base / "calib_cam_to_cam" / "000005.txt")
    calib = StereoCalibration.from_projection_matrices(p2, p3)
    assert calib.fx == pytest.approx(s.calib.fx, rel=1e-9)
    assert calib.baseline == pytest.approx(s.calib.baseline, rel=1e-9)
    assert (calib.cx, calib.cy) == pytest.approx((s.calib.cx, s.calib.cy))
    assert p3[0, 3] == pytest.approx(-s.calib.fx * s.calib.baseline)


def test_cli_writes_dataset_and_summary(tmp_path, capsys):
    out = tmp_path / "synth"
    rc = synth_main(
        [
            "--out",
            str(out),
            "--count",
            "3",
            "--val-count",
            "2",
            "--width",
            "128",
            "--height",
            "48",
            "--seed",
            "4",
            "--workers",
            "1",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "wrote 5 samples" in text and "class pixel frequencies" in text
    for name in CITYSCAPES_19.names:
        assert name in text
    for i in range(5):
        assert (out / "training" / "image_2" / f"{i:06d}_10.png").is_file()
        assert (out / "training" / "calib_cam_to_cam" / f"{i:06d}.txt").is_file()
    assert (out / "train.txt").read_text().split() == ["000000", "000001", "000002"]
    assert (out / "val.txt").read_text().split() == ["000003", "000004"]
    meta = json.loads((out / "synthetic_meta.json").read_text())
    train, val = meta["subsets"]["train"], meta["subsets"]["val"]
    assert train["seeds"] == [sample_seed(4, "train", i) for i in range(3)]
    assert val["seeds"] == [sample_seed(4, "val", i) for i in range(2)]
    assert not set(train["seeds"]) & set(val["seeds"])
    assert (val["first_index"], val["count"]) == (3, 2)
    assert meta["settings"]["width"] == 128 and meta["settings"]["height"] == 48
    # a sample on disk is re-rendered exactly in memory from the seed recorded for it
    again = generate_sample(val["seeds"][1], 128, 48)
    on_disk = _read(out / "training" / "image_2" / "000004_10.png")[..., ::-1]
    assert np.array_equal(on_disk, again.left)

    # another folder of the same root is added to the meta; other settings are refused
    assert (
        synth_main(
            [
                "--out",
                str(out),
                "--count",
                "1",
                "--width",
                "128",
                "--height",
                "48",
                "--split",
                "testing",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    meta = json.loads((out / "synthetic_meta.json").read_text())
    assert set(meta["subsets"]) == {"train", "val", "testing"}
    assert (out / "testing" / "image_3" / "000000_10.png").is_file()
    capsys.readouterr()
    assert synth_main(["--out", str(out), "--count", "1", "--width", "64", "--height", "48"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_kitti_loader_reads_what_the_generator_wrote(tmp_path):
    """The package's KITTI 2015 loader returns the in-memory sample from the written files."""
    assert (
        synth_main(
            [
                "--out",
                str(tmp_path),
                "--count",
                "1",
                "--val-count",
                "1",
                "--width",
                "128",
                "--height",
                "48",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    meta = json.loads((tmp_path / "synthetic_meta.json").read_text())
    ref = generate_sample(meta["subsets"]["val"]["seeds"][0], 128, 48)
    data = Kitti2015(
        tmp_path,
        "training",
        file_list=tmp_path / "val.txt",
        right_disparity_dir="disp_occ_right",
        right_semantic_dir="semantic_right",
    )
    assert len(data) == 1
    got = data[0]
    assert np.array_equal(got.left, ref.left) and np.array_equal(got.right, ref.right)
    assert np.array_equal(got.valid, ref.valid) and np.array_equal(got.noc, ref.noc)
    assert np.abs(got.disparity - ref.disparity).max() <= 1 / 512 + 1e-6
    assert np.array_equal(got.labels, ref.labels)
    assert np.abs(got.right_disparity - ref.right_disparity).max() <= 1 / 512 + 1e-6
    assert got.calib.fx == pytest.approx(ref.calib.fx)
    assert got.calib.baseline == pytest.approx(ref.calib.baseline)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(SynthConfigError, match="seed"):
        generate_sample(-1, 64, 32)
    with pytest.raises(SynthConfigError, match="too small"):
        generate_sample(0, 4, 32)
    with pytest.raises(SynthConfigError, match="baseline"):
        generate_sample(0, 64, 32, baseline=0.0)
