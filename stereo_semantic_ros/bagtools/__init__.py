"""rosbag2 tools that need no ROS install: bag I/O is pure Python (``rosbags``).

* :mod:`~stereo_semantic_ros.bagtools.make_bag` (``stereo-semantic-make-bag``): synthetic
  scenes or dataset samples -> a rosbag2 with rectified images, camera infos and ground truth.
* :mod:`~stereo_semantic_ros.bagtools.bagio`: opening/writing bags with clear errors, the
  progress journal; :mod:`~stereo_semantic_ros.bagtools.recovery`: ``--repair`` of a killed run.
* :mod:`~stereo_semantic_ros.bagtools.messages`: ``rosbags`` messages from arrays (and the
  output table's ``rosbags`` message kit), or adapted from rclpy messages.

Replay (``stereo-semantic-replay``) is :mod:`stereo_semantic_ros.replay`;
:mod:`~stereo_semantic_ros.bagtools.replay` only keeps its old command path working.
"""
