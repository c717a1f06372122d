"""Time synchronisation of N message streams, with the semantics of ROS 2 ``message_filters``.

The node uses ``message_filters`` when it is importable and this module otherwise, so the sets
emitted here match what ``message_filters`` (Python, ROS 2) emits:

* exact (``TimeSynchronizer``): a set is emitted once every input holds a message with the
  identical stamp.
* approximate (``ApproximateTimeSynchronizer``): each input keeps a queue keyed by stamp. A new
  message looks, in every other queue, for stamps within ``slop`` of its own, nearest first, and
  tries the combinations in that order (first input varying slowest); the first one whose spread
  ``max - min`` is strictly below ``slop`` is emitted and its messages leave their queues.
  Strictly below, as in ``message_filters``: that is why approximate mode refuses ``slop == 0``.

Common to both: a queue holds at most ``queue_size`` stamps, the oldest is evicted first, and a
second message with an already queued stamp replaces the first.

Beyond ``message_filters``, every message that leaves a queue without being emitted is reported
through ``on_drop(index, msg, reason)`` and counted in :attr:`Synchronizer.stats`, so the node can
account for every dropped input. Reasons:

``queue_overflow``
    evicted as the oldest of a full queue: no partner arrived in time.
``duplicate_stamp``
    replaced by a newer message with the same stamp on the same input.
``superseded``
    (``newest_wins`` only) older than the oldest stamp of a set just emitted. The node processes
    the newest set and never goes back in time, so such a message could only ever join a set older
    than one already emitted; dropping it at once reports a frame whose partner is missing as soon
    as the next good set arrives, instead of ``queue_size`` frames later.
``stale``
    (``newest_wins`` only) arrived with a stamp older than the oldest stamp of the last emitted set
    (non-monotonic stamps); dropped on arrival.
``reset``
    still queued when :meth:`Synchronizer.reset` was called.

With ``newest_wins=False`` the last two rules are off and the emitted sets are exactly those of
``message_filters``, even for shuffled arrival orders. After a backwards time jump (a bag that
loops, a simulator restart) call :meth:`Synchronizer.reset`, or every message counts as stale
until the stamps pass the old ones again.

Callbacks run in emission order while the synchroniser's (re-entrant) lock is held, as in
``message_filters``: keep them short (hand the set to a worker) and do not wait in them on another
thread that calls :meth:`Synchronizer.add`.

:class:`ExternalMatcherSynchronizer` keeps the same queues, drop rules and counters but lets an
outside matcher (``message_filters``, which reports no drops) decide which sets form: a vehicle
with ROS installed gets ``message_filters``' matching and this module's drop accounting.
"""

from __future__ import annotations

import itertools
import operator
import threading
from collections.abc import Callable
from typing import Any

#: Why the synchroniser let one *message* go without a set. (Why a *frame* has no output is
#: another vocabulary: :data:`stereo_semantic_ros.frames.reasons.DROP_REASONS`.)
MESSAGE_DROP_REASONS = ("queue_overflow", "duplicate_stamp", "superseded", "stale", "reset")


class Synchronizer:
    """Groups messages from ``num_inputs`` streams into sets with equal or nearby stamps.

    Args:
        num_inputs: number of input streams (>= 2).
        callback: called as ``callback(msg_0, ..., msg_{n-1})`` for each emitted set, messages in
            input order.
        queue_size: stamps kept per input while waiting for partners (>= 1).
        slop: approximate mode only: largest stamp spread in seconds (> 0); ignored in exact mode.
        approximate: approximate-time matching instead of exact stamps.
        on_drop: called as ``on_drop(index, msg, reason)`` for each message that leaves its queue
            without being emitted; ``reason`` is one of :data:`MESSAGE_DROP_REASONS`.
        newest_wins: drop messages that can only form sets older than the last emitted one
            (``superseded`` and ``stale``). ``False`` reproduces ``message_filters`` exactly.
    """

    def __init__(
        self,
        num_inputs: int,
        callback: Callable[..., None],
        *,
        queue_size: int = 5,
        slop: float = 0.0,
        approximate: bool = False,
        on_drop: Callable[[int, Any, str], None] | None = None,
        newest_wins: bool = True,
    ) -> None:
        if not isinstance(num_inputs, int) or num_inputs < 2:
            raise ValueError(f"num_inputs must be an integer >= 2, got {num_inputs!r}")
        if not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an integer >= 1, got {queue_size!r}")
        if not callable(callback):
            raise ValueError("callback must be callable")
        if on_drop is not None and not callable(on_drop):
            raise ValueError("on_drop must be callable or None")
        try:
            slop = float(slop)
        except (TypeError, ValueError):
            raise ValueError(f"slop must be a number of seconds, got {slop!r}") from None
        if not slop >= 0.0 or slop == float("inf"):  # also refuses NaN
            raise ValueError(f"slop must be a finite number of seconds >= 0, got {slop!r}")
        if approximate and slop == 0.0:
            raise ValueError(
                "approximate sync needs slop > 0: a set is accepted only when its stamp spread is "
                "strictly below slop (as in message_filters), so slop=0 would never emit; "
                "use exact sync for identical stamps"
            )
        self._num_inputs = num_inputs
        self._callback = callback
        self._on_drop = on_drop
        self._queue_size = queue_size
        self._approximate = approximate
        self._slop_ns = round(slop * 1e9) if approximate else 0
        self._newest_wins = newest_wins
        self._lock = threading.RLock()
        # Dicts keep insertion order, which decides ties between equally near candidates
        # exactly as in message_filters.
        self._queues: list[dict[int, Any]] = [{} for _ in range(num_inputs)]
        self._last_emitted_min: int | None = None
        self._received = [0] * num_inputs
        self._emitted = 0
        self._dropped = dict.fromkeys(MESSAGE_DROP_REASONS, 0)

    @property
    def num_inputs(self) -> int:
        """Number of input streams."""
        return self._num_inputs

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``received_<i>`` per input, ``emitted`` sets, ``dropped_<reason>`` messages."""
        with self._lock:
            out = {f"received_{i}": n for i, n in enumerate(self._received)}
            out["emitted"] = self._emitted
            out.update({f"dropped_{reason}": n for reason, n in self._dropped.items()})
            return out

    def add(self, index: int, msg: Any, stamp_ns: int) -> None:
        """Offers ``msg`` (stamp ``stamp_ns``, integer nanoseconds) on input ``index``.

        May call ``on_drop`` and ``callback`` before returning. Thread-safe.
        """
        try:
            i = operator.index(index)
        except TypeError:
            i = -1
        if not 0 <= i < self._num_inputs:
            raise ValueError(f"input index must be in [0, {self._num_inputs}), got {index!r}")
        index = i
        try:
            stamp = operator.index(stamp_ns)
        except TypeError:
            raise ValueError(
                f"stamp_ns must be integer nanoseconds (sec * 10**9 + nanosec), got {stamp_ns!r}"
            ) from None
        with self._lock:
            events: list[tuple] = []
            self._received[index] += 1
            if self._is_stale(stamp):
                self._drop(events, index, msg, "stale")
            else:
                self._enqueue(index, msg, stamp, events)
                if stamp in self._queues[index]:  # not evicted straight away as the oldest
                    self._offer(index, msg, stamp, events)
            self._deliver(events)

    def reset(self) -> None:
        """Empties all queues (reporting each message as ``reset``) and forgets the last set.

        Counters are kept. Call after a backwards time jump.
        """
        with self._lock:
            events: list[tuple] = []
            for i, queue in enumerate(self._queues):
                for stamp, msg in queue.items():
                    self._release(i, stamp)
                    self._drop(events, i, msg, "reset")
                queue.clear()
            self._last_emitted_min = None
            self._deliver(events)

    # -- internals, called with the lock held ---------------------------------------------------

    def _is_stale(self, stamp: int) -> bool:
        return (
            self._newest_wins
            and self._last_emitted_min is not None
            and stamp < self._last_emitted_min
        )

    def _enqueue(self, index: int, msg: Any, stamp: int, events: list[tuple]) -> None:
        queue = self._queues[index]
        if stamp in queue:
            self._drop(events, index, queue[stamp], "duplicate_stamp")
        queue[stamp] = msg  # an existing key keeps its place, as in message_filters
        while len(queue) > self._queue_size:
            oldest = min(queue)
            if oldest != stamp:  # the new message itself was never offered to anyone
                self._release(index, oldest)
            self._drop(events, index, queue.pop(oldest), "queue_overflow")

    def _offer(self, index: int, msg: Any, stamp: int, events: list[tuple]) -> None:
        """The new message is queued: emit the set it completes, if any."""
        match = self._match(index, stamp)
        if match is not None:
            self._emit(match, events)

    def _release(self, index: int, stamp: int) -> None:
        """A queued message at ``stamp`` leaves without a set (hook for an outside matcher)."""

    def _match(self, index: int, stamp: int) -> list[int] | None:
        """Stamps (one per input) of the set completed by the new message, or None."""
        if not self._approximate:
            if all(stamp in queue for queue in self._queues):
                return [stamp] * self._num_inputs
            return None
        candidates = []
        for i, queue in enumerate(self._queues):
            if i == index:
                continue
            # Stable sort on distance only: ties keep queue order, like message_filters.
            near = sorted(
                (s for s in queue if abs(s - stamp) <= self._slop_ns),
                key=lambda s: abs(s - stamp),
            )
            if not near:
                return None
            candidates.append(near)
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self._slop_ns:
                return stamps
        return None

    def _emit(self, stamps: list[int], events: list[tuple]) -> None:
        msgs = tuple(queue.pop(s) for queue, s in zip(self._queues, stamps, strict=True))
        self._emitted += 1
        events.append(("set", msgs))
        if not self._newest_wins:
            return
        oldest = min(stamps)
        self._last_emitted_min = oldest
        for i, queue in enumerate(self._queues):
            for s in [s for s in queue if s < oldest]:
                self._release(i, s)
                self._drop(events, i, queue.pop(s), "superseded")

    def _drop(self, events: list[tuple], index: int, msg: Any, reason: str) -> None:
        self._dropped[reason] += 1  # counted here so a raising callback cannot skip a count
        events.append(("drop", index, msg, reason))

    def _deliver(self, events: list[tuple]) -> None:
        """Runs the callbacks for ``events`` (``("set", msgs)`` or ``("drop", i, msg, reason)``)."""
        for event in events:
            if event[0] == "set":
                self._callback(*event[1])
            elif self._on_drop is not None:
                self._on_drop(*event[1:])


class ExternalMatcherSynchronizer(Synchronizer):
    """:class:`Synchronizer`'s queues, drop rules and counters around a matcher that forms the sets.

    The matcher (in the node: a ``message_filters`` ``TimeSynchronizer`` or
    ``ApproximateTimeSynchronizer``) keeps queues of its own and drops silently. This class keeps
    a mirror of them, so that every message leaving them without a set is reported:

    * before a message is offered, the mirror applies the queue rule that ``message_filters``
      applies (at most ``queue_size`` stamps, the oldest evicted, a repeated stamp replaces) and,
      with ``newest_wins``, the stale rule. An evicted message is taken out of the matcher with
      ``release(index, stamp)`` first (the matcher would evict the same one; doing it here keeps
      the two from ever disagreeing) and reported; a stale one is never offered.
    * ``offer(index, msg)`` hands the message to the matcher, which calls :meth:`matched` for each
      set it forms before ``offer`` returns.
    * the sets are emitted as :class:`Synchronizer` emits them; with ``newest_wins`` the queued
      messages older than the set are released from the matcher and reported ``superseded``.

    Whatever the matcher's own rules, every message then ends in exactly one set or one report.
    With ``message_filters``' rules the sets are exactly :class:`Synchronizer`'s
    (test_message_filters_path checks this against the real package). A set holding a message the
    mirror does not know (a matcher whose queue rule differs) is still emitted, and counted in
    ``stats["mirror_misses"]``.

    Args:
        offer: ``offer(index, msg)`` gives a message to the matcher.
        release: ``release(index, stamp_ns)`` removes a queued stamp from the matcher's queue
            ``index`` (a no-op when it is not there).
        num_inputs, callback, queue_size, on_drop, newest_wins: as for :class:`Synchronizer`;
            the matcher's own queue size must not be smaller than ``queue_size``.
    """

    def __init__(
        self,
        num_inputs: int,
        callback: Callable[..., None],
        *,
        offer: Callable[[int, Any], None],
        release: Callable[[int, int], None],
        queue_size: int = 5,
        on_drop: Callable[[int, Any, str], None] | None = None,
        newest_wins: bool = True,
    ) -> None:
        super().__init__(
            num_inputs, callback, queue_size=queue_size, on_drop=on_drop, newest_wins=newest_wins
        )
        if not callable(offer) or not callable(release):
            raise ValueError("offer and release must be callable")
        self._offer_to = offer
        self._release_from = release
        self._matched: list[tuple] = []
        self._mirror_misses = 0

    @property
    def stats(self) -> dict[str, int]:
        """:attr:`Synchronizer.stats` plus ``mirror_misses`` (sets the mirror did not foresee)."""
        with self._lock:
            return {**super().stats, "mirror_misses": self._mirror_misses}

    def matched(self, *msgs: Any) -> None:
        """The matcher's set callback; register it with the matcher (runs inside ``offer``)."""
        self._matched.append(msgs)

    def _offer(self, index: int, msg: Any, stamp: int, events: list[tuple]) -> None:
        self._matched = []
        self._offer_to(index, msg)
        sets, self._matched = self._matched, []
        for msgs in sets:
            stamps = [self._queued_stamp(i, m) for i, m in enumerate(msgs)]
            if len(msgs) == self._num_inputs and None not in stamps:
                self._emit(stamps, events)
                continue
            self._mirror_misses += 1
            for queue, s in zip(self._queues, stamps, strict=False):
                if s is not None:
                    del queue[s]
            self._emitted += 1
            events.append(("set", tuple(msgs)))

    def _queued_stamp(self, index: int, msg: Any) -> int | None:
        # by identity: the matcher hands back the very objects it was offered
        if index >= self._num_inputs:
            return None
        return next((s for s, m in self._queues[index].items() if m is msg), None)

    def _release(self, index: int, stamp: int) -> None:
        self._release_from(index, stamp)
