"""Joint stereo disparity, metric depth and semantic segmentation for ROS 2.

The package is a pipeline first (:mod:`stereo_semantic_ros.pipeline`, no ROS
imports) and ROS shells second (:mod:`stereo_semantic_ros.ros`).
"""

__version__ = "0.1.0"
