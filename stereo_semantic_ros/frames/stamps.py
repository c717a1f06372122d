"""The stamp rules of synchronised sets: stale sets, backwards time jumps, the busy mailbox.

The live node and rosbag replay apply these same rules; only the node has a busy worker, so only
it uses :class:`Mailbox`.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from stereo_semantic_ros.frames.stats import format_stamp

JUMP_BACK_NS = 1_000_000_000
"""An input stamp this much older than the last set (ns) is a time jump (bag loop, simulator
restart): the synchroniser is reset instead of dropping every frame until the stamps catch up."""

BUSY_DETAIL = (
    "inference was still running on an earlier frame, so this pending frame was replaced by a "
    "newer one (newest wins). If this persists, lower the camera rate or input_scale, disable "
    "unused outputs, or run on a GPU"
)


class SetStamps:
    """The stamp of the last accepted set, and the two rules it gives.

    * :meth:`jumped_back`: an input stamp more than :data:`JUMP_BACK_NS` older than the last set;
      the caller resets its synchroniser and calls :meth:`forget`.
    * :meth:`admit`: a set must be newer than the last one (``message_filters`` emits older
      sets, and a set can repeat a stamp); otherwise it is dropped as ``stale_stamp``.
    """

    def __init__(self) -> None:
        self.last: int | None = None

    def jumped_back(self, stamp_ns: int) -> bool:
        return self.last is not None and stamp_ns < self.last - JUMP_BACK_NS

    def jump_text(self, topic: str, stamp_ns: int) -> str:
        """What :meth:`jumped_back` saw, for the log (call before :meth:`forget`)."""
        assert self.last is not None
        return (
            f"{topic} stamp {format_stamp(stamp_ns)} is {(self.last - stamp_ns) / 1e9:.3f} s "
            "older than the last set"
        )

    def forget(self) -> None:
        """After a reset: the next set starts afresh."""
        self.last = None

    def admit(self, stamp_ns: int) -> str | None:
        """Accept the set at ``stamp_ns`` (None), or say why it is stale (not newer)."""
        last = self.last
        if last is not None and stamp_ns <= last:
            return (
                f"set is not newer than the last processed one ({format_stamp(last)}); stamps "
                "must increase. Frame dropped"
            )
        self.last = stamp_ns
        return None


T = TypeVar("T")


class Mailbox(Generic[T]):
    """A single slot between the callbacks and the inference worker: the newest set wins.

    :meth:`put` returns the set it replaced (the caller drops it as ``busy``,
    :data:`BUSY_DETAIL`); :meth:`take` waits for a set, or returns None once :meth:`close`\\ d.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T) -> T | None:
        with self._cond:
            replaced, self._item = self._item, item
            self._cond.notify()
        return replaced

    def take(self) -> T | None:
        with self._cond:
            while self._item is None and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
