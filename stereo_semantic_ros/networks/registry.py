"""Architecture registry (torchvision style): the node's ``architecture`` is a key into it.

Each architecture registers a builder that forwards its keyword arguments to its network class
(a :class:`~stereo_semantic_ros.networks.contract.StereoNetwork`); the class's ``__init__`` is
the one place its hyper-parameters are listed (:func:`hyper_parameters`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from stereo_semantic_ros.networks.contract import (  # noqa: F401  (re-exported)
    GEOMETRIES,
    StereoNetwork,
    geometry_of,
)

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_NETWORKS: dict[str, type[StereoNetwork]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str, network: type[StereoNetwork]) -> Callable[[F], F]:
    """Register a builder of ``network`` under ``name``; a second registration of a name is an
    error."""

    def wrapper(builder: F) -> F:
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} is already registered")
        _BUILDERS[name] = builder
        _NETWORKS[name] = network
        return builder

    return wrapper


def list_models() -> list[str]:
    return sorted(_BUILDERS)


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; available: {', '.join(list_models()) or 'none'}"
        ) from None


def hyper_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments architecture ``name`` takes that a recipe or checkpoint can hold
    (its network class's ``__init__`` parameters but ``constructor_only`` ones), in order."""
    get_model_builder(name)  # the error for an unknown name
    network = _NETWORKS[name]
    params = inspect.signature(network.__init__).parameters
    return {
        k: p
        for k, p in params.items()
        if k != "self"
        and k not in network.constructor_only
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def get_model(name: str, **config: Any) -> nn.Module:
    """Build architecture ``name`` with keyword hyper-parameters ``config``."""
    return get_model_builder(name)(**config)
