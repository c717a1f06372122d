"""ROS 2 shells around the pipeline: message conversions, the node and its helpers.

Everything that imports ROS message or rclpy modules lives in this sub-package; the rest of
:mod:`stereo_semantic_ros` is plain numpy / torch and runs without a ROS install.
"""
