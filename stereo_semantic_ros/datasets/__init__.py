"""Datasets: every source yields :class:`~stereo_semantic_ros.datasets.sample.StereoSample`."""

from stereo_semantic_ros.datasets.sample import StereoSample

__all__ = ["StereoSample"]
