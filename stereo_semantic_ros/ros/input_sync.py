"""Subscriptions to the node's four inputs and their time synchronisation.

:func:`create_input_sync` is the one place that chooses the back end: ROS 2 ``message_filters``
(``Subscriber`` + ``TimeSynchronizer`` / ``ApproximateTimeSynchronizer``) when it is importable,
else :class:`stereo_semantic_ros.sync.Synchronizer`. Both report every message dropped with a
reason and keep the same counters: ``message_filters`` decides which sets form, and
:class:`~stereo_semantic_ros.sync.ExternalMatcherSynchronizer` mirrors its queues to account for
what it drops silently (and to drop stale and superseded messages at once, as the built-in one
does). Both back ends create and destroy their subscriptions on :meth:`connect` /
:meth:`disconnect`, so the node subscribes only while someone listens.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image

from stereo_semantic_ros.frames.inputs import IMAGES, INPUT_TOPICS, Input
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.sync import ExternalMatcherSynchronizer, Synchronizer

#: (relative topic, type) of the inputs, in the order sets are delivered.
INPUTS: tuple[tuple[str, type], ...] = tuple(
    (INPUT_TOPICS[i], Image if i in IMAGES else CameraInfo) for i in Input
)

OnMessage = Callable[[int, Any], None]
OnSet = Callable[[Image, Image, CameraInfo, CameraInfo], None]
OnDrop = Callable[[int, Any, str], None]


def have_message_filters() -> bool:
    """Whether ROS 2 ``message_filters`` can be imported here."""
    return importlib.util.find_spec("message_filters") is not None


class _InputSync:
    """Common part: the node, QoS, callbacks and the connected state."""

    backend = ""

    def __init__(
        self,
        node: Node,
        qos: QoSProfile,
        *,
        approximate: bool,
        slop: float,
        queue_size: int,
        on_message: OnMessage,
        on_set: OnSet,
        inputs: Sequence[tuple[str, type]] = INPUTS,
    ) -> None:
        self._node = node
        self._inputs = tuple(inputs)  # (topic, type) per input, in INPUTS order
        self._qos = qos
        self._approximate = approximate
        self._slop = slop
        self._queue_size = queue_size
        self._on_message = on_message
        self._on_set = on_set
        self._subscriptions: list[Any] = []  # rclpy Subscriptions while connected

    @property
    def connected(self) -> bool:
        return bool(self._subscriptions)

    @property
    def stats(self) -> dict[str, int]:
        """Synchroniser counters (empty where the back end keeps none)."""
        return {}

    def reset(self) -> None:
        """Forget queued messages (after a backwards time jump)."""

    def disconnect(self) -> None:
        for sub in self._subscriptions:
            self._node.destroy_subscription(sub)
        self._subscriptions = []
        self.reset()


class BuiltinInputSync(_InputSync):
    """Four rclpy subscriptions feeding :class:`stereo_semantic_ros.sync.Synchronizer`.

    ``on_drop(index, msg, reason)`` receives every message that leaves the synchroniser without
    being part of a set (reasons: :data:`stereo_semantic_ros.sync.MESSAGE_DROP_REASONS`).
    """

    backend = "stereo_semantic_ros.sync"

    def __init__(self, node: Node, qos: QoSProfile, *, on_drop: OnDrop, **kwargs: Any) -> None:
        super().__init__(node, qos, **kwargs)
        self._sync = Synchronizer(
            len(INPUTS),
            self._on_set,
            queue_size=self._queue_size,
            slop=self._slop,
            approximate=self._approximate,
            on_drop=on_drop,
        )

    @property
    def stats(self) -> dict[str, int]:
        return self._sync.stats

    def connect(self) -> None:
        if self.connected:
            return
        self._subscriptions = [
            self._node.create_subscription(
                msg_type,
                topic,
                partial(self._receive, index),
                self._qos,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
            for index, (topic, msg_type) in enumerate(self._inputs)
        ]

    def reset(self) -> None:
        self._sync.reset()

    def _receive(self, index: int, msg: Any) -> None:
        self._on_message(index, msg)
        self._sync.add(index, msg, stamp_to_ns(msg.header.stamp))


class MessageFiltersMatcher:
    """A ``message_filters`` synchroniser fed through ``SimpleFilter`` relays, one per input.

    The matcher of :class:`~stereo_semantic_ros.sync.ExternalMatcherSynchronizer`: :meth:`offer`
    passes a message in, ``on_matched(*msgs)`` receives each set it forms, and :meth:`release`
    removes a stamp from its queues. No ROS node is needed (the subscriptions feed the ledger,
    not this), so the tests drive it with the real package directly.

    Args:
        message_filters: the imported ``message_filters`` module.
        approximate, queue_size, slop: ``ApproximateTimeSynchronizer(relays, queue_size, slop)``
            or ``TimeSynchronizer(relays, queue_size)``; ``slop`` in seconds.
    """

    def __init__(
        self,
        message_filters: Any,
        num_inputs: int,
        on_matched: Callable[..., None],
        *,
        approximate: bool,
        queue_size: int,
        slop: float,
    ) -> None:
        self.relays = [message_filters.SimpleFilter() for _ in range(num_inputs)]
        if approximate:
            self.synchronizer = message_filters.ApproximateTimeSynchronizer(
                self.relays, queue_size, slop
            )
        else:
            self.synchronizer = message_filters.TimeSynchronizer(self.relays, queue_size)
        self.synchronizer.registerCallback(on_matched)

    def offer(self, index: int, msg: Any) -> None:
        self.relays[index].signalMessage(msg)

    def release(self, index: int, stamp_ns: int) -> None:
        # message_filters keys each input's queue dict by stamp in nanoseconds, under its lock
        with self.synchronizer.lock:
            self.synchronizer.queues[index].pop(stamp_ns, None)


class MessageFiltersInputSync(_InputSync):
    """``message_filters.Subscriber`` x 4 -> accounting -> ``(Approximate)TimeSynchronizer``.

    Each message goes through :class:`~stereo_semantic_ros.sync.ExternalMatcherSynchronizer`,
    which applies the built-in queue, stale and superseded rules, reports every drop through
    ``on_drop`` and offers the rest to a :class:`MessageFiltersMatcher`; the sets are whatever
    ``message_filters`` matches. A dropped stamp is removed from the synchroniser's ``queues``,
    which is also how :meth:`reset` empties it (``message_filters`` has no reset of its own);
    :func:`message_filters_usable` checks that the installed version has them.
    """

    backend = "message_filters"

    def __init__(self, node: Node, qos: QoSProfile, *, on_drop: OnDrop, **kwargs: Any) -> None:
        super().__init__(node, qos, **kwargs)
        self._matcher: MessageFiltersMatcher | None = None  # while connected
        # one ledger for the node's life: its counters survive disconnect / connect
        self._ledger = ExternalMatcherSynchronizer(
            len(INPUTS),
            self._on_set,
            offer=self._offer,
            release=self._release,
            queue_size=self._queue_size,
            on_drop=on_drop,
        )

    @property
    def stats(self) -> dict[str, int]:
        return self._ledger.stats

    def connect(self) -> None:
        if self.connected:
            return
        import message_filters

        self._matcher = MessageFiltersMatcher(
            message_filters,
            len(INPUTS),
            self._ledger.matched,
            approximate=self._approximate,
            queue_size=self._queue_size,
            slop=self._slop,
        )
        subs = []
        for index, (topic, msg_type) in enumerate(self._inputs):
            sub = message_filters.Subscriber(
                self._node,
                msg_type,
                topic,
                qos_profile=self._qos,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
            sub.registerCallback(self._receive, index)
            subs.append(sub)
        self._subscriptions = [sub.sub for sub in subs]  # the rclpy Subscriptions

    def reset(self) -> None:
        self._ledger.reset()

    def disconnect(self) -> None:
        super().disconnect()  # resets first: what was queued is reported, then let go
        self._matcher = None

    def _receive(self, msg: Any, index: int) -> None:
        self._on_message(index, msg)
        self._ledger.add(index, msg, stamp_to_ns(msg.header.stamp))

    def _offer(self, index: int, msg: Any) -> None:
        if self._matcher is not None:  # None: a message still queued in the executor when the
            self._matcher.offer(index, msg)  # inputs were disconnected; the ledger keeps it

    def _release(self, index: int, stamp: int) -> None:
        if self._matcher is not None:
            self._matcher.release(index, stamp)


def message_filters_usable() -> str:
    """'' when ``message_filters`` can back the node, else why not (it then uses its own).

    Beyond the import, the accounting needs the synchronisers' ``queues`` (one dict per input,
    keyed by stamp in nanoseconds) and ``lock``, which the Python ``message_filters`` has had
    since ROS 1; a version without them would drop frames the node could not count.
    """
    if not have_message_filters():
        return "message_filters is not importable"
    try:
        import message_filters

        for approximate in (False, True):
            matcher = MessageFiltersMatcher(
                message_filters, 2, print, approximate=approximate, queue_size=2, slop=0.01
            )
            sync = matcher.synchronizer
            queues = getattr(sync, "queues", None)
            if not (
                isinstance(queues, list)
                and len(queues) == 2
                and all(isinstance(q, dict) for q in queues)
                and hasattr(sync, "lock")
            ):
                name = type(sync).__name__
                return f"message_filters.{name} has no per-input 'queues' dicts and 'lock'"
    except Exception as exc:  # an unusable install must not stop the node: it has its own
        return f"message_filters failed a probe: {type(exc).__name__}: {exc}"
    return ""


def create_input_sync(
    node: Node,
    qos: QoSProfile,
    *,
    approximate: bool,
    slop: float,
    queue_size: int,
    on_message: OnMessage,
    on_set: OnSet,
    on_drop: OnDrop,
    prefer_message_filters: bool = True,
    inputs: Sequence[tuple[str, type]] = INPUTS,
) -> BuiltinInputSync | MessageFiltersInputSync:
    """The input subscriptions + synchroniser (not yet connected).

    Args:
        qos: profile of the four subscriptions (``qos_overrides`` parameters may change it).
        approximate, slop, queue_size: synchronisation policy; ``slop`` in seconds.
        on_message: ``on_message(index, msg)`` for every received message, before it is
            offered to the synchroniser (index into :data:`INPUTS`).
        on_set: called with ``(left, right, left_info, right_info)`` for every complete set.
        on_drop: ``on_drop(index, msg, reason)`` for every message that leaves the synchroniser
            without a set, on both back ends (reasons:
            :data:`stereo_semantic_ros.sync.MESSAGE_DROP_REASONS`).
        prefer_message_filters: False forces the built-in synchroniser.
        inputs: (topic, type) of the four subscriptions, in :data:`INPUTS` order (the node's
            ``image_transport: compressed`` subscribes to CompressedImage on
            ``<image>/compressed``).
    """
    kwargs: dict[str, Any] = {
        "approximate": approximate,
        "slop": slop,
        "queue_size": queue_size,
        "on_message": on_message,
        "on_set": on_set,
        "inputs": inputs,
    }
    unusable = message_filters_usable() if prefer_message_filters else "not preferred"
    if not unusable:
        return MessageFiltersInputSync(node, qos, on_drop=on_drop, **kwargs)
    inputs = BuiltinInputSync(node, qos, on_drop=on_drop, **kwargs)
    if have_message_filters() and prefer_message_filters:
        # installed but unusable: say so where the back end is reported (diagnostics, start-up)
        inputs.backend += f" ({unusable})"
    return inputs
