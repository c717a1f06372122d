"""What happens to one synchronised input set, for the live node and rosbag replay alike.

No rclpy and no ``rosbags`` here: the node (:mod:`stereo_semantic_ros.ros.node`) is rclpy wiring
around these modules, replay (:mod:`stereo_semantic_ros.replay`) drives them from a bag.

* :mod:`~stereo_semantic_ros.frames.inputs`: the four inputs and their indices;
* :mod:`~stereo_semantic_ros.frames.reasons`: why a frame has no output (one vocabulary);
* :mod:`~stereo_semantic_ros.frames.stamps`: stale sets, backwards time jumps, the busy mailbox;
* :mod:`~stereo_semantic_ros.frames.sync_drops`: which reason a message lost in the
  synchroniser gives its frame;
* :mod:`~stereo_semantic_ros.frames.step`: one set through the checks, the pipeline and the
  output builders;
* :mod:`~stereo_semantic_ros.frames.stats`: counters (drops, received frames), latency
  statistics, rates;
* :mod:`~stereo_semantic_ros.frames.diagnostics`: the ``/diagnostics`` values as plain data.
"""
