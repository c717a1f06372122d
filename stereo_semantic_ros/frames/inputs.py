"""The four inputs of a frame, in the order the synchroniser delivers them."""

from __future__ import annotations

from enum import IntEnum


class Input(IntEnum):
    """Index of an input in a synchronised set (and in :data:`INPUT_TOPICS`)."""

    LEFT_IMAGE = 0
    RIGHT_IMAGE = 1
    LEFT_INFO = 2
    RIGHT_INFO = 3


#: Relative input topic names, indexed by :class:`Input`.
INPUT_TOPICS: tuple[str, str, str, str] = (
    "left/image_rect",
    "right/image_rect",
    "left/camera_info",
    "right/camera_info",
)
IMAGES = (Input.LEFT_IMAGE, Input.RIGHT_IMAGE)
"""The inputs whose loss loses a frame (a camera_info nobody paired is no lost frame)."""
