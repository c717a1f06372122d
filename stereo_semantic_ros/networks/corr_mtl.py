"""Correlation multi-task network (Chen, seed 000): one FlowNetCorr encoder, two decoders.

"Joint stereo matching and semantic segmentation with CNN" builds a FlowNetCorr-style siamese
encoder with a correlation layer, shares it between the two tasks (hard parameter sharing,
paper Fig. 1 and 3) and gives each task its own decoder; "alpha layers" (cross-stitch units,
Sec. 5.2) between the symmetric decoders learn how much each task borrows from the other.

Layout, for an input (B, 3, H, W) with ``w = width``::

    siamese, shared weights    conv1 7x7/2 (w) -> conv2 5x5/2 (2w) -> conv3 5x5/2 (4w)  [1/8]
    correlation                left conv3 . right conv3 at d = 0 .. D/8 (1D, patch K) [1/8]
    left trunk                 [corr, redir 1x1 (w)] -> conv3_1 (4w) -> conv4/2, conv4_1 (6w)
                               -> conv5/2, conv5_1 (8w)                                 [1/32]
    decoder (one per task)     3 stages: up-conv 4x4/2 -> concat skip (conv4_1, conv3_1,
                               left conv2) -> conv 3x3; widths 4w, 3w, 2w             [1/4]
    alpha layers               a cross-stitch unit after every decoder stage (``cross_stitch``)
    heads                      segmentation: 1x1 conv to C logits, bilinear x4;
                               disparity: 3x3 conv to D/4 matching costs, trilinear to
                               (D, H, W), soft-argmin -> disparity and confidence

The paper is vague about most of this; the choices made here, and why:

* Correlation: FlowNetC correlates 2D patches; a rectified pair only needs displacements
  along the row, and only towards smaller u in the right view (disparity >= 0), so the layer
  is DispNetC's 1D variant (:func:`~stereo_semantic_ros.networks.blocks.correlation_1d`),
  placed where FlowNetC has it (after conv3, 1/8 resolution) with one channel per displacement
  ``0..max_disparity // 8`` and FlowNet's normalisation by ``C * K**2``, followed by a leaky
  ReLU as in FlowNetC. ``patch_size`` is K (FlowNetC: 1).
* Widths: FlowNetC's (64 .. 1024 channels, ~39M parameters, down to 1/64) are scaled to
  ``width`` = 32 (8w = 256 at the bottom) and the encoder stops at 1/32, which keeps the
  network at 4.9M parameters for 19 classes and D = 192 (the paper gives no count). Conv
  units are conv -> batch norm -> leaky ReLU (FlowNet has no normalisation; batch norm makes
  the short CPU schedules of this package train).
* Decoders: the paper only says "one encoder, two decoders" and that the decoders are
  symmetric so the alpha layer fits between them. Each decoder is FlowNet's refinement
  (up-convolution, concatenation with the encoder's skip feature of that resolution, a conv)
  down to 1/4 resolution, as FlowNet predicts at 1/4 and upsamples. FlowNet's intermediate
  flow predictions (and their multi-scale loss) are left out: the training loop supervises
  the final outputs only.
* Disparity head: FlowNet regresses flow directly. Here the disparity decoder outputs a
  matching cost per disparity hypothesis and the disparity is their soft-argmin, so the
  network reports the same confidence (peak probability of the distribution) as esp_joint and
  the node's ``min_confidence`` means the same thing for both architectures.
* Alpha layers: Sec. 5.2 puts one "in each layer at decoder", Sec. 5.5.1 reports the
  experiment with one "at last convolution layer". ``cross_stitch`` chooses: ``all`` (default,
  after every decoder stage), ``last`` (after the last stage only) or ``none`` (plain hard
  sharing, Fig. 3). Each unit holds one 2x2 matrix (the paper's equation: scalars, the same at
  every location and channel), initialised to ``alpha_same`` = 0.9 on the diagonal and
  ``alpha_diff`` = 0.1 off it (Misra et al.'s recommended start; the paper tried several
  initial values but does not say which it kept). Misra et al. train the alphas with a larger
  learning rate; here they share the network's.
* ``matching_cost``: ``correlation`` is the paper's network. ``correlation+census`` adds a
  census-transform Hamming cost of the images (no weights; every disparity ``0..D-1`` at full
  precision, box-aggregated over 8x8 pixels and sampled at 1/8 resolution, one channel per
  disparity) next to the correlation. It exists because a network trained on synthetic scenes
  can learn their layout from learned features instead of matching and then fail on a real
  camera; the census cost depends only on the order of grey values within each view, so it
  means the same on real images.
* ``census_in_head``: with ``correlation+census``, the census cost also enters the disparity
  head's output cost: the learned cost (D/4 hypotheses at 1/4 resolution, trilinear to D) plus
  a learned per-pixel gain (softplus of a 3x3 conv of the disparity decoder's features,
  starting near 20) times the census cost box-aggregated over 8x8 pixels at 1/4 resolution
  with every disparity at full precision. The channels-in-the-trunk variant alone trained to
  70 % dense bad-2 on the real Motorcycle pair (a 2D network still learns the synthetic
  layout); here the matching evidence reaches the soft-argmin directly and the decoder only
  has to learn where to trust it and how to resolve its ambiguities, which is what esp_joint's
  3D aggregation of the same cost does at many times the compute.
* Single-task variants: ``tasks = ("segmentation",)`` drops the correlation (conv3_1 takes
  the left conv3 features; the right image is not needed) and the disparity decoder;
  ``("disparity",)`` drops the segmentation decoder. With one decoder there is nothing to
  cross-stitch.
* The warp method (Sec. 5.4, Algorithm 1: the right view's segmentation warped into the left
  with disparity and added to the left logits, with the left-border columns masked and the
  invalid regions dilated, Sec. 6.1) needs ground-truth disparity (the paper's "expected
  upper bound") and the right view's segmentation, which this left-referenced network gives
  for the mirrored pair; it is the training loss ``loss.seg_warp``
  (:func:`~stereo_semantic_ros.losses.warped_fusion_loss`), not part of this module, so
  inference stays one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stereo_semantic_ros.networks.blocks import (
    ConvBNAct,
    CrossStitch,
    NormLayer,
    census_cost_volume,
    correlation_1d,
    leaky_relu,
    soft_argmin,
    upsample_to,
)
from stereo_semantic_ros.networks.contract import TASKS, StereoNetwork, check_tasks
from stereo_semantic_ros.networks.registry import register_model

CROSS_STITCH = ("all", "last", "none")
MATCHING_COSTS = ("correlation", "correlation+census")


class UpConv(nn.Sequential):
    """FlowNet's up-convolution: 4x4 transposed conv of stride 2 -> norm -> leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, norm_layer: NormLayer) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),
            norm_layer(out_channels),
            leaky_relu(),
        )


class DecoderStage(nn.Module):
    """Double the resolution, concatenate the encoder's skip feature, fuse with a 3x3 conv."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, norm_layer: NormLayer
    ) -> None:
        super().__init__()
        self.up = UpConv(in_channels, out_channels, norm_layer)
        self.fuse = ConvBNAct(out_channels + skip_channels, out_channels, 3, norm_layer=norm_layer)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """(B, in, h, w), (B, skip, 2h, 2w) -> (B, out, 2h, 2w)."""
        return self.fuse(torch.cat([self.up(x), skip], 1))


class Decoder(nn.ModuleList):
    """One task's decoder: three :class:`DecoderStage` from 1/32 to 1/4 resolution."""

    def __init__(
        self, channels: Sequence[int], skips: Sequence[int], norm_layer: NormLayer
    ) -> None:
        super().__init__(
            DecoderStage(channels[i], skips[i], channels[i + 1], norm_layer)
            for i in range(len(skips))
        )


class CorrMTLNet(StereoNetwork):
    """FlowNetCorr encoder shared by a disparity and a segmentation decoder with alpha layers.

    Args:
        num_classes: semantic classes C.
        max_disparity: D, number of full-resolution disparity hypotheses (multiple of 4).
        width: w, channel unit: encoder 1w, 2w, 4w, 6w, 8w; decoders 4w, 3w, 2w.
        patch_size: K of the correlation layer (odd; FlowNetC: 1).
        cross_stitch: where the alpha layers go: ``all`` decoder stages, the ``last`` one,
            or ``none``.
        alpha_same, alpha_diff: initial same-task and other-task weights of every alpha layer.
        tasks: any non-empty subset of ("disparity", "segmentation").
        matching_cost: ``correlation`` (paper) or ``correlation+census`` (module docstring).
        census_window: census patch size (odd) for ``correlation+census``.
        census_in_head: add the census cost to the disparity head's cost (module docstring);
            needs ``correlation+census``.
        norm_layer: 2D normalisation layer constructor.
    """

    stride = 32
    """Input height and width must be multiples of this (the pipeline pads to it)."""
    gradnorm_parameter = "conv5_1.1.weight"
    """The last layer every task's gradient passes through (GradNorm's ``W``): the encoder's
    last normalisation scale."""

    def __init__(
        self,
        *,
        num_classes: int = 19,
        max_disparity: int = 192,
        width: int = 32,
        patch_size: int = 1,
        cross_stitch: str = "all",
        alpha_same: float = 0.9,
        alpha_diff: float = 0.1,
        tasks: Sequence[str] = TASKS,
        matching_cost: str = "correlation",
        census_window: int = 7,
        census_in_head: bool = False,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if matching_cost not in MATCHING_COSTS:
            raise ValueError(
                f"matching_cost must be one of {MATCHING_COSTS}, got {matching_cost!r}"
            )
        if census_in_head and matching_cost != "correlation+census":
            raise ValueError(
                f"census_in_head needs matching_cost: correlation+census, got {matching_cost!r}"
            )
        if max_disparity % 4 or max_disparity <= 0:
            raise ValueError(f"max_disparity must be a positive multiple of 4, got {max_disparity}")
        tasks = check_tasks(tasks)
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if patch_size < 1 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd and >= 1, got {patch_size}")
        if cross_stitch not in CROSS_STITCH:
            raise ValueError(f"cross_stitch must be one of {CROSS_STITCH}, got {cross_stitch!r}")
        self.num_classes = num_classes
        self.max_disparity = max_disparity
        self.tasks = tasks
        self.patch_size = patch_size
        self.matching_cost = matching_cost
        self.census_window = census_window
        self.use_census = matching_cost == "correlation+census"
        self.census_in_head = census_in_head and "disparity" in tasks
        w = width
        # siamese part (both views, shared weights)
        self.conv1 = ConvBNAct(3, w, 7, stride=2, norm_layer=norm_layer)
        self.conv2 = ConvBNAct(w, 2 * w, 5, stride=2, norm_layer=norm_layer)
        self.conv3 = ConvBNAct(2 * w, 4 * w, 5, stride=2, norm_layer=norm_layer)
        # left trunk after the correlation
        want_disp = "disparity" in tasks
        self.displacements = max_disparity // 8  # at 1/8 resolution
        if want_disp:
            self.corr_act = leaky_relu()
            self.redir = ConvBNAct(4 * w, w, 1, norm_layer=norm_layer)
            trunk_in = self.displacements + 1 + w + (max_disparity if self.use_census else 0)
        else:
            trunk_in = 4 * w
        self.conv3_1 = ConvBNAct(trunk_in, 4 * w, 3, norm_layer=norm_layer)
        self.conv4 = ConvBNAct(4 * w, 6 * w, 3, stride=2, norm_layer=norm_layer)
        self.conv4_1 = ConvBNAct(6 * w, 6 * w, 3, norm_layer=norm_layer)
        self.conv5 = ConvBNAct(6 * w, 8 * w, 3, stride=2, norm_layer=norm_layer)
        self.conv5_1 = ConvBNAct(8 * w, 8 * w, 3, norm_layer=norm_layer)
        # decoders: identical structure for both tasks (so the alpha layers fit between them)
        channels = (8 * w, 4 * w, 3 * w, 2 * w)
        skips = (6 * w, 4 * w, 2 * w)  # conv4_1, conv3_1, left conv2
        self.decoders = nn.ModuleDict({t: Decoder(channels, skips, norm_layer) for t in tasks})
        stages = len(skips)
        stitched: list[int] = []
        if len(tasks) == 2 and cross_stitch != "none":
            stitched = list(range(stages)) if cross_stitch == "all" else [stages - 1]
        self.stitch_stages = tuple(stitched)
        self.alpha_layers = nn.ModuleDict(
            {str(i): CrossStitch(alpha_same, alpha_diff) for i in stitched}
        )
        if want_disp:
            self.disp_head = nn.Conv2d(2 * w, max_disparity // 4, 3, padding=1)
        if self.census_in_head:
            self.census_gain = nn.Conv2d(2 * w, 1, 3, padding=1)
            # softplus(20) ~ 20: a census cost gap of 0.3 (a clear match after 8x8
            # aggregation) is then 6 logits, so the head starts as a soft winner-take-all
            nn.init.zeros_(self.census_gain.weight)
            nn.init.constant_(self.census_gain.bias, 20.0)
        if "segmentation" in tasks:
            self.seg_head = nn.Conv2d(2 * w, num_classes, 1)

    def forward(
        self, left: torch.Tensor, right: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the network.

        Args:
            left, right: (B, 3, H, W) float, normalised images; H and W multiples of ``stride``.
                ``right`` may be None for the segmentation-only variant (and is ignored there).

        Returns:
            dict with, depending on ``tasks``: ``disparity`` (B, 1, H, W) in pixels,
            ``confidence`` (B, 1, H, W) peak probability of the soft-argmin distribution in
            [1/D, 1]; ``seg_logits`` (B, C, H, W).

        Raises:
            ValueError: a size that is not a multiple of ``stride``, or a missing/mismatched
                right image when disparity is a task.
        """
        want_disp = "disparity" in self.tasks
        h, w = self.check_inputs(left, right, needs_right=want_disp)
        b = left.shape[0]
        if want_disp:
            assert right is not None
            c1 = self.conv1(torch.cat([left, right], 0))  # shared weights: one batched pass
            c2 = self.conv2(c1)
            c3 = self.conv3(c2)
            corr = correlation_1d(c3[:b], c3[b:], self.displacements, self.patch_size)
            trunk = [self.corr_act(corr), self.redir(c3[:b])]
            if self.use_census:
                census = census_cost_volume(left, right, self.max_disparity, self.census_window)
                # 8x8 full-resolution box aggregation, sampled at 1/8 resolution
                trunk.append(F.avg_pool2d(census, 4, stride=4).to(corr.dtype))
            x = self.conv3_1(torch.cat(trunk, 1))
            c2 = c2[:b]
        else:
            c2 = self.conv2(self.conv1(left))
            x = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(x))
        bottom = self.conv5_1(self.conv5(c4))
        skips = (c4, x, c2)
        feats = {t: bottom for t in self.tasks}
        for i, skip in enumerate(skips):
            feats = {t: self.decoders[t][i](feats[t], skip) for t in self.tasks}
            if i in self.stitch_stages:
                feats["disparity"], feats["segmentation"] = self.alpha_layers[str(i)](
                    feats["disparity"], feats["segmentation"]
                )
        out: dict[str, torch.Tensor] = {}
        if want_disp:
            cost = self.disp_head(feats["disparity"]).unsqueeze(1)  # (B, 1, D/4, H/4, W/4)
            if self.census_in_head:
                cost = F.interpolate(
                    cost.float(),
                    size=(self.max_disparity, h // 4, w // 4),
                    mode="trilinear",
                    align_corners=False,
                ).squeeze(1)
                # 8x8 full-resolution box aggregation, sampled at 1/4 resolution
                census = F.avg_pool2d(census, 4, stride=2, padding=1, count_include_pad=False)
                gain = F.softplus(self.census_gain(feats["disparity"]).float())
                cost = upsample_to(cost + gain * census.float(), (h, w))
            else:
                cost = F.interpolate(
                    cost.float(),
                    size=(self.max_disparity, h, w),
                    mode="trilinear",
                    align_corners=False,
                ).squeeze(1)
            out["disparity"], out["confidence"] = soft_argmin(cost)
        if "segmentation" in self.tasks:
            out["seg_logits"] = upsample_to(self.seg_head(feats["segmentation"]), (h, w))
        return out


@register_model("corr_mtl", CorrMTLNet)
def corr_mtl(**kwargs: Any) -> CorrMTLNet:
    """Correlation multi-task network (4.9M parameters for 19 classes, D = 192, width 32).

    Keyword arguments: :class:`CorrMTLNet`'s.
    """
    return CorrMTLNet(**kwargs)
