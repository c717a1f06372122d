"""Every registered network can learn: one small pair (or image) with known geometry and labels
is overfit until both losses have halved."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from stereo_semantic_ros.losses import (
    depth_loss,
    disparity_loss,
    joint_loss,
    segmentation_loss,
)
from stereo_semantic_ros.networks import get_model, list_models
from stereo_semantic_ros.preprocess import normalize


def make_pair(h: int = 32, w: int = 64, seed: int = 0):
    """Random texture; the lower half (a near 'road' class) has disparity 8, the upper half 4."""
    rng = np.random.default_rng(seed)
    wide = rng.integers(0, 256, size=(h, w + 32, 3)).astype(np.float32)
    disparity = np.where(np.arange(h)[:, None] >= h // 2, 8.0, 4.0) * np.ones((1, w))
    left = np.zeros((h, w, 3), np.float32)
    right = np.zeros((h, w, 3), np.float32)
    for v in range(h):
        d = int(disparity[v, 0])
        left[v] = wide[v, 16 : 16 + w]
        right[v] = wide[v, 16 + d : 16 + d + w]  # right(u - d) == left(u)
    labels = np.where(np.arange(h)[:, None] >= h // 2, 0, 10) * np.ones((1, w), np.int64)
    return left, right, disparity.astype(np.float32), labels


@dataclass
class Case:
    """One architecture's overfit: the network, its inputs, and its losses of one output."""

    model: torch.nn.Module
    inputs: tuple[torch.Tensor, ...]
    losses: Callable[[dict], tuple[torch.Tensor, torch.Tensor]]  # geometric, segmentation
    total: Callable[[dict], torch.Tensor]
    steps: int


def esp_joint_case() -> Case:
    left, right, disparity, labels = make_pair()
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    xl = normalize(to_t(left), (127.5,) * 3, (64.0,) * 3)
    xr = normalize(to_t(right), (127.5,) * 3, (64.0,) * 3)
    batch = {
        "disparity": torch.from_numpy(disparity)[None, None],
        "valid": torch.ones(1, 1, 32, 64, dtype=torch.bool),
        "labels": torch.from_numpy(labels)[None],
    }
    return Case(
        model=get_model("esp_joint", max_disparity=16),
        inputs=(xl, xr),
        losses=lambda out: (
            disparity_loss(out["disparity"], batch["disparity"], batch["valid"]),
            segmentation_loss(out["seg_logits"], batch["labels"]),
        ),
        total=lambda out: joint_loss(out, batch)[0],
        steps=40,
    )


def corr_mtl_case() -> Case:
    """A textured pair (disparity 8 below, 4 above, two classes)."""
    rng = np.random.default_rng(0)
    h, w = 32, 64
    wide = torch.from_numpy(rng.normal(0.0, 1.0, (3, h, w + 32)).astype(np.float32))
    lower = torch.arange(h)[:, None] >= h // 2
    disparity = torch.where(lower, 8.0, 4.0).expand(h, w)
    left = wide[:, :, 16 : 16 + w]
    right = torch.stack([wide[:, v, 16 + int(disparity[v, 0]) :][:, :w] for v in range(h)], 1)
    assert torch.equal(right[:, 20, 10 - 8], left[:, 20, 10])  # right(u - d) == left(u)
    labels = torch.where(lower, 0, 10).expand(h, w)[None].long()
    target, valid = disparity[None, None], torch.ones(1, 1, h, w, dtype=torch.bool)

    def losses(out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        d = disparity_loss(out["disparity"], target, valid)
        return d, segmentation_loss(out["seg_logits"], labels)

    return Case(
        model=get_model("corr_mtl", max_disparity=16, width=8),
        inputs=(left[None], right[None]),
        losses=losses,
        total=lambda out: 5 * losses(out)[0] + losses(out)[1],
        steps=60,
    )


def hybridnet_case() -> Case:
    """One textured image (depth 4 m below, 20 m above, two classes)."""
    h, w = 32, 64
    image = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    lower = torch.arange(h)[:, None] >= h // 2
    depth = torch.where(lower, 4.0, 20.0).expand(1, 1, h, w)
    labels = torch.where(lower, 0, 10).expand(1, h, w).long()
    valid = torch.ones(1, 1, h, w, dtype=torch.bool)

    def losses(out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        d = depth_loss(out["depth"], depth, valid)
        return d, segmentation_loss(out["seg_logits"], labels)

    return Case(
        model=get_model("hybridnet", width=8, max_depth=50.0, aspp_rates=(1, 2)),
        inputs=(image,),
        losses=losses,
        total=lambda out: losses(out)[0] + 1000 * losses(out)[1],  # the paper's alpha = 1000
        steps=60,
    )


def pseudo_mtl_case() -> Case:
    """One textured image whose pseudo disparity is 8 px below and 4 px above (fx * B = 80:
    depth 10 m and 20 m), two classes; seed 003's supervised losses with the paper's weights."""
    from stereo_semantic_ros.mono_losses import confidence_l1

    h, w = 32, 64
    image = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    lower = torch.arange(h)[:, None] >= h // 2
    disparity = torch.where(lower, 8.0, 4.0).expand(1, 1, h, w)
    labels = torch.where(lower, 0, 10).expand(1, h, w).long()
    confidence = torch.ones(1, 1, h, w)

    def losses(out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        d = confidence_l1(confidence, 80.0 / out["depth"] / w, disparity / w)
        return d, segmentation_loss(out["seg_logits"], labels)

    return Case(
        model=get_model("pseudo_mtl", width=8, max_depth=50.0),
        inputs=(image,),
        losses=losses,
        total=lambda out: 850 * losses(out)[0] + 2.5 * losses(out)[1],  # a_d, a_s
        steps=60,
    )


def synchronized_case() -> Case:
    """One textured image (depth 4 m below, 20 m above, two classes), the package's depth loss
    and cross-entropy, as synchronized's recipe weighs them."""
    h, w = 32, 64
    image = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    lower = torch.arange(h)[:, None] >= h // 2
    depth = torch.where(lower, 4.0, 20.0).expand(1, 1, h, w)
    labels = torch.where(lower, 0, 10).expand(1, h, w).long()
    valid = torch.ones(1, 1, h, w, dtype=torch.bool)

    def losses(out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        d = depth_loss(out["depth"], depth, valid)
        return d, segmentation_loss(out["seg_logits"], labels)

    return Case(
        model=get_model("synchronized", width=8, max_depth=50.0),
        inputs=(image,),
        losses=losses,
        total=lambda out: losses(out)[0] + 1000 * losses(out)[1],
        steps=60,
    )


CASES = {
    "esp_joint": esp_joint_case,
    "corr_mtl": corr_mtl_case,
    "hybridnet": hybridnet_case,
    "pseudo_mtl": pseudo_mtl_case,
    "synchronized": synchronized_case,
}


def test_every_registered_architecture_has_an_overfit_case():
    assert sorted(CASES) == list_models()


@pytest.mark.parametrize("arch", list_models())
def test_tiny_overfit_halves_both_losses(arch):
    torch.manual_seed(0)
    case = CASES[arch]()
    model = case.model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def losses() -> tuple[float, float]:
        d, s = case.losses(model(*case.inputs))
        return float(d.detach()), float(s.detach())

    d0, s0 = losses()
    for _ in range(case.steps):
        loss = case.total(model(*case.inputs))
        opt.zero_grad()
        loss.backward()
        opt.step()
    d1, s1 = losses()
    print(f"{arch}: geometric loss {d0:.3f} -> {d1:.3f}, segmentation loss {s0:.3f} -> {s1:.3f}")
    assert d1 < 0.5 * d0
    assert s1 < 0.5 * s0
