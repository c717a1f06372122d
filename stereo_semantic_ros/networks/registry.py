"""Architecture registry (torchvision style): the node's ``architecture`` is a key into it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Register a builder under ``name``; a second registration of a name is an error."""

    def wrapper(builder: F) -> F:
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return wrapper


GEOMETRIES = ("disparity", "depth")
"""What an architecture's geometric output can be (its ``geometry`` class attribute)."""


def geometry_of(model: nn.Module) -> str:
    """What a network's geometric output is: ``disparity`` (pixels, from the rectified pair,
    with a ``confidence``; the default for networks that do not say) or ``depth`` (metres,
    from the left image alone; the pipeline converts it to disparity with the calibration)."""
    geometry = getattr(model, "geometry", "disparity")
    if geometry not in GEOMETRIES:
        raise ValueError(
            f"{type(model).__name__}.geometry must be one of {GEOMETRIES}, got {geometry!r}"
        )
    return geometry


def list_models() -> list[str]:
    return sorted(_BUILDERS)


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; available: {', '.join(list_models()) or 'none'}"
        ) from None


def get_model(name: str, **config: Any) -> nn.Module:
    """Build architecture ``name`` with keyword hyper-parameters ``config``."""
    return get_model_builder(name)(**config)
