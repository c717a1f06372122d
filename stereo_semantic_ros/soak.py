"""Soak benchmark of the live node: N frames over localhost DDS, resources sampled over time.

``stereo-semantic-soak`` (``python -m stereo_semantic_ros.soak``) starts ``stereo_semantic_node``
as its own process (``python -m stereo_semantic_ros.ros.node --ros-args --params-file ...``) on
``--domain-id`` with DDS kept on this host, publishes ``--frames`` textured stereo sets at
``--rate`` Hz from this process, subscribes to every output, and meanwhile samples the node
process's RSS, open file descriptors and thread count from ``/proc``. It reports:

* totals from the node's own ``/diagnostics`` counters (minus what the warm-up left there):
  frames received, published, dropped by reason, and whether they add up;
* latency from each frame's stamp (this host's wall clock at publication) to the receipt of
  its last output here, p50 / p90 / p99 / max;
* RSS start / end / max and its slope, file descriptors and threads start / end / max.

It writes ``soak.json`` and the node's log into ``--out`` and prints a summary. Exit codes:
0 done and the node's totals add up; 1 the node did not start, answer or survive; 3 it ran but
received != published + dropped + skipped. A benchmark, not a timed test: nothing here asserts
a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

PACKAGE = "stereo_semantic_ros"
NODE_NAME = "stereo_semantic_node"
DEFAULT_DOMAIN_ID = 73
# the node's frame counters in /diagnostics, besides dropped_<reason> and skipped_no_subscribers
COUNTER_KEYS = (
    "frames_received",
    "sets_synchronised",
    "frames_published",
    "dropped_total",
    "frames_in_flight",  # a level, not a count: queued or in inference when the status was made
)
EXIT_OK, EXIT_NODE_FAILED, EXIT_UNBALANCED = 0, 1, 3


def default_params_file() -> Path:
    """config/esp_joint.yaml of the installed package (sourced workspace), else of this repo."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE)) / "config" / "esp_joint.yaml"
    except (ImportError, LookupError, ValueError, OSError):
        return Path(__file__).resolve().parents[1] / "config" / "esp_joint.yaml"


# --------------------------------------------------------------------------- /proc sampling


@dataclass
class ProcSample:
    t_s: float  # since the node was started
    frames_sent: int
    rss_mb: float
    fds: int
    threads: int


def read_proc(pid: int) -> tuple[float, int, int] | None:
    """(RSS in MB, open file descriptors, threads) of a live process; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields_ = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields_["VmRSS"].split()[0]) if "VmRSS" in fields_ else 0
    return rss_kb / 1024.0, fds, int(fields_["Threads"])


class Sampler:
    """Samples a process every ``period_s`` in a daemon thread."""

    def __init__(self, pid: int, period_s: float, frames_sent: Callable[[], int]) -> None:
        self.pid = pid
        self.period_s = period_s
        self.samples: list[ProcSample] = []
        self._frames_sent = frames_sent
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def sample(self) -> ProcSample | None:
        got = read_proc(self.pid)
        if got is None:
            return None
        s = ProcSample(time.monotonic() - self._t0, self._frames_sent(), *got)
        with self._lock:
            self.samples.append(s)
        return s

    def latest(self) -> ProcSample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------- the node process


def interrupt_then_kill(proc: subprocess.Popen, grace_s: float = 20.0) -> int | None:
    """Ctrl-C as ``ros2 run`` would send it, then a kill after ``grace_s``; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


class NodeProcess:
    """The node as a child process of this interpreter, stdout+stderr into ``log_path``."""

    def __init__(
        self,
        params_file: Path,
        domain_id: int,
        log_path: Path,
        params: list[str],
        torch_threads: int | None = None,
    ) -> None:
        self.command = [
            sys.executable,
            "-m",
            f"{PACKAGE}.ros.node",
            "--ros-args",
            "--params-file",
            str(params_file),
            *(item for p in params for item in ("-p", p)),
        ]
        env = dict(os.environ)
        env.update(
            ROS_DOMAIN_ID=str(domain_id),
            ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
            RCUTILS_COLORIZED_OUTPUT="0",
            PYTHONUNBUFFERED="1",
        )
        if torch_threads:
            # torch reads it at import; the node has no thread-count parameter of its own
            env["OMP_NUM_THREADS"] = str(torch_threads)
        # the child imports the same package as this process, installed or from a checkout
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.log_path = log_path
        self._log = open(log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> int | None:
        """Ctrl-C as ``ros2 run`` would get it, then a kill after 20 s; the exit code."""
        try:
            return interrupt_then_kill(self.proc)
        finally:
            self._log.close()


# --------------------------------------------------------------------------- frames


@dataclass
class FrameTemplate:
    """The four messages of one input set; only their headers change per publication."""

    left: Any
    right: Any
    left_info: Any
    right_info: Any


def make_templates(width: int, height: int, count: int = 4) -> list[FrameTemplate]:
    """Textured pairs (right = left shifted by 4 px) with a rectified pair's camera_infos."""
    from sensor_msgs.msg import CameraInfo

    from stereo_semantic_ros.ros.conversions import array_to_image

    fx, baseline = 0.58 * width, 0.1
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    templates = []
    for seed in range(count):
        rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
        infos = []
        for frame_id, tx in (("left_optical", 0.0), ("right_optical", -fx * baseline)):
            info = CameraInfo()
            info.header.frame_id = frame_id
            info.width, info.height = width, height
            info.distortion_model = "plumb_bob"
            info.d = [0.0] * 5
            info.k = [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0]
            info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            info.p = [fx, 0.0, cx, tx, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
            infos.append(info)
        left = array_to_image(rgb, "rgb8")
        left.header.frame_id = "left_optical"
        right = array_to_image(np.ascontiguousarray(np.roll(rgb, -4, axis=1)), "rgb8")
        right.header.frame_id = "right_optical"
        templates.append(FrameTemplate(left, right, infos[0], infos[1]))
    return templates


# --------------------------------------------------------------------------- the driver


@dataclass
class Received:
    """Per stamp: when each output arrived here (ns, this host's wall clock)."""

    topics: tuple[str, ...]
    arrivals: dict[int, dict[str, int]] = field(default_factory=dict)
    messages: int = 0

    def complete(self) -> dict[int, int]:
        """stamp -> receipt time of its last output, for stamps that got every output."""
        n = len(self.topics)
        return {s: max(t.values()) for s, t in self.arrivals.items() if len(t) == n}


class Driver:
    """Publisher of the inputs, subscriber of the outputs and /diagnostics, in its own context."""

    def __init__(self, domain_id: int, topics: tuple[str, ...]) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from stereo_semantic_ros.outputs import OUTPUTS
        from stereo_semantic_ros.ros.outputs import message_type

        output_types = {output.topic: message_type(output.msgtype) for output in OUTPUTS}
        unknown = set(topics) - set(output_types)
        if unknown:
            raise ValueError(f"unknown output topics {sorted(unknown)}; known: {output_types}")
        self._rclpy = rclpy
        self.context = rclpy.Context()
        # args=[]: this tool's own command line holds no ROS arguments (-p is ours)
        rclpy.init(args=[], context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("stereo_semantic_soak", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self.received = Received(tuple(topics))
        self._diagnostics: list[tuple[float, dict[str, str]]] = []
        # reliable publishers match the node's best-effort (sensor data) subscriptions too
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = [
            self.node.create_publisher(Image, "left/image_rect", reliable),
            self.node.create_publisher(Image, "right/image_rect", reliable),
            self.node.create_publisher(CameraInfo, "left/camera_info", reliable),
            self.node.create_publisher(CameraInfo, "right/camera_info", reliable),
        ]
        for topic in topics:
            self.node.create_subscription(
                output_types[topic],
                topic,
                lambda msg, t=topic: self._on_output(t, msg),
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
            )
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, QoSProfile(depth=10)
        )
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()

    def _spin_loop(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the context went down while waiting
                if self.context.ok():
                    raise
                return

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self._spin.join(timeout=5)

    def publish(self, frame: FrameTemplate, stamp_ns: int) -> None:
        from builtin_interfaces.msg import Time

        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        stamp = Time(sec=sec, nanosec=nanosec)
        msgs = (frame.left, frame.right, frame.left_info, frame.right_info)
        for msg in msgs:
            msg.header.stamp = stamp
        # camera_infos first, as a driver does: the set forms when its images arrive
        for index in (2, 3, 0, 1):
            self.pubs[index].publish(msgs[index])

    def _on_output(self, topic: str, msg: Any) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.received.arrivals.setdefault(stamp, {}).setdefault(topic, now)
            self.received.messages += 1

    def _on_diagnostics(self, msg: Any) -> None:
        from stereo_semantic_ros.frames.diagnostics import is_node_status

        for status in msg.status:
            if is_node_status(status.name, NODE_NAME):
                values = {kv.key: kv.value for kv in status.values}
                values["_message"] = status.message
                with self._lock:
                    self._diagnostics.append((time.monotonic(), values))

    def arrivals_at(self, stamp_ns: int) -> int:
        with self._lock:
            return len(self.received.arrivals.get(stamp_ns, {}))

    def output_counts(self) -> tuple[int, int]:
        """(stamps with every output, output messages) received so far."""
        with self._lock:
            return len(self.received.complete()), self.received.messages

    def diagnostics_after(self, t_monotonic: float, timeout: float) -> dict[str, str] | None:
        """The first node status computed after ``t_monotonic`` (the node sends one a second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for t, values in self._diagnostics:
                    if t > t_monotonic:
                        return values
            time.sleep(0.05)
        return None


# --------------------------------------------------------------------------- accounting


def counters(values: dict[str, str]) -> dict[str, int]:
    """The node's frame counters from one status (``dropped_<reason>`` included)."""
    out: dict[str, int] = {}
    for key, value in values.items():
        if key in COUNTER_KEYS or key == "skipped_no_subscribers" or key.startswith("dropped_"):
            try:
                out[key] = int(value)
            except ValueError:
                pass
    return out


def totals_since(base: dict[str, int], end: dict[str, int], sent: int) -> dict[str, Any]:
    """What the node did with the soak's frames: ``end - base`` of every counter."""
    delta = {k: end.get(k, 0) - base.get(k, 0) for k in end}
    dropped = {
        k.removeprefix("dropped_"): v
        for k, v in delta.items()
        if k.startswith("dropped_") and k != "dropped_total"
    }
    received = delta.get("frames_received", 0)
    published = delta.get("frames_published", 0)
    dropped_total = delta.get("dropped_total", sum(dropped.values()))
    skipped = delta.get("skipped_no_subscribers", 0)
    # The node defines its in-flight level as received - published - skipped - dropped, so
    # subtracting it would make any sum balance: a frame still in flight after the drain is
    # reported as unaccounted here (and the soak starts from a status with none in flight).
    in_flight = end.get("frames_in_flight", 0)
    unaccounted = received - published - dropped_total - skipped
    return {
        "sent": sent,
        "received": received,
        "sets_synchronised": delta.get("sets_synchronised", 0),
        "published": published,
        "dropped_total": dropped_total,
        "dropped": {k: v for k, v in dropped.items() if v},
        "skipped_no_subscribers": skipped,
        "in_flight": in_flight,
        "unaccounted": unaccounted,
        "not_received": sent - received,
        "balanced": unaccounted == 0,
    }


def percentiles(values_ms: list[float]) -> dict[str, float | int]:
    if not values_ms:
        return {"frames": 0}
    arr = np.asarray(values_ms)
    return {
        "frames": int(arr.size),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
    }


def resource_summary(samples: list[ProcSample], start_index: int) -> dict[str, Any]:
    """start / end / max of RSS, fds and threads from ``samples[start_index:]`` (after warm-up),
    and the RSS slope over its second half (early growth is caches filling, not a leak)."""
    run = samples[start_index:] or samples[-1:]
    if not run:
        return {}
    out: dict[str, Any] = {
        "samples": len(run),
        "rss_mb_peak_whole_run": max(s.rss_mb for s in samples),
    }
    for name in ("rss_mb", "fds", "threads"):
        values = [getattr(s, name) for s in run]
        out[name] = {"start": values[0], "end": values[-1], "max": max(values)}
    half = run[len(run) // 2 :]
    frames = np.array([s.frames_sent for s in half], dtype=np.float64)
    if len(half) >= 10 and np.ptp(frames) > 0:
        slope = np.polyfit(frames, [s.rss_mb for s in half], 1)[0]
        out["rss_mb"]["slope_mb_per_1000_frames_second_half"] = float(slope * 1000)
    return out


# --------------------------------------------------------------------------- the run


def _warm_up(driver: Driver, node: NodeProcess, frame: FrameTemplate, timeout: float) -> int | None:
    """Publish every 0.5 s until one frame is answered on every output; its stamp, or None.

    Covers the node's start (imports, weights), DDS discovery and the node subscribing to its
    inputs once it sees this process's output subscriptions.
    """
    deadline = time.monotonic() + timeout
    sent: list[int] = []
    topics = len(driver.received.topics)
    while time.monotonic() < deadline and node.alive():
        stamp = time.time_ns()
        driver.publish(frame, stamp)
        sent.append(stamp)
        t_end = time.monotonic() + 0.5
        while time.monotonic() < t_end:
            for s in sent:
                if driver.arrivals_at(s) == topics:
                    return s
            time.sleep(0.02)
    return None


def _drain(driver: Driver, base: dict[str, int], sent: int, timeout: float) -> dict[str, str]:
    """Node status once every frame is accounted for or the counters stop moving."""
    deadline = time.monotonic() + timeout
    last: dict[str, str] | None = None
    while True:
        values = driver.diagnostics_after(time.monotonic(), timeout=3.0)
        if values is None:
            if last is None:
                raise RuntimeError("the node sent no /diagnostics after the soak")
            return last
        totals = totals_since(base, counters(values), sent)
        still = last is not None and counters(last) == counters(values)
        done = totals["received"] == sent and totals["in_flight"] == 0 and totals["balanced"]
        if done or still:
            return values
        if time.monotonic() > deadline:
            return values
        last = values


def run_soak(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    topics = tuple(t.strip() for t in args.outputs.split(",") if t.strip())
    templates = make_templates(args.width, args.height)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    driver = Driver(args.domain_id, topics)
    node = NodeProcess(
        args.params, args.domain_id, out_dir / "node.log", args.param, args.torch_threads
    )
    sent = 0
    sampler = Sampler(node.pid, args.sample_period, lambda: sent)
    report: dict[str, Any] = {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "node_command": node.command,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "config": {
            "frames": args.frames,
            "rate_hz": args.rate,
            "width": args.width,
            "height": args.height,
            "params_file": str(args.params),
            "params": args.param,
            "torch_threads": args.torch_threads,
            "domain_id": args.domain_id,
            "outputs": list(topics),
        },
        "error": None,
    }
    status = EXIT_OK
    try:
        warm = _warm_up(driver, node, templates[0], args.startup_timeout)
        if warm is None:
            raise RuntimeError(
                f"the node answered no frame within {args.startup_timeout:g} s "
                f"({'running' if node.alive() else f'exited {node.proc.returncode}'})"
            )
        time.sleep(2.0)  # let warm-up frames still in flight land in the counters
        base_values = None
        for _ in range(10):
            base_values = driver.diagnostics_after(time.monotonic(), timeout=10.0)
            if base_values is None:
                raise RuntimeError("the node publishes no /diagnostics")
            if counters(base_values).get("frames_in_flight", 0) == 0:
                break
        base = counters(base_values)
        start_index = len(sampler.samples)
        sampler.sample()
        stamps: list[int] = []
        t0 = time.monotonic()
        bar = tqdm(range(args.frames), desc="soak", unit="frame", disable=not args.progress)
        for k in bar:
            delay = t0 + k / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not node.alive():
                raise RuntimeError(f"the node exited with {node.proc.returncode} mid-run")
            stamp = max(time.time_ns(), stamps[-1] + 1 if stamps else 0)
            driver.publish(templates[k % len(templates)], stamp)
            stamps.append(stamp)
            sent = k + 1
            if k % 50 == 0 and args.progress:
                latest = sampler.latest()
                complete, _ = driver.output_counts()
                bar.set_postfix(
                    out=complete, rss_mb=f"{latest.rss_mb:.0f}" if latest else "?", refresh=False
                )
        duration = time.monotonic() - t0
        end_values = _drain(driver, base, sent, args.drain_timeout)
        sampler.sample()
        totals = totals_since(base, counters(end_values), sent)
        arrivals = driver.received.complete()
        ours = set(stamps)
        latencies = [(arrivals[s] - s) / 1e6 for s in stamps if s in arrivals]
        totals["outputs_complete_here"] = len(latencies)
        totals["outputs_from_warm_up"] = sum(1 for s in arrivals if s not in ours)
        report.update(
            duration_s=duration,
            achieved_rate_hz=sent / duration if duration > 0 else 0.0,
            totals=totals,
            latency_ms=percentiles(latencies),
            resources=resource_summary(sampler.samples, start_index),
            node_status_end={k: v for k, v in end_values.items() if not k.startswith("sync_")},
        )
        if not totals["balanced"]:
            status = EXIT_UNBALANCED
    except RuntimeError as exc:
        report["error"] = str(exc)
        status = EXIT_NODE_FAILED
    finally:
        sampler.stop()
        driver.close()
        report["node_exit_code"] = node.stop()
        report["samples"] = [s.__dict__ for s in sampler.samples]
        report["node_log"] = str(node.log_path)
    if report["error"]:
        report["node_log_tail"] = node.tail()
    return status, report


def format_summary(report: dict[str, Any]) -> str:
    c = report["config"]
    lines = [
        f"soak: {c['frames']} frames {c['width']}x{c['height']} at {c['rate_hz']:g} Hz, "
        f"domain {c['domain_id']}, params {c['params_file']} {' '.join(c['params'])}".rstrip()
        + (f", torch threads {c['torch_threads']}" if c.get("torch_threads") else "")
    ]
    if report.get("error"):
        lines.append(f"FAILED: {report['error']}")
        return "\n".join(lines)
    t, lat, res = report["totals"], report["latency_ms"], report["resources"]
    drops = ", ".join(f"{k} {v}" for k, v in t["dropped"].items()) or "none"
    lines += [
        f"ran {report['duration_s']:.1f} s ({report['achieved_rate_hz']:.2f} Hz sent)",
        f"frames: sent {t['sent']}, node received {t['received']}, published {t['published']}, "
        f"dropped {t['dropped_total']} ({drops}), skipped (no subscriber) "
        f"{t['skipped_no_subscribers']}, still in flight {t['in_flight']}; received - "
        f"published - dropped - skipped = {t['unaccounted']} "
        f"({'adds up' if t['balanced'] else 'DOES NOT ADD UP'})",
        f"outputs complete here: {t['outputs_complete_here']} frames",
    ]
    status = report.get("node_status_end", {})
    if "pipeline_ms_mean" in status:
        lines.append(
            f"node pipeline ms (last {status.get('latency_window_frames', '?')} frames): mean "
            f"{status['pipeline_ms_mean']}, p90 {status.get('pipeline_ms_p90', '?')}"
        )
    if lat.get("frames"):
        lines.append(
            f"latency stamp -> last output (ms): p50 {lat['p50']:.1f}, p90 {lat['p90']:.1f}, "
            f"p99 {lat['p99']:.1f}, max {lat['max']:.1f}"
        )
    if res:
        rss, fds, thr = res["rss_mb"], res["fds"], res["threads"]
        slope = rss.get("slope_mb_per_1000_frames_second_half")
        lines += [
            f"node RSS MB: start {rss['start']:.1f}, end {rss['end']:.1f}, max {rss['max']:.1f}"
            + (f", second-half slope {slope:+.2f} MB / 1000 frames" if slope is not None else ""),
            f"node fds: start {fds['start']}, end {fds['end']}, max {fds['max']}; threads: "
            f"start {thr['start']}, end {thr['end']}, max {thr['max']}",
        ]
    lines.append(f"node exit code {report['node_exit_code']}")
    return "\n".join(lines)


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stereo-semantic-soak",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 done, totals add up; 1 the node failed; 3 totals do not add up.",
    )
    parser.add_argument("--frames", type=_positive(int), default=1000)
    parser.add_argument("--rate", type=_positive(float), default=10.0, help="Hz (default 10)")
    parser.add_argument("--width", type=_positive(int), default=128)
    parser.add_argument("--height", type=_positive(int), default=64)
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="the node's parameter file (default: the package's config/esp_joint.yaml)",
    )
    parser.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter, as after -p in --ros-args (repeatable), e.g. device:=cpu",
    )
    parser.add_argument(
        "--torch-threads",
        type=_positive(int),
        default=None,
        help="OMP_NUM_THREADS for the node (default: torch's own choice, one per core); on a "
        "CPU shared with other work 1 can be many times faster",
    )
    parser.add_argument("--domain-id", type=int, default=DEFAULT_DOMAIN_ID)
    parser.add_argument(
        "--outputs",
        default="disparity,depth/image_rect,depth/camera_info,confidence,points2,semantic/labels,"
        "semantic/color,disparity/color",
        help="output topics this tool subscribes to (comma list; default all)",
    )
    parser.add_argument("--out", type=Path, default=Path("out/soak"), help="soak.json, node.log")
    parser.add_argument("--sample-period", type=_positive(float), default=1.0, help="seconds")
    parser.add_argument("--startup-timeout", type=_positive(float), default=180.0)
    parser.add_argument("--drain-timeout", type=_positive(float), default=30.0)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    if not 0 <= args.domain_id <= 232:
        parser.error(f"--domain-id must be 0..232, got {args.domain_id}")
    args.params = (args.params or default_params_file()).resolve()
    if not args.params.is_file():
        parser.error(f"--params {args.params}: no such file")
    for item in args.param:
        if ":=" not in item:
            parser.error(f"--param {item!r}: expected NAME:=VALUE")

    status, report = run_soak(args)
    path = args.out / "soak.json"
    path.write_text(json.dumps(report, indent=2))
    print(format_summary(report))
    print(f"written: {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
