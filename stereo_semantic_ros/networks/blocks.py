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


# SWAR popcount masks (Hacker's Delight 5-1) for codes of at most CENSUS_WORD_BITS bits
_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F
_BYTES_ONE = 0x0101010101010101
CENSUS_WORD_BITS = 56
"""Census bits packed per int64 word: 7 bytes, so a word's popcount (<= 56) fits the top byte of
the byte-sum multiply and every value stays non-negative (arithmetic shifts are then exact)."""


def census_codes(
    image: torch.Tensor, window: int = 7, stride: tuple[int, int] = (1, 1)
) -> list[torch.Tensor]:
    """Census transform packed into int64 words (bit k: neighbour k darker than the centre).

    The bits are those of :func:`census_transform` (+1 there is bit 1 here) plus the centre's
    own bit, always 0, so the Hamming distance of two codes is the same.

    Args:
        image: (B, C, H, W) float; the grey value is the channel mean.
        window: odd patch size.
        stride: (row, column) step of the pixels coded.

    Returns:
        ``ceil(window**2 / 56)`` int64 tensors (B, ceil(H / stride[0]), ceil(W / stride[1])).
    """
    if window < 3 or window % 2 == 0:
        raise ValueError(f"census window must be odd and >= 3, got {window}")
    grey = image.float().mean(1, keepdim=True)
    b, _, h, w = grey.shape
    pad = window // 2
    patches = F.unfold(F.pad(grey, (pad, pad, pad, pad), mode="replicate"), window, stride=stride)
    centre = window * window // 2
    bits = (patches < patches[:, centre : centre + 1]).to(torch.int64)
    rows, cols = -(-h // stride[0]), -(-w // stride[1])
    words = []
    for start in range(0, window * window, CENSUS_WORD_BITS):
        chunk = bits[:, start : start + CENSUS_WORD_BITS]
        weights = torch.pow(2, torch.arange(chunk.shape[1], device=image.device))
        words.append((chunk * weights.view(1, -1, 1)).sum(1).view(b, rows, cols))
    return words


def popcount(x: torch.Tensor) -> torch.Tensor:
    """Set bits of every element of a non-negative int64 tensor below 2**56, in place.

    SWAR bit counting: pairs, nibbles, bytes, then one multiply sums the bytes into the top
    byte. The multiply wraps past 2**63 by design (two's complement, as torch and onnxruntime
    compute int64 products); the top byte holds the count (<= 56) and its top bit stays 0.
    """
    x.sub_((x >> 1).bitwise_and_(_M1))
    x = (x & _M2).add_((x >> 2).bitwise_and_(_M2))
    x.add_(x >> 4).bitwise_and_(_M4)
    return x.mul_(_BYTES_ONE).bitwise_right_shift_(56)


def census_cost_volume(
    left: torch.Tensor, right: torch.Tensor, max_disparity: int, window: int = 7
) -> torch.Tensor:
    """Census matching cost (normalised Hamming distance) of every even pixel of the left view.

    The cost of left pixel ``(u, v)`` at disparity ``d`` is the fraction of census bits that
    differ from those of right pixel ``(u - d, v)``. It has no weights and is computed without
    gradients. Only every second row and column of the left view is scored (all disparities, at
    full precision): the volume is box-aggregated to a quarter of the resolution afterwards,
    where these samples carry the same information as all pixels at a quarter of the cost.

    The codes are packed into int64 words (:func:`census_codes`) and the distance is the
    popcount of their XOR for all disparities at once, gathered with one index: a loop of D
    float products over the ``window**2 - 1`` code channels cost 4-8x more on a CPU, and a
    loop would unroll to D copies in an exported ONNX graph. Equal to the float formula
    ``(1 - <c_l, c_r> / n) / 2`` of :func:`census_transform`'s +-1 codes up to float rounding
    (6e-8, test_census.py).

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
        codes_l = census_codes(left, window, (2, 2))  # (B, H/2, W/2) each
        codes_r = census_codes(right, window, (2, 1))  # (B, H/2, W) each
        half_w = codes_l[0].shape[-1]
        disparities = torch.arange(max_disparity, device=left.device).view(-1, 1)
        # right column of left column 2k at disparity d: 2k - d (outside the image when < 0)
        source = 2 * torch.arange(half_w, device=left.device).view(1, -1) - disparities
        inside = source >= 0
        source = source.clamp_min(0)
        count: torch.Tensor | None = None
        for code_l, code_r in zip(codes_l, codes_r):
            # (B, H/2, D, W/2): the XOR of each left code with its D candidate right codes
            bits = popcount(code_r[:, :, source] ^ code_l.unsqueeze(2))
            count = bits if count is None else count + bits
        assert count is not None
        cost = torch.where(inside, count.to(torch.float32) / (window * window - 1), 1.0)
        out = cost.transpose(1, 2).contiguous()
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
    # softmax(-cost) written out: exp(min - cost) / Z, whose peak is exactly 1 / Z. The same
    # arithmetic as torch.softmax, but no softmax over a non-last axis, which onnxruntime
    # transposes for (a third of esp_joint's time there), and one pass fewer for the peak.
    # The shift is detached: softmax does not depend on it, so the gradients are softmax's.
    cost = cost.float()
    weights = torch.exp(cost.detach().amin(dim=1, keepdim=True) - cost)
    total = weights.sum(dim=1, keepdim=True)
    hypotheses = torch.arange(cost.shape[1], device=cost.device, dtype=cost.dtype).view(1, -1, 1, 1)
    disparity = (weights * hypotheses).sum(dim=1, keepdim=True) / total
    # the peak weight is exp(0) = 1; only its gradient needs the pass that finds it
    peak = weights.amax(dim=1, keepdim=True) if weights.requires_grad else 1.0
    return disparity, peak / total


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to ``size`` = (H, W)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
