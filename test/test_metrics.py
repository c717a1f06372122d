"""Metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stereo_semantic_ros.labels import CITYSCAPES_19
from stereo_semantic_ros.metrics import (
    ConfusionMatrix,
    DepthAccumulator,
    DisparityAccumulator,
    MetricInputError,
    depth_metrics,
    disparity_metrics,
)

T, F = True, False

# ---------------------------------------------------------------------------------------------
# Disparity
# ---------------------------------------------------------------------------------------------

# Scored pixels and their errors (px):
#   gt 10  pred 10.5 -> 0.5
#   gt 20  pred 21.5 -> 1.5                       bad1
#   gt 30  pred 34   -> 4    (> 3 and > 1.5)       bad1 bad2 bad3 d1
#   gt 2   pred -1   -> invalid: err 2, always bad bad1 bad2 bad3 d1
#   gt 40  pred 42.5 -> 2.5                       bad1 bad2
#   gt 50  pred NaN  -> invalid: err 50           bad1 bad2 bad3 d1
#   gt 100 pred 104  -> 4    (> 3 but < 5 px)      bad1 bad2 bad3
#   gt 7   pred 99   -> not valid, ignored
GT = np.array([[10, 20, 30, 2], [40, 50, 100, 7]], dtype=np.float32)
PRED = np.array([[10.5, 21.5, 34, -1], [42.5, np.nan, 104, 99]], dtype=np.float32)
VALID = np.array([[T, T, T, T], [T, T, T, F]])


def test_disparity_metrics_hand_computed() -> None:
    m = disparity_metrics(PRED, GT, VALID)
    assert m["n"] == 7
    assert m["epe"] == pytest.approx((0.5 + 1.5 + 4 + 2 + 2.5 + 50 + 4) / 7)
    assert m["bad1"] == pytest.approx(100 * 6 / 7)
    assert m["bad2"] == pytest.approx(100 * 5 / 7)
    assert m["bad3"] == pytest.approx(100 * 4 / 7)
    assert m["d1"] == pytest.approx(100 * 3 / 7)


def test_disparity_invalid_prediction_is_bad_even_when_gt_is_small() -> None:
    # |0 - 0.5| = 0.5 would pass every threshold; a missing prediction must not.
    for bad in (np.nan, -0.1, np.inf, -np.inf):
        m = disparity_metrics(np.array([[bad]]), np.array([[0.5]]), np.array([[T]]))
        assert m["epe"] == pytest.approx(0.5)
        assert m["bad1"] == m["bad2"] == m["bad3"] == m["d1"] == 100.0
    # Zero is a legal (if unlikely) prediction, scored by its error.
    m = disparity_metrics(np.array([[0.0]]), np.array([[0.5]]), np.array([[T]]))
    assert m["bad1"] == 0.0 and m["d1"] == 0.0


def test_disparity_thresholds_are_strict() -> None:
    # err exactly 3 px (30 % of gt) and exactly 5 % of gt (4 px): neither is a D1 outlier
    m = disparity_metrics(np.array([13.0, 84.0]), np.array([10.0, 80.0]))
    assert m["d1"] == 0.0
    assert m["bad3"] == 50.0
    assert m["bad2"] == 100.0


def test_disparity_perfect_prediction_and_default_mask() -> None:
    m = disparity_metrics(GT, GT)
    assert m["n"] == GT.size
    assert m["epe"] == 0.0 and m["bad1"] == 0.0 and m["d1"] == 0.0


def test_disparity_nan_ground_truth_is_skipped() -> None:
    gt = GT.copy()
    gt[0, 0] = np.nan
    m = disparity_metrics(PRED, gt, VALID)
    assert m["n"] == 6
    assert m["epe"] == pytest.approx((1.5 + 4 + 2 + 2.5 + 50 + 4) / 6)


def test_disparity_empty_mask_is_nan_not_error() -> None:
    m = disparity_metrics(PRED, GT, np.zeros_like(VALID))
    assert m["n"] == 0
    for key in ("epe", "bad1", "bad2", "bad3", "d1"):
        assert math.isnan(m[key]), key


def test_disparity_shape_mismatch_raises() -> None:
    with pytest.raises(MetricInputError, match="shape"):
        disparity_metrics(PRED[:, :3], GT, VALID)
    with pytest.raises(ValueError):
        disparity_metrics(PRED, GT, VALID[:1])


def _random_disparity_set(rng: np.random.Generator) -> list[tuple[np.ndarray, ...]]:
    images = []
    for h, w in ((5, 7), (3, 4), (8, 2)):
        gt = rng.uniform(1, 60, (h, w))
        pred = gt + rng.normal(0, 4, (h, w))
        pred[rng.random((h, w)) < 0.1] = np.nan
        valid = rng.random((h, w)) < 0.7
        images.append((pred, gt, valid))
    return images


def test_disparity_accumulator_equals_metric_on_concatenation() -> None:
    images = _random_disparity_set(np.random.default_rng(1))
    acc = DisparityAccumulator()
    assert math.isnan(acc.compute()["epe"]) and acc.compute()["n"] == 0
    per_image = [acc.update(p, g, v) for p, g, v in images]
    flat = [np.concatenate([im[k].ravel() for im in images]) for k in range(3)]
    expected = disparity_metrics(*flat)
    got = acc.compute()
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key]), key
    # update() returns the image's own metrics
    assert per_image[1] == pytest.approx(disparity_metrics(*images[1]))
    # pixel-weighted: differs from the mean of per-image EPEs for these unequal images
    assert got["epe"] != pytest.approx(np.mean([m["epe"] for m in per_image]))
    acc.reset()
    assert acc.compute()["n"] == 0


# ---------------------------------------------------------------------------------------------
# Semantic segmentation
# ---------------------------------------------------------------------------------------------

SEG_GT = np.array([[0, 0, 1], [1, 2, 255]], dtype=np.uint8)
SEG_PRED = np.array([[0, 1, 1], [255, 2, 0]], dtype=np.uint8)


def test_confusion_matrix_hand_built() -> None:
    cm = ConfusionMatrix(3)
    cm.update(SEG_PRED, SEG_GT)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(cm.unknown, [0, 1, 0])
    assert cm.total == 5  # the ignored pixel is not counted
    # class 0: tp 1, gt 2, pred 1 -> 1/2; class 1: tp 1, gt 2 (one predicted unknown),
    # pred 2 -> 1/3; class 2: 1/1
    np.testing.assert_allclose(cm.iou(), [1 / 2, 1 / 3, 1.0])
    assert cm.miou() == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert cm.global_accuracy() == pytest.approx(3 / 5)
    np.testing.assert_allclose(cm.class_recall(), [1 / 2, 1 / 2, 1.0])
    assert cm.class_accuracy() == pytest.approx(2 / 3)


def test_confusion_matrix_absent_classes() -> None:
    cm = ConfusionMatrix(5)
    pred = SEG_PRED.copy()
    pred[0, 1] = 4  # class 4 only ever predicted: IoU 0, not NaN
    cm.update(pred, SEG_GT)
    iou = cm.iou()
    assert math.isnan(iou[3])  # in neither gt nor prediction
    assert iou[4] == 0.0
    # class 0: tp 1, gt 2, pred 1; class 1: tp 1, gt 2, pred 1 (its extra pixel moved to 4)
    np.testing.assert_allclose(iou[:3], [1 / 2, 1 / 2, 1.0])
    assert cm.miou() == pytest.approx((1 / 2 + 1 / 2 + 1 + 0) / 4)
    # recall is averaged over classes present in the ground truth only (0, 1, 2)
    assert cm.class_accuracy() == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)


def test_confusion_matrix_accumulates_and_merges() -> None:
    rng = np.random.default_rng(2)
    a, b, both = ConfusionMatrix(4), ConfusionMatrix(4), ConfusionMatrix(4)
    gts = [rng.integers(0, 4, (6, 5)).astype(np.uint8) for _ in range(3)]
    preds = [rng.integers(0, 4, (6, 5)).astype(np.uint8) for _ in range(3)]
    gts[0][0, :] = 255
    preds[1][:, 0] = 255
    for g, p in zip(gts[:2], preds[:2], strict=True):
        a.update(p, g)
    b.update(preds[2], gts[2])
    a.merge(b)
    both.update(np.concatenate(preds), np.concatenate(gts))
    np.testing.assert_array_equal(a.matrix, both.matrix)
    np.testing.assert_array_equal(a.unknown, both.unknown)
    assert a.miou() == pytest.approx(both.miou())
    # reference by explicit loop over pixels
    ref = np.zeros((4, 4), np.int64)
    for g, p in zip(np.concatenate(gts).ravel(), np.concatenate(preds).ravel(), strict=True):
        if g != 255 and p != 255:
            ref[g, p] += 1
    np.testing.assert_array_equal(both.matrix, ref)


def test_confusion_matrix_empty_is_nan() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8))
    assert cm.total == 0
    assert np.isnan(cm.iou()).all()
    assert math.isnan(cm.miou())
    assert math.isnan(cm.global_accuracy())
    assert math.isnan(cm.class_accuracy())


def test_confusion_matrix_to_dict_names() -> None:
    cm = ConfusionMatrix(CITYSCAPES_19.num_classes)
    gt = np.array([[0, 13], [13, 255]], np.uint8)
    pred = np.array([[0, 13], [0, 0]], np.uint8)
    cm.update(pred, gt)
    d = cm.to_dict(CITYSCAPES_19.names)
    assert d["iou"]["road"] == pytest.approx(1 / 2)  # tp 1, gt 1, pred 2
    assert d["iou"]["car"] == pytest.approx(1 / 2)  # tp 1, gt 2, pred 1
    assert math.isnan(d["iou"]["sky"])
    assert d["miou"] == pytest.approx(1 / 2)
    assert d["global_accuracy"] == pytest.approx(2 / 3)
    assert d["n"] == 3
    assert list(cm.to_dict()["iou"])[:2] == ["class_0", "class_1"]
    with pytest.raises(MetricInputError):
        cm.to_dict(["road"])


def test_confusion_matrix_bad_input() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(MetricInputError, match="outside"):
        cm.update(np.zeros((1, 2), np.uint8), np.array([[1, 7]], np.uint8))
    with pytest.raises(MetricInputError, match="integer"):
        cm.update(np.zeros((1, 2), np.float32), np.zeros((1, 2), np.uint8))
    with pytest.raises(MetricInputError, match="shape"):
        cm.update(np.zeros((1, 3), np.uint8), np.zeros((1, 2), np.uint8))
    with pytest.raises(MetricInputError):
        ConfusionMatrix(3, ignore_index=1)
    assert cm.total == 0  # failed updates left no trace


# ---------------------------------------------------------------------------------------------
# Depth
# ---------------------------------------------------------------------------------------------

# Scored pairs (pred, gt): (2, 2), (4, 5), (15, 8), (5, 5); gt 0 and pred NaN are skipped.
D_PRED = np.array([[2, 4, 15], [1, np.nan, 5]])
D_GT = np.array([[2, 5, 8], [0, 3, 5]])


def test_depth_metrics_hand_computed() -> None:
    m = depth_metrics(D_PRED, D_GT, np.ones((2, 3), bool))
    assert m["n"] == 4
    assert m["coverage"] == pytest.approx(4 / 5)  # 5 usable gt pixels, one without prediction
    # ratios max(p/g, g/p): 1, 1.25, 1.875, 1; 1.25 is not < 1.25
    assert m["delta1"] == pytest.approx(2 / 4)
    assert m["delta2"] == pytest.approx(3 / 4)  # 1.875 > 1.5625
    assert m["delta3"] == pytest.approx(4 / 4)  # 1.875 < 1.953125
    assert m["abs_rel"] == pytest.approx((0 + 1 / 5 + 7 / 8 + 0) / 4)
    assert m["sq_rel"] == pytest.approx((0 + 1 / 5 + 49 / 8 + 0) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 49 + 0) / 4))
    d = [0.0, math.log(4 / 5), math.log(15 / 8), 0.0]
    mean_d2 = sum(x * x for x in d) / 4
    mean_d = sum(d) / 4
    assert m["rmse_log"] == pytest.approx(math.sqrt(mean_d2))
    assert m["sie"] == pytest.approx(mean_d2 - mean_d**2)
    assert m["silog"] == pytest.approx(math.sqrt(mean_d2 - mean_d**2))


def test_depth_silog_is_scale_invariant() -> None:
    rng = np.random.default_rng(3)
    gt = rng.uniform(2, 50, (4, 6))
    pred = gt * rng.uniform(0.8, 1.2, gt.shape)
    # uncapped: clipping predictions at the range cap is not scale invariant by design
    a = depth_metrics(pred, gt, max_depth=None)
    b = depth_metrics(pred * 1.7, gt, max_depth=None)
    assert b["silog"] == pytest.approx(a["silog"])
    assert b["rmse_log"] > a["rmse_log"]
    assert depth_metrics(gt * 3.0, gt, max_depth=None)["silog"] == pytest.approx(0.0, abs=1e-7)


def test_depth_mask_and_empty() -> None:
    valid = np.array([[T, F, F], [F, F, F]])
    m = depth_metrics(D_PRED, D_GT, valid)
    assert m["n"] == 1 and m["abs_rel"] == 0.0 and m["delta1"] == 1.0
    e = depth_metrics(D_PRED, D_GT, np.zeros((2, 3), bool))
    assert e["n"] == 0
    for key in ("delta1", "abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "sie", "coverage"):
        assert math.isnan(e[key]), key
    # all predictions unusable: n = 0 but coverage is a real 0
    z = depth_metrics(np.full((2, 3), np.inf), D_GT)
    assert z["n"] == 0 and z["coverage"] == 0.0 and math.isnan(z["rmse"])


def test_depth_accumulator_equals_metric_on_concatenation() -> None:
    rng = np.random.default_rng(4)
    images = []
    for h, w in ((4, 5), (6, 3), (2, 9)):
        gt = rng.uniform(1, 80, (h, w))
        gt[rng.random((h, w)) < 0.2] = np.nan
        pred = gt * rng.uniform(0.7, 1.4, (h, w))
        pred[rng.random((h, w)) < 0.1] = 0.0
        images.append((pred, gt, rng.random((h, w)) < 0.8))
    acc = DepthAccumulator()
    for p, g, v in images:
        acc.update(p, g, v)
    flat = [np.concatenate([im[k].ravel() for im in images]) for k in range(3)]
    expected = depth_metrics(*flat)
    got = acc.compute()
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key]), key
    acc.reset()
    assert acc.compute()["n"] == 0


def test_depth_metrics_cap_prediction_and_ground_truth_at_one_range():
    """A near-zero disparity (5 km) next to a 50 m truth counts as 80 m, not 5 km; truth beyond
    the cap is not scored; the accumulator applies the same cap."""
    from stereo_semantic_ros.metrics import DEPTH_CAP_M

    gt = np.array([[50.0, 120.0, 10.0]])
    pred = np.array([[5000.0, 90.0, 10.0]])
    capped = depth_metrics(pred, gt)
    assert DEPTH_CAP_M == 80.0
    assert capped["n"] == 2  # the 120 m truth is beyond the cap
    assert capped["rmse"] == pytest.approx(np.sqrt((30.0**2 + 0.0) / 2))
    uncapped = depth_metrics(pred, gt, max_depth=None)
    assert uncapped["n"] == 3 and uncapped["rmse"] > 2000
    acc = DepthAccumulator()
    acc.update(pred, gt)
    assert acc.compute()["rmse"] == pytest.approx(capped["rmse"])
    assert DepthAccumulator(max_depth=None).update(pred, gt)["rmse"] == uncapped["rmse"]
