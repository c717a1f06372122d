"""Session-wide fixtures.

``colcon_build``: the repository built once per test session with the colcon of this test's own
interpreter (colcon-core, colcon-ros and colcon-python-setup-py come from requirements-dev.txt)
into a temporary workspace, so build/, install/ and log/ never land in the repository. The
packaging test checks the install tree; the node tests start the installed console script.

``data_root``: six 96x48 synthetic scenes in the KITTI 2015 layout, rendered once per session
by the synth CLI; the training and ablation tests read it (none writes into it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "stereo_semantic_ros"


def egg_infos() -> frozenset[str]:
    """``*.egg-info`` folders beside setup.py (a build must not leave any)."""
    return frozenset(p.name for p in REPO.glob("*.egg-info"))


@dataclass(frozen=True)
class ColconBuild:
    """What one ``colcon build`` did.

    Attributes:
        workspace: the temporary workspace (build/, install/, log/ inside).
        prefix: ``install/<package>`` (isolated install layout).
        returncode, stdout: of the colcon process.
        report: the command and its whole output, for assertion messages.
        egg_infos_before, egg_infos_after: ``*.egg-info`` in the repo around the build.
    """

    workspace: Path
    prefix: Path
    returncode: int
    stdout: str
    report: str
    egg_infos_before: frozenset[str]
    egg_infos_after: frozenset[str]

    def require_success(self) -> Path:
        """The install prefix; fails the calling test with colcon's output if the build failed."""
        assert self.returncode == 0, f"colcon build failed (rc={self.returncode})\n{self.report}"
        assert f"Finished <<< {PACKAGE}" in self.stdout, f"package not built\n{self.report}"
        assert self.prefix.is_dir(), f"no {self.prefix}\n{self.report}"
        return self.prefix

    def site_packages(self) -> Path:
        (site,) = self.prefix.glob("lib/python*/site-packages")
        return site


@pytest.fixture(scope="session")
def colcon_build(tmp_path_factory: pytest.TempPathFactory) -> ColconBuild:
    """Run ``colcon build`` of the repository once for the whole session."""
    ws = tmp_path_factory.mktemp("colcon_ws")
    before = egg_infos()
    env = dict(os.environ)
    # A user's ~/.colcon defaults (e.g. --symlink-install) must not change what is tested.
    env["COLCON_HOME"] = str(ws / "colcon_home")
    # Outer workspaces sourced in the calling shell would only add warnings and chained prefixes.
    for var in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
        env.pop(var, None)
    cmd = [
        sys.executable,
        "-m",
        "colcon",
        "--log-base",
        str(ws / "log"),
        "build",
        "--base-paths",
        str(REPO),
        "--build-base",
        str(ws / "build"),
        "--install-base",
        str(ws / "install"),
        "--event-handlers",
        "console_direct+",
    ]
    proc = subprocess.run(
        cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    report = f"$ {' '.join(cmd)}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    return ColconBuild(
        workspace=ws,
        prefix=ws / "install" / PACKAGE,
        returncode=proc.returncode,
        stdout=proc.stdout,
        report=report,
        egg_infos_before=before,
        egg_infos_after=egg_infos(),
    )


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 96x48 synthetic scenes in the KITTI layout, rendered by the synth CLI."""
    from stereo_semantic_ros.synth import cli

    root = tmp_path_factory.mktemp("synth")
    argv = ["--out", str(root), "--count", "6", "--width", "96", "--height", "48"]
    assert cli.main([*argv, "--seed", "0", "--workers", "1"]) == 0
    return root


@pytest.fixture(scope="session")
def data_bag(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data_root``'s six scenes as a rosbag2 (mcap) with their ground-truth topics, made by
    make-bag; read-only for the tests that share it."""
    from stereo_semantic_ros.bagtools.make_bag import main as make_bag_main

    out = tmp_path_factory.mktemp("bag") / "drive"
    argv = ["--out", str(out), "--source", "kitti2015", "--data", str(data_root)]
    assert make_bag_main([*argv, "--count", "6", "--no-progress"]) == 0
    return out
