"""The HybridNet paper's depth losses (L_DL linear, L_DN mean-variance normalised) against
hand-computed values, and how the training loss supervises a depth output with fx * B / d."""

import numpy as np
import pytest
import torch

from stereo_semantic_ros.losses import (
    depth_from_disparity,
    depth_linear_loss,
    depth_loss,
    depth_normalized_loss,
    mean_variance_normalize,
    task_losses,
)


def test_depth_linear_loss_matches_a_hand_computed_value():
    pred = torch.tensor([1.0, 2.0, 4.0, 9.0]).view(1, 1, 2, 2)
    target = torch.tensor([2.0, 2.0, 1.0, float("nan")]).view(1, 1, 2, 2)
    valid = torch.tensor([True, True, True, True]).view(1, 1, 2, 2)
    # (1 - 2)^2, 0, (4 - 1)^2 over 3 pixels (the NaN target is left out)
    assert depth_linear_loss(pred, target, valid).item() == pytest.approx(10 / 3)
    none = torch.zeros_like(valid)
    assert depth_linear_loss(pred, target, none).item() == 0.0


def test_mean_variance_normalisation_and_the_normalised_loss():
    x = torch.tensor([1.0, 3.0, 100.0]).view(1, 1, 1, 3)
    mask = torch.tensor([True, True, False]).view(1, 1, 1, 3)
    n = mean_variance_normalize(x, mask, eps=0.0)
    # mean 2, population std 1 over the masked pixels; 0 outside
    assert n.flatten().tolist() == [-1.0, 1.0, 0.0]
    # prediction [1, 2, 3] and target [2, 4, 9] (mean 5, population std sqrt(26/3))
    pred = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)
    target = torch.tensor([2.0, 4.0, 9.0]).view(1, 1, 1, 3)
    valid = torch.ones_like(pred, dtype=torch.bool)
    sp, st = np.sqrt(2 / 3), np.sqrt(26 / 3)
    p = np.array([-1.0, 0.0, 1.0]) / sp
    t = np.array([-3.0, -1.0, 4.0]) / st
    expected = float(np.mean((p - t) ** 2))
    got = depth_normalized_loss(pred, target, valid, eps=0.0).item()
    assert got == pytest.approx(expected, rel=1e-5)
    # scale and shift invariant: a prediction that is an affine map of the target scores ~0
    assert depth_normalized_loss(3 * target + 1, target, valid).item() < 1e-6
    # L_DL + L_DN with the default eps (1e-3 m)
    total = depth_loss(pred, target, valid).item()
    linear = (1 + 4 + 36) / 3
    assert total == pytest.approx(linear + expected, rel=1e-3)


def test_normalised_loss_is_per_image_and_skips_images_without_variance():
    pred = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 7.0]]).view(2, 1, 1, 3)
    target = torch.tensor([[1.0, 3.0, 2.0], [4.0, 0.0, 0.0]]).view(2, 1, 1, 3)
    valid = torch.tensor([[True, True, True], [True, False, False]]).view(2, 1, 1, 3)
    # the second image has one valid pixel: no variance, left out; the first alone counts
    both = depth_normalized_loss(pred, target, valid, eps=0.0).item()
    first = depth_normalized_loss(pred[:1], target[:1], valid[:1], eps=0.0).item()
    assert both == pytest.approx(first)
    # first image: p = [-1, 0, 1] / sqrt(2/3), t = [-1, 1, 0] / sqrt(2/3): (0 + 1 + 1) * 1.5 / 3
    assert first == pytest.approx(1.0, rel=1e-5)


def test_task_losses_supervise_a_depth_output_with_fx_b_over_d():
    disparity = torch.tensor([10.0, 20.0, 0.0, 40.0]).view(1, 1, 2, 2)
    valid = torch.tensor([True, True, False, True]).view(1, 1, 2, 2)
    fx, baseline = torch.tensor([100.0]), torch.tensor([0.5])
    depth, ok = depth_from_disparity(disparity, valid, fx, baseline)
    assert depth.flatten().tolist() == [5.0, 2.5, 0.0, 1.25]
    assert ok.flatten().tolist() == [True, True, False, True]
    pred = torch.tensor([6.0, 2.5, 9.0, 1.25]).view(1, 1, 2, 2)
    batch = {"disparity": disparity, "valid": valid, "fx": fx, "baseline": baseline}
    terms = task_losses({"depth": pred}, batch)
    assert set(terms) == {"disparity"}
    assert terms["disparity"].item() == pytest.approx(depth_loss(pred, depth, ok).item())
    # disparities at or above max_disparity and depths beyond max_depth are left out
    ranged = task_losses({"depth": pred}, batch, max_disparity=40, max_depth=4.0)
    only = torch.tensor([False, True, False, False]).view(1, 1, 2, 2)
    assert ranged["disparity"].item() == pytest.approx(depth_loss(pred, depth, only).item())
    with pytest.raises(ValueError, match="fx and baseline"):
        task_losses({"depth": pred}, {"disparity": disparity, "valid": valid})
