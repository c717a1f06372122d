"""Blocks shared by the architectures: conv units, ESP blocks, cost volumes, correlation,
census matching cost, cross-stitch units, soft-argmin."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

NormLayer = Callable[[int], nn.Module]


def leaky_relu() -> nn.Module:
    # slope 0.01 as in the ESP joint paper (Sec. IV-B)
    return nn.LeakyReLU(0.01, inplace=True)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> norm -> leaky ReLU; ``act=False`` drops the activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
        act: bool = True,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False
            ),
            norm_layer(out_channels),
        ]
        if act:
            layers.append(leaky_relu())
        super().__init__(*layers)


class ESPBlock(nn.Module):
    """Efficient spatial pyramid block (ESPNet, Mehta et al. 2018).

    Reduce -> split -> transform -> merge: a pointwise (or strided 3x3 when downsampling) conv
    reduces C input channels to ``M / K``; K parallel 3x3 convolutions with dilation rates
    ``2**(k-1)`` see growing receptive fields; hierarchical feature fusion (HFF) adds the branch
    outputs cumulatively before concatenating them, which removes the gridding artefacts of
    plain summation. A residual connection is used when shapes allow it.

    Args:
        in_channels: C.
        out_channels: M.
        branches: K, the width divider.
        stride: 1, or 2 to halve the resolution (no residual then).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        branches: int = 5,
        stride: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if branches < 1 or out_channels < branches:
            raise ValueError(
                f"ESP block needs 1 <= branches <= out_channels, got {branches}, {out_channels}"
            )
        width = out_channels // branches
        # the first branch takes the remainder so the concatenation has exactly M channels
        first = out_channels - (branches - 1) * width
        kernel = 1 if stride == 1 else 3
        self.reduce = nn.Conv2d(in_channels, width, kernel, stride, (kernel - 1) // 2, bias=False)
        self.branches = nn.ModuleList(
            nn.Conv2d(width, first if k == 0 else width, 3, 1, 2**k, dilation=2**k, bias=False)
            for k in range(branches)
        )
        self.residual = stride == 1 and in_channels == out_channels
        self.norm = norm_layer(out_channels)
        self.act = leaky_relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, M, H/stride, W/stride)."""
        reduced = self.reduce(x)
        outputs = [self.branches[0](reduced)]
        fused: torch.Tensor | None = None
        for branch in self.branches[1:]:
            y = branch(reduced)
            fused = y if fused is None else fused + y
            outputs.append(fused)
        out = torch.cat(outputs, dim=1)
        if self.residual:
            out = out + x
        return self.act(self.norm(out))


class InputReinforcement(nn.Module):
    """The input image average-pooled by ``2**levels`` (ESPNet's input reinforcement)."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.pool = nn.Sequential(*[nn.AvgPool2d(3, stride=2, padding=1) for _ in range(levels)])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.pool(image)


class ResBlock3d(nn.Module):
    """Two 3x3x3 convs with batch norm and a residual (ReLU, as the paper's regulariser)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def concat_cost_volume(left: torch.Tensor, right: torch.Tensor, levels: int) -> torch.Tensor:
    """4D concatenation cost volume (GC-Net / PSMNet style).

    Args:
        left, right: (B, C, H, W) features of the two views at the volume's resolution.
        levels: number of disparity hypotheses D at that resolution.

    Returns:
        (B, 2C, D, H, W): ``[:, :C, d, :, x] = left[..., x]`` and
        ``[:, C:, d, :, x] = right[..., x - d]``
        for ``x >= d``; zero where the right view has no pixel for hypothesis d.
    """
    if left.shape != right.shape:
        raise ValueError(f"left features {tuple(left.shape)} and right {tuple(right.shape)} differ")
    b, c, h, w = left.shape
    volume = left.new_zeros(b, 2 * c, levels, h, w)
    for d in range(levels):
        if d >= w:
            break
        volume[:, :c, d, :, d:] = left[..., d:]
        volume[:, c:, d, :, d:] = right[..., : w - d]
    return volume


def census_transform(image: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Census transform of an image's grey value (Zabih & Woodfill 1994) as +-1 codes.

    Each pixel gets one bit per neighbour of its ``window`` x ``window`` patch: +1 where the
    neighbour is darker than the centre, -1 otherwise. The code depends only on the order of grey
    values, which is what makes it a matching cost that transfers from synthetic to real
    cameras: gain, offset, gamma and vignetting differences between the views leave it unchanged.

    Args:
        image: (B, C, H, W) float; the grey value is the channel mean.
        window: odd patch size.

    Returns:
        (B, window**2 - 1, H, W) float tensor of +-1 (borders replicate the edge pixels).
    """
    if window < 3 or window % 2 == 0:
        raise ValueError(f"census window must be odd and >= 3, got {window}")
    grey = image.float().mean(1, keepdim=True)
    b, _, h, w = grey.shape
    pad = window // 2
    patches = F.unfold(F.pad(grey, (pad, pad, pad, pad), mode="replicate"), window)
    centre = window * window // 2
    neighbours = torch.cat([patches[:, :centre], patches[:, centre + 1 :]], 1)
    bits = torch.where(neighbours < grey.flatten(2), 1.0, -1.0)
    return bits.view(b, -1, h, w)


def census_cost_volume(
    left: torch.Tensor, right: torch.Tensor, max_disparity: int, window: int = 7
) -> torch.Tensor:
    """Census matching cost (normalised Hamming distance) of every even pixel of the left view.

    The cost of left pixel ``(u, v)`` at disparity ``d`` is the fraction of census bits that
    differ from those of right pixel ``(u - d, v)``; as the codes are +-1 this is
    ``(1 - <c_l, c_r> / n) / 2``. It has no weights and is computed without gradients. Only
    every second row and column of the left view is scored (all disparities, at full
    precision): the volume is box-aggregated to a quarter of the resolution afterwards, where
    these samples carry the same information as all pixels at a quarter of the cost.

    Args:
        left, right: (B, C, H, W) images (any normalisation), H and W even.
        max_disparity: D, number of disparity hypotheses 0..D-1 in pixels.
        window: census patch size.

    Returns:
        (B, D, H/2, W/2) costs in [0, 1]; 1 where ``u - d`` is outside the right image.
    """
    if left.shape != right.shape or left.ndim != 4:
        raise ValueError(
            f"census cost needs two (B, C, H, W) images of one shape, got {tuple(left.shape)} "
            f"and {tuple(right.shape)}"
        )
    h, w = left.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"census cost needs an even image size, got {h}x{w}")
    with torch.no_grad():
        code_l = census_transform(left, window)[..., ::2, ::2]
        code_r = census_transform(right, window)[..., ::2, :]
        b, n, hh, wh = code_l.shape
        out = code_l.new_ones(b, max_disparity, hh, wh)
        for d in range(min(max_disparity, w)):
            first = (d + 1) // 2  # first left column 2k with 2k - d >= 0
            cols = code_r[..., 2 * first - d :: 2][..., : wh - first]
            out[:, d, :, first:] = 0.5 - 0.5 * (code_l[..., first:] * cols).mean(1)
    return out.to(left.dtype)


def correlation_1d(
    left: torch.Tensor,
    right: torch.Tensor,
    max_displacement: int,
    patch_size: int = 1,
    stride: int = 1,
) -> torch.Tensor:
    """FlowNet's correlation layer restricted to a rectified pair's epipolar lines (DispNetC).

    The correlation of a patch centred at ``x1`` in ``left`` and ``x2`` in ``right`` is
    ``c(x1, x2) = sum_{o in [-k, k]^2} <left(x1 + o), right(x2 + o)>`` with patch size
    ``K = 2k + 1`` (FlowNet eq. 1); it has no weights. For a left-referenced disparity the
    partner of ``x1 = (u, v)`` is ``x2 = (u - d, v)``, so only horizontal displacements
    ``d = 0, stride, 2 * stride, ... <= max_displacement`` are compared. Features outside the
    image count as zero. As in FlowNet's implementation the sum is divided by ``C * K**2``.

    Args:
        left, right: (B, C, H, W) feature maps of the two views.
        max_displacement: largest displacement d, in pixels of the feature maps (>= 0).
        patch_size: K, odd.
        stride: step between compared displacements.

    Returns:
        (B, max_displacement // stride + 1, H, W), channel i holding displacement ``i * stride``;
        computed in float32 and returned in the inputs' dtype.
    """
    if left.shape != right.shape or left.ndim != 4:
        raise ValueError(
            f"correlation needs two (B, C, H, W) maps of one shape, got {tuple(left.shape)} "
            f"and {tuple(right.shape)}"
        )
    if max_displacement < 0 or stride < 1 or patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(
            f"need max_displacement >= 0, stride >= 1 and an odd patch_size, got "
            f"{max_displacement}, {stride}, {patch_size}"
        )
    b, c, h, w = left.shape
    f1, f2 = left.float(), right.float()
    out = f1.new_zeros(b, max_displacement // stride + 1, h, w)
    for i, d in enumerate(range(0, max_displacement + 1, stride)):
        if d < w:
            out[:, i, :, d:] = (f1[..., d:] * f2[..., : w - d]).sum(1)
    if patch_size > 1:
        # the patch sum of per-pixel products, zero outside the image: a K x K box filter
        k = patch_size // 2
        out = F.avg_pool2d(out, patch_size, 1, k, count_include_pad=True) * patch_size**2
    return (out / (c * patch_size**2)).to(left.dtype)


class CrossStitch(nn.Module):
    """Cross-stitch unit (Misra et al. 2016; the "alpha layer" of the corr_mtl paper, Sec. 5.2).

    Mixes the activations of two task branches of equal shape at every location:
    ``[x~A, x~B] = [[a_AA, a_AB], [a_BA, a_BB]] @ [xA, xB]``. ``a_AA = a_BB = alpha_same`` and
    ``a_AB = a_BA = alpha_diff`` initially; all four are learnt (autograd gives the paper's
    transposed-matrix backward).
    """

    def __init__(self, alpha_same: float = 0.9, alpha_diff: float = 0.1) -> None:
        super().__init__()
        self.alpha = nn.Parameter(
            torch.tensor([[alpha_same, alpha_diff], [alpha_diff, alpha_same]], dtype=torch.float32)
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (B, C, H, W) tensors of one shape -> the two mixed tensors."""
        if a.shape != b.shape:
            raise ValueError(
                f"cross-stitch needs equal shapes, got {tuple(a.shape)}, {tuple(b.shape)}"
            )
        alpha = self.alpha.to(a.dtype)
        return alpha[0, 0] * a + alpha[0, 1] * b, alpha[1, 0] * a + alpha[1, 1] * b


def soft_argmin(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable arg-min over the disparity dimension (GC-Net, paper eq. 1).

    Args:
        cost: (B, D, H, W) matching costs; lower is better.

    Returns:
        disparity (B, 1, H, W) in units of the D dimension's index, and the peak probability of
        the softmax(-cost) distribution (B, 1, H, W) in [1/D, 1], used as the confidence.
    """
    prob = torch.softmax(-cost.float(), dim=1)
    hypotheses = torch.arange(cost.shape[1], device=cost.device, dtype=prob.dtype).view(1, -1, 1, 1)
    disparity = (prob * hypotheses).sum(dim=1, keepdim=True)
    confidence = prob.amax(dim=1, keepdim=True)
    return disparity, confidence


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to ``size`` = (H, W)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
