"""Building blocks of the two encoder-decoder single-image networks, ``pseudo_mtl`` (seed 003) and
``synchronized`` (seed 004): a VGG-style encoder that keeps its stage outputs for skip
connections, the decoder that mirrors it, a DDPM-style self-attention block and the inverse-depth
head. Kept here rather than in :mod:`~stereo_semantic_ros.networks.blocks` because only these two
architectures use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stereo_semantic_ros.networks.blocks import ConvBNAct, NormLayer, upsample_to

INITIAL_LOGIT = -4.0
"""Starting bias of :class:`InverseDepthHead` (see there)."""
VGG16_CONVS = (2, 2, 3, 3, 3)
"""3x3 convolutions per stage of VGG-16's convolutional part (13 in all)."""


def stage_channels(width: int, stages: int = 5) -> tuple[int, ...]:
    """VGG's channel progression scaled by ``width``: w, 2w, 4w, 8w, 8w (64 .. 512 at w = 64)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    return tuple(width * min(2**i, 8) for i in range(stages))


class VggEncoder(nn.Module):
    """VGG's convolutional layers: stage ``i`` is ``convs[i]`` 3x3 conv units at 1/2^i
    resolution, followed by 2x2 max pooling.

    ``forward`` returns every stage's output before its pooling (the skip connections, at 1,
    1/2, ..., 1/2^(n-1)) and, last, the pooled output of the last stage (the bottleneck, at
    1/2^n): ``n + 1`` tensors.
    """

    def __init__(
        self, channels: Sequence[int], convs: Sequence[int], norm_layer: NormLayer
    ) -> None:
        super().__init__()
        if len(channels) != len(convs) or not channels or min(convs) < 1:
            raise ValueError(
                f"need one conv count >= 1 per stage, got channels {tuple(channels)}, "
                f"convs {tuple(convs)}"
            )
        self.channels = tuple(int(c) for c in channels)
        stages = []
        c_in = 3
        for c, n in zip(self.channels, convs):
            units = [ConvBNAct(c_in if k == 0 else c, c, norm_layer=norm_layer) for k in range(n)]
            stages.append(nn.Sequential(*units))
            c_in = c
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [(B, c_0, H, W), ..., (B, c_{n-1}, H/2^(n-1), ...), bottleneck
        (B, c_{n-1}, H/2^n, W/2^n)]."""
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
            x = F.max_pool2d(x, 2)
        feats.append(x)
        return feats


class UNetDecoder(nn.Module):
    """The encoder's mirror image: from the bottleneck, per stage (deepest first) a bilinear x2
    upsampling, concatenation with that stage's skip, and ``convs`` 3x3 conv units back to the
    stage's width; a 3x3 unit at the bottleneck first.

    Args:
        channels: the encoder's stage widths (shallowest first); the output has ``channels[0]``.
        convs: conv units per decoder stage (2 each: the decoders are "designed symmetrically"
            but lighter than VGG's 3-conv stages).
    """

    def __init__(self, channels: Sequence[int], norm_layer: NormLayer, convs: int = 2) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        self.bottleneck = ConvBNAct(channels[-1], channels[-1], norm_layer=norm_layer)
        stages = []
        c_in = channels[-1]
        for c in reversed(channels):
            units = [ConvBNAct(c_in + c, c, norm_layer=norm_layer)]
            units += [ConvBNAct(c, c, norm_layer=norm_layer) for _ in range(convs - 1)]
            stages.append(nn.Sequential(*units))
            c_in = c
        self.stages = nn.ModuleList(stages)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """``feats`` as :class:`VggEncoder` returns them -> (B, channels[0], H, W)."""
        *skips, x = feats
        x = self.bottleneck(x)
        for stage, skip in zip(self.stages, reversed(skips)):
            x = upsample_to(x, (skip.shape[-2], skip.shape[-1]))
            x = stage(torch.cat([x, skip], 1))
        return x


class SelfAttention2d(nn.Module):
    """DDPM's attention block: group norm, single-head dot-product attention over all positions,
    1x1 output projection, added to the input (a residual, so it can start as a near identity)."""

    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__()
        groups = max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(q.transpose(1, 2) @ k / c**0.5, dim=-1)  # (B, hw, hw)
        out = (v @ attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj(out)


class InverseDepthHead(nn.Module):
    """3x3 conv to one channel, read as inverse depth through a sigmoid (Monodepth's
    ``disp_to_depth``): ``1 / Z = 1 / max_depth + (1 / min_depth - 1 / max_depth) * sigmoid``,
    so depth lies in [min_depth, max_depth] and the output is linear in disparity, the quantity
    a stereo teacher supervises.

    The conv's bias starts at :data:`INITIAL_LOGIT`: a sigmoid of 0.5 would be the harmonic mean
    of the range (1 m for 0.5 .. 100 m), i.e. a disparity near the top of any rig's range, and
    the first steps would be spent pulling every pixel back; sigmoid(-4) starts at about a
    fiftieth of the inverse-depth range (22 m for 0.5 .. 100 m), where most pixels of a street
    scene are."""

    def __init__(self, in_channels: int, min_depth: float, max_depth: float) -> None:
        super().__init__()
        if not 0 < min_depth < max_depth:
            raise ValueError(
                f"need 0 < min_depth < max_depth, got min_depth {min_depth}, max_depth {max_depth}"
            )
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1)
        nn.init.constant_(self.conv.bias, INITIAL_LOGIT)
        self.min_inv = 1.0 / float(max_depth)
        self.max_inv = 1.0 / float(min_depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) features -> (B, 1, H, W) depth in metres (float32)."""
        inv = self.min_inv + (self.max_inv - self.min_inv) * torch.sigmoid(self.conv(x).float())
        return 1.0 / inv
