"""Old home of the frame book-keeping, kept for imports written before the frame library.

The drop reasons live in :mod:`stereo_semantic_ros.frames.reasons`, the counters in
:mod:`stereo_semantic_ros.frames.stats`.
"""

from stereo_semantic_ros.frames.reasons import DROP_REASONS, ERROR_REASONS

__all__ = ["DROP_REASONS", "ERROR_REASONS"]
