"""The network can learn: one small synthetic pair with known disparity and labels is overfit."""

import numpy as np
import torch

from stereo_semantic_ros.losses import disparity_loss, joint_loss, segmentation_loss
from stereo_semantic_ros.networks import get_model
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


def test_tiny_overfit_halves_both_losses():
    torch.manual_seed(0)
    left, right, disparity, labels = make_pair()
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    xl = normalize(to_t(left), (127.5,) * 3, (64.0,) * 3)
    xr = normalize(to_t(right), (127.5,) * 3, (64.0,) * 3)
    batch = {
        "disparity": torch.from_numpy(disparity)[None, None],
        "valid": torch.ones(1, 1, 32, 64, dtype=torch.bool),
        "labels": torch.from_numpy(labels)[None],
    }
    model = get_model("esp_joint", max_disparity=16).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def losses():
        out = model(xl, xr)
        d = disparity_loss(out["disparity"], batch["disparity"], batch["valid"])
        s = segmentation_loss(out["seg_logits"], batch["labels"])
        return out, float(d.detach()), float(s.detach())

    _, d0, s0 = losses()
    for _ in range(40):
        out = model(xl, xr)
        loss, _ = joint_loss(out, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, d1, s1 = losses()
    print(f"disparity loss {d0:.3f} -> {d1:.3f}, segmentation loss {s0:.3f} -> {s1:.3f}")
    assert d1 < 0.5 * d0
    assert s1 < 0.5 * s0
