"""Procedural synthetic stereo street scenes with full ground truth (no ROS imports).

:func:`generate_sample` renders one seeded scene in memory as a
:class:`~stereo_semantic_ros.datasets.sample.StereoSample`; :mod:`.kitti_writer` writes samples in
the KITTI 2015 layout; ``stereo-semantic-synth`` (:mod:`.cli`) does both for whole datasets.
"""

from stereo_semantic_ros.synth.generator import (
    GENERATOR_VERSION,
    SynthConfigError,
    default_focal,
    generate_sample,
    make_calibration,
)
from stereo_semantic_ros.synth.kitti_writer import write_kitti_sample

__all__ = [
    "GENERATOR_VERSION",
    "SynthConfigError",
    "default_focal",
    "generate_sample",
    "make_calibration",
    "write_kitti_sample",
]
