"""Inference-only rewrites of a network that keep its outputs (up to float rounding).

:func:`to_channels_last` changes only the memory layout of the weights (the GPU fast path).

:func:`fold_batchnorm` folds every eval-mode batch norm that directly follows a convolution in
an ``nn.Sequential`` into that convolution's weights and bias: one pass over the activations
fewer per layer. The weights file is untouched (the rewrite happens on the loaded module), and
outputs differ from the unfolded network by float rounding only (test_networks_inference.py
states the tolerance).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_PAIRS = ((nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))


def fold_batchnorm(model: nn.Module) -> int:
    """Fold conv -> batch-norm pairs of ``model``'s ``nn.Sequential`` blocks, in place.

    Only pairs adjacent in one ``nn.Sequential`` are folded (the conv's output then reaches
    nothing but the norm) and only norms in eval mode with running statistics; the folded norm
    becomes ``nn.Identity`` so module indices (and a Sequential's own ``forward``) still hold.

    Returns:
        the number of pairs folded.

    Raises:
        ValueError: ``model`` is in training mode (batch statistics cannot be folded).
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode; call model.eval() first")
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = module._modules[first], module._modules[second]
            if not any(isinstance(conv, c) and type(norm) is n for c, n in _PAIRS):
                continue
            if conv.transposed or norm.training or not norm.track_running_stats:  # type: ignore[union-attr]
                continue
            module._modules[first] = fuse_conv_bn_eval(conv, norm)  # type: ignore[arg-type]
            module._modules[second] = nn.Identity()
            folded += 1
    return folded


def to_channels_last(model: nn.Module) -> nn.Module:
    """Lay 2D convolution weights out channels-last (NHWC) and 3D ones channels-last-3d
    (NDHWC), in place; ``Module.to(memory_format=...)`` refuses a model holding both ranks.

    cuDNN then picks its NHWC kernels (tensor cores in half precision) and the activations
    follow the weights' layout. Values are unchanged: only strides differ.
    """
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
        elif tensor.dim() == 5:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)
    return model
