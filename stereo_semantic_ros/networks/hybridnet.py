"""HybridNet (Sánchez-Escobedo et al., seed 002): single-image depth and semantic segmentation.

"HybridNet for depth estimation and semantic segmentation" splits a single-image network in
four parts (paper Fig. 1, Sec. 3): a *global depth network* that estimates the scene's depth
layout from the image alone, a *features network* (VGG-based) shared by both tasks, a *depth
refinement network* that refines the global depth with the shared features and the image
(after DepthNet / Eigen et al.'s coarse-to-fine scheme), and an *upsampling network* that turns
the shared features into class scores with Atrous Spatial Pyramid Pooling (DeepLab-ASPP).

It sees the LEFT image only. It predicts depth in metres (``geometry = "depth"``); the
pipeline turns it into disparity with the pair's calibration, ``d = fx * B / Z``, so the node
publishes the same outputs as for the stereo networks (see :mod:`stereo_semantic_ros.pipeline`).

Layout, for an input (B, 3, H, W) with ``w = width``::

    features network (shared)  VGG-style 3x3 conv units: [w, w] /2, [2w, 2w] /2, [4w, 4w] /2,
                               then [8w, 8w] with dilation 2 (DeepLab keeps 1/8)      [1/8]
    global depth network       own encoder: 3x3 stride-2 units w, 2w, 4w, 8w, 8w        [1/32]
                               + image-level context (global average pool -> 1x1,
                               broadcast, concatenated) -> 3x3 conv -> 1x1 to 1 channel:
                               the coarse depth (as a logit)                          [1/32]
    depth refinement network   image 5x5/2 (w) -> 3x3/2 (w) at 1/4, concatenated with the
                               shared features (1x1 to w, upsampled) and the coarse depth
                               (upsampled) -> 3x3 (2w) x 2 -> 3x3 to 1 channel, added to
                               the coarse logit                                       [1/4]
    depth head                 bilinear to (H, W); depth = min_depth + (max_depth -
                               min_depth) * sigmoid(logit)
    upsampling network (ASPP)  one branch per rate: 3x3 dilated (4w) -> 1x1 (4w) -> 1x1 to C
                               class scores; the branches are summed (DeepLab-v2 ASPP),
                               bilinear x8 to (H, W)

The paper is vague about most of this; the choices made here, and why:

* Scale: the paper's features network is DeepLab's VGG-16 and its depth networks DepthNet's
  (tens of millions of parameters; the paper gives no count). Everything here is scaled by
  ``width``: 32 gives 4.75M parameters for 19 classes (1.26M of them in the ASPP branches),
  width 16 1.19M, width 8 0.30M; the small widths train on a CPU. Conv units are conv ->
  batch norm -> leaky ReLU (:class:`~stereo_semantic_ros.networks.blocks.ConvBNAct`); VGG
  has no normalisation, and batch norm makes short CPU schedules train. No ImageNet or
  DepthNet initialisation (the paper's Sec. 4): the package ships no pretrained weights, so
  training starts from scratch.
* Features network: VGG's stages of 3x3 convolutions with max pooling, stopped at 1/8 and
  followed by a dilated stage as DeepLab does (DeepLab's conv5 with rate 2), two convs per
  stage instead of VGG's 2-3.
* Global depth network: Eigen's coarse network ends in fully connected layers that fix the
  input size. Here the global layout comes from an encoder down to 1/32 plus an image-level
  feature (global average pooling, broadcast back), so any input size works and every
  location sees the whole image.
* Depth refinement network: Eigen's fine network (image convolution, then concatenation with
  the coarse prediction, then convolutions) with the shared features also concatenated, as
  Fig. 1 feeds both the features network and the image into it. It refines at 1/4 resolution
  and predicts a residual on the coarse logit (Eigen predicts the fine map directly; the
  residual keeps the coarse estimate useful from the first step). DepthNet's gradient
  network is skipped, as in the paper.
* Depth range: the paper regresses linear depth without saying how it is bounded. Here the
  logit goes through a sigmoid onto ``[min_depth, max_depth]`` metres, so depth is always
  positive and finite (the disparity ``fx * B / Z`` is finite too) and the output range is a
  stated hyper-parameter. ``max_disparity`` is not used by the network: it is the disparity
  range the pipeline reports and keeps (see :mod:`stereo_semantic_ros.pipeline`); the
  training loop leaves ground truth nearer than that range out of the depth loss, as it does
  for the stereo networks.
* ASPP: DeepLab-v2's ASPP-L (rates 6, 12, 18, 24 at 1/8 resolution, each branch fc6 3x3
  dilated -> fc7 1x1 -> fc8 1x1 to the classes, outputs summed); ``aspp_rates`` sets the
  rates (DeepLab's ASPP-S: 2, 4, 8, 12). No dense CRF.
* Loss (Sec. 4): ``alpha * L_S + (L_DL + L_DN)`` with alpha = 1000; ``L_DL`` and ``L_DN``
  are :func:`~stereo_semantic_ros.losses.depth_linear_loss` and
  :func:`~stereo_semantic_ros.losses.depth_normalized_loss`, which the training loop uses for
  any network whose ``geometry`` is ``depth``. Alpha is the recipe's ``loss.w_seg`` (with
  ``w_disp`` = 1), not part of this module.
* Single-task variants: ``tasks = ("segmentation",)`` drops the global depth and refinement
  networks (DeepLab-ASPP, the paper's single-task baseline); ``("disparity",)`` drops the
  ASPP (DepthNet without its gradient network). The geometric task keeps the package-wide
  name ``disparity`` (what the node publishes); this network serves it with ``depth``.
* Confidence: HybridNet has no per-pixel uncertainty, so it outputs none; the pipeline
  reports 1.0 everywhere for depth networks (``min_confidence`` then masks nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stereo_semantic_ros.networks.blocks import ConvBNAct, NormLayer, leaky_relu, upsample_to
from stereo_semantic_ros.networks.contract import TASKS, StereoNetwork, check_tasks
from stereo_semantic_ros.networks.registry import register_model

ASPP_RATES = (6, 12, 18, 24)


class FeaturesNetwork(nn.Sequential):
    """The shared VGG-style features network: (B, 3, H, W) -> (B, 8w, H/8, W/8)."""

    def __init__(self, width: int, norm_layer: NormLayer) -> None:
        w = width
        super().__init__(
            ConvBNAct(3, w, norm_layer=norm_layer),
            ConvBNAct(w, w, norm_layer=norm_layer),
            nn.MaxPool2d(2),
            ConvBNAct(w, 2 * w, norm_layer=norm_layer),
            ConvBNAct(2 * w, 2 * w, norm_layer=norm_layer),
            nn.MaxPool2d(2),
            ConvBNAct(2 * w, 4 * w, norm_layer=norm_layer),
            ConvBNAct(4 * w, 4 * w, norm_layer=norm_layer),
            nn.MaxPool2d(2),
            ConvBNAct(4 * w, 8 * w, dilation=2, norm_layer=norm_layer),
            ConvBNAct(8 * w, 8 * w, dilation=2, norm_layer=norm_layer),
        )


class GlobalDepthNetwork(nn.Module):
    """Coarse depth logit from the image alone: (B, 3, H, W) -> (B, 1, H/32, W/32)."""

    def __init__(self, width: int, norm_layer: NormLayer) -> None:
        super().__init__()
        w = width
        chans = (3, w, 2 * w, 4 * w, 8 * w, 8 * w)
        self.encoder = nn.Sequential(
            *(ConvBNAct(chans[i], chans[i + 1], stride=2, norm_layer=norm_layer) for i in range(5))
        )
        # image-level context; no norm (a batch of one 1x1 map has no batch statistics)
        self.context = nn.Sequential(nn.Conv2d(8 * w, 8 * w, 1), leaky_relu())
        self.fuse = ConvBNAct(16 * w, 8 * w, norm_layer=norm_layer)
        self.head = nn.Conv2d(8 * w, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.encoder(image)
        g = self.context(F.adaptive_avg_pool2d(x, 1)).expand_as(x)
        return self.head(self.fuse(torch.cat([x, g], 1)))


class DepthRefinementNetwork(nn.Module):
    """Refine the coarse logit with the image and the shared features, at 1/4 resolution."""

    def __init__(self, width: int, norm_layer: NormLayer) -> None:
        super().__init__()
        w = width
        self.image = nn.Sequential(
            ConvBNAct(3, w, 5, stride=2, norm_layer=norm_layer),
            ConvBNAct(w, w, stride=2, norm_layer=norm_layer),
        )
        self.features = ConvBNAct(8 * w, w, 1, norm_layer=norm_layer)
        self.refine = nn.Sequential(
            ConvBNAct(2 * w + 1, 2 * w, norm_layer=norm_layer),
            ConvBNAct(2 * w, 2 * w, norm_layer=norm_layer),
            nn.Conv2d(2 * w, 1, 3, padding=1),
        )

    def forward(
        self, image: torch.Tensor, features: torch.Tensor, coarse: torch.Tensor
    ) -> torch.Tensor:
        """(B, 3, H, W), (B, 8w, H/8, W/8), (B, 1, H/32, W/32) -> logit (B, 1, H/4, W/4)."""
        x = self.image(image)
        size = (x.shape[-2], x.shape[-1])
        coarse = upsample_to(coarse, size)
        x = torch.cat([x, upsample_to(self.features(features), size), coarse], 1)
        return coarse + self.refine(x)


class ASPP(nn.ModuleList):
    """DeepLab-v2 atrous spatial pyramid pooling: one branch per rate, class scores summed."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_classes: int,
        rates: Sequence[int],
        norm_layer: NormLayer,
    ) -> None:
        super().__init__(
            nn.Sequential(
                ConvBNAct(in_channels, channels, 3, dilation=r, norm_layer=norm_layer),
                ConvBNAct(channels, channels, 1, norm_layer=norm_layer),
                nn.Conv2d(channels, num_classes, 1),
            )
            for r in rates
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in, h, w) -> (B, C, h, w): the sum of every branch's class scores."""
        out = self[0](x)
        for branch in list(self)[1:]:
            out = out + branch(x)
        return out


class HybridNet(StereoNetwork):
    """Global depth, shared features, depth refinement and ASPP segmentation from one image.

    Args:
        num_classes: semantic classes C.
        width: w, channel unit (features network w .. 8w, ASPP branches 4w).
        min_depth, max_depth: range of the predicted depth, metres (0 < min < max).
        max_disparity: disparity range the pipeline reports and keeps, pixels at network
            resolution (multiple of 4); not used by the network itself.
        aspp_rates: dilation rates of the ASPP branches at 1/8 resolution.
        tasks: any non-empty subset of ("disparity", "segmentation"); the ``disparity`` task
            is served by the ``depth`` output.
        norm_layer: 2D normalisation layer constructor.
    """

    stride = 32
    """Input height and width must be multiples of this (the pipeline pads to it)."""
    geometry = "depth"
    """The geometric output is ``depth`` in metres from the left image (not ``disparity``)."""
    gradnorm_parameter = "features.10.1.weight"
    """The last layer every task's gradient passes through (GradNorm's ``W``): the features
    network's last normalisation scale."""

    def __init__(
        self,
        *,
        num_classes: int = 19,
        width: int = 32,
        min_depth: float = 0.5,
        max_depth: float = 100.0,
        max_disparity: int = 192,
        aspp_rates: Sequence[int] = ASPP_RATES,
        tasks: Sequence[str] = TASKS,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        tasks = check_tasks(tasks)
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if not 0 < min_depth < max_depth:
            raise ValueError(
                f"need 0 < min_depth < max_depth, got min_depth {min_depth}, max_depth {max_depth}"
            )
        if max_disparity % 4 or max_disparity <= 0:
            raise ValueError(f"max_disparity must be a positive multiple of 4, got {max_disparity}")
        rates = tuple(int(r) for r in aspp_rates)
        if not rates or any(r < 1 for r in rates):
            raise ValueError(f"aspp_rates must be a non-empty list of rates >= 1, got {rates}")
        self.num_classes = num_classes
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.max_disparity = max_disparity
        self.tasks = tasks
        self.features = FeaturesNetwork(width, norm_layer)
        if "disparity" in tasks:
            self.global_depth = GlobalDepthNetwork(width, norm_layer)
            self.refinement = DepthRefinementNetwork(width, norm_layer)
        if "segmentation" in tasks:
            self.aspp = ASPP(8 * width, 4 * width, num_classes, rates, norm_layer)

    def forward(
        self, left: torch.Tensor, right: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the network on the left image.

        Args:
            left: (B, 3, H, W) float, normalised image; H and W multiples of ``stride``.
            right: ignored (a single-image network); accepted so every architecture is called
                the same way.

        Returns:
            dict with, depending on ``tasks``: ``depth`` (B, 1, H, W) metres in
            [``min_depth``, ``max_depth``]; ``seg_logits`` (B, C, H, W).

        Raises:
            ValueError: not (B, 3, H, W), or a size that is not a multiple of ``stride``.
        """
        h, w = self.check_inputs(left, right, needs_right=False)  # the right image is ignored
        feats = self.features(left)
        out: dict[str, torch.Tensor] = {}
        if "disparity" in self.tasks:
            coarse = self.global_depth(left)
            logit = upsample_to(self.refinement(left, feats, coarse), (h, w)).float()
            out["depth"] = self.min_depth + (self.max_depth - self.min_depth) * torch.sigmoid(logit)
        if "segmentation" in self.tasks:
            out["seg_logits"] = upsample_to(self.aspp(feats), (h, w))
        return out


@register_model("hybridnet", HybridNet)
def hybridnet(**kwargs: Any) -> HybridNet:
    """HybridNet (4.75M parameters for 19 classes at width 32; 1.19M at width 16).

    Keyword arguments: :class:`HybridNet`'s.
    """
    return HybridNet(**kwargs)
