"""Why a frame was lost before it reached the pipeline: one classifier for the node and replay.

The synchroniser (:mod:`stereo_semantic_ros.sync`) reports every message it lets go without a set;
this turns those reports into the node's dropped-frame reasons, with a message that says what to
do. Only images count: a camera_info nobody paired is no lost frame. No ROS imports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from stereo_semantic_ros.frames.inputs import IMAGES, Input
from stereo_semantic_ros.ros.conversions import stamp_to_ns


class SyncDropClassifier:
    """``on_drop`` callback of the synchroniser; calls ``on_frame_drop(reason, stamp_ns, detail)``.

    Reasons: ``stale_stamp`` (older than the last processed set), ``no_partner`` (the other image
    never came within the slop, or everything came but was pushed out of the queue) and
    ``no_camera_info`` (both images but a camera_info missing). ``reset`` reports (a time jump or
    the end of a bag) count only while ``count_resets`` is true.

    Args:
        names: the four input topic names, for the messages.
        approximate, slop, queue_size: the synchroniser's settings (slop in seconds).
    """

    def __init__(
        self,
        names: Sequence[str],
        on_frame_drop: Callable[[str, int, str], None],
        *,
        approximate: bool,
        slop: float,
        queue_size: int,
    ) -> None:
        self._names = tuple(names)
        self._on_frame_drop = on_frame_drop
        self._approximate = approximate
        self._slop_ns = int(slop * 1e9)
        self._queue_size = queue_size
        # long enough to remember every stamp the synchroniser can still hold
        self._recent = [deque(maxlen=4 * queue_size + 32) for _ in range(4)]
        self.count_resets = False

    def seen_message(self, index: int, stamp: int) -> None:
        """Record every incoming message's stamp (call before handing it to the synchroniser)."""
        self._recent[index].append(stamp)

    def seen(self, index: int, stamp: int) -> bool:
        """Whether input ``index`` recently carried a stamp that could pair with ``stamp``."""
        if self._approximate:
            return any(abs(s - stamp) < self._slop_ns for s in self._recent[index])
        return stamp in self._recent[index]

    def nearest(self, index: int, stamp: int) -> str:
        if not self._recent[index]:
            return f"nothing has arrived on {self._names[index]}"
        delta = min(self._recent[index], key=lambda s: abs(s - stamp)) - stamp
        return f"the nearest {self._names[index]} stamp differs by {delta / 1e6:+.3f} ms"

    def __call__(self, index: int, msg: Any, reason: str) -> None:
        if index not in IMAGES or reason == "duplicate_stamp":
            return  # a duplicate stamp is replaced by its newer copy, not lost
        if reason == "reset" and not self.count_resets:
            return  # follows a time jump, which is logged where it is detected
        stamp = stamp_to_ns(msg.header.stamp)
        topic = self._names[index]
        if reason == "stale":
            self._on_frame_drop(
                "stale_stamp",
                stamp,
                f"{topic} stamp is older than the last processed set; stamps must increase. "
                "Frame dropped",
            )
            return
        other = Input.RIGHT_IMAGE if index == Input.LEFT_IMAGE else Input.LEFT_IMAGE
        match = "within sync_slop" if self._approximate else "with the same stamp"
        if not self.seen(other, stamp):
            hint = (
                "check that both cameras are triggered together"
                if self._approximate
                else "if the cameras are not hardware-synchronised, set approximate_sync: true "
                "with a sync_slop"
            )
            self._on_frame_drop(
                "no_partner",
                stamp,
                f"{topic} had no {self._names[other]} {match} ({self.nearest(other, stamp)}); "
                f"{hint}. Frame dropped",
            )
            return
        missing = [
            self._names[i] for i in (Input.LEFT_INFO, Input.RIGHT_INFO) if not self.seen(i, stamp)
        ]
        if missing:
            self._on_frame_drop(
                "no_camera_info",
                stamp,
                f"left and right images arrived but no {' and no '.join(missing)} {match}: "
                "publish each camera_info with its image's header stamp (as camera drivers and "
                "image_proc do) and check the remappings. Frame dropped",
            )
            return
        self._on_frame_drop(
            "no_partner",
            stamp,
            f"all four inputs arrived but their messages were pushed out of the queue "
            f"(queue_size {self._queue_size}) before forming a set; raise queue_size. "
            "Frame dropped",
        )
