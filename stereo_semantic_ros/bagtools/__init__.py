"""rosbag2 tools that need no ROS install: bag I/O is pure Python (``rosbags``).

* :mod:`~stereo_semantic_ros.bagtools.make_bag` (``stereo-semantic-make-bag``): synthetic
  scenes or dataset samples -> a rosbag2 with rectified images, camera infos and ground truth.
* :mod:`~stereo_semantic_ros.bagtools.replay` (``stereo-semantic-replay``): a rosbag2 through the
  node's synchroniser, pipeline and message builders -> a bag of the node's outputs, a report.
  Its parts: ``replay_options`` (what a replay is told), ``replay_input`` (the input bag's
  topics and messages), ``replay_run`` (each message, as the node handles it), ``replay_frame``
  (one synchronised set, as the node's worker), ``previews`` (PNG previews).
* :mod:`~stereo_semantic_ros.bagtools.report`: accuracy, latency, ``report.json`` and the
  summary table.
* :mod:`~stereo_semantic_ros.bagtools.bagio`, :mod:`~stereo_semantic_ros.bagtools.messages`:
  opening/writing bags with clear errors; ``rosbags`` messages from arrays or rclpy messages.

Replay builds the node's messages with rclpy message classes (``ros/outputs.py``), which come
with the ROS 2 Python wheels in requirements.txt or with a ROS install.
"""
