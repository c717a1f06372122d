"""Image preparation shared by the pipeline, training and evaluation (one implementation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, 3, H, W) RGB 0..255 (any dtype) -> float32 ``(x - mean) / std``, mean/std in 0..255."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return (images.float() - m) / s


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom and right with edge values to multiples of ``multiple``.

    Padding on the right keeps the left image's matches intact (they lie to the left), so the
    disparity of the cropped region is unaffected. Returns the padded tensor and the
    original (H, W).
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def hwc_to_bchw(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) channel-last images -> (B, 3, H, W), no copy."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    return images.permute(0, 3, 1, 2)
