"""Book-keeping of frames: dropped frames by reason, received frames, latencies and rates.

The live node and rosbag replay count with these same classes, so their figures mean the same.
All classes are thread-safe: the node's executor thread and its inference worker both report
into them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from stereo_semantic_ros.frames.reasons import DROP_REASONS

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
        log: receives ``(level, text)`` for each admitted message; None logs nothing.
        throttle_s: at most one message per reason per this many seconds.
        remember: how many recently dropped stamps are kept to count a frame only once when
            several of its messages are dropped (e.g. both images of a pair); None keeps all.
    """

    def __init__(
        self,
        log: LogFn | None,
        throttle_s: float = 5.0,
        remember: int | None = 256,
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
                while self._remember is not None and len(self._recent) > self._remember:
                    self._recent.popitem(last=False)
            self._counts[reason] += 1
        if self._log is None:
            return True
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


PERCENTILES = (50, 90, 99)
#: What is timed per published frame (ms): ``pipeline_total`` is ``StereoPipeline.run`` (upload,
#: network, post-processing, copy back), ``network`` its forward pass, ``end_to_end`` a frame's
#: whole turn: live from the left image's arrival to the last publish (queueing included), in
#: replay from decoding to the last message written.
LATENCY_KEYS = ("pipeline_total", "network", "end_to_end")


def latency_summary(values_ms: Iterable[float]) -> dict[str, float]:
    """``p50``, ``p90``, ``p99``, ``mean``, ``max`` (ms) and ``n`` of some latencies (NaN while
    there are none)."""
    v = np.asarray(list(values_ms), dtype=np.float64)
    if not v.size:
        nan = float("nan")
        return {"p50": nan, "p90": nan, "p99": nan, "mean": nan, "max": nan, "n": 0}
    out = {f"p{p}": float(np.percentile(v, p)) for p in PERCENTILES}
    out.update(mean=float(v.mean()), max=float(v.max()), n=int(v.size))
    return out


def frame_latencies(
    timings_ms: Mapping[str, float], end_to_end_ms: float
) -> dict[str, float | None]:
    """One frame's :data:`LATENCY_KEYS` from the pipeline's ``timings_ms`` (None: not timed)."""
    if "network" not in timings_ms:  # no network ran when no output needed one
        return {"pipeline_total": None, "network": None, "end_to_end": end_to_end_ms}
    return {
        "pipeline_total": timings_ms["total"],
        "network": timings_ms["network"],
        "end_to_end": end_to_end_ms,
    }


class LatencyWindow:
    """The last ``size`` samples (milliseconds; every sample when ``size`` is None)."""

    def __init__(self, size: int | None = 100) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        with self._lock:
            self._values.append(float(value_ms))

    def summary(self) -> dict[str, float]:
        """:func:`latency_summary` of the samples in the window."""
        with self._lock:
            values = list(self._values)
        return latency_summary(values)


class Latencies:
    """One :class:`LatencyWindow` per :data:`LATENCY_KEYS` entry, fed once per published frame."""

    def __init__(self, size: int | None = 100) -> None:
        self.windows = {key: LatencyWindow(size) for key in LATENCY_KEYS}

    def add(self, timings_ms: Mapping[str, float], end_to_end_ms: float) -> None:
        """A published frame: the pipeline's ``timings_ms`` and its whole turn."""
        for key, value in frame_latencies(timings_ms, end_to_end_ms).items():
            if value is not None:  # no network ran when no output needed one
                self.windows[key].add(value)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{key: latency_summary}`` for every :data:`LATENCY_KEYS` entry."""
        return {key: window.summary() for key, window in self.windows.items()}


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
