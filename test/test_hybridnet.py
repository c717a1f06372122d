"""The hybridnet network (seed 002): forward contract, ASPP, single-task variants, gradients,
parameter count."""

import pytest
import torch
from torch import nn

from stereo_semantic_ros.networks import geometry_of, get_model, list_models
from stereo_semantic_ros.networks.blocks import count_parameters
from stereo_semantic_ros.networks.hybridnet import ASPP, HybridNet

TINY = {"width": 4, "aspp_rates": (1, 2)}


@pytest.mark.parametrize("size", [(32, 32), (64, 96), (96, 160)])
def test_forward_contract(size):
    net = get_model("hybridnet", num_classes=5, min_depth=1.0, max_depth=50.0, **TINY).eval()
    h, w = size
    with torch.no_grad():
        out = net(torch.randn(2, 3, h, w))
    assert set(out) == {"depth", "seg_logits"}
    assert out["depth"].shape == (2, 1, h, w) and out["seg_logits"].shape == (2, 5, h, w)
    assert ((out["depth"] >= 1.0) & (out["depth"] <= 50.0)).all()
    assert geometry_of(net) == "depth" and net.stride == 32


def test_the_right_image_is_ignored():
    torch.manual_seed(0)
    net = get_model("hybridnet", **TINY).eval()
    left = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        a = net(left, torch.randn(1, 3, 32, 64))
        b = net(left)
    assert torch.equal(a["depth"], b["depth"]) and torch.equal(a["seg_logits"], b["seg_logits"])


def test_forward_rejects_bad_shapes_and_hyper_parameters():
    net = get_model("hybridnet", **TINY)
    with pytest.raises(ValueError, match="not a multiple of 32"):
        net(torch.zeros(1, 3, 33, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(1, 1, 32, 64))
    for bad, words in [
        ({"tasks": ("depth",)}, "tasks must be a non-empty subset"),
        ({"width": 0}, "width must be >= 1"),
        ({"min_depth": 5.0, "max_depth": 5.0}, "0 < min_depth < max_depth"),
        ({"max_disparity": 30}, "multiple of 4"),
        ({"aspp_rates": ()}, "aspp_rates"),
    ]:
        with pytest.raises(ValueError, match=words):
            get_model("hybridnet", **{**TINY, **bad})


def test_aspp_sums_one_dilated_branch_per_rate():
    aspp = ASPP(8, 6, 3, (1, 4, 7), nn.BatchNorm2d).eval()
    assert len(aspp) == 3
    assert [branch[0][0].dilation for branch in aspp] == [(1, 1), (4, 4), (7, 7)]
    x = torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        out = aspp(x)
        expected = sum(branch(x) for branch in aspp)
    assert out.shape == (2, 3, 9, 11)
    torch.testing.assert_close(out, expected)
    # DeepLab-v2 ASPP-L rates by default
    assert [b[0][0].dilation[0] for b in get_model("hybridnet", width=2).aspp] == [6, 12, 18, 24]


def test_single_task_variants():
    x = torch.randn(1, 3, 32, 64)
    seg = get_model("hybridnet", tasks=["segmentation"], **TINY).eval()
    assert not hasattr(seg, "global_depth") and not hasattr(seg, "refinement")
    assert set(seg(x)) == {"seg_logits"}
    depth = get_model("hybridnet", tasks=["disparity"], **TINY).eval()
    assert not hasattr(depth, "aspp")
    assert set(depth(x)) == {"depth"}


def test_gradients_reach_every_part_and_the_shared_features():
    net = get_model("hybridnet", num_classes=4, **TINY)
    out = net(torch.randn(2, 3, 32, 64))
    (out["depth"].mean() + out["seg_logits"].mean()).backward()
    for part in ("features", "global_depth", "refinement", "aspp"):
        grads = [p.grad for p in getattr(net, part).parameters()]
        assert all(g is not None for g in grads), part
    shared = dict(net.named_parameters())[net.gradnorm_parameter]
    assert shared.grad is not None and shared.grad.abs().sum() > 0


def test_parameter_count():
    """The paper gives no parameter count (VGG-16 + DepthNet: tens of millions); ours is stated
    in the module docstring: 4.75M at width 32, 1.19M at width 16."""
    counts = {
        tasks: count_parameters(get_model("hybridnet", num_classes=19, tasks=tasks))
        for tasks in (("disparity", "segmentation"), ("disparity",), ("segmentation",))
    }
    for tasks, n in counts.items():
        print(f"hybridnet tasks={tasks}: {n:,} parameters (paper: not given)")
    joint = counts[("disparity", "segmentation")]
    assert 4.6e6 < joint < 4.9e6
    # the features network is shared: the joint network is smaller than the two single ones
    assert joint < counts[("disparity",)] + counts[("segmentation",)]
    small = count_parameters(get_model("hybridnet", width=16))
    print(f"hybridnet width 16: {small:,} parameters")
    assert 1.1e6 < small < 1.3e6


def test_registered_as_a_depth_network_and_the_stereo_ones_are_not():
    assert "hybridnet" in list_models()
    assert isinstance(get_model("hybridnet", **TINY), HybridNet)
    assert geometry_of(get_model("hybridnet", **TINY)) == "depth"
    assert geometry_of(get_model("esp_joint")) == "disparity"
    assert geometry_of(get_model("corr_mtl", width=4, max_disparity=32)) == "disparity"
    bad = nn.Module()
    bad.geometry = "flow"
    with pytest.raises(ValueError, match="geometry must be one of"):
        geometry_of(bad)
