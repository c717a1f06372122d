"""Book-keeping of the live node: dropped frames by reason, latencies and rates.

No ROS imports, so the accounting can be tested and reused (rosbag replay reports the same
figures) without a ROS graph. All classes are thread-safe: the executor thread and the inference
worker both report into them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

import numpy as np

#: Why an input frame (a left/right pair with its camera_infos) produced no output.
DROP_REASONS: tuple[str, ...] = (
    "no_partner",  # one image of the pair never came (within queue_size / sync_slop)
    "no_camera_info",  # both images came but a camera_info with their stamp did not
    "bad_encoding",  # an image encoding the node cannot read
    "malformed_image",  # step / data length disagree with width and height
    "size_mismatch",  # left and right images, or images and camera_info, differ in size
    "bad_calibration",  # camera_info unusable: zero baseline, no P matrix, sizes differ
    "stale_stamp",  # stamp not newer than the last processed frame
    "frame_id_mismatch",  # an image and its camera_info name different frames
    "busy",  # replaced in the single-slot mailbox by a newer frame while inference ran
    "too_large",  # more network pixels than max_input_pixels (oversize_policy: drop)
    "non_finite_output",  # the network returned NaN/Inf: nothing of the frame is published
    "out_of_memory",  # torch ran out of memory on the frame (the CUDA cache was emptied)
    "input_reset",  # queued when the synchroniser was reset (time jump back, inputs unsubscribed)
    "pipeline_error",  # the network or post-processing raised anything else
)
#: Reasons that mean the network or its weights are broken, not the input: diagnostics ERROR.
ERROR_REASONS: tuple[str, ...] = ("non_finite_output", "out_of_memory")

LogFn = Callable[[str, str], None]
"""``log(level, text)`` with level ``"error"`` or ``"warn"``."""


def format_stamp(stamp_ns: int | None) -> str:
    """Nanoseconds -> ``sec.nanosec`` as ROS tools print stamps."""
    if stamp_ns is None:
        return "?"
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return f"{sec}.{nsec:09d}"


class Throttle:
    """At most one message per key per ``period_s``; counts what it held back.

    Unlike rclpy's ``throttle_duration_sec`` (one state per call site), the state here is per
    key, so one code path can log several drop reasons without them silencing each other.
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = float(period_s)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """None if ``key`` logged less than ``period_s`` ago (counted as held back), otherwise
        the number of messages held back since the last admitted one."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)


class DropCounter:
    """Counts dropped frames per reason (each stamp once) and logs each reason throttled.

    Args:
        log: receives ``(level, text)`` for each admitted message.
        throttle_s: at most one message per reason per this many seconds.
        remember: how many recently dropped stamps are kept to count a frame only once when
            several of its messages are dropped (e.g. both images of a pair).
    """

    def __init__(
        self,
        log: LogFn,
        throttle_s: float = 5.0,
        remember: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._throttle = Throttle(throttle_s, clock)
        self._counts = dict.fromkeys(DROP_REASONS, 0)
        self._recent: OrderedDict[int, str] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    @property
    def counts(self) -> dict[str, int]:
        """Dropped frames so far, per reason (every reason present)."""
        with self._lock:
            return dict(self._counts)

    def drop(self, reason: str, stamp_ns: int | None, detail: str, level: str = "error") -> bool:
        """Count the frame at ``stamp_ns`` as dropped for ``reason`` and log ``detail``.

        Returns False (and neither counts nor logs) if this stamp was already counted.
        """
        if reason not in self._counts:
            raise ValueError(f"unknown drop reason {reason!r}; known: {', '.join(DROP_REASONS)}")
        with self._lock:
            if stamp_ns is not None:
                if stamp_ns in self._recent:
                    return False
                self._recent[stamp_ns] = reason
                while len(self._recent) > self._remember:
                    self._recent.popitem(last=False)
            self._counts[reason] += 1
        held = self._throttle.admit(reason)
        if held is not None:
            text = f"dropped frame at stamp {format_stamp(stamp_ns)} ({reason}): {detail}"
            if held:
                text += (
                    f" [{held} more '{reason}' drop(s) not logged in the last "
                    f"{self._throttle.period_s:g} s]"
                )
            self._log(level, text)
        return True


class FrameLedger:
    """Counts each input frame once, so that received == published + dropped + skipped.

    A frame is known by one stamp: its left image's, or, for an image lost without a set (which
    :class:`DropCounter` counts under that image's stamp), the dropped image's. Counting the
    union of those stamps makes the totals add up in approximate sync too, where a lost left
    and a lost right image of different stamps are two drops. Duplicates (a stamp seen again)
    are not counted twice.

    Args:
        remember: how many recent stamps are kept to recognise a repeated one.
    """

    def __init__(self, remember: int = 4096) -> None:
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._remember = remember
        self._received = 0
        self._lock = threading.Lock()

    @property
    def received(self) -> int:
        with self._lock:
            return self._received

    def receive(self, stamp_ns: int | None) -> bool:
        """Count the frame at ``stamp_ns`` as received unless already counted; True if new."""
        with self._lock:
            if stamp_ns is not None:
                if stamp_ns in self._seen:
                    return False
                self._seen[stamp_ns] = None
                while len(self._seen) > self._remember:
                    self._seen.popitem(last=False)
            self._received += 1
            return True


class LatencyWindow:
    """Mean and 90th percentile of the last ``size`` samples (milliseconds)."""

    def __init__(self, size: int = 100) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        with self._lock:
            self._values.append(float(value_ms))

    def summary(self) -> tuple[float, float, int]:
        """(mean, p90, count); NaN statistics while empty."""
        with self._lock:
            values = np.asarray(self._values, dtype=np.float64)
        if not values.size:
            return float("nan"), float("nan"), 0
        return float(values.mean()), float(np.percentile(values, 90)), int(values.size)


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = float(window_s)
        self._clock = clock
        self._times: deque[float] = deque()
        self._start = clock()
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self._times.append(self._clock())

    def rate(self) -> float:
        """Events in the window divided by the window (or by the time since creation, if
        shorter), in Hz."""
        now = self._clock()
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            count = len(self._times)
        span = min(self.window_s, now - self._start)
        return count / span if span > 0 else 0.0
