"""Subscriptions to the node's four inputs and their time synchronisation.

:func:`create_input_sync` is the one place that chooses the back end: ROS 2 ``message_filters``
(``Subscriber`` + ``TimeSynchronizer`` / ``ApproximateTimeSynchronizer``) when it is importable,
else :class:`stereo_semantic_ros.sync.Synchronizer`, which emits the same sets and also reports
every message it drops, with a reason (``message_filters`` drops silently; the node then only
notices that no set forms). Both back ends create and destroy their subscriptions on
:meth:`connect` / :meth:`disconnect`, so the node subscribes only while someone listens.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image

from stereo_semantic_ros.frames.inputs import IMAGES, INPUT_TOPICS, Input
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.sync import Synchronizer

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
    ) -> None:
        self._node = node
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
            for index, (topic, msg_type) in enumerate(INPUTS)
        ]

    def reset(self) -> None:
        self._sync.reset()

    def _receive(self, index: int, msg: Any) -> None:
        self._on_message(index, msg)
        self._sync.add(index, msg, stamp_to_ns(msg.header.stamp))


class MessageFiltersInputSync(_InputSync):
    """``message_filters.Subscriber`` x 4 + ``(Approximate)TimeSynchronizer``.

    ``message_filters`` has no reset: after a backwards time jump its queues hold old stamps
    until ``queue_size`` newer messages push them out, which costs at most that many frames.
    """

    backend = "message_filters"

    def connect(self) -> None:
        if self.connected:
            return
        import message_filters

        subs = []
        for index, (topic, msg_type) in enumerate(INPUTS):
            sub = message_filters.Subscriber(
                self._node,
                msg_type,
                topic,
                qos_profile=self._qos,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
            # registered before the synchroniser's own callback, so it sees the message first
            sub.registerCallback(self._receive, index)
            subs.append(sub)
        if self._approximate:
            sync = message_filters.ApproximateTimeSynchronizer(subs, self._queue_size, self._slop)
        else:
            sync = message_filters.TimeSynchronizer(subs, self._queue_size)
        sync.registerCallback(self._on_set)
        self._synchronizer = sync
        self._subscriptions = [sub.sub for sub in subs]  # the rclpy Subscriptions

    def _receive(self, msg: Any, index: int) -> None:
        self._on_message(index, msg)


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
) -> BuiltinInputSync | MessageFiltersInputSync:
    """The input subscriptions + synchroniser (not yet connected).

    Args:
        qos: profile of the four subscriptions (``qos_overrides`` parameters may change it).
        approximate, slop, queue_size: synchronisation policy; ``slop`` in seconds.
        on_message: ``on_message(index, msg)`` for every received message, before it is
            offered to the synchroniser (index into :data:`INPUTS`).
        on_set: called with ``(left, right, left_info, right_info)`` for every complete set.
        on_drop: see :class:`BuiltinInputSync`; never called with ``message_filters``.
        prefer_message_filters: False forces the built-in synchroniser.
    """
    kwargs: dict[str, Any] = {
        "approximate": approximate,
        "slop": slop,
        "queue_size": queue_size,
        "on_message": on_message,
        "on_set": on_set,
    }
    if prefer_message_filters and have_message_filters():
        return MessageFiltersInputSync(node, qos, **kwargs)
    return BuiltinInputSync(node, qos, on_drop=on_drop, **kwargs)
