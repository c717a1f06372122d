"""Output loss at a given publisher history depth, per output topic, over DDS (not a test).

Starts ``stereo_semantic_node`` (the soak's :class:`~stereo_semantic_ros.soak.NodeProcess`, a
tiny untrained network on the CPU) with every output's publisher depth set through
``qos_overrides./<topic>.publisher.depth`` (or the node's default), subscribes to all outputs
with the soak's reliable subscriptions (depth 10; they only record what arrives, so they keep
up), publishes ``--frames`` stereo sets at ``--rate`` Hz and counts, per topic, how many of the
frames the node published arrived here.

Usage::

    .venv/bin/python test/measure_output_qos.py --depth 1    # stereo_image_proc's depth
    .venv/bin/python test/measure_output_qos.py               # the node's default

Prints one JSON line: the node's ``frames_published`` (from its /diagnostics counters, minus
the warm-up) and ``received[topic]`` for frames published during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from stereo_semantic_ros.outputs import OUTPUTS
from stereo_semantic_ros.soak import Driver, NodeProcess, counters, make_templates

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", default="default", help="publisher depth, or 'default'")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--input-scale", type=float, default=0.25, help="the node's input_scale")
    parser.add_argument("--domain-id", type=int, default=110)
    args = parser.parse_args(argv)

    topics = tuple(o.topic for o in OUTPUTS)
    # reliable inputs: best-effort 640x480 images sent back to back lose fragments (the burst
    # effect of OUTPUT_DEPTH's note, with no repair at all), and only outputs are measured here
    params = ["device:=cpu", "weights:=''", "max_disparity:=16", "qos_reliability:=reliable"]
    params.append(f"input_scale:={args.input_scale}")
    if args.depth != "default":
        params += [f"qos_overrides./{t}.publisher.depth:={int(args.depth)}" for t in topics]
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["OMP_NUM_THREADS"] = "1"
    log = Path(tempfile.mkdtemp(prefix="measure_qos_")) / "node.log"
    driver = Driver(args.domain_id, topics)
    node = NodeProcess(REPO / "config" / "esp_joint.yaml", args.domain_id, log, params, 1)
    templates = make_templates(args.width, args.height)
    try:
        # warm up: publish until one frame comes back complete
        warm: list[int] = []
        deadline = time.monotonic() + 180
        while not any(driver.arrivals_at(stamp) == len(topics) for stamp in warm):
            if time.monotonic() > deadline or not node.alive():
                raise SystemExit(f"node did not answer; log {log}")
            warm.append(time.time_ns())
            driver.publish(templates[0], warm[-1])
            time.sleep(1.0)
        time.sleep(3.0)
        base = counters(driver.diagnostics_after(time.monotonic(), 10) or {})
        stamps = []
        t0 = time.monotonic()
        for k in range(args.frames):
            time.sleep(max(0.0, t0 + k / args.rate - time.monotonic()))
            stamp = time.time_ns()
            driver.publish(templates[k % len(templates)], stamp)
            stamps.append(stamp)
        time.sleep(5.0)  # drain
        end = counters(driver.diagnostics_after(time.monotonic(), 10) or {})
        with driver._lock:
            arrivals = {s: dict(driver.received.arrivals.get(s, {})) for s in stamps}
        received = {t: sum(1 for s in stamps if t in arrivals[s]) for t in topics}
        report = {
            "depth": args.depth,
            "size": f"{args.width}x{args.height}",
            "frames_sent": len(stamps),
            "frames_published": end["frames_published"] - base["frames_published"],
            "received": received,
        }
        print(json.dumps(report))
    finally:
        driver.close()
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
