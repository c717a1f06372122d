"""Evaluation: metrics of known predictors, the StereoSGBM baseline, and the CLI end to end.

Fixture: small two-layer scenes rendered in both views by hand (a textured background plane at
4 px disparity and a textured box at 12 px in front of it), so disparity, NOC (occlusion by the
box and the left image border), labels and depth are known exactly.
"""

import json
import math
import re

import cv2
import numpy as np
import pytest
import torch

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.checkpoint import Checkpoint, save_checkpoint
from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.evaluation.baselines import (
    STEREO_IMAGE_PROC_SGBM_DEFAULTS,
    SgbmBaseline,
    SgbmParams,
    disparity_range_for,
)
from stereo_semantic_ros.evaluation.cli import main
from stereo_semantic_ros.evaluation.predictors import PipelinePredictor, Prediction
from stereo_semantic_ros.evaluation.report import main_table_rows
from stereo_semantic_ros.evaluation.runner import evaluate
from stereo_semantic_ros.labels import CITYSCAPES_19, IGNORE_LABEL
from stereo_semantic_ros.networks import get_model
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.visualize import PICTURE_MIN_HEIGHT

H, W = 48, 192
BG_DISP, BOX_DISP = 4, 12
CALIB = StereoCalibration(fx=100.0, fy=100.0, cx=95.5, cy=23.5, baseline=0.5, width=W, height=H)
ROAD, BUILDING, CAR = (CITYSCAPES_19.index(n) for n in ("road", "building", "car"))
# Cityscapes label ids of those train ids, for the KITTI semantic PNGs (0 = unlabeled -> 255)
LABEL_ID = {ROAD: 7, BUILDING: 11, CAR: 26, IGNORE_LABEL: 0}


def _texture(rng: np.random.Generator, width: int) -> np.ndarray:
    noise = rng.integers(0, 256, (H, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (3, 3), 0.8)


def make_sample(seed: int) -> StereoSample:
    """Render a background plane and a box into both views; left pixel u matches right u - d."""
    rng = np.random.default_rng(seed)
    pad = BOX_DISP + 4
    bg_tex, box_tex = _texture(rng, W + pad), _texture(rng, W + pad)
    x0 = int(rng.integers(60, 110))
    x1, y0, y1 = x0 + 40, 10, 36
    rows = np.arange(H)[:, None]
    cols = np.broadcast_to(np.arange(W)[None, :], (H, W))
    in_rows = (rows >= y0) & (rows < y1)

    box_left = in_rows & (cols >= x0) & (cols < x1)
    disparity = np.where(box_left, BOX_DISP, BG_DISP).astype(np.float32)
    left = np.where(box_left[..., None], box_tex[:, :W], bg_tex[:, :W])
    # right pixel u shows the box where its left-view column u + 12 lies on the box
    box_right = in_rows & (cols + BOX_DISP >= x0) & (cols + BOX_DISP < x1)
    bg_right = np.take_along_axis(bg_tex, np.repeat((cols + BG_DISP)[..., None], 3, 2), axis=1)
    box_seen = np.take_along_axis(box_tex, np.repeat((cols + BOX_DISP)[..., None], 3, 2), axis=1)
    right = np.where(box_right[..., None], box_seen, bg_right)

    match = cols - disparity.astype(int)
    inside = match >= 0
    occluded = ~box_left & box_right[np.arange(H)[:, None], np.clip(match, 0, W - 1)]
    labels = np.where(rows >= 36, ROAD, BUILDING) * np.ones((1, W), dtype=np.int64)
    labels[box_left] = CAR
    labels[0] = IGNORE_LABEL
    return StereoSample(
        left=np.ascontiguousarray(left, dtype=np.uint8),
        right=np.ascontiguousarray(right, dtype=np.uint8),
        calib=CALIB,
        disparity=disparity,
        valid=np.ones((H, W), dtype=bool),
        noc=inside & ~occluded,
        labels=labels.astype(np.uint8),
        depth=(CALIB.fx * CALIB.baseline / disparity).astype(np.float32),
        name=f"synthetic_{seed}",
    )


SAMPLES = [make_sample(seed) for seed in range(3)]


def test_fixture_is_a_consistent_stereo_pair():
    s = SAMPLES[0]
    v, u = np.nonzero(s.noc)
    warped = s.right[v, u - s.disparity[v, u].astype(int)]
    assert np.array_equal(warped, s.left[v, u])  # NOC pixels are exactly their right matches
    assert 0.5 < s.noc.mean() < 1.0  # and occlusions exist


class Perfect:
    name = "perfect"

    def predict(self, sample):
        return Prediction(
            disparity=np.where(sample.valid, sample.disparity, -1.0), labels=sample.labels.copy()
        )


class OffByTwo:
    name = "off_by_2"

    def predict(self, sample):
        return Prediction(disparity=sample.disparity + 2.0, labels=None)


def test_perfect_predictor_scores_zero_error_and_full_miou():
    report = evaluate(Perfect(), SAMPLES, label_set=CITYSCAPES_19, progress=False)
    assert report["num_images"] == 3 and report["num_skipped"] == 0
    m = report["methods"]["perfect"]
    for region in ("noc", "all"):
        d = m["disparity"][region]
        assert d["epe"] == 0.0 and d["bad1"] == 0.0 and d["bad3"] == 0.0 and d["d1"] == 0.0
    assert m["disparity"]["all"]["n"] == 3 * H * W
    assert m["disparity"]["noc"]["n"] == sum(int(s.noc.sum()) for s in SAMPLES)
    seg = m["segmentation"]
    assert 100.0 * seg["miou"] == pytest.approx(100.0)
    assert seg["global_accuracy"] == 1.0 and seg["class_accuracy"] == 1.0
    assert seg["iou"]["car"] == 1.0 and math.isnan(seg["iou"]["sky"])  # absent class: NaN
    assert seg["n"] == 3 * (H - 1) * W  # row 0 is ignore
    assert m["density"] == 100.0
    assert m["depth"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert m["depth"]["delta1"] == 1.0 and m["depth"]["sie"] == pytest.approx(0.0, abs=1e-9)
    assert m["runtime_ms"]["n"] == 3 and m["runtime_ms"]["mean"] >= 0.0


def test_off_by_two_predictor():
    report = evaluate(OffByTwo(), SAMPLES, label_set=CITYSCAPES_19, progress=False)
    m = report["methods"]["off_by_2"]
    for region in ("noc", "all"):
        d = m["disparity"][region]
        assert d["epe"] == pytest.approx(2.0)
        assert d["bad1"] == 100.0 and d["bad2"] == 0.0 and d["bad3"] == 0.0 and d["d1"] == 0.0
    assert m["segmentation"] is None
    # depth from d + 2: the background (d = 4) is 4/6 of its true depth -> outside delta < 1.25
    expected_abs_rel = np.mean(
        np.concatenate([np.abs(s.disparity / (s.disparity + 2) - 1).ravel() for s in SAMPLES])
    )
    assert m["depth"]["abs_rel"] == pytest.approx(expected_abs_rel, rel=1e-5)


def test_invalid_predictions_count_as_errors_and_lower_density():
    class HalfInvalid:
        name = "half"

        def predict(self, sample):
            disp = sample.disparity.copy()
            disp[:, : W // 2] = -1.0  # the left half has no answer
            return Prediction(disparity=disp)

    m = evaluate(HalfInvalid(), SAMPLES, progress=False)["methods"]["half"]
    assert m["density"] == pytest.approx(50.0)
    assert m["disparity"]["all"]["bad1"] == pytest.approx(50.0)
    assert m["disparity"]["all"]["epe"] == pytest.approx(
        np.mean([s.disparity[:, : W // 2].sum() / (H * W) for s in SAMPLES])
    )
    assert m["depth"]["coverage"] == pytest.approx(0.5)


def test_a_failing_sample_is_skipped_for_every_method():
    class FailsOnOne:
        name = "fails"

        def predict(self, sample):
            if sample.name == "synthetic_1":
                raise ValueError("cannot process this one")
            return Prediction(disparity=sample.disparity)

    report = evaluate([FailsOnOne(), Perfect()], SAMPLES, progress=False)
    assert report["num_images"] == 2
    assert report["skipped"] == [
        {"name": "synthetic_1", "reason": "ValueError: cannot process this one"}
    ]
    assert report["methods"]["perfect"]["disparity"]["all"]["n"] == 2 * H * W


def test_label_set_mismatch_is_refused():
    pipeline = StereoPipeline.untrained(max_disparity=16, num_classes=19, device="cpu")
    from stereo_semantic_ros.labels import LabelSet

    pipeline.label_set = LabelSet("two", ("a", "b"), ((0, 0, 0), (1, 1, 1)))
    with pytest.raises(ValueError, match="label set"):
        evaluate(PipelinePredictor(pipeline), SAMPLES, progress=False)


def test_disparity_range_rounds_up_to_multiples_of_16():
    assert disparity_range_for(12.0) == 32  # disparity_node's lower bound
    assert disparity_range_for(100.0) == 112
    assert disparity_range_for(111.0) == 112  # searches 0..111
    assert disparity_range_for(112.0) == 128
    with pytest.raises(ValueError):
        SgbmParams(disparity_range=100)


def test_sgbm_defaults_are_stereo_image_procs():
    p = STEREO_IMAGE_PROC_SGBM_DEFAULTS
    assert (p.prefilter_cap, p.correlation_window_size, p.min_disparity, p.disparity_range) == (
        31,
        15,
        0,
        64,
    )
    assert (p.uniqueness_ratio, p.speckle_size, p.speckle_range) == (15.0, 100, 4)
    assert (p.p1, p.p2, p.disp12_max_diff, p.full_dp) == (200.0, 400.0, 0, False)


def test_sgbm_baseline_recovers_the_disparity_of_textured_input():
    sgbm = SgbmBaseline(disparity_range=disparity_range_for(BOX_DISP))
    s = SAMPLES[0]
    disp = sgbm.compute(s.left, s.right)
    assert disp.dtype == np.float32 and disp.shape == (H, W)
    ok = disp > 0
    assert np.all(disp[~ok] == -1.0)
    assert not ok[:, :32].any()  # OpenCV leaves the first disparity_range columns empty
    err = np.abs(disp - s.disparity)[ok & s.noc]
    assert np.median(err) < 0.5  # sign convention and fixed-point scale are right

    report = evaluate(sgbm, SAMPLES, progress=False)
    m = report["methods"]["StereoSGBM"]
    for region in ("noc", "all"):
        assert all(math.isfinite(m["disparity"][region][k]) for k in ("epe", "bad3", "d1"))
    assert m["density"] > 50.0
    assert m["segmentation"] is None
    assert m["info"]["params"]["disparity_range"] == 32
    assert math.isfinite(m["depth"]["rmse"])


# --------------------------------------------------------------------------------------------
# CLI on a KITTI 2015 layout fixture
# --------------------------------------------------------------------------------------------


def _write_kitti(root, samples):
    base = root / "training"
    for d in ("image_2", "image_3", "disp_occ_0", "disp_noc_0", "semantic", "calib_cam_to_cam"):
        (base / d).mkdir(parents=True)
    for i, s in enumerate(samples):
        frame = f"{i:06d}_10.png"
        cv2.imwrite(str(base / "image_2" / frame), cv2.cvtColor(s.left, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(base / "image_3" / frame), cv2.cvtColor(s.right, cv2.COLOR_RGB2BGR))
        occ = np.round(s.disparity * 256).astype(np.uint16)
        cv2.imwrite(str(base / "disp_occ_0" / frame), occ)
        cv2.imwrite(str(base / "disp_noc_0" / frame), np.where(s.noc, occ, 0).astype(np.uint16))
        ids = np.vectorize(LABEL_ID.get)(s.labels).astype(np.uint8)
        cv2.imwrite(str(base / "semantic" / frame), ids)
        c = s.calib
        p2 = f"{c.fx} 0 {c.cx} 0 0 {c.fy} {c.cy} 0 0 0 1 0"
        p3 = f"{c.fx} 0 {c.cx} {-c.fx * c.baseline} 0 {c.fy} {c.cy} 0 0 0 1 0"
        (base / "calib_cam_to_cam" / f"{i:06d}.txt").write_text(
            f"P_rect_02: {p2}\nP_rect_03: {p3}\n"
        )


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    hyper = {"max_disparity": 16, "num_classes": 19}
    model = get_model("esp_joint", **hyper)
    ckpt = Checkpoint(
        architecture="esp_joint",
        hyper_parameters=hyper,
        state_dict=model.state_dict(),
        provenance={"command": "test fixture", "data": "none (untrained)"},
    )
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("weights") / "w.pt")


# headline column -> (path in a method's JSON entry, factor)
_COLUMNS = {
    **{
        f"{name} {region.upper() if region == 'noc' else 'All'}": (("disparity", region, key), 1.0)
        for region in ("noc", "all")
        for name, key in (
            ("EPE", "epe"),
            ("bad-1", "bad1"),
            ("bad-2", "bad2"),
            ("bad-3", "bad3"),
            ("D1", "d1"),
        )
    },
    "mIoU": (("segmentation", "miou"), 100.0),
    "G": (("segmentation", "global_accuracy"), 100.0),
    "C": (("segmentation", "class_accuracy"), 100.0),
    "density": (("density",), 1.0),
    "ms/img": (("runtime_ms", "mean"), 1.0),
}


def _lookup(entry, path):
    for key in path:
        if entry is None:
            return None
        entry = entry[key]
    return entry


def _printed_rows(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    headers = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for ln in lines[1:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0]] = dict(zip(headers, cells))
    return headers, rows


def test_cli_writes_metrics_table_and_pictures(tmp_path, weights, capsys):
    data = tmp_path / "data"
    _write_kitti(data, SAMPLES)
    out = tmp_path / "eval"
    rc = main(
        [
            "--weights",
            str(weights),
            "--data",
            str(data),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-progress",
            "--num-pictures",
            "2",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    md = (out / "metrics.md").read_text()

    assert report["num_images"] == 3 and report["num_skipped"] == 0
    assert set(report["methods"]) == {"ours", "StereoSGBM"}
    assert report["weights"]["sha256"] and report["weights"]["architecture"] == "esp_joint"
    assert report["weights"]["provenance"]["command"] == "test fixture"
    sgbm_info = report["methods"]["StereoSGBM"]["info"]
    assert sgbm_info["params"]["disparity_range"] == 32  # GT max 12 px -> node minimum 32
    assert "12.00 px" in sgbm_info["disparity_range_source"]
    # the loader read the fixture back exactly: All = every pixel, NOC as rendered
    assert report["methods"]["ours"]["disparity"]["all"]["n"] == 3 * H * W
    assert report["methods"]["ours"]["disparity"]["noc"]["n"] == sum(
        int(s.noc.sum()) for s in SAMPLES
    )

    headers, rows = _printed_rows(printed)
    assert headers[0] == "Method" and set(headers[1:]) == set(_COLUMNS)
    for method, cells in rows.items():
        for column, (path, factor) in _COLUMNS.items():
            value = _lookup(report["methods"][method], path)
            if value is None:
                assert cells[column] == "-", (method, column)
            else:
                assert cells[column] == f"{value * factor:.2f}", (method, column)
                assert float(cells[column]) == pytest.approx(value * factor, abs=0.005 + 1e-9)
    for column in ("mIoU", "G", "C"):
        assert rows["StereoSGBM"][column] == "-"
        assert rows["ours"][column] != "-"
    assert float(rows["StereoSGBM"]["density"]) > 50.0
    # the Markdown file holds the same headline table, and the other two tables
    md_headers, md_rows = _printed_rows(md.split("## Per-class")[0])
    assert md_rows == rows
    assert "## Per-class IoU (%)" in md and "| car |" in md and "## Depth" in md

    assert len(report["pictures"]) == 2
    for path in report["pictures"]:
        assert path in printed
        picture = cv2.imread(path)
        # 2 columns x 4 rows (left/gt, ours, SGBM, labels), each picture enlarged to at least
        # PICTURE_MIN_HEIGHT rows, under its title band, beside its colour bar or legend
        k = -(-PICTURE_MIN_HEIGHT // H)
        assert 4 * k * H < picture.shape[0] < 4 * (k * H + 80)
        assert picture.shape[1] > 2 * k * W
    assert str(out / "metrics.json") in printed and str(out / "metrics.md") in printed


def test_cli_headline_rows_match_main_table_rows(tmp_path, weights, capsys):
    data = tmp_path / "data"
    _write_kitti(data, SAMPLES[:1])
    out = tmp_path / "eval"
    assert (
        main(
            [
                "--weights",
                str(weights),
                "--data",
                str(data),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
                "--baseline",
                "none",
            ]
        )
        == 0
    )
    report = json.loads((out / "metrics.json").read_text())
    _, rows = main_table_rows(report)
    assert list(rows) == ["ours"]


def test_cli_missing_data_root_exits_2_naming_the_path(tmp_path, weights, capsys):
    missing = tmp_path / "no_such_dir"
    rc = main(["--weights", str(weights), "--data", str(missing), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(missing) in err and err.count("\n") == 1


def test_cli_missing_weights_exits_2(tmp_path, capsys):
    data = tmp_path / "data"
    _write_kitti(data, SAMPLES[:1])
    rc = main(["--weights", str(tmp_path / "nope.pt"), "--data", str(data)])
    assert rc == 2
    assert "nope.pt" in capsys.readouterr().err


def test_cli_skips_and_counts_a_corrupt_image(tmp_path, weights, capsys):
    data = tmp_path / "data"
    _write_kitti(data, SAMPLES)
    (data / "training" / "image_3" / "000001_10.png").write_bytes(b"this is not a png")
    out = tmp_path / "eval"
    rc = main(
        [
            "--weights",
            str(weights),
            "--data",
            str(data),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-progress",
            "--num-pictures",
            "0",
        ]
    )
    assert rc == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["num_images"] == 2 and report["num_skipped"] == 1
    assert report["skipped"][0]["name"] == "000001_10"
    assert "000001_10.png" in report["skipped"][0]["reason"]
    printed = capsys.readouterr().out
    assert re.search(r"evaluated 2 images, skipped 1", printed)
    assert "000001_10" in (out / "metrics.md").read_text()
