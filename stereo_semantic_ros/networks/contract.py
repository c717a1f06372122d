"""What every network of the registry is: the contract the pipeline, training and the node rely
on, written down once instead of ``getattr(model, "stride", 8)``-style guesses.

A network is a :class:`StereoNetwork` (an ``nn.Module``) whose class states:

* ``stride``: input height and width must be multiples of it (the pipeline pads to it);
* ``geometry``: ``disparity`` (from the rectified pair, pixels, with a ``confidence``) or
  ``depth`` (from the left image alone, metres; the pipeline turns it into disparity with the
  calibration);

and whose instances hold

* ``max_disparity``: the disparity range it searches, pixels of its own input;
* ``tasks``: a non-empty subset of :data:`TASKS`, the heads it has.

``forward(left, right)`` (``right`` may be None for a depth network) takes (B, 3, H, W) float
images normalised with the training mean/std and returns a dict of (B, ·, H, W) tensors:
:data:`OUTPUTS` says which key comes from which task and geometry. A network may return more
(auxiliary outputs for the losses, while training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

__all__ = [
    "GEOMETRIES",
    "OUTPUTS",
    "TASKS",
    "NetworkTraits",
    "StereoNetwork",
    "check_tasks",
    "geometry_of",
    "network_traits",
]

TASKS = ("disparity", "segmentation")
"""The heads a network can have (the training recipe's ``train.tasks`` picks among them)."""
GEOMETRIES = ("disparity", "depth")
"""What an architecture's geometric output can be (its ``geometry`` class attribute)."""
OUTPUTS: dict[str, tuple[str, str, str]] = {
    "disparity": ("disparity", "disparity", "B x 1 x H x W pixels, >= 0"),
    "confidence": ("disparity", "disparity", "B x 1 x H x W in [0, 1]"),
    "depth": ("disparity", "depth", "B x 1 x H x W metres, > 0"),
    "seg_logits": ("segmentation", "any", "B x C x H x W class scores"),
}
"""forward()'s keys: (task, geometry that outputs it, shape and unit)."""


class StereoNetwork(nn.Module):
    """Base class of the registered networks; see the module docstring for the contract.

    Subclasses set ``stride`` (and ``geometry`` if not ``disparity``) on the class and
    ``max_disparity`` and ``tasks`` in ``__init__``. ``constructor_only`` names ``__init__``
    arguments that are code, not hyper-parameters (a recipe or checkpoint cannot hold them).
    The base adds no parameters or buffers, so ``state_dict`` keys are the subclass's own.
    """

    stride: ClassVar[int]
    geometry: ClassVar[str] = "disparity"
    constructor_only: ClassVar[tuple[str, ...]] = ("norm_layer",)
    max_disparity: int
    tasks: tuple[str, ...] = TASKS

    def check_inputs(
        self, left: torch.Tensor, right: torch.Tensor | None, *, needs_right: bool
    ) -> tuple[int, int]:
        """forward()'s input checks; returns (H, W).

        Raises:
            ValueError: ``left`` not (B, 3, H, W), a size that is not a multiple of ``stride``,
                or (``needs_right``) a missing right image or one of another shape.
        """
        if left.ndim != 4 or left.shape[1] != 3:
            raise ValueError(f"left must be (B, 3, H, W), got {tuple(left.shape)}")
        h, w = left.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(f"input {h}x{w} is not a multiple of {self.stride}; pad it first")
        if needs_right and (right is None or right.shape != left.shape):
            got = None if right is None else tuple(right.shape)
            raise ValueError(f"right must match left {tuple(left.shape)}, got {got}")
        return h, w


def check_tasks(tasks: object) -> tuple[str, ...]:
    """``tasks`` as a tuple, refused unless a non-empty subset of :data:`TASKS` (no repeats)."""
    tasks = tuple(tasks)  # type: ignore[call-overload]
    if not tasks or any(t not in TASKS for t in tasks) or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tasks}")
    return tasks


@dataclass(frozen=True)
class NetworkTraits:
    """The contract's values of one network."""

    stride: int
    max_disparity: int
    tasks: tuple[str, ...]
    geometry: str


def geometry_of(model: nn.Module) -> str:
    """A network's ``geometry``, checked against :data:`GEOMETRIES`."""
    geometry = getattr(model, "geometry", None)
    if geometry not in GEOMETRIES:
        raise ValueError(
            f"{type(model).__name__}.geometry must be one of {GEOMETRIES}, got {geometry!r}"
        )
    return geometry


def network_traits(model: nn.Module) -> NetworkTraits:
    """The contract's values of ``model``, checked.

    Raises:
        TypeError: ``model`` is not a :class:`StereoNetwork`.
        ValueError: a value outside the contract.
    """
    if not isinstance(model, StereoNetwork):
        raise TypeError(
            f"{type(model).__name__} is not a stereo_semantic_ros.networks.contract."
            "StereoNetwork: a network states stride, geometry, max_disparity and tasks"
        )
    stride, max_disparity = int(model.stride), int(model.max_disparity)
    if stride < 1 or max_disparity < 1:
        raise ValueError(
            f"{type(model).__name__}: stride {stride} and max_disparity {max_disparity} must "
            "be >= 1"
        )
    return NetworkTraits(stride, max_disparity, check_tasks(model.tasks), geometry_of(model))
