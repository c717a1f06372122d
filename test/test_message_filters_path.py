"""The message_filters path: what a vehicle with ROS installed runs.

Where ``message_filters`` is importable (a ROS install), the node synchronises with it (through
:class:`~stereo_semantic_ros.ros.input_sync.MessageFiltersMatcher`) and accounts for its silent
drops with :class:`~stereo_semantic_ros.sync.ExternalMatcherSynchronizer`. These tests drive the
real package:

* with the node's matcher and ledger on the streams of test_sync.py: the same sets, drops,
  reasons and counters as the built-in synchroniser; and message_filters alone emits the sets of
  ``Synchronizer(newest_wins=False)``, the claim stereo_semantic_ros.sync makes;
* with four live rclpy subscriptions over DDS (:class:`MessageFiltersInputSync` beside
  :class:`BuiltinInputSync`): one scripted sequence gives both the same sets and drop reports.

``message_filters`` is not on PyPI, so without a ROS install these tests are skipped (that skip
is no coverage; test_node_sync_accounting.py then runs the node on the built-in path). On a
machine without ROS, run them by hand against the ros2/message_filters sources (its Python
package is one file that needs only rclpy), never installed into the project's environment::

    git clone https://github.com/ros2/message_filters /tmp/scratch/message_filters
    PYTHONPATH=/tmp/scratch/message_filters/src .venv/bin/pytest -q -rs \
        test/test_message_filters_path.py test/test_node_sync_accounting.py
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sync_streams import (
    MS,
    Recorder,
    assert_every_message_accounted,
    feed,
    messy_stream,
    random_stream,
)

from stereo_semantic_ros.ros.input_sync import have_message_filters
from stereo_semantic_ros.sync import MESSAGE_DROP_REASONS

pytestmark = pytest.mark.skipif(
    not have_message_filters(),
    reason="message_filters is not importable (no ROS install; not on PyPI): the built-in "
    "synchroniser runs instead, tested in test_sync.py",
)

DOMAIN_ID = 120


@pytest.fixture(scope="module")
def message_filters() -> Any:
    import message_filters

    return message_filters


def _matcher_factory(message_filters, n_inputs, queue_size, slop, approximate):
    from stereo_semantic_ros.ros.input_sync import MessageFiltersMatcher

    return lambda on_matched: MessageFiltersMatcher(
        message_filters,
        n_inputs,
        on_matched,
        approximate=approximate,
        queue_size=queue_size,
        slop=slop,
    )


def test_the_installed_message_filters_is_usable(message_filters: Any) -> None:
    from stereo_semantic_ros.ros.input_sync import message_filters_usable

    assert message_filters_usable() == ""
    print(f"message_filters from {message_filters.__file__}")


@pytest.mark.parametrize("approximate", [False, True])
def test_message_filters_alone_emits_the_sets_of_synchronizer_without_newest_wins(
    message_filters: Any, approximate: bool
) -> None:
    for seed in range(20):
        rng = random.Random(seed)
        n_inputs = rng.choice([2, 3, 4])
        queue_size = rng.choice([1, 2, 3, 5])
        slop = 0.030
        stream = random_stream(rng, n_inputs, 30, 12 * MS if approximate else 0, p_missing=0.15)
        order = sorted(range(len(stream)), key=lambda j: j + rng.uniform(0, 6))
        stream = [stream[j] for j in order]

        out: list[tuple] = []
        matcher = _matcher_factory(message_filters, n_inputs, queue_size, slop, approximate)(
            lambda *msgs, out=out: out.append(msgs)
        )
        rec = Recorder()
        sync = rec.make(
            n_inputs, queue_size=queue_size, slop=slop, approximate=approximate, newest_wins=False
        )
        for m in stream:
            matcher.offer(m.input, m)
            sync.add(m.input, m, m.stamp)
        assert out == rec.sets, seed
        assert len(out) > 0


@pytest.mark.parametrize("approximate", [False, True])
def test_node_matcher_and_ledger_give_the_builtin_sets_drops_and_counters(
    message_filters: Any, approximate: bool
) -> None:
    """The node's message_filters path against its built-in one, message by message."""
    reasons_seen = set()
    for seed in range(40):
        rng = random.Random(300 + seed)
        n_inputs = rng.choice([2, 3, 4])
        queue_size = rng.choice([1, 2, 3, 5])
        slop = 0.015
        stream = messy_stream(rng, n_inputs, 30, 6 * MS if approximate else 0)

        builtin = Recorder()
        reference = builtin.make(
            n_inputs, queue_size=queue_size, slop=slop, approximate=approximate
        )
        rec = Recorder()
        ledger, matcher = rec.make_external(
            n_inputs,
            _matcher_factory(message_filters, n_inputs, queue_size, slop, approximate),
            queue_size=queue_size,
        )
        for m in stream:
            feed(reference, m)
            feed(ledger, m)
            queues = [set(q) for q in matcher.synchronizer.queues]
            assert queues == [set(q) for q in ledger._queues], seed
        assert rec.sets == builtin.sets, seed
        assert rec.drops == builtin.drops, seed
        assert ledger.stats == {**reference.stats, "mirror_misses": 0}, seed
        assert_every_message_accounted(stream, rec, ledger)
        reasons_seen |= {r for _, _, r in rec.drops}
    assert reasons_seen == set(MESSAGE_DROP_REASONS)


# ------------------------------------------------------------------- live, over real DDS


@pytest.fixture
def ros_context(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import rclpy

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        yield context
    finally:
        rclpy.shutdown(context=context)


def test_both_back_ends_report_the_same_sets_and_drops_over_dds(ros_context: Any) -> None:
    """One publisher node, two subscriber nodes (message_filters and built-in), one scripted
    sequence: a good frame, a frame without camera_info, a lone left image, a good frame, a
    late (stale) left image, a good frame. Both back ends must emit and report the same."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from stereo_semantic_ros.ros.conversions import stamp_to_ns
    from stereo_semantic_ros.ros.input_sync import (
        INPUTS,
        BuiltinInputSync,
        MessageFiltersInputSync,
        create_input_sync,
    )

    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    seen: dict[str, dict[str, list]] = {}
    lock = threading.Lock()
    nodes, inputs = [], {}
    for name, prefer in (("mf", True), ("builtin", False)):
        node = Node(f"sync_{name}", context=ros_context)
        record = seen[name] = {"sets": [], "drops": []}

        def on_set(*msgs, record=record):
            with lock:
                record["sets"].append(tuple(stamp_to_ns(m.header.stamp) for m in msgs))

        def on_drop(index, msg, reason, record=record):
            with lock:
                record["drops"].append((index, stamp_to_ns(msg.header.stamp), reason))

        sync = create_input_sync(
            node,
            qos,
            approximate=False,
            slop=0.0,
            queue_size=5,
            on_message=lambda i, m: None,
            on_set=on_set,
            on_drop=on_drop,
            prefer_message_filters=prefer,
        )
        sync.connect()
        nodes.append(node)
        inputs[name] = sync
    assert isinstance(inputs["mf"], MessageFiltersInputSync)
    assert isinstance(inputs["builtin"], BuiltinInputSync)

    driver = Node("sync_driver", context=ros_context)
    pubs = [driver.create_publisher(t, topic, qos) for topic, t in INPUTS]
    executor = SingleThreadedExecutor(context=ros_context)
    for node in [*nodes, driver]:
        executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        deadline = time.monotonic() + 20
        while any(p.get_subscription_count() < 2 for p in pubs):
            assert time.monotonic() < deadline, "subscriptions never matched"
            time.sleep(0.05)

        def send(stamp_ms: int, parts=(0, 1, 2, 3)) -> None:
            for i in parts:
                msg = Image() if INPUTS[i][1] is Image else CameraInfo()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ms * MS, 10**9)
                pubs[i].publish(msg)
                time.sleep(0.01)  # keep one order on the wire

        script = [(100, (0, 1, 2, 3)), (200, (0, 1)), (300, (0,)), (400, (0, 1, 2, 3))]
        script += [(350, (0,)), (500, (0, 1, 2, 3))]
        for stamp_ms, parts in script:
            send(stamp_ms, parts)
        expected_sets = [(s * MS,) * 4 for s in (100, 400, 500)]
        deadline = time.monotonic() + 20
        while any(len(seen[n]["sets"]) < 3 for n in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        with lock:
            result = {n: {k: list(v) for k, v in r.items()} for n, r in seen.items()}
        for name in seen:
            assert result[name]["sets"] == expected_sets, name
        expected_drops = [
            (0, 200 * MS, "superseded"),
            (0, 300 * MS, "superseded"),
            (1, 200 * MS, "superseded"),
            (0, 350 * MS, "stale"),
        ]
        assert result["mf"]["drops"] == expected_drops
        assert result["builtin"]["drops"] == expected_drops
        mf_stats = inputs["mf"].stats
        assert mf_stats.pop("mirror_misses") == 0
        assert mf_stats == inputs["builtin"].stats
        print(f"both back ends: sets {expected_sets}, drops {expected_drops}, stats {mf_stats}")
    finally:
        executor.shutdown()
        for sync in inputs.values():
            sync.disconnect()
        for node in [*nodes, driver]:
            node.destroy_node()
