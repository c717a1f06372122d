"""The corr_mtl paper's warp method (seed 000, Sec. 5.4 / 6.1) on small hand-made examples."""

import math

import pytest
import torch

from stereo_semantic_ros.losses import (
    visible_in_right,
    warp_right_to_left,
    warp_trust_mask,
    warped_fusion_loss,
)


def row(values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype).view(1, 1, 1, -1)


def test_warp_reads_the_right_view_d_pixels_to_the_left():
    right = row([10.0, 20.0, 30.0, 40.0])
    warped, inside = warp_right_to_left(right, row([1.0, 1.0, 1.0, 1.0]))
    assert warped[0, 0, 0].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert inside[0, 0, 0].tolist() == [False, True, True, True]
    # fractional disparity: linear between the two neighbouring columns
    warped, _ = warp_right_to_left(right, row([0.0, 0.5, 2.0, 2.75]))
    assert warped[0, 0, 0].tolist() == pytest.approx([10.0, 15.0, 10.0, 12.5])
    # several channels and rows warp alike
    two = torch.stack([right[0, 0], 2 * right[0, 0]]).unsqueeze(0).expand(2, 2, 3, 4)
    w2, _ = warp_right_to_left(two, torch.ones(2, 1, 3, 4))
    assert w2[1, 1, 2].tolist() == [0.0, 20.0, 40.0, 60.0]
    with pytest.raises(ValueError, match=r"disparity must be \(B, 1, H, W\)"):
        warp_right_to_left(right, torch.ones(1, 1, 1, 3))


def test_occlusion_from_the_left_disparity():
    # background d = 1 at u = 0, 1 lands on right columns -1, 0; the foreground (d = 3) at
    # u = 2, 3 lands on -1, 0 as well and hides it; u = 4 (d = 1) lands on 3
    visible = visible_in_right(row([1.0, 1.0, 3.0, 3.0, 1.0]))
    assert visible[0, 0, 0].tolist() == [False, False, True, True, True]
    # a slanted surface (disparity changing by less than 1 px per column) hides nothing
    assert visible_in_right(row([4.0, 3.5, 3.0, 2.5, 2.0, 1.5])).all()


def test_trust_mask_borders_holes_and_dilation():
    disparity = torch.zeros(1, 1, 5, 10)
    trusted = torch.ones(1, 1, 5, 10, dtype=torch.bool)
    trusted[0, 0, 2, 6] = False  # one hole
    keep = warp_trust_mask(disparity, trusted, border_columns=2, dilation=3)
    expected = torch.ones(5, 10, dtype=torch.bool)
    expected[:, :2] = False  # the masked first columns
    expected[1:4, 5:8] = False  # the hole grown by a 3x3 square
    assert torch.equal(keep[0, 0], expected)
    # an even kernel (the paper's 8x8) grows a hole by 4 columns before it and 3 after
    keep8 = warp_trust_mask(
        torch.zeros(1, 1, 1, 12), row([True] * 5 + [False] + [True] * 6, torch.bool)
    )
    assert keep8[0, 0, 0].tolist() == [True] + [False] * 8 + [True] * 3
    # the source column must lie in the right image; no trusted mask: judged from occlusion
    keep = warp_trust_mask(row([1.0, 1.0, 3.0, 3.0, 1.0, 1.0]), dilation=1)
    assert keep[0, 0, 0].tolist() == [False, False, False, True, True, True]
    with pytest.raises(ValueError, match="dilation >= 1"):
        warp_trust_mask(disparity, dilation=0)


def test_fused_loss_against_hand_computed_cross_entropy():
    """Left logits all zero; the right view predicts the true class with logit 5 (C = 3).

    Where the warp is trusted the fused logits are (5, 0, 0) for the true class, so the
    cross-entropy is ln(1 + 2 e^-5); elsewhere they stay uniform, ln 3.
    """
    h, w, c = 2, 6, 3
    labels_right = torch.tensor([[0, 1, 2, 0, 1, 2], [2, 2, 1, 1, 0, 0]])
    right_logits = 5.0 * torch.nn.functional.one_hot(labels_right, c).permute(2, 0, 1)[None]
    disparity = torch.full((1, 1, h, w), 2.0)
    # the left view at u sees what the right view has at u - 2
    labels = torch.full((1, h, w), 255, dtype=torch.long)
    labels[0, :, 2:] = labels_right[:, :-2]
    labels[0, :, :2] = 1  # the left border: no right-view partner
    left_logits = torch.zeros(1, c, h, w, requires_grad=True)
    right_logits = right_logits.float().requires_grad_()
    trusted = torch.ones(1, 1, h, w, dtype=torch.bool)
    loss, metrics = warped_fusion_loss(
        left_logits, right_logits, disparity, labels, trusted=trusted, dilation=1
    )
    good, bad = math.log(1 + 2 * math.exp(-5)), math.log(3)
    # columns 0, 1 have no source in the right image: not fused
    expected = (8 * good + 4 * bad) / 12
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert metrics["seg_warp_trusted"] == pytest.approx(8 / 12)
    loss.backward()
    assert right_logits.grad.abs().sum() > 0 and left_logits.grad.abs().sum() > 0
    # right columns 4, 5 are never read by the left view: no gradient there
    assert right_logits.grad[..., 4:].abs().sum() == 0
    # masking two more columns at the border turns their terms into ln 3
    masked, _ = warped_fusion_loss(
        left_logits, right_logits, disparity, labels, trusted=trusted, border_columns=4, dilation=1
    )
    assert float(masked) == pytest.approx((4 * good + 8 * bad) / 12, rel=1e-5)
