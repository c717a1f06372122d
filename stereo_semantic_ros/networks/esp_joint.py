"""ESP joint stereo network (Harb & Knöbelreiter, seed 001): disparity and semantics from one pair.

Shared ESP feature extractor -> multi-scale features of both views -> 4D concat cost volume at
1/4 resolution -> 3D residual regulariser -> trilinear upsampling and soft-argmin -> a joint
decoder in which the disparity path sees the segmentation prediction.

``matching_cost`` chooses what the 3D regulariser aggregates: ``concat`` is the paper's learned
feature volume; ``census`` replaces it by a census-transform Hamming cost that needs no learning
(computed at full disparity precision, box-aggregated to 1/4 resolution, the four disparities
of each 1/4-resolution level kept as four channels); ``concat+census`` feeds both. The census
variants exist because a network trained on synthetic scenes learns the scenes' layout from a
learned volume instead of matching, and then fails on real cameras; a census cost only
compares the two views, so the regulariser has to learn to aggregate matches. With census the
regulariser also outputs four channels per level, giving the soft-argmin all D full-precision
hypotheses at 1/4 resolution (bilinearly upsampled) instead of trilinearly interpolated ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stereo_semantic_ros.networks.blocks import (
    ConvBNAct,
    ESPBlock,
    InputReinforcement,
    NormLayer,
    ResBlock3d,
    census_cost_volume,
    concat_cost_volume,
    leaky_relu,
    soft_argmin,
    upsample_to,
)
from stereo_semantic_ros.networks.contract import TASKS, StereoNetwork, check_tasks
from stereo_semantic_ros.networks.registry import register_model

MATCHING_COSTS = ("concat", "census", "concat+census")


class ESPFeatureExtractor(nn.Module):
    """ESPNet-C style encoder giving f1..f4 (paper Fig. 2).

    Shapes for an input (B, 3, H, W):
        f1 (B, 19, H/2, W/2), f2 (B, 131, H/4, W/4), f3 (B, 256, H/8, W/8),
        f4 = low-resolution segmentation logits (B, num_classes, H/8, W/8).
    """

    def __init__(
        self, num_classes: int, p: int, q: int, branches: int, norm_layer: NormLayer
    ) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, stride=2, norm_layer=norm_layer)
        self.reinforce1 = InputReinforcement(1)
        self.reinforce2 = InputReinforcement(2)
        self.norm1 = nn.Sequential(norm_layer(19), leaky_relu())
        self.down2 = ESPBlock(19, 64, branches, stride=2, norm_layer=norm_layer)
        self.level2 = nn.Sequential(
            *[ESPBlock(64, 64, branches, norm_layer=norm_layer) for _ in range(p)]
        )
        self.norm2 = nn.Sequential(norm_layer(131), leaky_relu())
        self.down3 = ESPBlock(131, 128, branches, stride=2, norm_layer=norm_layer)
        self.level3 = nn.Sequential(
            *[ESPBlock(128, 128, branches, norm_layer=norm_layer) for _ in range(q)]
        )
        self.norm3 = nn.Sequential(norm_layer(256), leaky_relu())
        self.classifier = nn.Conv2d(256, num_classes, 1)
        self.channels = (19, 131, 256, num_classes)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.norm1(torch.cat([self.stem(image), self.reinforce1(image)], 1))
        x = self.down2(f1)
        f2 = self.norm2(torch.cat([x, self.level2(x), self.reinforce2(image)], 1))
        x = self.down3(f2)
        f3 = self.norm3(torch.cat([x, self.level3(x)], 1))
        return [f1, f2, f3, self.classifier(f3)]


class VolumeRegulariser(nn.Sequential):
    """3D CNN over a (B, C, D, H, W) cost volume, returning (B, C', D, H, W).

    The convolutions run on the volume laid out as (B, C, H, W, D): 3x3x3 kernels don't care
    which axis is which, but PyTorch's CPU backend only picks oneDNN for 5D inputs whose
    B*C*size(2)*size(3) exceeds 20480, and a batch-1 volume with few disparity levels falls to
    a reference implementation about 6x slower (measured on 32x16x32x96). On CUDA the
    permutation costs two cheap copies.

    The first convolution sees few channels (census: 4), which no permutation lifts above that
    threshold at small sizes (4 x 32 x 96 at 384x128): there the input and the kernel get
    zero channels appended (:func:`_first_conv_cpu`), adding only exact zeros, 4x faster.
    """

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        x = volume.permute(0, 1, 3, 4, 2)
        layers = list(self)
        first = layers[0]
        if isinstance(first, nn.Conv3d) and _needs_channel_padding(x):
            x = _first_conv_cpu(first, x)
            layers = layers[1:]
        for layer in layers:
            x = layer(x)
        return x.permute(0, 1, 4, 2, 3)


# PyTorch's CPU convolution takes oneDNN for a batch-1 input only above this many
# B * C * size(2) * size(3) elements (aten/src/ATen/native/Convolution.cpp, use_mkldnn).
_ONEDNN_MIN_ELEMENTS = 20480


def _needs_channel_padding(x: torch.Tensor) -> bool:
    if x.device.type != "cpu" or x.shape[0] != 1 or torch.jit.is_tracing():
        return False  # CUDA, batches and exported graphs take their fast paths anyway
    return x.shape[1] * x.shape[2] * x.shape[3] <= _ONEDNN_MIN_ELEMENTS


def _first_conv_cpu(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` with zero channels appended to ``x`` and the kernel up to oneDNN's size."""
    plane = x.shape[2] * x.shape[3]
    extra = _ONEDNN_MIN_ELEMENTS // plane + 1 - x.shape[1]
    weight = F.pad(conv.weight, (0, 0, 0, 0, 0, 0, 0, extra))
    x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra))
    return F.conv3d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class DecoderBlock(nn.Sequential):
    """Two ESP blocks of ``width`` channels, then a 1x1 conv to ``out_channels`` (Sec. III-C)."""

    def __init__(
        self, in_channels: int, out_channels: int, width: int, branches: int, norm_layer: NormLayer
    ) -> None:
        super().__init__(
            ESPBlock(in_channels, width, branches, norm_layer=norm_layer),
            ESPBlock(width, width, branches, norm_layer=norm_layer),
            nn.Conv2d(width, out_channels, 1),
        )


class DecoderStage(nn.Module):
    """One stage of the joint decoder: refine the seg logits and the disparity with a residual.

    The skip features of the stage's resolution are concatenated to each path's input and
    squeezed by a 1x1 conv to ``num_classes`` channels; the disparity path also sees the stage's
    refined segmentation logits, which is how semantics informs disparity.
    """

    def __init__(
        self,
        skip_channels: int,
        num_classes: int,
        width: int,
        branches: int,
        norm_layer: NormLayer,
        tasks: Sequence[str],
    ) -> None:
        super().__init__()
        self.seg_squeeze: nn.Module | None = None
        self.disp_squeeze: nn.Module | None = None
        if "segmentation" in tasks:
            self.seg_squeeze = ConvBNAct(
                num_classes + skip_channels, num_classes, 1, norm_layer=norm_layer
            )
            self.seg_block = DecoderBlock(num_classes, num_classes, width, branches, norm_layer)
        if "disparity" in tasks:
            seg_in = num_classes if "segmentation" in tasks else 0
            self.disp_squeeze = ConvBNAct(
                1 + skip_channels + seg_in, num_classes, 1, norm_layer=norm_layer
            )
            self.disp_block = DecoderBlock(num_classes, 1, width, branches, norm_layer)

    def forward(
        self, skip: torch.Tensor, seg: torch.Tensor | None, disp: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.seg_squeeze is not None and seg is not None:
            seg = seg + self.seg_block(self.seg_squeeze(torch.cat([seg, skip], 1)))
        if self.disp_squeeze is not None and disp is not None:
            inputs = [disp, skip] + ([seg] if seg is not None else [])
            disp = disp + self.disp_block(self.disp_squeeze(torch.cat(inputs, 1)))
        return seg, disp


class ESPJointNet(StereoNetwork):
    """Joint semantic segmentation and disparity network with ESP blocks.

    Args:
        num_classes: semantic classes C.
        max_disparity: D, number of full-resolution disparity hypotheses (multiple of 4).
        p, q: repetitions of ESP blocks at 1/4 and 1/8 resolution (paper: 5 and 3).
        branches: K, width divider of every ESP block (paper: 5).
        feature_channels: channels of each of f1..f4 after the 1x1 reduction (paper: 16).
        volume_channels: channels of the 3D regulariser (paper: 32).
        num_res_blocks: 3D residual blocks (paper: 5).
        decoder_width: channels of the decoder's ESP blocks (paper: 48).
        tasks: any non-empty subset of ("disparity", "segmentation"); the single-task variants are
            the paper's ablation.
        matching_cost: ``concat`` (paper), ``census`` or ``concat+census`` (see the module
            docstring).
        census_window: census patch size (odd) for the census matching costs.
        norm_layer: 2D normalisation layer constructor.
    """

    stride = 8
    """Input height and width must be multiples of this (the pipeline pads to it)."""

    def __init__(
        self,
        *,
        num_classes: int = 19,
        max_disparity: int = 192,
        p: int = 5,
        q: int = 3,
        branches: int = 5,
        feature_channels: int = 16,
        volume_channels: int = 32,
        num_res_blocks: int = 5,
        decoder_width: int = 48,
        tasks: Sequence[str] = TASKS,
        matching_cost: str = "concat",
        census_window: int = 7,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if matching_cost not in MATCHING_COSTS:
            raise ValueError(
                f"matching_cost must be one of {MATCHING_COSTS}, got {matching_cost!r}"
            )
        if max_disparity % 4 or max_disparity <= 0:
            raise ValueError(f"max_disparity must be a positive multiple of 4, got {max_disparity}")
        tasks = check_tasks(tasks)
        self.num_classes = num_classes
        self.max_disparity = max_disparity
        self.tasks = tasks
        self.matching_cost = matching_cost
        self.census_window = census_window
        self.use_concat = "concat" in matching_cost
        self.use_census = "census" in matching_cost
        self.features = ESPFeatureExtractor(num_classes, p, q, branches, norm_layer)
        if "disparity" in tasks:
            volume_in = 0
            if self.use_concat:
                self.reduce = nn.ModuleList(
                    ConvBNAct(c, feature_channels, 1, norm_layer=norm_layer)
                    for c in self.features.channels
                )
                volume_in += 2 * 4 * feature_channels
            # census: the 4 full-precision disparities of each 1/4-resolution level as channels
            levels_out = 4 if self.use_census else 1
            volume_in += 4 if self.use_census else 0
            self.regulariser = VolumeRegulariser(
                nn.Conv3d(volume_in, volume_channels, 3, padding=1, bias=False),
                nn.BatchNorm3d(volume_channels),
                nn.ReLU(inplace=True),
                *[ResBlock3d(volume_channels) for _ in range(num_res_blocks)],
                # the last layer has no norm (Sec. IV-B): it outputs raw matching costs
                nn.Conv3d(volume_channels, levels_out, 3, padding=1),
            )
        skip_channels = (self.features.channels[1], self.features.channels[0], 3)
        self.decoder = nn.ModuleList(
            DecoderStage(c, num_classes, decoder_width, branches, norm_layer, tasks)
            for c in skip_channels
        )

    def _matching_features(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """f1..f4 reduced to 16 channels each and brought to 1/4 resolution, concatenated."""
        out = []
        for reduce, f in zip(self.reduce, feats):
            f = reduce(f)
            if f.shape[-2:] != size:
                # f1 is finer than 1/4 (average-pool it), f3/f4 coarser (interpolate them)
                f = (
                    F.adaptive_avg_pool2d(f, size)
                    if f.shape[-1] > size[1]
                    else upsample_to(f, size)
                )
            out.append(f)
        return torch.cat(out, 1)

    def _cost_volume(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        feats_l: list[torch.Tensor],
        feats_r: list[torch.Tensor],
        quarter: tuple[int, int],
    ) -> torch.Tensor:
        """The regulariser's input (B, C, D/4, H/4, W/4) for the chosen ``matching_cost``."""
        levels = self.max_disparity // 4
        volumes = []
        if self.use_concat:
            volumes.append(
                concat_cost_volume(
                    self._matching_features(feats_l, quarter),
                    self._matching_features(feats_r, quarter),
                    levels,
                )
            )
        if self.use_census:
            cost = census_cost_volume(left, right, self.max_disparity, self.census_window)
            # 8x8 full-resolution box aggregation, sampled at 1/4 resolution
            cost = F.avg_pool2d(cost, 4, stride=2, padding=1, count_include_pad=False)
            b = cost.shape[0]
            volumes.append(cost.view(b, levels, 4, *quarter).transpose(1, 2))
        return torch.cat(volumes, 1) if len(volumes) > 1 else volumes[0]

    def forward(
        self, left: torch.Tensor, right: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the network.

        Args:
            left, right: (B, 3, H, W) float, normalised images; H and W multiples of ``stride``.
                ``right`` may be None for the segmentation-only variant.

        Returns:
            dict with, depending on ``tasks``:
              ``disparity`` (B, 1, H, W) in pixels, ``confidence`` (B, 1, H, W) peak probability
              of the soft-argmin distribution, ``disparity_coarse`` (B, 1, H, W) the soft-argmin
              before the decoder; ``seg_logits`` (B, C, H, W) and
              ``seg_logits_coarse`` (B, C, H/8, W/8).
        """
        want_disp = "disparity" in self.tasks
        h, w = self.check_inputs(left, right, needs_right=want_disp)
        out: dict[str, torch.Tensor] = {}
        quarter = (h // 4, w // 4)
        if want_disp:
            both = self.features(torch.cat([left, right], 0))  # shared weights: one batched pass
            feats_l = [f[: left.shape[0]] for f in both]
            feats_r = [f[left.shape[0] :] for f in both]
            cost = self.regulariser(self._cost_volume(left, right, feats_l, feats_r, quarter))
            if self.use_census:
                # (B, 4, D/4, H/4, W/4) -> (B, D, H/4, W/4): channel k of level j is d = 4j + k
                cost = upsample_to(cost.transpose(1, 2).flatten(1, 2), (h, w))
            else:
                cost = F.interpolate(
                    cost, size=(self.max_disparity, h, w), mode="trilinear", align_corners=False
                ).squeeze(1)
            disp_full, confidence = soft_argmin(cost)
            out["disparity_coarse"] = disp_full
            out["confidence"] = confidence
            # the decoder works on disparity normalised by D so its residuals are O(1)
            disp = F.avg_pool2d(disp_full, 4) / self.max_disparity
        else:
            feats_l = self.features(left)
            disp = None
        seg = None
        if "segmentation" in self.tasks:
            out["seg_logits_coarse"] = feats_l[3]
            seg = upsample_to(feats_l[3], quarter)
        skips = (feats_l[1], feats_l[0], left)
        for i, (stage, skip) in enumerate(zip(self.decoder, skips)):
            if i:
                size = skip.shape[-2:]
                seg = None if seg is None else upsample_to(seg, size)
                disp = None if disp is None else upsample_to(disp, size)
            seg, disp = stage(skip, seg, disp)
        if disp is not None:
            out["disparity"] = disp * self.max_disparity
        if seg is not None:
            out["seg_logits"] = seg
        return out


@register_model("esp_joint", ESPJointNet)
def esp_joint(**kwargs: Any) -> ESPJointNet:
    """ESP joint network with the paper's defaults (0.64M parameters for 19 classes, D = 192).

    Keyword arguments: :class:`ESPJointNet`'s.
    """
    return ESPJointNet(**kwargs)
