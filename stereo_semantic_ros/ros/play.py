"""stereo-semantic-play: publish a rosbag2's messages on live ROS 2 topics with rclpy.

``ros2 bag play`` for a machine that has the ROS 2 Python wheels but no ROS install (no
``rosbag2_py``): the bag is read with ``rosbags`` and each message's recorded CDR bytes are
published as they are (``Publisher.publish(bytes)``), so nothing is decoded or re-encoded and
any message type whose Python package is importable can be played. Timing follows the bag's
receive timestamps, scaled by ``--rate``; ``--clock`` also publishes the bag's time on
``/clock`` for nodes started with ``use_sim_time``.

    stereo-semantic-play BAG [--rate 0.5] [--loop] [--start-offset 2.0] [--clock 40]
                             [--topics /left/image_rect ...] [--remap /old:=/new ...]

Publishers are reliable with a queue of ``--queue`` messages: a reliable publisher serves the
node's best-effort (sensor-data) subscriptions as well as reliable ones.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stereo_semantic_ros.bagtools.bagio import BagError, normalize_topic, open_bag

PROG = "stereo-semantic-play"
EXIT_USAGE = 2


class PlayError(ValueError):
    """A bag, topic selection or remapping that cannot be played."""


@dataclass
class PlayOptions:
    bag: Path
    rate: float = 1.0
    loop: bool = False
    start_offset_s: float = 0.0
    clock_hz: float = 0.0
    topics: list[str] = field(default_factory=list)
    remap: dict[str, str] = field(default_factory=dict)
    queue: int = 10
    wait_s: float = 10.0
    progress: bool = True


def message_class(msgtype: str) -> type:
    """``sensor_msgs/msg/Image`` -> the rclpy message class (its package must be importable)."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise PlayError(f"{msgtype!r} is not a ROS 2 message type name (pkg/msg/Name)")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError):
        raise PlayError(
            f"message type {msgtype} is not importable here; install its Python package "
            f"(e.g. pip install ros-{parts[0].replace('_', '-')}) or leave the topic out "
            "with --topics"
        ) from None


def parse_remaps(items: Sequence[str]) -> dict[str, str]:
    """``["/a:=/b"]`` -> ``{"/a": "/b"}`` (names made absolute like the bag's)."""
    out: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition(":=")
        if not sep or not old.strip() or not new.strip():
            raise PlayError(f"--remap wants FROM:=TO, got {item!r}")
        out[normalize_topic(old)] = normalize_topic(new)
    return out


@dataclass
class PlaySummary:
    published: Counter = field(default_factory=Counter)
    loops: int = 0
    wall_s: float = 0.0
    bag_s: float = 0.0

    def format(self) -> str:
        lines = [
            f"{PROG}: published {sum(self.published.values())} messages in {self.wall_s:.1f} s "
            f"({self.loops} pass(es) over {self.bag_s:.1f} s of bag time)"
        ]
        lines += [f"  {topic:<32} {n}" for topic, n in sorted(self.published.items())]
        return "\n".join(lines)


def _stream(reader: Any, connections: list[Any], start_ns: int) -> Iterator[tuple[str, int, bytes]]:
    for conn, t_ns, raw in reader.messages(connections=connections, start=start_ns):
        yield conn.topic, t_ns, bytes(raw)


def play(options: PlayOptions, node: Any) -> PlaySummary:
    """Publish the bag through ``node`` (an rclpy Node); returns what was published.

    Raises:
        PlayError: nothing to play (unknown topics, empty selection, a type not importable).
        BagError: the bag cannot be read.
    """
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    if options.rate <= 0:
        raise PlayError(f"--rate must be > 0, got {options.rate}")
    if options.start_offset_s < 0:
        raise PlayError(f"--start-offset must be >= 0 s, got {options.start_offset_s}")
    reader = open_bag(options.bag)
    try:
        wanted = {normalize_topic(t) for t in options.topics}
        present = {c.topic for c in reader.connections}
        unknown = sorted(wanted - present)
        if unknown:
            raise PlayError(
                f"topic(s) {', '.join(unknown)} not in {options.bag}; it has "
                f"{', '.join(sorted(present))}"
            )
        connections = [c for c in reader.connections if not wanted or c.topic in wanted]
        qos = QoSProfile(depth=options.queue, reliability=ReliabilityPolicy.RELIABLE)
        publishers: dict[str, Any] = {}
        for conn in connections:
            if conn.topic not in publishers:
                name = options.remap.get(conn.topic, conn.topic)
                publishers[conn.topic] = node.create_publisher(
                    message_class(conn.msgtype), name, qos
                )
        clock_pub = None
        if options.clock_hz > 0:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(Clock, "/clock", qos)
        _wait_for_subscribers(node, publishers, options.wait_s)
        start_ns = reader.start_time + int(options.start_offset_s * 1e9)
        summary = PlaySummary(bag_s=max(0.0, (reader.end_time - start_ns) / 1e9))
        total = sum(c.msgcount for c in connections)
        bar = tqdm(
            total=None if options.loop else total,
            unit="msg",
            desc="play",
            file=sys.stderr,
            disable=not options.progress,
        )
        wall0 = time.monotonic()
        try:
            while True:
                summary.loops += 1
                pass_wall = time.monotonic()
                for topic, t_ns, raw in _stream(reader, connections, start_ns):
                    due = pass_wall + (t_ns - start_ns) / 1e9 / options.rate
                    _sleep_until(due, clock_pub, options, pass_wall, start_ns)
                    if clock_pub is not None:
                        _publish_clock(clock_pub, t_ns)
                    publishers[topic].publish(raw)
                    summary.published[options.remap.get(topic, topic)] += 1
                    bar.update(1)
                if not options.loop:
                    break
        finally:
            bar.close()
            summary.wall_s = time.monotonic() - wall0
        return summary
    finally:
        reader.close()


def _wait_for_subscribers(node: Any, publishers: dict[str, Any], wait_s: float) -> None:
    """Give a late subscriber (a node started together with play) time to match, so the first
    messages are not published into the void: wait until some topic has a subscriber, then a
    moment for the subscriber's other topics; go on after ``wait_s`` either way. (Waiting for
    every topic would stall on ground-truth topics nobody subscribes to.)"""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if any(p.get_subscription_count() > 0 for p in publishers.values()):
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            return
        time.sleep(0.05)
    if wait_s > 0:
        node.get_logger().warning(f"no subscriber after {wait_s:g} s; playing anyway")


def _publish_clock(publisher: Any, t_ns: int) -> None:
    from rosgraph_msgs.msg import Clock

    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
    publisher.publish(msg)


def _sleep_until(
    due: float, clock_pub: Any, options: PlayOptions, pass_wall: float, start_ns: int
) -> None:
    """Wait for a message's time; with ``--clock`` keep publishing the bag time meanwhile."""
    while True:
        now = time.monotonic()
        if now >= due:
            return
        if clock_pub is None:
            time.sleep(due - now)
            return
        time.sleep(min(due - now, 1.0 / options.clock_hz))
        bag_ns = start_ns + int((time.monotonic() - pass_wall) * options.rate * 1e9)
        _publish_clock(clock_pub, bag_ns)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Publish a rosbag2's messages on live ROS 2 topics (ros2 bag play without a "
        "ROS install). DDS settings come from the environment (ROS_DOMAIN_ID, "
        "ROS_AUTOMATIC_DISCOVERY_RANGE).",
    )
    p.add_argument("bag", type=Path, help="rosbag2 directory, or a .mcap / .db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1.0)")
    p.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    p.add_argument(
        "--start-offset", type=float, default=0.0, help="skip this many seconds of the bag"
    )
    p.add_argument(
        "--clock",
        type=float,
        default=0.0,
        metavar="HZ",
        help="also publish the bag time on /clock at this rate (for use_sim_time; 0 = off)",
    )
    p.add_argument("--topics", nargs="+", default=[], help="play only these topics")
    p.add_argument(
        "--remap", action="append", default=[], metavar="FROM:=TO", help="publish FROM as TO"
    )
    p.add_argument("--queue", type=int, default=10, help="publisher queue depth (default 10)")
    p.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="seconds to wait for a first subscriber before playing (default 10)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import rclpy
    from rclpy.executors import ExternalShutdownException

    try:
        options = PlayOptions(
            bag=args.bag,
            rate=args.rate,
            loop=args.loop,
            start_offset_s=args.start_offset,
            clock_hz=args.clock,
            topics=list(args.topics),
            remap=parse_remaps(args.remap),
            queue=max(1, args.queue),
            wait_s=max(0.0, args.wait),
            progress=not args.no_progress,
        )
    except PlayError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rclpy.init()
    node = rclpy.create_node("stereo_semantic_play")
    try:
        summary = play(options, node)
    except (PlayError, BagError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, ExternalShutdownException):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
