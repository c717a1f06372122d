"""The corr_mtl network (seed 000): correlation layer, alpha layers, forward contract, pipeline."""

import numpy as np
import pytest
import torch

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.networks import get_model, list_models
from stereo_semantic_ros.networks.blocks import CrossStitch, correlation_1d, count_parameters
from stereo_semantic_ros.networks.corr_mtl import CorrMTLNet
from stereo_semantic_ros.pipeline import StereoPipeline

TINY = {"max_disparity": 32, "width": 4}


def test_correlation_matches_a_hand_computed_example():
    # one channel, one row: c(u, d) = left[u] * right[u - d], 0 where u - d < 0
    left = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    right = torch.tensor([1.0, 0.0, 2.0, 1.0]).view(1, 1, 1, 4)
    corr = correlation_1d(left, right, max_displacement=2)
    assert corr.shape == (1, 3, 1, 4)
    assert corr[0, 0, 0].tolist() == [1.0, 0.0, 6.0, 4.0]  # d = 0: 1*1, 2*0, 3*2, 4*1
    assert corr[0, 1, 0].tolist() == [0.0, 2.0, 0.0, 8.0]  # d = 1: -, 2*1, 3*0, 4*2
    assert corr[0, 2, 0].tolist() == [0.0, 0.0, 3.0, 0.0]  # d = 2: -, -, 3*1, 4*0
    # two channels: the dot product over channels, divided by C * K**2 = 2
    two = correlation_1d(torch.cat([left, left], 1), torch.cat([right, 2 * right], 1), 0)
    assert two[0, 0, 0].tolist() == [1.5, 0.0, 9.0, 6.0]  # (l*r + l*2r) / 2
    # displacement stride 2 keeps d = 0 and 2 only
    strided = correlation_1d(left, right, max_displacement=2, stride=2)
    assert torch.equal(strided, corr[:, [0, 2]])


def test_correlation_patch_sum_matches_the_definition():
    """c(x1, x2) = sum over a K x K patch of <f1(x1 + o), f2(x2 + o)>, zero outside, / (C K^2)."""
    gen = torch.Generator().manual_seed(0)
    f1 = torch.randn(1, 3, 4, 6, generator=gen)
    f2 = torch.randn(1, 3, 4, 6, generator=gen)
    corr = correlation_1d(f1, f2, max_displacement=3, patch_size=3)

    def feature(f, v, u):  # zero outside the image
        inside = 0 <= v < f.shape[2] and 0 <= u < f.shape[3]
        return f[0, :, v, u] if inside else torch.zeros(f.shape[1])

    for d in range(4):
        for v in range(4):
            for u in range(6):
                expected = sum(
                    float((feature(f1, v + dv, u + du) * feature(f2, v + dv, u - d + du)).sum())
                    for dv in (-1, 0, 1)
                    for du in (-1, 0, 1)
                )
                assert corr[0, d, v, u].item() == pytest.approx(expected / 27, abs=1e-5)


def test_correlation_refuses_bad_arguments():
    x = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="one shape"):
        correlation_1d(x, torch.zeros(1, 2, 3, 5), 1)
    with pytest.raises(ValueError, match="odd patch_size"):
        correlation_1d(x, x, 1, patch_size=2)


def test_cross_stitch_initialisation_and_mixing():
    unit = CrossStitch(alpha_same=0.9, alpha_diff=0.1)
    assert torch.allclose(unit.alpha, torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
    a, b = torch.full((1, 2, 3, 3), 1.0), torch.full((1, 2, 3, 3), 10.0)
    mixed_a, mixed_b = unit(a, b)
    assert torch.allclose(mixed_a, torch.full_like(a, 0.9 * 1 + 0.1 * 10))
    assert torch.allclose(mixed_b, torch.full_like(b, 0.1 * 1 + 0.9 * 10))
    # the alphas are learnt: the gradient of the other task's output reaches alpha_AB
    mixed_a.sum().backward()
    assert unit.alpha.grad[0, 1] == pytest.approx(10.0 * a.numel())
    assert unit.alpha.grad[1].abs().sum() == 0
    with pytest.raises(ValueError, match="equal shapes"):
        unit(a, b[..., :2])


def test_alpha_layers_sit_between_the_decoders_and_mix_them():
    model = get_model("corr_mtl", **TINY).eval()
    assert list(model.alpha_layers) == ["0", "1", "2"] and model.stitch_stages == (0, 1, 2)
    for unit in model.alpha_layers.values():
        assert torch.allclose(unit.alpha, torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
    assert list(get_model("corr_mtl", cross_stitch="last", **TINY).alpha_layers) == ["2"]
    assert not get_model("corr_mtl", cross_stitch="none", **TINY).alpha_layers
    # zeroing alpha_diff of the last layer must change the segmentation (it read the other
    # decoder), and with every alpha_diff zero, perturbing the disparity decoder must not
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        base = model(x, x.flip(-1))["seg_logits"]
        model.alpha_layers["2"].alpha[1, 0] = 0.0
        assert not torch.allclose(model(x, x.flip(-1))["seg_logits"], base)
        for unit in model.alpha_layers.values():
            unit.alpha[0, 1] = unit.alpha[1, 0] = 0.0
        isolated = model(x, x.flip(-1))["seg_logits"]
        for p in model.decoders["disparity"].parameters():
            p.add_(1.0)
        assert torch.allclose(model(x, x.flip(-1))["seg_logits"], isolated)


@pytest.mark.parametrize("size", [(32, 64), (64, 96)])
def test_forward_contract(size):
    model = get_model("corr_mtl", **TINY).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = model(x, x.flip(-1))
    h, w = size
    assert set(out) == {"disparity", "confidence", "seg_logits"}
    assert out["disparity"].shape == out["confidence"].shape == (2, 1, h, w)
    assert out["seg_logits"].shape == (2, 19, h, w)
    assert ((out["disparity"] >= 0) & (out["disparity"] <= 31)).all()
    assert ((out["confidence"] >= 1 / 32 - 1e-6) & (out["confidence"] <= 1 + 1e-6)).all()


def test_forward_rejects_bad_shapes_and_hyper_parameters():
    model = get_model("corr_mtl", **TINY).eval()
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.randn(1, 3, 40, 64), torch.randn(1, 3, 40, 64))
    with pytest.raises(ValueError, match="right must match"):
        model(torch.randn(1, 3, 32, 64), None)
    with pytest.raises(ValueError, match="multiple of 4"):
        CorrMTLNet(max_disparity=30)
    with pytest.raises(ValueError, match="cross_stitch"):
        CorrMTLNet(cross_stitch="some")
    with pytest.raises(ValueError, match="tasks"):
        CorrMTLNet(tasks=("depth",))


def test_single_task_variants():
    x = torch.randn(1, 3, 32, 64)
    seg_only = get_model("corr_mtl", tasks=["segmentation"], **TINY).eval()
    disp_only = get_model("corr_mtl", tasks=["disparity"], **TINY).eval()
    with torch.no_grad():
        seg = seg_only(x)  # no right image needed
        disp = disp_only(x, x)
    assert set(seg) == {"seg_logits"} and seg["seg_logits"].shape == (1, 19, 32, 64)
    assert set(disp) == {"disparity", "confidence"} and disp["disparity"].shape == (1, 1, 32, 64)
    assert not seg_only.alpha_layers and not disp_only.alpha_layers
    assert not hasattr(seg_only, "redir") and not hasattr(disp_only, "seg_head")
    assert list(seg_only.decoders) == ["segmentation"]


def test_gradients_reach_both_decoders_and_the_shared_encoder():
    torch.manual_seed(0)
    model = get_model("corr_mtl", **TINY).train()
    x = torch.randn(2, 3, 32, 64)
    out = model(x, x.roll(2, -1))
    # the segmentation loss alone reaches the disparity decoder through the alpha layers
    out["seg_logits"].square().mean().backward()
    for task in ("segmentation", "disparity"):
        grads = [p.grad for p in model.decoders[task].parameters()]
        assert all(g is not None for g in grads), task
        assert sum(float(g.abs().sum()) for g in grads) > 0, task
    assert model.conv1[0].weight.grad.abs().sum() > 0
    model.zero_grad()
    out = model(x, x.roll(2, -1))
    out["disparity"].mean().backward()
    assert model.disp_head.weight.grad.abs().sum() > 0
    assert model.decoders["segmentation"][0].up[0].weight.grad.abs().sum() > 0


def test_parameter_count():
    """The paper gives no parameter count; ours is stated in the module docstring (4.9M)."""
    counts = {
        tasks: count_parameters(
            get_model("corr_mtl", num_classes=19, max_disparity=192, tasks=tasks)
        )
        for tasks in (("disparity", "segmentation"), ("disparity",), ("segmentation",))
    }
    for tasks, n in counts.items():
        print(f"corr_mtl tasks={tasks}: {n:,} parameters (paper: not given; FlowNetC ~39M)")
    joint = counts[("disparity", "segmentation")]
    assert 4.5e6 < joint < 5.2e6
    # hard sharing: the joint network is one encoder plus two decoders, far from two networks
    assert joint < counts[("disparity",)] + counts[("segmentation",)] - 1.5e6
    assert count_parameters(get_model("corr_mtl", width=16, max_disparity=64)) < 1.3e6


def test_registered_and_runs_through_the_pipeline_at_any_size():
    assert "corr_mtl" in list_models()
    pipe = StereoPipeline.untrained("corr_mtl", max_disparity=16, device="cpu")
    assert pipe.stride == 32 and pipe.max_disparity == 16
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (21, 45, 3), np.uint8) for _ in range(2))
    calib = StereoCalibration(fx=50, fy=50, cx=22, cy=10, baseline=0.1)
    res = pipe.run(left, right, calib, min_confidence=0.0)
    assert res.disparity.shape == res.labels.shape == res.confidence.shape == (21, 45)
    assert res.points.shape == (21, 45) and res.labels.max() < 19
    assert np.isfinite(res.confidence).all() and (res.confidence >= 1 / 16 - 1e-6).all()
    masked = pipe.run(left, right, calib, outputs=["disparity"], min_confidence=1.0)
    assert (masked.disparity == -1.0).all()  # an untrained network is never fully confident
    seg_only = StereoPipeline(get_model("corr_mtl", tasks=["segmentation"], width=4), device="cpu")
    assert seg_only.run(left, right, calib, outputs=["labels"]).labels.shape == (21, 45)
