"""``stereo-semantic-replay``: a recorded rosbag2 through the node's frame library, into a new bag.

* :mod:`~stereo_semantic_ros.replay.cli`: the command and :func:`run_replay`;
* :mod:`~stereo_semantic_ros.replay.options`: what one replay is told;
* :mod:`~stereo_semantic_ros.replay.bag_input`: the input bag's topics and messages;
* :mod:`~stereo_semantic_ros.replay.loop`: each message, as the node handles it
  (:mod:`stereo_semantic_ros.frames`);
* :mod:`~stereo_semantic_ros.replay.ground_truth`, :mod:`~stereo_semantic_ros.replay.scores`:
  the bag's ground truth and the accuracy against it;
* :mod:`~stereo_semantic_ros.replay.report`: ``report.json`` and the summary table;
* :mod:`~stereo_semantic_ros.replay.previews`: PNG previews.

Bag reading and writing stay in :mod:`stereo_semantic_ros.bagtools`.
"""
