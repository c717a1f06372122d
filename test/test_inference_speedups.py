"""The CPU cost cuts keep the networks' outputs: each rewritten block against the formula it
replaced, and the shipped weights (loaded strictly) against the networks as they were.

Stated tolerance, shipped weights through the pipeline's network (batch norms folded, packed
census, written-out soft-argmin, padded first 3D convolution) against the original code path
on the same input: disparity 1e-3 px, confidence 1e-4, seg_logits / depth 1e-3; measured
<= 3e-5 px, 7e-6 and 2e-5.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import stereo_semantic_ros.networks.corr_mtl as corr_mtl_module
import stereo_semantic_ros.networks.esp_joint as esp_joint_module
from stereo_semantic_ros.checkpoint import load_checkpoint
from stereo_semantic_ros.export import check_pair
from stereo_semantic_ros.networks.blocks import (
    census_codes,
    census_cost_volume,
    census_transform,
    popcount,
    soft_argmin,
)
from stereo_semantic_ros.networks.inference import fold_batchnorm
from stereo_semantic_ros.pipeline import StereoPipeline

MODELS = Path(__file__).resolve().parents[1] / "models"
TOLERANCE = {
    "disparity": 1e-3,
    "disparity_coarse": 1e-3,
    "confidence": 1e-4,
    "seg_logits": 1e-3,
    "seg_logits_coarse": 1e-3,
    "depth": 1e-3,
}


def census_cost_loop(left, right, max_disparity, window=7):
    """The census cost as it was: a loop over disparities of +-1 code products."""
    code_l = census_transform(left, window)[..., ::2, ::2]
    code_r = census_transform(right, window)[..., ::2, :]
    b, n, hh, wh = code_l.shape
    w = left.shape[-1]
    out = code_l.new_ones(b, max_disparity, hh, wh)
    for d in range(min(max_disparity, w)):
        first = (d + 1) // 2
        cols = code_r[..., 2 * first - d :: 2][..., : wh - first]
        out[:, d, :, first:] = 0.5 - 0.5 * (code_l[..., first:] * cols).mean(1)
    return out


def soft_argmin_softmax(cost):
    """The soft-argmin as it was: torch.softmax, then the expectation and the peak."""
    prob = torch.softmax(-cost.float(), dim=1)
    hypotheses = torch.arange(cost.shape[1], dtype=prob.dtype).view(1, -1, 1, 1)
    return (prob * hypotheses).sum(1, keepdim=True), prob.amax(1, keepdim=True)


def test_popcount_counts_bits_of_56_bit_values():
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 2**56, (5000,), generator=g, dtype=torch.int64)
    values[:3] = torch.tensor([0, 2**56 - 1, 2**55])
    want = torch.tensor([bin(int(v)).count("1") for v in values])
    assert torch.equal(popcount(values.clone()), want)


@pytest.mark.parametrize("window", [3, 7, 9])
def test_packed_census_codes_hold_the_census_bits(window):
    """Windows above 7 need a second 56-bit word."""
    image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(window))
    words = census_codes(image, window)
    assert len(words) == -(-(window * window) // 56)
    bits = census_transform(image, window) > 0  # (1, window**2 - 1, H, W), centre left out
    centre = window * window // 2
    for k in range(window * window - 1):
        pos = k if k < centre else k + 1  # the packed codes keep the centre's (zero) bit
        got = (words[pos // 56] >> (pos % 56)) & 1
        assert torch.equal(got.bool(), bits[:, k]), k


@pytest.mark.parametrize("size,max_disparity", [((32, 96), 16), ((24, 40), 64), ((16, 64), 96)])
def test_packed_census_cost_equals_the_loop(size, max_disparity):
    """Including disparities beyond the image width (every cost 1 there)."""
    g = torch.Generator().manual_seed(max_disparity)
    left, right = torch.rand(2, 1, 3, *size, generator=g)
    fast = census_cost_volume(left, right, max_disparity)
    slow = census_cost_loop(left, right, max_disparity)
    assert fast.shape == slow.shape and fast.is_contiguous()
    assert float((fast - slow).abs().max()) <= 1e-6


def test_written_out_soft_argmin_equals_softmax_values_and_gradients():
    cost = (
        torch.randn(2, 48, 12, 20, generator=torch.Generator().manual_seed(1)) * 4
    ).requires_grad_()
    got, want = soft_argmin(cost), soft_argmin_softmax(cost)
    for a, b in zip(got, want):
        assert float((a - b).detach().abs().max()) <= 1e-4
    g1 = torch.autograd.grad(got[0].sum() + got[1].sum(), cost)[0]
    g2 = torch.autograd.grad(want[0].sum() + want[1].sum(), cost)[0]
    assert float((g1 - g2).abs().max()) <= 1e-4


def test_padded_first_volume_convolution_equals_the_plain_one():
    model = load_checkpoint(MODELS / "esp_joint_mixed.pt").build_model()
    volume = torch.randn(1, 4, 24, 32, 96, generator=torch.Generator().manual_seed(2))
    assert esp_joint_module._needs_channel_padding(volume.permute(0, 1, 3, 4, 2))
    with torch.inference_mode():
        got = model.regulariser(volume)
        want = torch.nn.Sequential.forward(model.regulariser, volume.permute(0, 1, 3, 4, 2))
    assert float((got - want.permute(0, 1, 4, 2, 3)).abs().max()) <= 1e-4


def test_fold_batchnorm_keeps_outputs_and_refuses_training_mode():
    model = load_checkpoint(MODELS / "hybridnet_synthetic.pt").build_model()
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) > 10
    x = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        a, b = model(x), folded(x)
    for key in a:
        assert float((a[key] - b[key]).abs().max()) <= 1e-3
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model.train())


def original_outputs(model, left, right, monkeypatch):
    """``model``'s outputs through the code paths as they were before the cost cuts."""
    with monkeypatch.context() as m:
        m.setattr(esp_joint_module, "census_cost_volume", census_cost_loop)
        m.setattr(esp_joint_module, "soft_argmin", soft_argmin_softmax)
        m.setattr(esp_joint_module, "_needs_channel_padding", lambda x: False)
        m.setattr(corr_mtl_module, "census_cost_volume", census_cost_loop)
        m.setattr(corr_mtl_module, "soft_argmin", soft_argmin_softmax)
        with torch.inference_mode():
            return model(left, right)


@pytest.mark.parametrize("name", sorted(p.name for p in MODELS.glob("*.pt")))
def test_shipped_weights_load_strictly_and_give_the_original_outputs(name, monkeypatch):
    ckpt = load_checkpoint(MODELS / name)
    model = ckpt.build_model()  # load_state_dict(strict=True): every key fits
    pipe = StereoPipeline.from_checkpoint(MODELS / name, device="cpu")
    left, right = check_pair(ckpt, (256, 96), seed=5)
    want = original_outputs(model, left, right, monkeypatch)
    with torch.inference_mode():
        got = pipe.model(left, right)
    assert set(got) == set(want)
    for key, value in got.items():
        diff = float((value - want[key]).abs().max())
        assert diff <= TOLERANCE[key], (name, key, diff)
