"""Where the package's shipped files are, however it was installed: one resolver.

``config/``, ``models/`` and ``launch/`` sit at the repository root and setup.py installs them
as ``share/stereo_semantic_ros/...`` data files. The same lookup serves every install:

1. a colcon build or ROS install (the ament index knows the package's share directory);
2. a source checkout, or ``pip install -e .`` (the folders beside the Python package);
3. ``pip install .`` (``<sys.prefix>/share/stereo_semantic_ros``, where pip puts data files).

Weights: a relative ``weights`` value is tried against the current directory first (a run's
``runs/x/final.pt``), then the package's ``models/``; a file that is in neither place is an
error naming both, never a silent untrained network. Only an explicit ``''`` means untrained.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "stereo_semantic_ros"
_CHECKOUT = Path(__file__).resolve().parents[1]


class ResourceError(FileNotFoundError):
    """A shipped file or a requested weights file that is not where it was looked for."""


def _ament_share() -> Path | None:
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError, ValueError, OSError):
        # LookupError: the package is not in the index; OSError: AMENT_PREFIX_PATH is unset
        return None


def share_candidates() -> list[Path]:
    """The places searched, in order (see the module docstring)."""
    found = [_ament_share(), _CHECKOUT, Path(sys.prefix) / "share" / PACKAGE]
    return [p for p in found if p is not None]


def share_dir() -> Path:
    """The first candidate that holds both ``config/`` and ``models/``.

    Raises:
        ResourceError: none does (a broken install); the message lists where it looked.
    """
    candidates = share_candidates()
    for path in candidates:
        if (path / "config").is_dir() and (path / "models").is_dir():
            return path
    raise ResourceError(
        f"{PACKAGE}'s config/ and models/ are in none of {', '.join(map(str, candidates))}; "
        "reinstall the package (pip install . or colcon build) or run from its checkout"
    )


def models_dir() -> Path:
    return share_dir() / "models"


def config_file(name: str) -> Path:
    """``config/<name>`` of the package (e.g. ``esp_joint.yaml``)."""
    return share_dir() / "config" / name


def default_params_file() -> Path:
    """The default architecture's parameter file, ``config/esp_joint.yaml``."""
    return config_file("esp_joint.yaml")


def weights_candidates(weights: str) -> list[Path]:
    """Where a ``weights`` value is looked for: an absolute path as is; a relative one in the
    current directory, then in the package's ``models/``."""
    path = Path(weights).expanduser()
    if path.is_absolute():
        return [path]
    return [Path.cwd() / path, models_dir() / path]


def resolve_weights(weights: str) -> Path | None:
    """``''`` -> None (the untrained network, asked for explicitly); else the first existing
    candidate of :func:`weights_candidates`.

    Raises:
        ResourceError: no candidate exists; the message names every place tried.
    """
    if not weights:
        return None
    candidates = weights_candidates(weights)
    for path in candidates:
        if path.exists():
            return path
    tried = " nor ".join(str(p) for p in candidates)
    raise ResourceError(
        f"weights {weights!r} not found: neither {tried} exists; give an existing checkpoint, "
        "or '' for an untrained network (plumbing tests only)"
        if len(candidates) > 1
        else f"weights {tried} does not exist; give an existing checkpoint, or '' for an "
        "untrained network (plumbing tests only)"
    )
