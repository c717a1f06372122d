"""The pseudo_mtl network (seed 003) and its losses: forward contract, single-task variants,
gradients, the cross-view warps, consistency losses that vanish for consistent predictions and
grow with a mismatch, and the teacher-confidence weighting."""

import pytest
import torch

from stereo_semantic_ros.mono_losses import (
    CROSS_VIEW_TERMS,
    CrossViewWeights,
    clip_loss,
    confidence_l1,
    pseudo_label_losses,
    warp_labels,
    warp_left_to_right,
)
from stereo_semantic_ros.networks.contract import network_traits
from stereo_semantic_ros.networks.pseudo_mtl import PseudoMTL

TINY = {"width": 4, "encoder_convs": (1, 1, 1, 1, 1)}


@pytest.mark.parametrize("size", [(32, 32), (64, 96)])
def test_forward_contract(size):
    net = PseudoMTL(num_classes=5, min_depth=1.0, max_depth=50.0, **TINY).eval()
    h, w = size
    with torch.no_grad():
        out = net(torch.randn(2, 3, h, w))
    assert set(out) == {"depth", "seg_logits"}
    assert out["depth"].shape == (2, 1, h, w) and out["seg_logits"].shape == (2, 5, h, w)
    assert out["depth"].dtype == torch.float32
    assert ((out["depth"] >= 1.0) & (out["depth"] <= 50.0)).all()
    traits = network_traits(net)
    assert traits.geometry == "depth" and traits.stride == 32


def test_the_right_image_is_ignored_and_bad_inputs_are_refused():
    torch.manual_seed(0)
    net = PseudoMTL(**TINY).eval()
    left = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        a, b = net(left, torch.randn(1, 3, 32, 64)), net(left)
    assert torch.equal(a["depth"], b["depth"])
    with pytest.raises(ValueError, match="not a multiple of 32"):
        net(torch.zeros(1, 3, 48, 64))
    for bad, words in [
        ({"width": 0}, "width must be >= 1"),
        ({"min_depth": 5.0, "max_depth": 5.0}, "0 < min_depth < max_depth"),
        ({"max_disparity": 30}, "multiple of 4"),
        ({"encoder_convs": (2, 2, 3)}, "five counts"),
        ({"tasks": ("depth",)}, "non-empty subset"),
    ]:
        with pytest.raises(ValueError, match=words):
            PseudoMTL(**{**TINY, **bad})


def test_single_task_variants_hold_only_their_decoder():
    x = torch.randn(1, 3, 32, 32)
    depth = PseudoMTL(tasks=["disparity"], **TINY).eval()
    seg = PseudoMTL(tasks=["segmentation"], **TINY).eval()
    assert not hasattr(depth, "seg_decoder") and not hasattr(seg, "depth_decoder")
    assert set(depth(x)) == {"depth"} and set(seg(x)) == {"seg_logits"}
    # the joint network's keys are the union: the second stage starts from both
    joint = set(PseudoMTL(**TINY).state_dict())
    assert joint == set(depth.state_dict()) | set(seg.state_dict())
    assert set(depth.state_dict()) & set(seg.state_dict()) == {
        k for k in joint if k.startswith("encoder.")
    }


def test_gradients_reach_the_shared_encoder_from_both_tasks():
    net = PseudoMTL(num_classes=3, **TINY)
    out = net(torch.randn(2, 3, 32, 32))
    shared = dict(net.named_parameters())[net.gradnorm_parameter]
    for key in ("depth", "seg_logits"):
        (grad,) = torch.autograd.grad(out[key].mean(), shared, retain_graph=True)
        assert grad.abs().sum() > 0, key
    out["depth"].mean().backward()
    assert all(p.grad is None for n, p in net.named_parameters() if n.startswith("seg_"))
    assert all(p.grad is not None for n, p in net.named_parameters() if n.startswith("depth_"))


# --- warps ------------------------------------------------------------------------------------


def test_left_to_right_warp_is_the_mirror_of_right_to_left():
    torch.manual_seed(0)
    left = torch.randn(1, 2, 3, 12)
    disp = torch.full((1, 1, 3, 12), 2.0)
    warped, inside = warp_left_to_right(left, disp)
    # right pixel u sees left pixel u + 2
    torch.testing.assert_close(warped[..., :10], left[..., 2:])
    assert inside[..., :10].all() and not inside[..., 10:].any()
    labels = torch.arange(12).view(1, 1, 12).expand(1, 3, 12).contiguous()
    to_right = warp_labels(labels, disp, to="right")
    assert to_right[0, 0, :10].tolist() == list(range(2, 12))
    assert (to_right[0, :, 10:] == 255).all()
    to_left = warp_labels(labels, disp, to="left")
    assert to_left[0, 0, 2:].tolist() == list(range(10)) and (to_left[0, :, :2] == 255).all()


# --- a consistent pair: a fronto-parallel plane at 4 px disparity -----------------------------

H, W, D0, C = 8, 32, 4.0, 3
FB = 100.0  # fx * baseline, so depth = 100 / d


def _batch(confidence=None):
    labels_l = (torch.arange(W) // 6 % C).view(1, 1, W).expand(1, H, W).contiguous()
    labels_r = warp_labels(labels_l, torch.full((1, 1, H, W), D0), to="right")
    labels_r[labels_r == 255] = 0  # what the right camera sees beyond the left's view
    batch = {
        "disparity": torch.full((1, 1, H, W), D0),
        "valid": torch.ones(1, 1, H, W, dtype=torch.bool),
        "right_disparity": torch.full((1, 1, H, W), D0),
        "labels": labels_l,
        "right_labels": labels_r,
        "fx": torch.tensor([FB]),
        "baseline": torch.tensor([1.0]),
        "doffs": torch.tensor([0.0]),
    }
    if confidence is not None:
        batch["confidence"] = batch["right_confidence"] = confidence
    return batch


def _outputs(disp_l, disp_r, labels_l, labels_r):
    def seg(labels):
        return 60.0 * torch.nn.functional.one_hot(labels, C).permute(0, 3, 1, 2).float()

    return (
        {"depth": FB / disp_l, "seg_logits": seg(labels_l)},
        {"depth": FB / disp_r, "seg_logits": seg(labels_r)},
    )


def test_every_loss_vanishes_when_the_predictions_are_the_consistent_pseudo_labels():
    batch = _batch()
    d = torch.full((1, 1, H, W), D0)
    out_l, out_r = _outputs(d, d, batch["labels"], batch["right_labels"])
    tasks, cross, metrics = pseudo_label_losses(out_l, out_r, batch)
    assert set(cross) == set(CROSS_VIEW_TERMS)
    assert float(tasks["disparity"]) == pytest.approx(0.0, abs=1e-7)
    assert float(tasks["segmentation"]) == pytest.approx(0.0, abs=1e-6)
    for term, value in cross.items():
        assert float(value) == pytest.approx(0.0, abs=1e-5), term
    # the warp leaves the image for the first D0 left columns only
    assert metrics["cross_view_trusted"] == pytest.approx((W - D0) / W)


def test_the_cross_view_loss_is_zero_for_consistent_predictions_and_grows_with_a_mismatch():
    """Predictions that differ from the pseudo labels but agree across the views: L_d > 0,
    L_d,lr = 0. Shifting the right prediction by k columns: L_d,lr grows with k."""
    batch = _batch()
    ramp = 2.0 + torch.arange(W + 8, dtype=torch.float32) / 4  # any per-column prediction
    left = ramp[:W].view(1, 1, 1, W).expand(1, 1, H, W)
    lr = []
    for k in range(4):
        # consistent: the right view at u shows the left's u + D0 (k = 0)
        right = ramp[int(D0) + k : int(D0) + k + W].view(1, 1, 1, W).expand(1, 1, H, W)
        out_l, out_r = _outputs(left, right, batch["labels"], batch["right_labels"])
        tasks, cross, _ = pseudo_label_losses(out_l, out_r, batch)
        assert float(tasks["disparity"]) > 0.01
        lr.append(float(cross["d_lr"]))
    assert lr[0] == pytest.approx(0.0, abs=1e-6)
    assert lr[0] < lr[1] < lr[2] < lr[3]
    # the exact value: |ramp(u + k) - ramp(u)| = k / 4 px, in units of the width, per view
    assert lr[2] == pytest.approx(2 * (2 / 4) / W, rel=1e-4)


def test_segmentation_consistency_grows_when_the_right_view_disagrees():
    batch = _batch()
    d = torch.full((1, 1, H, W), D0)
    wrong = (batch["right_labels"] + 1) % C
    out_l, out_r = _outputs(d, d, batch["labels"], batch["right_labels"])
    _, good, _ = pseudo_label_losses(out_l, out_r, batch)
    out_l, out_r = _outputs(d, d, batch["labels"], wrong)
    _, bad, _ = pseudo_label_losses(out_l, out_r, batch)
    for term in ("s_lr", "s_l", "s_r"):
        assert float(bad[term]) > float(good[term]) + 1.0, term


def test_confidence_weights_each_pixel_and_can_be_switched_off():
    batch = _batch()
    pred = torch.full((1, 1, H, W), D0)
    pred[..., : W // 2] = D0 + 2.0  # wrong on the left half, right on the other
    conf = torch.ones(1, 1, H, W)
    conf[..., : W // 2] = 0.0  # the teacher does not trust the left half
    out_l, out_r = _outputs(pred, torch.full((1, 1, H, W), D0), batch["labels"], batch["labels"])
    weighted, _, _ = pseudo_label_losses(out_l, out_r, _batch(conf))
    plain, _, _ = pseudo_label_losses(out_l, out_r, _batch(conf), confidence=False)
    assert float(weighted["disparity"]) == pytest.approx(0.0, abs=1e-7)
    assert float(plain["disparity"]) == pytest.approx(0.5 * 2.0 / W, rel=1e-5)
    # a soft weight: L_reg = sum c |a - b| / sum c
    a, b = torch.tensor([1.0, 2.0, 4.0]).view(1, 1, 1, 3), torch.zeros(1, 1, 1, 3)
    c = torch.tensor([1.0, 0.5, 0.0]).view(1, 1, 1, 3)
    assert float(confidence_l1(c, a, b)) == pytest.approx((1.0 + 1.0) / 1.5)
    assert float(confidence_l1(torch.zeros_like(c), a, b)) == 0.0


def test_missing_right_view_labels_are_a_clear_error():
    batch = _batch()
    del batch["right_disparity"]
    out_l, out_r = _outputs(*(2 * [torch.full((1, 1, H, W), D0)]), batch["labels"], batch["labels"])
    with pytest.raises(ValueError, match="both views' disparity"):
        pseudo_label_losses(out_l, out_r, batch)


def test_paper_weights_and_a_negative_weight_is_refused():
    assert CrossViewWeights().as_dict() == {
        "d_lr": 0.5,
        "d_l": 1.0,
        "d_r": 1.0,
        "s_lr": 0.5,
        "s_l": 1.5,
        "s_r": 1.5,
    }
    with pytest.raises(ValueError, match=">= 0"):
        CrossViewWeights(d_l=-1.0)


def test_clip_loss_prefers_matching_pairs():
    torch.manual_seed(0)
    a = torch.randn(6, 16)
    scale = torch.tensor(2.0)
    matched = clip_loss(a, a + 0.01 * torch.randn(6, 16), scale)
    shuffled = clip_loss(a, a[torch.randperm(6)], scale)
    assert float(matched) < 0.5 < float(shuffled)
    assert float(clip_loss(a[:1], torch.randn(1, 16), scale)) == 0.0  # no negatives
