"""stereo-semantic-echo: watch the node's outputs live and say what they hold, one line each.

``ros2 topic echo`` prints every field of a megabyte image; this prints what a person checks
first -- size, encoding, how much of the frame is valid, the median disparity or depth, the
number of points -- and ends with per-topic counts and rates (and a JSON file with ``--json``).

    stereo-semantic-echo [--topics disparity depth/image_rect points2 semantic/labels] [--count 10]
                         [--duration 30] [--json out.json]

Topic names are relative like the node's, so ``--ros-args -r __ns:=/stereo`` finds a node
started in that namespace. Subscriptions are reliable (the node's outputs are reliable).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROG = "stereo-semantic-echo"
DEFAULT_TOPICS = ("disparity", "depth/image_rect", "points2", "semantic/labels")
_ENCODING_DTYPES = {"32FC1": "<f4", "mono8": "u1", "8UC1": "u1", "mono16": "<u2", "16UC1": "<u2"}


def _image_array(msg: Any) -> np.ndarray | None:
    dtype = _ENCODING_DTYPES.get(msg.encoding)
    if dtype is None or msg.height == 0 or msg.width == 0:
        return None
    row = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    cols = row[:, : msg.width * np.dtype(dtype).itemsize]
    return cols.copy().view(dtype).reshape(msg.height, msg.width)


def describe(msg: Any) -> dict[str, Any]:
    """The figures one line shows, for the message types the node publishes."""
    kind = type(msg).__name__
    out: dict[str, Any] = {"type": kind}
    stamp = getattr(getattr(msg, "header", None), "stamp", None)
    if stamp is not None:
        out["stamp"] = stamp.sec + stamp.nanosec * 1e-9
    if kind == "DisparityImage":
        img = _image_array(msg.image)
        out.update(size=f"{msg.image.width}x{msg.image.height}", f=msg.f, T=msg.t)
        if img is not None:
            ok = np.isfinite(img) & (img >= msg.min_disparity)
            out["valid_pct"] = round(100.0 * float(ok.mean()), 1)
            out["median_px"] = round(float(np.median(img[ok])), 2) if ok.any() else None
    elif kind == "Image":
        out.update(size=f"{msg.width}x{msg.height}", encoding=msg.encoding)
        img = _image_array(msg)
        if img is not None and img.dtype.kind == "f":
            ok = np.isfinite(img)
            out["valid_pct"] = round(100.0 * float(ok.mean()), 1)
            out["median"] = round(float(np.median(img[ok])), 3) if ok.any() else None
        elif img is not None:
            values, counts = np.unique(img, return_counts=True)
            out["classes"] = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    elif kind == "PointCloud2":
        out.update(
            points=int(msg.width) * int(msg.height),
            organized=msg.height > 1,
            fields=[f.name for f in msg.fields],
        )
    elif kind == "CameraInfo":
        out.update(size=f"{msg.width}x{msg.height}", fx=msg.p[0])
    return out


def _line(topic: str, info: dict[str, Any]) -> str:
    rest = " ".join(f"{k}={v}" for k, v in info.items() if k not in ("type", "classes"))
    if "classes" in info:
        rest += f" classes={len(info['classes'])}"
    return f"{topic:<20} {rest}"


def run_echo(
    topics: Sequence[str], count: int, duration_s: float, quiet: bool = False
) -> dict[str, Any]:
    """Subscribe until every topic got ``count`` messages or ``duration_s`` passed."""
    # lazy, like rclpy: the output table brings torch (the pipeline) along, which --help and a
    # bad argument should not wait for
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from stereo_semantic_ros.outputs import OUTPUTS
    from stereo_semantic_ros.ros.outputs import message_type

    types = {output.topic: message_type(output.msgtype) for output in OUTPUTS}
    unknown = [t for t in topics if t not in types]
    if unknown:
        raise ValueError(f"unknown output topic(s) {unknown}; choose from {sorted(types)}")
    node = rclpy.create_node("stereo_semantic_echo")
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    first: dict[str, float] = {}

    def callback(topic: str):
        def on_message(msg: Any) -> None:
            info = describe(msg)
            first.setdefault(topic, time.monotonic())
            seen[topic].append(info)
            if not quiet:
                print(_line(topic, info), flush=True)

        return on_message

    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    for topic in topics:
        node.create_subscription(types[topic], topic, callback(topic), qos)
    deadline = time.monotonic() + duration_s
    try:
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
            if count and all(len(seen[t]) >= count for t in topics):
                break
    finally:
        node.destroy_node()
    now = time.monotonic()
    summary = {}
    for topic in topics:
        n = len(seen[topic])
        span = now - first[topic] if topic in first else 0.0
        summary[topic] = {
            "messages": n,
            "rate_hz": round((n - 1) / span, 2) if n > 1 and span > 0 else None,
            "last": seen[topic][-1] if n else None,
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--topics", nargs="+", default=list(DEFAULT_TOPICS))
    p.add_argument("--count", type=int, default=0, help="stop after N messages on every topic")
    p.add_argument("--duration", type=float, default=30.0, help="stop after this many seconds")
    p.add_argument("--json", type=Path, help="write the summary here")
    p.add_argument("--quiet", action="store_true", help="only the summary")
    args, ros_args = p.parse_known_args(argv)
    import rclpy

    rclpy.init(args=[sys.argv[0], *ros_args])
    try:
        summary = run_echo(args.topics, args.count, args.duration, args.quiet)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        rclpy.try_shutdown()
    for topic, s in summary.items():
        rate = f"{s['rate_hz']} Hz" if s["rate_hz"] else "-"
        print(f"{PROG}: {topic:<20} {s['messages']} message(s), {rate}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if all(s["messages"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
