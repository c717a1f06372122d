"""The ament_python packaging: `colcon build` installs what design.md's layout promises.

The build itself is the session fixture ``colcon_build`` (conftest.py), shared with the node
tests that start the installed console script: the repository is built once, with the colcon in
this test's own interpreter, into a temporary workspace, so build/, install/ and log/ never land
in the repository. Nothing is imported from the installed package here, so this test holds while
the modules named by the entry points are still being written.
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import ColconBuild

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "stereo_semantic_ros"
SHARED_DIRS = ("launch", "config", "models")
ENTRY_POINTS = {
    "stereo_semantic_node": "stereo_semantic_ros.ros.node:main",
    "stereo_semantic_lifecycle_node": "stereo_semantic_ros.ros.lifecycle_node:main",
    "stereo-semantic-bench": "stereo_semantic_ros.bench:main",
    "stereo-semantic-soak": "stereo_semantic_ros.soak:main",
    "stereo-semantic-demo": "stereo_semantic_ros.demo:main",
    "stereo-semantic-synth": "stereo_semantic_ros.synth.cli:main",
    "stereo-semantic-train": "stereo_semantic_ros.train:main",
    "stereo-semantic-eval": "stereo_semantic_ros.evaluate:main",
    "stereo-semantic-ablation": "stereo_semantic_ros.ablation:main",
    "stereo-semantic-make-bag": "stereo_semantic_ros.bagtools.make_bag:main",
    "stereo-semantic-replay": "stereo_semantic_ros.bagtools.replay:main",
    "stereo-semantic-play": "stereo_semantic_ros.ros.play:main",
    "stereo-semantic-echo": "stereo_semantic_ros.ros.echo:main",
    "stereo-semantic-export": "stereo_semantic_ros.export:main",
    "stereo-semantic-pseudo-label": "stereo_semantic_ros.pseudo_label:main",
}


def _repo_files(top: str) -> set[str]:
    """Files under REPO/top as repo-relative POSIX paths, the same set setup.py globs."""
    root = REPO / top
    if not root.is_dir():
        return set()
    return {
        p.relative_to(REPO).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def install_prefix(colcon_build: ColconBuild) -> Path:
    """install/<package> of the session's `colcon build` (conftest.py; isolated layout)."""
    report = colcon_build.report
    assert colcon_build.returncode == 0, (
        f"colcon build failed (rc={colcon_build.returncode})\n{report}"
    )
    assert f"Finished <<< {PACKAGE}" in colcon_build.stdout, f"package not built\n{report}"
    # setuptools would drop <name>.egg-info beside setup.py if colcon's --egg-base were ignored.
    assert colcon_build.egg_infos_after == colcon_build.egg_infos_before, (
        f"build wrote egg-info into the repo\n{report}"
    )
    prefix = colcon_build.prefix
    assert prefix.is_dir(), f"no {prefix}\n{report}"
    return prefix


def test_executables_installed_under_lib(install_prefix: Path) -> None:
    lib = install_prefix / "lib" / PACKAGE
    for name in ENTRY_POINTS:
        exe = lib / name
        assert exe.is_file(), f"missing executable {exe}; have {sorted(os.listdir(lib))}"
        assert os.access(exe, os.X_OK), f"{exe} is not executable"
        # Must run with the interpreter that built it, the one holding the dependencies.
        first_line = exe.read_text().splitlines()[0]
        assert first_line == f"#!{sys.executable}", f"{exe} shebang is {first_line!r}"


def test_entry_points_name_the_agreed_modules(install_prefix: Path) -> None:
    (egg_info,) = install_prefix.glob("lib/python*/site-packages/stereo_semantic_ros-*.egg-info")
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # keep names like stereo-semantic-bench as written
    parser.read(egg_info / "entry_points.txt")
    scripts = {k: v.strip() for k, v in parser["console_scripts"].items()}
    assert scripts == ENTRY_POINTS


def test_package_manifest_and_ament_index_marker(install_prefix: Path) -> None:
    share = install_prefix / "share"
    marker = share / "ament_index" / "resource_index" / "packages" / PACKAGE
    assert marker.is_file(), f"missing ament index marker {marker}"
    manifest = share / PACKAGE / "package.xml"
    assert manifest.read_bytes() == (REPO / "package.xml").read_bytes()


@pytest.mark.parametrize("top", SHARED_DIRS)
def test_shared_dirs_installed_with_every_repo_file(install_prefix: Path, top: str) -> None:
    share = install_prefix / "share" / PACKAGE
    expected = _repo_files(top)
    if top == "models":
        # models/ always holds at least its README, so this check is never vacuous.
        assert "models/README.md" in expected
    if expected:
        assert (share / top).is_dir(), f"{share / top} not installed"
    missing = sorted(rel for rel in expected if not (share / rel).is_file())
    assert not missing, f"repo files not installed under {share}: {missing}"
    for rel in expected:
        assert (share / rel).read_bytes() == (REPO / rel).read_bytes(), f"{rel} differs"


def test_python_packages_installed(install_prefix: Path) -> None:
    (site,) = install_prefix.glob("lib/python*/site-packages")
    src = REPO / PACKAGE
    assert (site / PACKAGE / "__init__.py").is_file()
    for path in src.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        # A folder of modules without __init__.py is skipped by find_packages, so its modules
        # would silently be missing from the install: name the folder instead.
        assert (path.parent / "__init__.py").is_file(), (
            f"{path.parent.relative_to(REPO)} holds modules but no __init__.py"
        )
        rel = path.relative_to(REPO)
        assert (site / rel).is_file(), f"{rel} not installed into {site}"
