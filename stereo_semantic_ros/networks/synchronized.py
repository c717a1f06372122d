"""Synchronized (seed 004, "Synchronized learning of depth estimation and semantic
segmentation"): two task UNets joined ControlNet-style, and a CLIP-style contrastive loss.

Each task has its own network, a UNet (paper Sec. 4: "each of these networks is a UNet
architecture ... with attention layers after the convolutional blocks", from DDPM). They are
joined (Sec. 3.2, Fig. 4) by zero-initialised 1x1 convolutions: every encoder level's output of
the depth UNet passes through its own zero convolution and is added to the segmentation UNet's
decoder input of that level (the skip connection, and the bottleneck), and the other way round.
Weights and biases of those convolutions start at 0, so at initialisation the joined network
computes exactly what the two separate UNets compute; a link only starts to matter once training
finds it useful (ControlNet's "sudden convergence"). A CLIP-style contrastive loss (Sec. 3.1)
between embeddings of the depth map and of the segmentation map of the same image ties the two
tasks' predictions together (:func:`~stereo_semantic_ros.mono_losses.contrastive_loss`).

It sees the LEFT image only and predicts depth in metres (``geometry = "depth"``); the pipeline
turns it into disparity with the pair's calibration, ``d = fx * B / Z - doffs``.

Layout, for an input (B, 3, H, W) and ``w = width``, per task::

    encoder            stages of 3x3 conv units ([w], [2w], [4w], [8w], [8w]; ``encoder_convs``
                       per stage), 2x2 max pooling after each               [1 .. 1/32]
    attention          DDPM's self-attention block on the bottleneck        [1/32]
    links              1x1 conv (zero-initialised) from every level of the OTHER task's
                       encoder, added to this task's skip / bottleneck
    decoder            3x3 unit at 1/32; per stage x2 bilinear, concatenation with the skip,
                       two 3x3 units                                          [1/16 .. 1]
    head               depth: 3x3 to 1 channel, inverse depth through a sigmoid onto
                       [1/max_depth, 1/min_depth]; segmentation: 3x3 to C class scores
    map encoders       (training only, for the contrastive loss) depth map (as min_depth / Z,
                       with a validity channel) and class probabilities, each: 4x average
                       pooling, four stride-2 3x3 units (w .. 8w), global average pooling,
                       linear to ``embedding_dim``; one learned temperature (CLIP: from 1/0.07)

The paper is a short workshop report and leaves most of this open; the choices made here, and
why:

* UNets: the paper's proof of concept is a DDPM-style UNet; here it is the VGG-style encoder and
  mirrored decoder of :mod:`~stereo_semantic_ros.networks.unet_blocks` (the same blocks as
  pseudo_mtl, so the two single-image architectures differ by what the paper changes), with one
  DDPM attention block at the bottleneck (``attention``) -- attention at every level is too slow
  on a CPU and DDPM itself only uses it at 16x16.
* Links: every encoder level, skip connections and bottleneck alike (ControlNet adds its zero
  convolutions to every skip connection and the middle block); the link reads the other encoder's
  features before they received anything from this one, so the two directions do not feed each
  other in a loop. ``links = False`` is the ablation "without the zero-conv links".
* Contrastive model: the paper trains a CLIP model with two ViT image encoders on ground-truth
  depth/segmentation pairs and adds its score for the predicted pair to both task losses. Here
  the two map encoders are small CNNs that live in this network (so a checkpoint carries them)
  and learn in the same run, on the ground-truth pair and on the predicted one (see
  :func:`~stereo_semantic_ros.mono_losses.contrastive_loss`); inference never runs them.
* Scale: width 8 gives 1.03M parameters for 19 classes (0.06M of them in the map
  encoders), trainable on a CPU; conv -> batch norm -> leaky ReLU units, no pretrained weights.
* Depth output and confidence: as pseudo_mtl (an inverse-depth sigmoid; no confidence, the
  pipeline reports 1.0). ``max_disparity`` is the range the pipeline reports and keeps.
* Single-task variants: ``tasks = ("disparity",)`` or ``("segmentation",)`` is that task's UNet
  alone (no links, no map encoders): the paper's baseline "without our proposed changes".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from stereo_semantic_ros.networks.blocks import ConvBNAct, NormLayer
from stereo_semantic_ros.networks.contract import TASKS, StereoNetwork, check_tasks
from stereo_semantic_ros.networks.registry import register_model
from stereo_semantic_ros.networks.unet_blocks import (
    InverseDepthHead,
    SelfAttention2d,
    UNetDecoder,
    VggEncoder,
    stage_channels,
)

CLIP_INITIAL_TEMPERATURE = 0.07
"""CLIP's initial softmax temperature (its logit scale starts at log(1 / 0.07))."""
CLIP_MAX_LOGIT_SCALE = math.log(100.0)
"""CLIP clips the learned logit scale at 100."""


def zero_conv(channels: int) -> nn.Conv2d:
    """ControlNet's zero convolution: 1x1, weight and bias 0."""
    conv = nn.Conv2d(channels, channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class MapEncoder(nn.Sequential):
    """A dense map (B, in, H, W) -> an embedding (B, dim): 4x average pooling, four stride-2
    3x3 units, global average pooling, linear."""

    def __init__(self, in_channels: int, width: int, dim: int, norm_layer: NormLayer) -> None:
        chans = (in_channels, width, 2 * width, 4 * width, 8 * width)
        super().__init__(
            nn.AvgPool2d(4, ceil_mode=True),
            *(ConvBNAct(chans[i], chans[i + 1], stride=2, norm_layer=norm_layer) for i in range(4)),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8 * width, dim),
        )


class UNet(nn.Module):
    """One task's UNet: encoder, optional bottleneck attention, decoder (head kept outside)."""

    def __init__(
        self,
        channels: Sequence[int],
        convs: Sequence[int],
        attention: bool,
        norm_layer: NormLayer,
    ) -> None:
        super().__init__()
        self.encoder = VggEncoder(channels, convs, norm_layer)
        self.attention = SelfAttention2d(channels[-1]) if attention else None
        self.decoder = UNetDecoder(channels, norm_layer)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.encoder(x)
        if self.attention is not None:
            feats[-1] = self.attention(feats[-1])
        return feats


class Synchronized(StereoNetwork):
    """Depth and segmentation UNets joined by zero-initialised 1x1 convolutions, from one image.

    Args:
        num_classes: semantic classes C.
        width: w, channel unit of each UNet (stages w, 2w, 4w, 8w, 8w) and of the map encoders.
        min_depth, max_depth: range of the predicted depth, metres (0 < min < max).
        max_disparity: disparity range the pipeline reports and keeps, pixels at network
            resolution (multiple of 4); not used by the network itself.
        encoder_convs: 3x3 conv units per encoder stage; five stages.
        attention: a DDPM self-attention block on each UNet's bottleneck.
        links: the zero-initialised 1x1 convolutions between the UNets (both tasks only).
        embedding_dim: size of the contrastive embeddings (both tasks only).
        tasks: any non-empty subset of ("disparity", "segmentation"); ``disparity`` is served by
            the ``depth`` output.
        norm_layer: 2D normalisation layer constructor.
    """

    stride = 32
    """Input height and width must be multiples of this (five 2x2 poolings)."""
    geometry = "depth"
    """The geometric output is ``depth`` in metres from one image (not ``disparity``)."""

    def __init__(
        self,
        *,
        num_classes: int = 19,
        width: int = 8,
        min_depth: float = 0.5,
        max_depth: float = 100.0,
        max_disparity: int = 192,
        encoder_convs: Sequence[int] = (2, 2, 2, 2, 2),
        attention: bool = True,
        links: bool = True,
        embedding_dim: int = 64,
        tasks: Sequence[str] = TASKS,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        tasks = check_tasks(tasks)
        if max_disparity % 4 or max_disparity <= 0:
            raise ValueError(f"max_disparity must be a positive multiple of 4, got {max_disparity}")
        convs = tuple(int(n) for n in encoder_convs)
        if len(convs) != 5 or min(convs) < 1:
            raise ValueError(f"encoder_convs must be five counts >= 1, got {convs}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        channels = stage_channels(width)
        InverseDepthHead(channels[0], min_depth, max_depth)  # the range checks, for every variant
        self.num_classes = num_classes
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.max_disparity = max_disparity
        self.tasks = tasks
        joint = len(tasks) == 2
        self.links = bool(links) and joint
        if "disparity" in tasks:
            self.depth_net = UNet(channels, convs, attention, norm_layer)
            self.depth_head = InverseDepthHead(channels[0], min_depth, max_depth)
        if "segmentation" in tasks:
            self.seg_net = UNet(channels, convs, attention, norm_layer)
            self.seg_head = nn.Conv2d(channels[0], num_classes, 3, padding=1)
        levels = (*channels, channels[-1])  # the skips and the bottleneck
        if self.links:
            self.seg_to_depth = nn.ModuleList(zero_conv(c) for c in levels)
            self.depth_to_seg = nn.ModuleList(zero_conv(c) for c in levels)
        if joint:
            self.depth_embed = MapEncoder(2, width, embedding_dim, norm_layer)
            self.seg_embed = MapEncoder(num_classes, width, embedding_dim, norm_layer)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / CLIP_INITIAL_TEMPERATURE)))

    def forward(
        self, left: torch.Tensor, right: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the network on one image.

        Args:
            left: (B, 3, H, W) float, normalised image; H and W multiples of ``stride``.
            right: ignored (a single-image network); accepted so every architecture is called
                the same way.

        Returns:
            dict with, depending on ``tasks``: ``depth`` (B, 1, H, W) metres in
            [``min_depth``, ``max_depth``], float32; ``seg_logits`` (B, C, H, W).

        Raises:
            ValueError: not (B, 3, H, W), or a size that is not a multiple of ``stride``.
        """
        self.check_inputs(left, right, needs_right=False)
        depth_feats = self.depth_net.encode(left) if "disparity" in self.tasks else None
        seg_feats = self.seg_net.encode(left) if "segmentation" in self.tasks else None
        out: dict[str, torch.Tensor] = {}
        if depth_feats is not None:
            feats = depth_feats
            if self.links and seg_feats is not None:
                feats = [f + z(g) for f, g, z in zip(depth_feats, seg_feats, self.seg_to_depth)]
            out["depth"] = self.depth_head(self.depth_net.decoder(feats))
        if seg_feats is not None:
            feats = seg_feats
            if self.links and depth_feats is not None:
                feats = [g + z(f) for f, g, z in zip(depth_feats, seg_feats, self.depth_to_seg)]
            out["seg_logits"] = self.seg_head(self.seg_net.decoder(feats))
        return out

    def contrastive_embeddings(
        self, depth: torch.Tensor, seg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of a batch's depth maps and segmentation maps for the contrastive loss.

        Args:
            depth: (B, 1, H, W) metres; NaN, non-positive or infinite = unknown.
            seg: (B, C, H, W) class probabilities (or one-hot labels; all-zero = unknown).

        Returns:
            two (B, embedding_dim) embeddings (not normalised).
        """
        if len(self.tasks) != 2:
            raise ValueError("contrastive embeddings need both tasks")
        d = depth.float()
        known = torch.isfinite(d) & (d > 0)
        inverse = torch.where(known, self.min_depth / d.clamp_min(self.min_depth), 0.0)
        a = self.depth_embed(torch.cat([inverse, known.float()], 1))
        b = self.seg_embed(seg.float())
        return a, b

    @property
    def clip_logit_scale(self) -> torch.Tensor:
        """The learned logit scale, clipped at log(100) as CLIP does."""
        return self.logit_scale.clamp(max=CLIP_MAX_LOGIT_SCALE)


@register_model("synchronized", Synchronized)
def synchronized(**kwargs: Any) -> Synchronized:
    """Synchronized UNets (1.03M parameters for 19 classes at width 8, 4.09M at width 16).

    Keyword arguments: :class:`Synchronized`'s.
    """
    return Synchronized(**kwargs)
