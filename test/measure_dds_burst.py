"""Loss of reliable KEEP_LAST topics published back to back, without the node (not a test).

The node's outputs in miniature: one process publishes, per "frame", one message on each of
seven topics sized like a 640x480 frame's outputs (sensor_msgs/Image used as a byte carrier),
with reliable KEEP_LAST ``--depth`` publishers; a second process subscribes to all of them
(reliable, depth 50, callbacks that only record the frame number) and prints how many frames
arrived per topic. The figures behind ``OUTPUT_DEPTH`` in stereo_semantic_ros/ros/node.py.

Usage::

    .venv/bin/python test/measure_dds_burst.py --depth 1 --frames 30 --rate 2
    .venv/bin/python test/measure_dds_burst.py --depth 5 --frames 50 --rate 10
    .venv/bin/python test/measure_dds_burst.py --depth 1 --topics points2   # one topic alone
    FASTDDS_DEFAULT_PROFILES_FILE=hb.xml ...   # e.g. a 20 ms writer heartbeat period
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# bytes per message of a 640x480 frame's outputs (32FC1, rgb8, mono8, the cloud's 20 B/point)
SIZES = {
    "disparity": 640 * 480 * 4,
    "disparity_color": 640 * 480 * 3,
    "depth": 640 * 480 * 4,
    "depth_info": 200,
    "confidence": 640 * 480 * 4,
    "points2": 640 * 480 * 20,
    "labels": 640 * 480,
    "color": 640 * 480 * 3,
}


def _subscribe(topics: list[str], seconds: float) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("burst_sub")
    got: dict[str, set[int]] = {t: set() for t in topics}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    for topic in topics:
        node.create_subscription(
            Image, "burst/" + topic, lambda m, t=topic: got[t].add(m.header.stamp.sec), qos
        )
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({t: len(v) for t, v in got.items()}))


def _publish(topics: list[str], depth: int, frames: int, rate: float) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("burst_pub")
    qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {t: node.create_publisher(Image, "burst/" + t, qos) for t in topics}
    msgs = {}
    for topic in topics:
        msg = Image(height=1, width=SIZES[topic], encoding="mono8", step=SIZES[topic])
        msg.data = bytes(SIZES[topic])
        msgs[topic] = msg
    deadline = time.monotonic() + 20
    while any(p.get_subscription_count() == 0 for p in pubs.values()):
        if time.monotonic() > deadline:
            raise SystemExit("the subscriber did not appear")
        time.sleep(0.1)
    time.sleep(2.0)
    for k in range(frames):
        for topic in topics:
            msgs[topic].header.stamp.sec = k
            pubs[topic].publish(msgs[topic])
        time.sleep(1.0 / rate)
    time.sleep(3.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=1, help="publisher history depth")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rate", type=float, default=2.0, help="frames per second")
    parser.add_argument("--topics", default=",".join(SIZES), help="comma list of " + str(SIZES))
    parser.add_argument("--domain-id", type=int, default=111)
    parser.add_argument("--role", choices=("main", "pub", "sub"), default="main")
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    topics = args.topics.split(",")
    if args.role == "sub":
        _subscribe(topics, args.seconds)
        return 0
    if args.role == "pub":
        _publish(topics, args.depth, args.frames, args.rate)
        return 0
    env = dict(
        os.environ, ROS_DOMAIN_ID=str(args.domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"
    )
    common = [sys.executable, __file__, "--topics", args.topics]
    seconds = args.frames / args.rate + 12
    sub = subprocess.Popen(
        [*common, "--role", "sub", "--seconds", str(seconds)], env=env, stdout=subprocess.PIPE
    )
    time.sleep(1.0)
    pub_args = ["--depth", str(args.depth), "--frames", str(args.frames), "--rate", str(args.rate)]
    subprocess.run([*common, "--role", "pub", *pub_args], env=env, check=True)
    out, _ = sub.communicate()
    print(json.dumps({"depth": args.depth, "frames": args.frames, "rate": args.rate}))
    print(out.decode().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
