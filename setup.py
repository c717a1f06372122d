"""ament_python packaging for stereo_semantic_ros (built by colcon, or pip for the tools)."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "stereo_semantic_ros"
HERE = os.path.dirname(os.path.abspath(__file__))
# Directories whose every file is installed under share/<package>/<same relative dir>.
SHARED_DIRS = ("launch", "config", "models")


def shared_data_files() -> list[tuple[str, list[str]]]:
    """List (install dir, [source files]) for every file under SHARED_DIRS, sub-dirs kept.

    Globbed when setup.py runs, so files added later are installed without editing this file.
    Paths are relative to the package root because setuptools refuses absolute data paths.
    """
    by_dir: dict[str, list[str]] = {}
    for top in SHARED_DIRS:
        for path in sorted(glob(os.path.join(top, "**", "*"), root_dir=HERE, recursive=True)):
            if not os.path.isfile(os.path.join(HERE, path)) or "__pycache__" in path.split(os.sep):
                continue
            install_dir = os.path.join("share", PACKAGE_NAME, os.path.dirname(path))
            by_dir.setdefault(install_dir, []).append(path)
    return sorted(by_dir.items())


setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE_NAME]),
        ("share/" + PACKAGE_NAME, ["package.xml"]),
        *shared_data_files(),
    ],
    python_requires=">=3.11",
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="stereo_semantic_ros maintainers",
    maintainer_email="maintainers@stereo-semantic-ros.invalid",
    description="Joint stereo disparity, depth and semantic segmentation for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "stereo_semantic_node = stereo_semantic_ros.ros.node:main",
            "stereo_semantic_lifecycle_node = stereo_semantic_ros.ros.lifecycle_node:main",
            "stereo-semantic-bench = stereo_semantic_ros.bench:main",
            "stereo-semantic-soak = stereo_semantic_ros.soak:main",
            "stereo-semantic-demo = stereo_semantic_ros.demo:main",
            "stereo-semantic-synth = stereo_semantic_ros.synth.cli:main",
            "stereo-semantic-train = stereo_semantic_ros.train:main",
            "stereo-semantic-eval = stereo_semantic_ros.evaluate:main",
            "stereo-semantic-ablation = stereo_semantic_ros.ablation:main",
            "stereo-semantic-make-bag = stereo_semantic_ros.bagtools.make_bag:main",
            "stereo-semantic-replay = stereo_semantic_ros.bagtools.replay:main",
            "stereo-semantic-play = stereo_semantic_ros.ros.play:main",
            "stereo-semantic-echo = stereo_semantic_ros.ros.echo:main",
            "stereo-semantic-export = stereo_semantic_ros.export:main",
            "stereo-semantic-pseudo-label = stereo_semantic_ros.pseudo_label:main",
        ],
    },
)
