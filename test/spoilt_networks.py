"""Real torch modules that wrap a pipeline's network and spoil what it returns (test helpers)."""

from __future__ import annotations

import torch
from torch import nn


class Spoiled(nn.Module):
    """The real network, with ``value`` written into one output for the next ``frames`` calls."""

    def __init__(self, inner: nn.Module, key: str, value: float, frames: int = 1) -> None:
        super().__init__()
        self.inner = inner
        self.key, self.value, self.frames = key, value, frames

    def forward(self, *x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = dict(self.inner(*x))
        if self.frames > 0:
            self.frames -= 1
            spoilt = out[self.key].clone(memory_format=torch.contiguous_format)
            spoilt.view(-1)[5] = self.value
            out[self.key] = spoilt
        return out


class OutOfMemoryOnce(nn.Module):
    """Raises torch.OutOfMemoryError on its first call, as the CUDA caching allocator does when
    a frame does not fit; this stands in for a GPU, which CI lacks."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.raised = False

    def forward(self, *x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.raised:
            self.raised = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.20 GiB")
        return self.inner(*x)
