"""The census matching cost and esp_joint's matching_cost option (the transfer-to-real variant)."""

import numpy as np
import pytest
import torch
from test_overfit import make_pair

from stereo_semantic_ros.losses import disparity_loss
from stereo_semantic_ros.networks import get_model
from stereo_semantic_ros.networks.blocks import census_cost_volume, census_transform


def _shifted_pair(h: int = 32, w: int = 96, d: int = 7, seed: int = 0):
    """Random texture and its copy shifted so that right(u - d) == left(u)."""
    g = torch.Generator().manual_seed(seed)
    wide = torch.rand(1, 3, h, w + d, generator=g)
    return wide[..., :w], wide[..., d:]


def test_census_ignores_gain_offset_and_gamma():
    """Only the order of grey values matters: the reason it transfers across cameras."""
    # grey (equal channels): a per-channel gamma would not be monotone in the channel mean
    image = torch.rand(1, 1, 24, 40, generator=torch.Generator().manual_seed(1)).expand(
        1, 3, 24, 40
    )
    codes = census_transform(image)
    assert codes.shape == (1, 48, 24, 40)
    assert set(codes.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(census_transform(0.6 * image**1.8 + 0.1), codes)
    assert not torch.equal(census_transform(image.flip(-1)), codes)


def test_census_cost_is_lowest_at_the_true_disparity():
    left, right = _shifted_pair(d=7)
    cost = census_cost_volume(left, right, max_disparity=16)
    assert cost.shape == (1, 16, 16, 48)
    assert float(cost.min()) >= 0.0 and float(cost.max()) <= 1.0
    interior = cost[..., 3:-3, 8:-4]  # away from the borders the 7x7 patch replicates
    assert (interior.argmin(1) == 7).float().mean() > 0.98
    assert float(interior[:, 7].max()) == 0.0
    # left columns whose match would lie left of the right image cost 1
    assert torch.all(cost[:, 15, :, :7] == 1.0)


def test_census_cost_rejects_odd_sizes_and_bad_windows():
    left, right = _shifted_pair(h=31)
    with pytest.raises(ValueError, match="even image size"):
        census_cost_volume(left, right, 8)
    with pytest.raises(ValueError, match="odd and >= 3"):
        census_transform(left, window=4)


@pytest.mark.parametrize("matching_cost", ["census", "concat+census"])
def test_esp_joint_census_variants_shapes_and_gradients(matching_cost):
    torch.manual_seed(0)
    model = get_model(
        "esp_joint",
        max_disparity=16,
        volume_channels=8,
        num_res_blocks=1,
        matching_cost=matching_cost,
    )
    concat = get_model("esp_joint", max_disparity=16, volume_channels=8, num_res_blocks=1)
    assert hasattr(model, "reduce") == ("concat" in matching_cost)
    # the regulariser outputs the 4 full-precision disparities of each 1/4 level
    assert model.regulariser[-1].out_channels == 4 and concat.regulariser[-1].out_channels == 1
    left, right = _shifted_pair(h=32, w=64, d=5)
    out = model(left, right)
    assert out["disparity"].shape == (1, 1, 32, 64)
    assert out["confidence"].shape == (1, 1, 32, 64)
    assert float(out["disparity_coarse"].min()) >= 0 and float(out["disparity_coarse"].max()) <= 15
    out["disparity"].mean().backward()
    assert model.regulariser[0].weight.grad is not None
    assert float(model.regulariser[0].weight.grad.abs().sum()) > 0


def test_esp_joint_refuses_an_unknown_matching_cost():
    with pytest.raises(ValueError, match="matching_cost must be one of"):
        get_model("esp_joint", matching_cost="sad")


def test_esp_joint_census_learns_a_pair():
    """The census variant overfits a textured pair: the disparity loss more than halves."""
    torch.manual_seed(0)
    left, right, disparity, _ = make_pair()
    to_t = lambda a: torch.from_numpy(a / 255.0).permute(2, 0, 1)[None].float()  # noqa: E731
    xl, xr = to_t(left), to_t(right)
    target = torch.from_numpy(disparity)[None, None]
    valid = torch.ones_like(target, dtype=torch.bool)
    model = get_model(
        "esp_joint",
        max_disparity=16,
        volume_channels=8,
        num_res_blocks=1,
        matching_cost="census",
        tasks=("disparity",),
    ).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = None
    for _ in range(40):
        loss = disparity_loss(model(xl, xr)["disparity"], target, valid)
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = float(disparity_loss(model(xl, xr)["disparity"], target, valid))
    print(f"disparity loss {first:.3f} -> {last:.3f}")
    assert np.isfinite(last) and last < 0.5 * first


def test_corr_mtl_census_variant_feeds_the_trunk():
    """correlation+census adds one census channel per disparity to the trunk's input, and the
    trunk's first convolution gets gradients from it."""
    torch.manual_seed(0)
    paper = get_model("corr_mtl", max_disparity=32, width=8)
    model = get_model("corr_mtl", max_disparity=32, width=8, matching_cost="correlation+census")
    assert model.conv3_1[0].in_channels == paper.conv3_1[0].in_channels + 32
    left, right = _shifted_pair(h=64, w=96, d=5)
    out = model(left, right)
    assert out["disparity"].shape == (1, 1, 64, 96) and out["seg_logits"].shape[-2:] == (64, 96)
    out["disparity"].mean().backward()
    census_weights = model.conv3_1[0].weight.grad[:, -32:]
    assert float(census_weights.abs().sum()) > 0
    with pytest.raises(ValueError, match="matching_cost must be one of"):
        get_model("corr_mtl", matching_cost="census")


def test_corr_mtl_census_in_head_matches_before_training():
    """census_in_head: the untrained network already finds a textured pair's shift (the census
    cost reaches the soft-argmin), and the gain gets gradients; the paper's head does not."""
    torch.manual_seed(0)
    left, right = _shifted_pair(h=64, w=128, d=9)
    kwargs = dict(max_disparity=32, width=8, matching_cost="correlation+census")
    head = get_model("corr_mtl", census_in_head=True, **kwargs).eval()
    trunk_only = get_model("corr_mtl", **kwargs).eval()
    inner = (..., slice(8, 56), slice(40, 120))  # away from the left border's missing partner
    with torch.no_grad():
        found = float(head(left, right)["disparity"][inner].median())
        untrained = float(trunk_only(left, right)["disparity"][inner].median())
    assert abs(found - 9) < 0.5, found
    assert abs(untrained - 9) > 2, untrained
    out = head.train()(left, right)
    out["disparity"].mean().backward()
    assert float(head.census_gain.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="census_in_head needs"):
        get_model("corr_mtl", census_in_head=True)
