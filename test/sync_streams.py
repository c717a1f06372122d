"""Messages, streams and recorders shared by the synchroniser tests.

test_sync.py runs them against the built-in synchroniser and a straight re-implementation of
ros2/message_filters' Python synchronisers (:class:`ReferenceMessageFilters`);
test_message_filters_path.py runs the same streams through the real ``message_filters`` package
where it is importable.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from stereo_semantic_ros.sync import ExternalMatcherSynchronizer, Synchronizer

MS = 1_000_000  # nanoseconds
RESET = None  # a stream entry that calls reset() instead of adding a message


@dataclass(frozen=True)
class Msg:
    input: int
    stamp: int
    tag: str = ""

    @property
    def header(self) -> Header:
        """A real std_msgs/Header, as message_filters reads the stamp from it."""
        return Header(stamp=Time(sec=self.stamp // 10**9, nanosec=self.stamp % 10**9))


class Recorder:
    """Collects emitted sets and drops."""

    def __init__(self) -> None:
        self.sets: list[tuple[Msg, ...]] = []
        self.drops: list[tuple[int, Msg, str]] = []

    def callback(self, *msgs: Msg) -> None:
        self.sets.append(msgs)

    def on_drop(self, index: int, msg: Msg, reason: str) -> None:
        self.drops.append((index, msg, reason))

    def make(self, num_inputs: int = 2, **kwargs: Any) -> Synchronizer:
        return Synchronizer(num_inputs, self.callback, on_drop=self.on_drop, **kwargs)

    def make_external(
        self,
        num_inputs: int,
        matcher_factory: Callable[[Callable[..., None]], Any],
        *,
        queue_size: int,
        newest_wins: bool = True,
    ) -> tuple[ExternalMatcherSynchronizer, Any]:
        """A ledger around ``matcher_factory(on_matched)``, which has offer() and release()."""
        holder: dict[str, Any] = {}
        sync = ExternalMatcherSynchronizer(
            num_inputs,
            self.callback,
            offer=lambda i, m: holder["matcher"].offer(i, m),
            release=lambda i, s: holder["matcher"].release(i, s),
            queue_size=queue_size,
            on_drop=self.on_drop,
            newest_wins=newest_wins,
        )
        holder["matcher"] = matcher_factory(sync.matched)
        return sync, holder["matcher"]


def feed(sync: Synchronizer, *msgs: Msg | None) -> None:
    for m in msgs:
        if m is RESET:
            sync.reset()
        else:
            sync.add(m.input, m, m.stamp)


class ReferenceMessageFilters:
    """Mirrors TimeSynchronizer.add / ApproximateTimeSynchronizer.add of ros2/message_filters.

    Sets go to ``out`` and, when given, to ``on_matched(*msgs)``; :meth:`offer` and
    :meth:`release` make it a matcher for :class:`ExternalMatcherSynchronizer`.
    """

    def __init__(
        self,
        n: int,
        queue_size: int,
        slop_ns: int | None,
        on_matched: Callable[..., None] | None = None,
    ) -> None:
        self.queues: list[dict[int, Msg]] = [{} for _ in range(n)]
        self.queue_size, self.slop, self.out = queue_size, slop_ns, []
        self.on_matched = on_matched

    def _signal(self, msgs: tuple) -> None:
        self.out.append(msgs)
        if self.on_matched is not None:
            self.on_matched(*msgs)

    def offer(self, i: int, msg: Msg) -> None:
        self.add(i, msg, msg.stamp)

    def release(self, i: int, stamp: int) -> None:
        self.queues[i].pop(stamp, None)

    def add(self, i: int, msg: Msg, stamp: int) -> None:
        q = self.queues[i]
        q[stamp] = msg
        while len(q) > self.queue_size:
            del q[min(q)]
        if self.slop is None:  # exact: emit every stamp common to all queues
            for t in sorted(set.intersection(*(set(q) for q in self.queues))):
                self._signal(tuple(q.pop(t) for q in self.queues))
            return
        stamps = []
        for j, other in enumerate(self.queues):
            if j != i:
                near = [(s, abs(s - stamp)) for s in other if abs(s - stamp) <= self.slop]
                if not near:
                    return
                stamps.append([s for s, _ in sorted(near, key=lambda x: x[1])])
        for vv in itertools.product(*stamps):
            vv = list(vv)
            vv.insert(i, stamp)
            pairs = list(zip(self.queues, vv, strict=True))
            if max(vv) - min(vv) < self.slop and all(t in q for q, t in pairs):
                self._signal(tuple(q.pop(t) for q, t in pairs))
                break


def random_stream(
    rng: random.Random, n_inputs: int, frames: int, jitter_ns: int, p_missing: float
) -> list[Msg]:
    # from 1 s on: real stamps are not negative (rclpy's Time refuses them)
    stream = []
    for k in range(frames):
        for i in range(n_inputs):
            if rng.random() >= p_missing:
                stamp = 1000 * MS + k * 40 * MS + rng.randrange(-jitter_ns, jitter_ns + 1)
                stream.append(Msg(i, stamp))
    return stream


def messy_stream(
    rng: random.Random, n_inputs: int, frames: int, jitter_ns: int
) -> list[Msg | None]:
    """What a vehicle sends on a bad day: missing messages, local reordering, repeated stamps,
    a late straggler now and then, and a reset (backwards time jump) half way."""
    stream: list[Msg | None] = list(random_stream(rng, n_inputs, frames, jitter_ns, 0.15))
    order = sorted(range(len(stream)), key=lambda j: j + rng.uniform(0, 5))
    stream = [stream[j] for j in order]
    out: list[Msg | None] = []
    for k, m in enumerate(stream):
        out.append(m)
        if rng.random() < 0.06:  # the same stamp again on the same input
            out.append(Msg(m.input, m.stamp, f"repeat{k}"))
        if rng.random() < 0.04:  # a straggler from well before
            out.append(Msg(m.input, m.stamp - 200 * MS, f"late{k}"))
    out.insert(len(out) // 2, RESET)
    return out


def assert_every_message_accounted(stream: list[Msg | None], rec: Recorder, sync: Any) -> None:
    """Each message ends in exactly one set or one drop report, and the counters agree."""
    sync.reset()
    msgs = [m for m in stream if m is not RESET]
    emitted = [m for s in rec.sets for m in s]
    dropped = [m for _, m, _ in rec.drops]
    key = lambda m: (m.stamp, m.input, m.tag)  # noqa: E731
    assert sorted(emitted + dropped, key=key) == sorted(msgs, key=key)
    assert all(i == m.input for i, m, _ in rec.drops)
    stats = sync.stats
    assert sum(v for k, v in stats.items() if k.startswith("received_")) == len(msgs)
    assert sum(v for k, v in stats.items() if k.startswith("dropped_")) == len(rec.drops)
    assert stats["emitted"] == len(rec.sets)
