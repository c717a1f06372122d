"""Pseudo-MTL (seed 003, "Pseudo label-guided multi-task learning for scene understanding"):
single-image depth and semantic segmentation learned from a stereo teacher's pseudo labels.

The network (paper Sec. 3.1, Fig. 1a) is an encoder-decoder: one encoder ``E`` made of VGG's
convolutional layers, shared by both tasks, and two decoders "designed symmetrically with the
encoder", ``D_d`` for depth and ``D_s`` for segmentation. What makes the method is not the
network but how it is trained (:mod:`stereo_semantic_ros.mono_losses`): the depth decoder is
supervised by a stereo teacher's disparity, weighted per pixel by the teacher's confidence, and
the predictions of the left and right images are tied by cross-view consistency losses that warp
one view's prediction into the other with the pseudo disparity. ``stereo-semantic-pseudo-label``
makes those labels from a user's own recordings.

It sees the LEFT image only at inference (the right one is used while training, as a second
image of the scene). It predicts depth in metres (``geometry = "depth"``); the pipeline turns it
into disparity with the pair's calibration, ``d = fx * B / Z - doffs``, so the node publishes the
same outputs as for the stereo networks.

Layout, for an input (B, 3, H, W) and ``w = width``::

    encoder E (shared)   VGG-16 stages of 3x3 conv units, 2x2 max pooling after each:
                         [w]x2, [2w]x2, [4w]x3, [8w]x3, [8w]x3                   [1 .. 1/32]
    decoder D_d          3x3 unit at 1/32, then per stage (deepest first): x2 bilinear,
                         concatenated with E's stage output, two 3x3 units      [1/16 .. 1]
                         -> 3x3 conv to 1 channel: inverse depth through a sigmoid onto
                         [1/max_depth, 1/min_depth]; depth = its reciprocal
    decoder D_s          the same layout -> 3x3 conv to C class scores

The paper is vague about much of this; the choices made here, and why:

* Scale: VGG-16 (64 .. 512 channels, 14.7M parameters in the encoder alone) with ImageNet
  weights. Here the channels are ``width`` x (1, 2, 4, 8, 8): width 64 is VGG's; width 8 gives
  0.85M parameters for 19 classes (width 16: 3.38M), which trains on a CPU. Conv units are
  conv -> batch norm -> leaky ReLU (:class:`~stereo_semantic_ros.networks.blocks.ConvBNAct`):
  VGG has no normalisation, and batch norm makes short from-scratch schedules train (no
  pretrained weights ship with the package).
* Decoders: "designed symmetrically with the encoder" -- one decoder stage per encoder stage,
  with skip connections from the encoder (as Monodepth's VGG decoder, which the paper's baselines
  build on), two conv units per stage instead of VGG's two or three.
* Depth output: Monodepth's parameterisation (a sigmoid read as inverse depth between
  ``1/max_depth`` and ``1/min_depth``): the teacher supervises disparity, which is linear in
  inverse depth, and depth stays positive and finite. ``max_disparity`` is not used by the
  network: it is the disparity range the pipeline reports and keeps (see
  :mod:`stereo_semantic_ros.pipeline`).
* Regression unit: the paper's weights (alpha_d = 850 against alpha_s = 2.5) only balance a
  cross-entropy when the regressed quantity is small; they fit Monodepth's unit, disparity as a
  fraction of the image width. The losses therefore compare ``(fx * B / Z - doffs) / W`` with the
  teacher's ``d / W`` (W: the width of the image the network sees);
  see :func:`~stereo_semantic_ros.mono_losses.pseudo_label_losses`.
* Confidence: the paper thresholds CCNN's confidence with a pretrained soft-threshold network.
  The package's teachers give their own: a stereo network's ``confidence`` output, or SGBM's
  left-right consistency (``stereo-semantic-pseudo-label``); it weights the losses as it is.
* Single-task variants (the paper's first stage trains ``E + D_d`` and ``E + D_s`` apart):
  ``tasks = ("disparity",)`` has no ``D_s``, ``("segmentation",)`` no ``D_d``; the second stage
  starts the joint network from both (``train.init_weights`` with two checkpoints, the encoder
  from the depth one, as the paper does).
* Confidence output: the network has none; the pipeline reports 1.0 everywhere for depth
  networks (``min_confidence`` then masks nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from stereo_semantic_ros.networks.blocks import NormLayer
from stereo_semantic_ros.networks.contract import TASKS, StereoNetwork, check_tasks
from stereo_semantic_ros.networks.registry import register_model
from stereo_semantic_ros.networks.unet_blocks import (
    VGG16_CONVS,
    InverseDepthHead,
    UNetDecoder,
    VggEncoder,
    stage_channels,
)


class PseudoMTL(StereoNetwork):
    """Shared VGG encoder, depth and segmentation decoders, from one image.

    Args:
        num_classes: semantic classes C.
        width: w, channel unit (encoder stages w, 2w, 4w, 8w, 8w; VGG-16 is w = 64).
        min_depth, max_depth: range of the predicted depth, metres (0 < min < max).
        max_disparity: disparity range the pipeline reports and keeps, pixels at network
            resolution (multiple of 4); not used by the network itself.
        encoder_convs: 3x3 conv units per encoder stage (VGG-16: 2, 2, 3, 3, 3); five stages.
        tasks: any non-empty subset of ("disparity", "segmentation"); the ``disparity`` task is
            served by the ``depth`` output.
        norm_layer: 2D normalisation layer constructor.
    """

    stride = 32
    """Input height and width must be multiples of this (five 2x2 poolings)."""
    geometry = "depth"
    """The geometric output is ``depth`` in metres from one image (not ``disparity``)."""
    gradnorm_parameter: str
    """The last layer every task's gradient passes through (GradNorm's ``W``): the encoder's
    last normalisation scale (``encoder.stages.4.2.1.weight`` for VGG-16's conv counts)."""

    def __init__(
        self,
        *,
        num_classes: int = 19,
        width: int = 16,
        min_depth: float = 0.5,
        max_depth: float = 100.0,
        max_disparity: int = 192,
        encoder_convs: Sequence[int] = VGG16_CONVS,
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
        channels = stage_channels(width)
        self.num_classes = num_classes
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.max_disparity = max_disparity
        self.tasks = tasks
        self.encoder = VggEncoder(channels, convs, norm_layer)
        self.gradnorm_parameter = f"encoder.stages.4.{convs[-1] - 1}.1.weight"
        if "disparity" in tasks:
            self.depth_decoder = UNetDecoder(channels, norm_layer)
            self.depth_head = InverseDepthHead(channels[0], min_depth, max_depth)
        else:
            InverseDepthHead(channels[0], min_depth, max_depth)  # the same range checks
        if "segmentation" in tasks:
            self.seg_decoder = UNetDecoder(channels, norm_layer)
            self.seg_head = nn.Conv2d(channels[0], num_classes, 3, padding=1)

    def forward(
        self, left: torch.Tensor, right: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the network on one image.

        Args:
            left: (B, 3, H, W) float, normalised image; H and W multiples of ``stride``.
            right: ignored (a single-image network); accepted so every architecture is called
                the same way. Training runs the right image as a batch of its own.

        Returns:
            dict with, depending on ``tasks``: ``depth`` (B, 1, H, W) metres in
            [``min_depth``, ``max_depth``], float32; ``seg_logits`` (B, C, H, W).

        Raises:
            ValueError: not (B, 3, H, W), or a size that is not a multiple of ``stride``.
        """
        self.check_inputs(left, right, needs_right=False)
        feats = self.encoder(left)
        out: dict[str, torch.Tensor] = {}
        if "disparity" in self.tasks:
            out["depth"] = self.depth_head(self.depth_decoder(feats))
        if "segmentation" in self.tasks:
            out["seg_logits"] = self.seg_head(self.seg_decoder(feats))
        return out


@register_model("pseudo_mtl", PseudoMTL)
def pseudo_mtl(**kwargs: Any) -> PseudoMTL:
    """Pseudo-MTL (0.85M parameters for 19 classes at width 8, 3.38M at width 16).

    Keyword arguments: :class:`PseudoMTL`'s.
    """
    return PseudoMTL(**kwargs)
