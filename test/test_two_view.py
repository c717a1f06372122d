"""Middlebury / ETH3D two-view loader, PFM, the builtin Motorcycle pair and real-pair evaluation.

The fixture under test/fixtures/two_view/ is synthetic (test/fixtures/make_two_view_fixture.py);
the Motorcycle pair is only read, as test data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_semantic_ros.checkpoint import Checkpoint, save_checkpoint
from stereo_semantic_ros.datasets.base import DatasetError
from stereo_semantic_ros.datasets.middlebury import (
    TwoViewBenchmark,
    motorcycle_calibration,
    open_builtin,
    read_pfm,
    write_pfm,
)
from stereo_semantic_ros.evaluation.baselines import (
    SgbmBaseline,
    SgbmFilledBaseline,
    fill_holes_rowwise,
)
from stereo_semantic_ros.evaluation.cli import main
from stereo_semantic_ros.evaluation.runner import evaluate
from stereo_semantic_ros.metrics import benchmark_disparity_metrics
from stereo_semantic_ros.networks import get_model

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "two_view"


# --- PFM --------------------------------------------------------------------------------------


@pytest.mark.parametrize("little_endian", [True, False])
@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3)])
def test_pfm_round_trip(tmp_path, little_endian, shape):
    rng = np.random.default_rng(0)
    image = rng.normal(size=shape).astype(np.float32) * 50
    image[0, 1] = np.inf
    path = write_pfm(tmp_path / "x.pfm", image, little_endian=little_endian)
    header = path.read_bytes()[:20]
    assert (b"-1.0" in header) == little_endian
    np.testing.assert_array_equal(read_pfm(path), image)


def test_pfm_rows_are_stored_bottom_to_top(tmp_path):
    # hand-written file: big-endian (scale +1), 2 wide, 2 high; first stored row is the BOTTOM
    data = np.array([[1, 2], [3, 4]], dtype=">f4").tobytes()
    (tmp_path / "h.pfm").write_bytes(b"Pf\n2 2\n1.0\n" + data)
    np.testing.assert_array_equal(read_pfm(tmp_path / "h.pfm"), [[3, 4], [1, 2]])


def test_pfm_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.pfm"
    bad.write_bytes(b"P6\n2 2\n255\n" + bytes(12))
    with pytest.raises(DatasetError, match="bad.pfm.*not a PFM"):
        read_pfm(bad)
    bad.write_bytes(b"Pf\n4 4\n-1.0\n" + bytes(8))
    with pytest.raises(DatasetError, match="bad.pfm.*truncated"):
        read_pfm(bad)


# --- the loader -------------------------------------------------------------------------------


def test_middlebury_fixture_sample():
    ds = TwoViewBenchmark(FIXTURE / "middlebury", "middlebury")
    assert len(ds) == 1 and ds.records[0].name == "synth_a"
    s = ds[0]
    raw = read_pfm(FIXTURE / "middlebury" / "synth_a" / "disp0.pfm")
    assert np.isinf(raw).any()
    np.testing.assert_array_equal(s.valid, np.isfinite(raw))  # inf -> invalid
    assert not s.valid[10:14, 20:24].any() and (s.disparity[~s.valid] == 0).all()
    np.testing.assert_array_equal(s.disparity[s.valid], raw[s.valid])
    assert s.noc is not None and s.noc.sum() < s.valid.sum() and not (s.noc & ~s.valid).any()
    assert s.labels is None
    c = s.calib
    assert (c.width, c.height) == (48, 36) and c.doffs == pytest.approx(2.5)
    assert c.baseline == pytest.approx(0.54)  # 540 mm
    assert s.meta["ndisp"] == 16 and s.meta["dataset"] == "middlebury"
    v, u = np.argwhere(s.valid)[0]
    assert s.depth[v, u] == pytest.approx(c.fx * c.baseline / (s.disparity[v, u] + 2.5))


def test_eth3d_fixture_and_official_split_layout(tmp_path):
    s = TwoViewBenchmark(FIXTURE / "eth3d", "eth3d")[0]
    assert s.name == "synth_b" and s.calib.doffs == pytest.approx(-1.25)
    assert s.meta["dataset"] == "eth3d" and s.noc is not None
    # ETH3D's download: images in two_view_training/, ground truth in two_view_training_gt/
    src = FIXTURE / "eth3d" / "synth_b"
    images, gt = tmp_path / "two_view_training" / "x", tmp_path / "two_view_training_gt" / "x"
    images.mkdir(parents=True)
    gt.mkdir(parents=True)
    for name in ("im0.png", "im1.png", "calib.txt"):
        shutil.copy(src / name, images)
    for name in ("disp0GT.pfm", "mask0nocc.png"):
        shutil.copy(src / name, gt)
    t = TwoViewBenchmark(tmp_path / "two_view_training", "eth3d")[0]
    np.testing.assert_array_equal(t.disparity, s.disparity)
    np.testing.assert_array_equal(t.noc, s.noc)


def _copy_scene(tmp_path):
    dst = tmp_path / "root" / "scene"
    shutil.copytree(FIXTURE / "middlebury" / "synth_a", dst)
    return dst


def test_missing_calib_names_the_file(tmp_path):
    scene = _copy_scene(tmp_path)
    (scene / "calib.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing calibration file .*scene/calib\.txt"):
        TwoViewBenchmark(tmp_path / "root")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cam0=[1 2 3]\ncam1=[1 0 2; 0 1 2; 0 0 1]\nbaseline=100\n", "cam0 must be a 3x3"),
        ("cam0=[10 0 5; 0 10 5; 0 0 1]\nbaseline=100\n", "no cam1"),
        ("this is not a calib file\n", "expected key=value"),
        (
            "cam0=[10 0 5; 0 10 5; 0 0 1]\ncam1=[10 0 7; 0 10 5; 0 0 1]\ndoffs=9\nbaseline=1\n",
            "doffs",
        ),
    ],
)
def test_garbled_calib_names_the_file(tmp_path, text, match):
    scene = _copy_scene(tmp_path)
    (scene / "calib.txt").write_text(text)
    with pytest.raises(DatasetError, match=match) as info:
        TwoViewBenchmark(tmp_path / "root")[0]
    assert "calib.txt" in str(info.value)


def test_missing_ground_truth_is_an_error_unless_allowed(tmp_path):
    scene = _copy_scene(tmp_path)
    (scene / "disp0.pfm").unlink()
    with pytest.raises(DatasetError, match="no disp0.pfm"):
        TwoViewBenchmark(tmp_path / "root")
    assert TwoViewBenchmark(tmp_path / "root", require_gt=False)[0].disparity is None


# --- the builtin Motorcycle pair --------------------------------------------------------------


def test_motorcycle_calibration_numbers():
    c = motorcycle_calibration()
    assert (c.width, c.height) == (741, 500)
    assert c.fx == pytest.approx(3979.911 / 4) and c.fy == c.fx
    assert c.baseline == pytest.approx(0.193001)
    assert c.doffs == pytest.approx(124.343 / 4)
    assert c.cx == pytest.approx((1244.772 + 0.5) / 4 - 0.5)


def test_builtin_motorcycle_pair():
    ds = open_builtin("builtin:motorcycle")
    s = ds[0]
    assert s.left.shape == (500, 741, 3) and s.left.dtype == np.uint8
    assert s.calib == motorcycle_calibration()
    assert s.meta["ndisp"] == 68  # ceil(270 / 4)
    assert 0.9 < s.valid.mean() < 0.95  # scikit-image's inf pixels are unknown
    top = s.disparity[s.valid].max()
    assert 55 < top < 67.5  # quarter-size disparities, within ndisp
    # the depth of one pixel, two ways: full-size calib.txt numbers, and the sample's
    v, u = np.argwhere(s.valid)[len(np.argwhere(s.valid)) // 2]
    d = float(s.disparity[v, u])
    z_full = 3979.911 * 0.193001 / (4 * d + 124.343)  # full-size disparity is 4 d
    assert s.depth[v, u] == pytest.approx(z_full, rel=1e-5)
    assert 1.0 < z_full < 6.0
    with pytest.raises(DatasetError, match="unknown builtin pair"):
        open_builtin("builtin:nope")


# --- baselines and metrics --------------------------------------------------------------------


def test_fill_holes_rowwise_takes_the_smaller_neighbour():
    a = np.array(
        [[-1, 5, -1, -1, 3, -1], [-1, -1, -1, -1, -1, -1], [2, np.nan, 7, 0, np.inf, 4]],
        np.float32,
    )
    np.testing.assert_array_equal(
        fill_holes_rowwise(a),
        [[5, 5, 3, 3, 3, 3], [-1, -1, -1, -1, -1, -1], [2, 2, 7, 4, 4, 4]],
    )


def test_benchmark_metrics_dense_and_predicted():
    m = benchmark_disparity_metrics(
        np.array([1.0, 2.0, -1.0, 5.0]), np.array([1.2, 4.0, 3.0, np.inf])
    )
    assert m["density"] == pytest.approx(200 / 3)
    assert m["dense"]["n"] == 3 and m["predicted"]["n"] == 2
    assert m["dense"]["bad0.5"] == pytest.approx(200 / 3)  # the hole counts as wrong
    assert m["predicted"]["bad0.5"] == pytest.approx(50.0)
    assert m["dense"]["epe"] == pytest.approx((0.2 + 2.0 + 3.0) / 3)
    assert m["predicted"]["epe"] == pytest.approx(1.1)


def test_sgbm_fill_is_denser_than_sgbm():
    ds = TwoViewBenchmark(FIXTURE / "middlebury")
    sgbm = SgbmBaseline(disparity_range=32)
    report = evaluate([sgbm, SgbmFilledBaseline(sgbm)], ds, progress=False, warmup=False)
    plain = report["methods"]["StereoSGBM"]["benchmark"]["all"]
    filled = report["methods"]["StereoSGBM+fill"]["benchmark"]["all"]
    assert plain["density"] < 50.0 < filled["density"] == pytest.approx(100.0)
    assert filled["dense"]["bad2"] < plain["dense"]["bad2"]


# --- the CLI end to end -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    hyper = {"max_disparity": 16, "num_classes": 19}
    ckpt = Checkpoint(
        architecture="esp_joint",
        hyper_parameters=hyper,
        state_dict=get_model("esp_joint", **hyper).state_dict(),
        provenance={"command": "test fixture", "data": "none (untrained)"},
    )
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("weights") / "w.pt")


def test_eval_cli_on_the_fixture(tmp_path, tiny_weights, capsys):
    out = tmp_path / "eval"
    args = ["--weights", str(tiny_weights), "--data", str(FIXTURE / "middlebury")]
    args += ["--dataset", "middlebury", "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["methods"]) == ["ours", "StereoSGBM", "StereoSGBM+fill"]
    assert report["two_view"] and report["num_images"] == 1
    for name, m in report["methods"].items():
        assert m["benchmark"]["noc"] is not None, name
        assert set(m["benchmark"]["all"]["dense"]) == {"epe", "bad0.5", "bad1", "bad2", "bad4", "n"}
    # ndisp 16 and GT max ~6 px -> the node's minimum range of 32
    assert report["methods"]["StereoSGBM"]["info"]["params"]["disparity_range"] == 32
    assert "ndisp" in report["methods"]["StereoSGBM+fill"]["info"]["disparity_range_source"]
    assert "| StereoSGBM+fill | NOC |" in printed and "bad-0.5 pred" in printed
    md = (out / "metrics.md").read_text()
    assert "## Two-view benchmark" in md and "| ours | All |" in md
    pictures = report["pictures"]
    assert len(pictures) == 1 and Path(pictures[0]).is_file()


def test_eval_cli_refuses_builtin_with_a_kitti_layout(tmp_path, tiny_weights, capsys):
    args = ["--weights", str(tiny_weights), "--data", "builtin:motorcycle"]
    args += ["--dataset", "kitti2015", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 2
    assert "two-view pair" in capsys.readouterr().err


# --- make-bag and training accept the type ----------------------------------------------------


def test_make_bag_from_a_two_view_folder(tmp_path, capsys):
    from stereo_semantic_ros.bagtools.make_bag import main as make_bag

    out = tmp_path / "bag"
    args = ["--out", str(out), "--source", "eth3d", "--data", str(FIXTURE / "eth3d")]
    assert make_bag([*args, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "1 frames of 48x36" in printed and "/ground_truth/disparity      1 msgs" in printed
    assert (
        make_bag(
            [
                "--out",
                str(tmp_path / "b2"),
                "--source",
                "builtin:motorcycle",
                "--data",
                str(FIXTURE),
            ]
        )
        == 2
    )
    assert "needs no --data" in capsys.readouterr().err


def test_training_opens_two_view_folders_but_never_a_builtin_pair():
    from stereo_semantic_ros.training.config import DATASET_TYPES, ConfigError
    from stereo_semantic_ros.training.data import open_dataset

    assert {"middlebury", "eth3d"} <= set(DATASET_TYPES)
    ds = open_dataset("middlebury", FIXTURE / "middlebury", None)
    assert isinstance(ds, TwoViewBenchmark) and ds[0].disparity is not None
    with pytest.raises(ConfigError, match="evaluation pair"):
        open_dataset("middlebury", "builtin:motorcycle", None)
