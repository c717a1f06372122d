"""The synchronized network (seed 004): forward contract, zero-initialised links that make the
joined network the two separate UNets at initialisation yet receive gradients, the links wired
level by level, single-task and link-free variants, and the contrastive loss."""

import pytest
import torch

from stereo_semantic_ros.mono_losses import contrastive_loss
from stereo_semantic_ros.networks.contract import network_traits
from stereo_semantic_ros.networks.synchronized import Synchronized

TINY = {"width": 4, "encoder_convs": (1, 1, 1, 1, 1), "embedding_dim": 8, "num_classes": 5}


def _joined_and_separate(**kw):
    torch.manual_seed(0)
    joined = Synchronized(**TINY, **kw).eval()
    depth = Synchronized(**TINY, tasks=["disparity"]).eval()
    seg = Synchronized(**TINY, tasks=["segmentation"]).eval()
    state = joined.state_dict()
    for part in (depth, seg):
        part.load_state_dict({k: v for k, v in state.items() if k in part.state_dict()})
    return joined, depth, seg


@pytest.mark.parametrize("size", [(32, 32), (64, 96)])
def test_forward_contract(size):
    net = Synchronized(min_depth=1.0, max_depth=50.0, **TINY).eval()
    h, w = size
    with torch.no_grad():
        out = net(torch.randn(2, 3, h, w), torch.randn(2, 3, h, w))
    assert set(out) == {"depth", "seg_logits"}
    assert out["depth"].shape == (2, 1, h, w) and out["seg_logits"].shape == (2, 5, h, w)
    assert ((out["depth"] >= 1.0) & (out["depth"] <= 50.0)).all()
    traits = network_traits(net)
    assert traits.geometry == "depth" and traits.stride == 32
    with pytest.raises(ValueError, match="not a multiple of 32"):
        net(torch.zeros(1, 3, 40, 64))
    for bad, words in [
        ({"encoder_convs": (1, 1)}, "five counts"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"min_depth": 3.0, "max_depth": 2.0}, "0 < min_depth < max_depth"),
        ({"max_disparity": 10}, "multiple of 4"),
    ]:
        with pytest.raises(ValueError, match=words):
            Synchronized(**{**TINY, **bad})


def test_zero_initialised_links_make_the_joined_network_the_separate_unets():
    joined, depth, seg = _joined_and_separate()
    links = [*joined.seg_to_depth, *joined.depth_to_seg]
    assert len(links) == 12 and all(
        z.kernel_size == (1, 1) and not z.weight.any() and not z.bias.any() for z in links
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = joined(x)
        torch.testing.assert_close(out["depth"], depth(x)["depth"], rtol=0, atol=0)
        torch.testing.assert_close(out["seg_logits"], seg(x)["seg_logits"], rtol=0, atol=0)


def test_each_link_carries_the_other_encoders_level_into_this_decoder():
    joined, depth, seg = _joined_and_separate()
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        for level in range(6):
            joined.seg_to_depth[level].weight.normal_()
            out = joined(x)
            # the depth decoder now sees the segmentation encoder; the other direction is closed
            # (at initialisation deep levels move the output only a little: exact comparison)
            assert (out["depth"] - depth(x)["depth"]).abs().max() > 0, level
            torch.testing.assert_close(out["seg_logits"], seg(x)["seg_logits"], rtol=0, atol=0)
            joined.seg_to_depth[level].weight.zero_()


def test_at_initialisation_gradients_reach_the_links_but_not_across_them():
    """ControlNet's point: a zero convolution's output is 0, yet its weight's gradient is not
    (it is the input), so training can open the link; the other UNet gets nothing until then."""
    torch.manual_seed(0)
    net = Synchronized(**TINY).train()
    out = net(torch.randn(2, 3, 32, 64))
    out["depth"].mean().backward()
    assert all(z.weight.grad.abs().sum() > 0 for z in net.seg_to_depth)
    assert all(p.grad is None or not p.grad.any() for p in net.seg_net.parameters())
    assert any(p.grad is not None and p.grad.any() for p in net.depth_net.parameters())


def test_variants_without_links_or_with_one_task():
    plain = Synchronized(**TINY, links=False)
    assert not hasattr(plain, "seg_to_depth") and hasattr(plain, "depth_embed")
    depth = Synchronized(**TINY, tasks=["disparity"])
    assert not hasattr(depth, "seg_net") and not hasattr(depth, "depth_embed")
    assert set(depth.eval()(torch.randn(1, 3, 32, 32))) == {"depth"}
    with pytest.raises(ValueError, match="both tasks"):
        depth.contrastive_embeddings(torch.ones(1, 1, 32, 32), torch.ones(1, 5, 32, 32))
    # without links the same weights give the same outputs as the joined network at init
    joined, _, _ = _joined_and_separate()
    plain.load_state_dict({k: v for k, v in joined.state_dict().items() if k in plain.state_dict()})
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x)["depth"], joined(x)["depth"])


def test_contrastive_loss_trains_the_map_encoders_and_both_unets():
    torch.manual_seed(0)
    net = Synchronized(**TINY).train()
    out = net(torch.randn(3, 3, 32, 64))
    disparity = torch.rand(3, 1, 32, 64) * 8 + 1
    batch = {
        "disparity": disparity,
        "valid": disparity > 2,
        "fx": torch.full((3,), 50.0),
        "baseline": torch.full((3,), 0.5),
        "labels": torch.randint(0, 5, (3, 32, 64)),
    }
    loss = contrastive_loss(net, out, batch)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    for part in (net.depth_embed, net.seg_embed, net.depth_net, net.seg_net):
        assert any(p.grad is not None and p.grad.any() for p in part.parameters())
    assert net.logit_scale.grad is not None
    a, b = net.contrastive_embeddings(out["depth"], torch.softmax(out["seg_logits"], 1))
    assert a.shape == b.shape == (3, 8)
    # CLIP clips its learned scale at 100
    with torch.no_grad():
        net.logit_scale.fill_(10.0)
    assert float(net.clip_logit_scale.detach().exp()) == pytest.approx(100.0)
