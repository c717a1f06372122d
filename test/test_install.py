"""A non-editable ``pip install .`` finds its shipped parameter file and weights.

The package is installed into a fresh virtual environment (its dependencies borrowed from this
one through a ``.pth`` line, so nothing is downloaded) and replay runs there from an unrelated
directory, with no PYTHONPATH and no ament environment: the files must come from
``<venv>/share/stereo_semantic_ros``, where pip puts setup.py's data files.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from stereo_semantic_ros.bagtools.make_bag import main as make_bag

REPO = Path(__file__).resolve().parents[1]
SOURCES = (
    "setup.py",
    "package.xml",
    "resource",
    "stereo_semantic_ros",
    "config",
    "models",
    "launch",
)


def _installed_here() -> bool:
    """Whether this environment has the package installed (``make venv`` installs it editable)."""
    try:
        importlib.metadata.distribution("stereo_semantic_ros")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_pip_install_finds_the_shipped_weights_and_parameters(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:  # a copy, so pip's in-tree build leaves nothing in the checkout
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, src / name)
    installed_before = _installed_here()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (purelib / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = subprocess.run(
        # --ignore-installed: without it pip uninstalls this environment's own (editable) install of
        # the package, console scripts included, before installing into --prefix
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-I"]
        + ["--disable-pip-version-check", "--prefix", str(venv), str(src)],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    assert _installed_here() == installed_before, "pip removed this environment's own install"
    share = venv / "share" / "stereo_semantic_ros"
    assert (share / "models" / "esp_joint_mixed.pt").is_file()
    assert (purelib / "stereo_semantic_ros" / "resources.py").is_file()

    bag = tmp_path / "bag"
    assert make_bag(["--out", str(bag), "--count", "1", "--width", "128", "--height", "64"]) == 0
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID="82")
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "stereo_semantic_ros.bagtools.replay", str(bag)]
        + ["--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "UNTRAINED" not in run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["model"]["weights"] == str(share / "models" / "esp_joint_mixed.pt")
    assert report["params_file"] == str(share / "config" / "esp_joint.yaml")
    assert report["frames"]["processed"] == 1
