"""Unit tests of the building blocks and the ESP joint network's contract."""

import pytest
import torch

from stereo_semantic_ros.networks import get_model, list_models
from stereo_semantic_ros.networks.blocks import (
    ESPBlock,
    concat_cost_volume,
    count_parameters,
    soft_argmin,
)
from stereo_semantic_ros.networks.contract import (
    GEOMETRIES,
    OUTPUTS,
    TASKS,
    StereoNetwork,
    network_traits,
)
from stereo_semantic_ros.networks.esp_joint import ESPJointNet
from stereo_semantic_ros.networks.registry import hyper_parameters, register_model


def test_esp_block_shapes_and_dilations():
    block = ESPBlock(19, 64, branches=5, stride=2)
    y = block(torch.randn(2, 19, 32, 48))
    assert y.shape == (2, 64, 16, 24)
    # K branches with dilation 2**(k-1); the first takes the remainder channels (64 = 16 + 4*12)
    assert [b.dilation[0] for b in block.branches] == [1, 2, 4, 8, 16]
    assert [b.out_channels for b in block.branches] == [16, 12, 12, 12, 12]
    assert not block.residual and ESPBlock(64, 64).residual


def test_esp_block_hierarchical_feature_fusion():
    """The k-th concatenated slice equals the cumulative sum of branches 2..k (HFF)."""
    block = ESPBlock(10, 10, branches=5).eval()
    block.norm = torch.nn.Identity()
    block.act = torch.nn.Identity()
    block.residual = False
    x = torch.randn(1, 10, 20, 20)
    with torch.no_grad():
        reduced = block.reduce(x)
        branch_out = [b(reduced) for b in block.branches]
        y = block(x)
    assert torch.allclose(y[:, :2], branch_out[0], atol=1e-6)
    cumulative = torch.zeros_like(branch_out[1])
    for k in range(1, 5):
        cumulative = cumulative + branch_out[k]
        assert torch.allclose(y[:, 2 * k : 2 * k + 2], cumulative, atol=1e-5)


def test_cost_volume_entries_equal_shifted_features():
    left = torch.randn(1, 4, 5, 12)
    right = torch.randn(1, 4, 5, 12)
    vol = concat_cost_volume(left, right, levels=6)
    assert vol.shape == (1, 8, 6, 5, 12)
    for d in range(6):
        for x in range(12):
            if x >= d:
                assert torch.equal(vol[0, :4, d, :, x], left[0, :, :, x])
                assert torch.equal(vol[0, 4:, d, :, x], right[0, :, :, x - d])
            else:
                assert torch.count_nonzero(vol[0, :, d, :, x]) == 0


def test_soft_argmin_recovers_peaked_disparity():
    true = torch.tensor([[3.0, 17.0], [40.0, 0.0]])
    d = torch.arange(48.0).view(48, 1, 1)
    cost = 20.0 * (d - true) ** 2  # sharp minimum at the true disparity
    disp, conf = soft_argmin(cost.unsqueeze(0))
    assert torch.allclose(disp[0, 0], true, atol=1e-3)
    assert (conf > 0.99).all()
    flat_disp, flat_conf = soft_argmin(torch.zeros(1, 48, 2, 2))
    assert torch.allclose(flat_disp, torch.full_like(flat_disp, 23.5))
    assert torch.allclose(flat_conf, torch.full_like(flat_conf, 1 / 48))


def test_parameter_count_matches_paper():
    paper = {
        ("disparity", "segmentation"): 0.64e6,
        ("disparity",): 0.57e6,
        ("segmentation",): 0.21e6,
    }
    for tasks, expected in paper.items():
        n = count_parameters(get_model("esp_joint", num_classes=19, max_disparity=192, tasks=tasks))
        print(f"esp_joint tasks={tasks}: {n:,} parameters (paper {expected / 1e6:.2f}M)")
        assert abs(n - expected) / expected < 0.20


@pytest.mark.parametrize("size", [(32, 64), (40, 96)])
def test_forward_contract(size):
    model = get_model("esp_joint", max_disparity=32).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = model(x, x.flip(-1))
    h, w = size
    assert out["disparity"].shape == (2, 1, h, w)
    assert out["confidence"].shape == (2, 1, h, w)
    assert out["seg_logits"].shape == (2, 19, h, w)
    assert out["seg_logits_coarse"].shape == (2, 19, h // 8, w // 8)
    assert torch.isfinite(out["disparity"]).all()
    assert ((out["confidence"] >= 1 / 32 - 1e-6) & (out["confidence"] <= 1 + 1e-6)).all()


def test_forward_rejects_bad_shapes():
    model = get_model("esp_joint", max_disparity=16).eval()
    with pytest.raises(ValueError, match="multiple of 8"):
        model(torch.randn(1, 3, 30, 64), torch.randn(1, 3, 30, 64))
    with pytest.raises(ValueError, match="right must match"):
        model(torch.randn(1, 3, 32, 64), torch.randn(1, 3, 32, 72))
    with pytest.raises(ValueError, match="multiple of 4"):
        ESPJointNet(max_disparity=30)


def test_single_task_variants():
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        seg_only = get_model("esp_joint", tasks=["segmentation"]).eval()(x)
        disp_only = get_model("esp_joint", max_disparity=16, tasks=["disparity"]).eval()(x, x)
    assert set(seg_only) == {"seg_logits", "seg_logits_coarse"}
    assert "seg_logits" not in disp_only and disp_only["disparity"].shape == (1, 1, 32, 64)


def test_registry_refuses_duplicates_and_unknown_names():
    assert "esp_joint" in list_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model("esp_joint", ESPJointNet)(lambda: None)
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        get_model("nope")


# --- the contract, for every registered architecture (torchvision's test_models style) ---------

TINY_RECIPES = {
    "esp_joint": "tiny_test.yaml",
    "corr_mtl": "corr_mtl_tiny_test.yaml",
    "hybridnet": "hybridnet_tiny_test.yaml",
    "pseudo_mtl": "pseudo_mtl_tiny_test.yaml",
    "synchronized": "synchronized_tiny_test.yaml",
}


def _tiny(arch: str) -> dict:
    from pathlib import Path

    from stereo_semantic_ros.training.config import load_config

    recipe = Path(__file__).resolve().parent.parent / "config" / "train" / TINY_RECIPES[arch]
    return dict(load_config(recipe).model.hyper_parameters)


@pytest.mark.parametrize("arch", list_models())
def test_every_registered_network_keeps_the_contract(arch):
    model = get_model(arch, **_tiny(arch)).eval()
    assert isinstance(model, StereoNetwork)
    traits = network_traits(model)
    assert traits.tasks == TASKS and traits.geometry in GEOMETRIES
    h, w = 2 * traits.stride, 3 * traits.stride
    left, right = torch.randn(2, 3, h, w), torch.randn(2, 3, h, w)
    with torch.no_grad():
        out = model(left, right)
    wanted = {
        k for k, (task, geometry, _) in OUTPUTS.items() if geometry in (traits.geometry, "any")
    }
    assert wanted <= set(out)
    for key in wanted:
        assert out[key].shape[0] == 2 and out[key].shape[-2:] == (h, w), key
    with pytest.raises(ValueError, match=f"multiple of {traits.stride}"):
        model(torch.randn(1, 3, h + 1, w), torch.randn(1, 3, h + 1, w))
    # the builder forwards to the class: its hyper-parameters are the class's, listed once
    params = hyper_parameters(arch)
    assert {"num_classes", "max_disparity", "tasks"} <= set(params)
    assert "norm_layer" not in params and type(get_model(arch, **_tiny(arch))) is type(model)
