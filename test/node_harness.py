"""Test side of the live-node tests: the installed node as its own process, fed over real DDS.

:class:`NodeProcess` starts ``<install>/lib/stereo_semantic_ros/stereo_semantic_node`` from the
session's colcon build with the shipped parameter file, output to a log file the tests read.
:class:`Driver` is an rclpy node in the test process (own context and domain id) that publishes
frames on the node's four inputs, records every output message by stamp, and calls the node's
parameter services. Nothing here is mocked: messages cross DDS between two processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from stereo_semantic_ros.frames.diagnostics import is_node_status
from stereo_semantic_ros.outputs import OUTPUTS
from stereo_semantic_ros.ros.outputs import message_type
from stereo_semantic_ros.soak import interrupt_then_kill

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "stereo_semantic_ros"
NODE = "stereo_semantic_node"
INPUT_TYPES = {
    "left/image_rect": Image,
    "right/image_rect": Image,
    "left/camera_info": CameraInfo,
    "right/camera_info": CameraInfo,
}
OUTPUT_TYPES = {output.topic: message_type(output.msgtype) for output in OUTPUTS}
FX, BASELINE = 50.0, 0.1  # P_right[0, 3] = -FX * BASELINE = -5.0
MAX_DISPARITY = 16  # the -p max_disparity the node is started with
LEFT_FRAME, RIGHT_FRAME = "left_camera_optical_frame", "right_camera_optical_frame"
POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 8: "<f8"}


# --------------------------------------------------------------------------- the node process


def node_environment(site_packages: Path, prefix: Path, domain_id: int) -> dict[str, str]:
    """Environment of the node process: the install first on PYTHONPATH, DDS kept on this host."""
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        AMENT_PREFIX_PATH=str(prefix),  # get_package_share_directory finds share/<pkg>/models
        RCUTILS_COLORIZED_OUTPUT="0",
        RCUTILS_LOGGING_BUFFERED_STREAM="0",
        PYTHONUNBUFFERED="1",
    )
    env["PYTHONPATH"] = os.pathsep.join([str(site_packages), *(p for p in sys.path if p)])
    return env


class NodeProcess:
    """``stereo_semantic_node`` started from the colcon install, stdout+stderr into ``log_path``.

    Args:
        prefix: ``install/stereo_semantic_ros``.
        site_packages: its ``lib/python3.X/site-packages``.
        extra_args: more ``--ros-args`` items after the standard ones.
        params_file: the installed config/ file the node starts with.
        untrained: override it to a tiny untrained network (``MAX_DISPARITY``, no weights,
            ``min_confidence`` 0); False runs the file's own weights.
        executable: the installed console script (``stereo_semantic_lifecycle_node`` for the
            lifecycle variant).
    """

    def __init__(
        self,
        prefix: Path,
        site_packages: Path,
        domain_id: int,
        log_path: Path,
        extra_args: Iterable[str] = (),
        params_file: str = "esp_joint.yaml",
        untrained: bool = True,
        executable: str = NODE,
    ) -> None:
        self.executable = prefix / "lib" / PACKAGE / executable
        first_line = self.executable.read_text().splitlines()[0]
        assert first_line == f"#!{sys.executable}", (
            f"{self.executable} would run {first_line!r}, not this venv's {sys.executable}"
        )
        params = prefix / "share" / PACKAGE / "config" / params_file
        # min_confidence 0: the file's threshold is the shipped weights' (their model card); an
        # untrained network's confidence is about 1/D everywhere and would mask every pixel
        network = ["-p", f"max_disparity:={MAX_DISPARITY}", "-p", "weights:=''"]
        network += ["-p", "min_confidence:=0.0"]
        self.command = [
            str(self.executable),
            "--ros-args",
            "--params-file",
            str(params),
            "-p",
            "device:=cpu",
            *(network if untrained else []),
            *extra_args,
        ]
        self.log_path = log_path
        self._log = open(log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=node_environment(site_packages, prefix, domain_id),
            cwd=REPO,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, level: str | None = None, since: int = 0) -> list[str]:
        """Log lines after character offset ``since``, optionally only ``[LEVEL]`` ones."""
        lines = self.text()[since:].splitlines()
        return [ln for ln in lines if level is None or ln.startswith(f"[{level}]")]

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int | None:
        """Ctrl-C, then a kill if the node does not exit within 60 s; returns the exit code.

        Quiet, the node exits within a second or two; a fresh-clone CI run on a 2-core machine
        shared with two trainings once needed more than 20 s (a -9 failed a lifecycle test)."""
        try:
            return interrupt_then_kill(self.proc, grace_s=60.0)
        finally:
            self._log.close()


# --------------------------------------------------------------------------- frames


@dataclass
class Frame:
    """One stereo input set and what the node must see in it.

    Attributes:
        rgb: (H, W, 3) uint8 left image as RGB, the colours ``points2`` must carry.
    """

    stamp_ns: int
    left: Image
    right: Image
    left_info: CameraInfo
    right_info: CameraInfo
    rgb: np.ndarray

    @property
    def width(self) -> int:
        return int(self.left.width)

    @property
    def height(self) -> int:
        return int(self.left.height)


def to_time(stamp_ns: int) -> Time:
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    return Time(sec=sec, nanosec=nsec)


def camera_info(
    stamp_ns: int, frame_id: str, width: int, height: int, tx: float, fx: float = FX
) -> CameraInfo:
    """A rectified camera's info: P = [fx 0 cx tx; 0 fx cy 0; 0 0 1 0], no distortion."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info = CameraInfo()
    info.header = Header(stamp=to_time(stamp_ns), frame_id=frame_id)
    info.width, info.height = width, height
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, tx, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def image(stamp_ns: int, frame_id: str, pixels: np.ndarray, encoding: str) -> Image:
    msg = Image()
    msg.header = Header(stamp=to_time(stamp_ns), frame_id=frame_id)
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = False
    msg.step = int(pixels.strides[0])
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return msg


def make_frame(
    stamp_ns: int,
    *,
    width: int = 64,
    height: int = 32,
    encoding: str = "rgb8",
    seed: int = 0,
    right_width: int | None = None,
    baseline: float = BASELINE,
) -> Frame:
    """A textured pair whose right view is the left one shifted by 4 px, with camera infos."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    right_rgb = np.roll(rgb, -4, axis=1)[:, : right_width or width]
    if encoding == "rgb8":
        left_px, right_px = rgb, right_rgb
    elif encoding in ("bgr8", "8UC3"):  # cv_bridge reads 8UC3 as bgr8
        left_px, right_px = rgb[..., ::-1], right_rgb[..., ::-1]
    elif encoding in ("mono8", "8UC1"):
        left_px, right_px = rgb[..., 1], right_rgb[..., 1]
        rgb = np.repeat(left_px[..., None], 3, axis=2)
    elif encoding in ("mono16", "16UC1"):
        # a 12-bit sensor: the node's automatic bit depth must bring it back to 8 bits
        left_px, right_px = (rgb[..., 1].astype("<u2") << 4), (right_rgb[..., 1].astype("<u2") << 4)
        rgb = np.repeat(rgb[..., 1:2], 3, axis=2)
    elif encoding in ("yuv422", "bayer_rggb8"):
        left_px, right_px = _encode(rgb, encoding), _encode(right_rgb, encoding)
        rgb = _opencv_decoded(left_px, encoding)  # what cv_bridge would hand over
    else:  # an encoding the node must refuse (nv21: 4:2:0, which cv_bridge does not convert)
        left_px, right_px = rgb[..., :2], right_rgb[..., :2]
    return Frame(
        stamp_ns=stamp_ns,
        left=image(stamp_ns, LEFT_FRAME, np.ascontiguousarray(left_px), encoding),
        right=image(stamp_ns, RIGHT_FRAME, np.ascontiguousarray(right_px), encoding),
        left_info=camera_info(stamp_ns, LEFT_FRAME, width, height, 0.0),
        right_info=camera_info(stamp_ns, RIGHT_FRAME, width, height, -FX * baseline),
        rgb=np.ascontiguousarray(rgb),
    )


def _encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """``rgb`` as a camera would send it: UYVY 4:2:2 (ROS ``yuv422``, BT.601) or an RGGB mosaic."""
    if encoding == "bayer_rggb8":
        raw = rgb[..., 1].copy()
        raw[0::2, 0::2] = rgb[0::2, 0::2, 0]
        raw[1::2, 1::2] = rgb[1::2, 1::2, 2]
        return raw
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = (b - y) * 0.564 + 128
    v = (r - y) * 0.713 + 128
    out = np.empty(rgb.shape[:2] + (2,), np.uint8)
    out[..., 1] = np.clip(np.rint(y), 0, 255)
    out[:, 0::2, 0] = np.clip(np.rint((u[:, 0::2] + u[:, 1::2]) / 2), 0, 255)
    out[:, 1::2, 0] = np.clip(np.rint((v[:, 0::2] + v[:, 1::2]) / 2), 0, 255)
    return out


def _opencv_decoded(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """OpenCV's RGB of a ``yuv422`` or ``bayer_rggb8`` image, with cv_bridge's conversion codes."""
    import cv2

    code = cv2.COLOR_YUV2RGB_UYVY if encoding == "yuv422" else cv2.COLOR_BayerBG2RGB
    return cv2.cvtColor(pixels, code)


# --------------------------------------------------------------------------- decoding


def image_array(msg: Image) -> np.ndarray:
    """Pixels of an output image, decoded from its own encoding, width, height and step."""
    dtype, channels = {"32FC1": ("<f4", 1), "mono8": ("u1", 1), "rgb8": ("u1", 3)}[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    rows = rows[:, : msg.width * channels * itemsize]
    arr = rows.copy().view(dtype)
    return (
        arr.reshape(msg.height, msg.width)
        if channels == 1
        else arr.reshape(msg.height, msg.width, channels)
    )


def cloud_array(msg: PointCloud2) -> np.ndarray:
    """(height, width) structured array built from the message's own field offsets and types."""
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [POINTFIELD_DTYPES[f.datatype] for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    assert msg.row_step == msg.point_step * msg.width
    return np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, msg.width)


def diagnostic_values(array: DiagnosticArray) -> dict[str, str] | None:
    """Key/values of the node's status in a DiagnosticArray, or None if it is not there."""
    for status in array.status:
        if is_node_status(status.name, NODE):
            return {kv.key: kv.value for kv in status.values} | {
                "_level": str(status.level[0] if isinstance(status.level, bytes) else status.level),
                "_message": status.message,
                "_hardware_id": status.hardware_id,
            }
    return None


# --------------------------------------------------------------------------- the driver node


def _parameter_msg(name: str, value: Any) -> ParameterMsg:
    pv = ParameterValue()
    if isinstance(value, bool):
        pv.type, pv.bool_value = ParameterType.PARAMETER_BOOL, value
    elif isinstance(value, int):
        pv.type, pv.integer_value = ParameterType.PARAMETER_INTEGER, value
    elif isinstance(value, float):
        pv.type, pv.double_value = ParameterType.PARAMETER_DOUBLE, value
    else:
        pv.type, pv.string_value = ParameterType.PARAMETER_STRING, str(value)
    return ParameterMsg(name=name, value=pv)


def _parameter_value(pv: ParameterValue) -> Any:
    return {
        ParameterType.PARAMETER_BOOL: pv.bool_value,
        ParameterType.PARAMETER_INTEGER: pv.integer_value,
        ParameterType.PARAMETER_DOUBLE: pv.double_value,
        ParameterType.PARAMETER_STRING: pv.string_value,
    }.get(pv.type)


class Driver:
    """An rclpy node in the test process, in its own context on ``domain_id``.

    Publishes on the node's inputs (reliable, which the node's best-effort subscriptions
    accept), records every output message as ``received[topic][stamp_ns]`` and every
    DiagnosticArray, and spins in a background thread.
    """

    def __init__(self, domain_id: int, node_log: Callable[[], str] = lambda: "") -> None:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self._node_log = node_log
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("stereo_semantic_test_driver", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self.received: dict[str, dict[int, Any]] = defaultdict(dict)
        self.diagnostics: list[DiagnosticArray] = []
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {
            topic: self.node.create_publisher(t, topic, reliable)
            for topic, t in INPUT_TYPES.items()
        }
        self.output_subs: list[Any] = []
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, QoSProfile(depth=50)
        )
        self._set_client = self.node.create_client(SetParameters, f"/{NODE}/set_parameters")
        self._get_client = self.node.create_client(GetParameters, f"/{NODE}/get_parameters")
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()
        self._stamp = 1_000 * 1_000_000_000

    def _spin_loop(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down while waiting
                if self.context.ok():
                    raise
                return

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._spin.join(timeout=5)

    # -- stamps and publishing

    def next_stamp(self, step_ns: int = 100_000_000) -> int:
        """Strictly increasing stamps, 0.1 s apart (a 10 Hz camera)."""
        self._stamp += step_ns
        return self._stamp

    def publish(
        self,
        frame: Frame,
        parts: Iterable[str] = ("left_info", "right_info", "left", "right"),
    ) -> None:
        topics = {
            "left": "left/image_rect",
            "right": "right/image_rect",
            "left_info": "left/camera_info",
            "right_info": "right/camera_info",
        }
        for part in parts:
            self.pubs[topics[part]].publish(getattr(frame, part))

    def input_subscriptions(self) -> list[int]:
        """How many subscriptions (the node's) each input publisher is matched with."""
        return [pub.get_subscription_count() for pub in self.pubs.values()]

    # -- outputs

    def subscribe_outputs(
        self, topics: Iterable[str] = OUTPUT_TYPES, best_effort: Iterable[str] = ()
    ) -> None:
        """Reliable subscriptions (as the node's publishers offer), best effort for the topics
        in ``best_effort`` (a reliable one would not match a best-effort publisher)."""
        best_effort = set(best_effort)
        for topic in topics:
            qos = QoSProfile(
                depth=50,
                reliability=ReliabilityPolicy.BEST_EFFORT
                if topic in best_effort
                else ReliabilityPolicy.RELIABLE,
            )
            self.output_subs.append(
                self.node.create_subscription(
                    OUTPUT_TYPES[topic], topic, lambda msg, t=topic: self._on_output(t, msg), qos
                )
            )

    def unsubscribe_outputs(self) -> None:
        for sub in self.output_subs:
            self.node.destroy_subscription(sub)
        self.output_subs = []

    def _on_output(self, topic: str, msg: Any) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.received[topic][stamp] = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.diagnostics.append(msg)

    def outputs_at(self, stamp_ns: int) -> dict[str, Any]:
        with self._lock:
            return {t: m[stamp_ns] for t, m in self.received.items() if stamp_ns in m}

    def all_stamps(self) -> set[int]:
        with self._lock:
            return {s for msgs in self.received.values() for s in msgs}

    def latest_diagnostics(self) -> dict[str, str] | None:
        with self._lock:
            arrays = list(self.diagnostics)
        for array in reversed(arrays):
            values = diagnostic_values(array)
            if values is not None:
                return values
        return None

    def fresh_diagnostics(self, timeout: float = 10.0) -> dict[str, str]:
        """The node's status from the next DiagnosticArray to arrive (computed after now)."""
        with self._lock:
            seen = len(self.diagnostics)

        def newer() -> dict[str, str] | None:
            with self._lock:
                arrays = self.diagnostics[seen:]
            found = [v for v in map(diagnostic_values, arrays) if v is not None]
            return found[-1] if found else None

        return self.wait_for(newer, timeout, "a new /diagnostics message")

    # -- waiting

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll ``predicate`` until truthy; fail with the node's log after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:g} s waiting for {what}\n--- node log ---\n"
                    f"{self._node_log()[-6000:]}"
                )
            time.sleep(0.02)

    def wait_outputs(
        self, stamp_ns: int, topics: Iterable[str] = OUTPUT_TYPES, timeout: float = 30.0
    ) -> dict[str, Any]:
        topics = tuple(topics)

        def complete() -> dict[str, Any] | None:
            got = self.outputs_at(stamp_ns)
            return got if all(t in got for t in topics) else None

        return self.wait_for(complete, timeout, f"outputs {topics} at stamp {stamp_ns}")

    def warm_up(self, timeout: float = 90.0, **frame_kwargs: Any) -> Frame:
        """Publish frames every 0.5 s until one is answered on every subscribed output.

        The first publications after discovery can be lost while the node's side of the match
        settles, and the first inference is slow; afterwards the link is established.
        """
        deadline = time.monotonic() + timeout
        topics = [sub.topic_name.lstrip("/") for sub in self.output_subs]
        sent: list[Frame] = []
        while time.monotonic() < deadline:
            frame = make_frame(self.next_stamp(), **frame_kwargs)
            self.publish(frame)
            sent.append(frame)
            t_end = time.monotonic() + 0.5
            while time.monotonic() < t_end:
                for f in sent:
                    got = self.outputs_at(f.stamp_ns)
                    if all(t in got for t in topics):
                        return f
                time.sleep(0.02)
        raise AssertionError(
            f"node answered none of {len(sent)} warm-up frames in {timeout:g} s\n"
            f"--- node log ---\n{self._node_log()[-6000:]}"
        )

    # -- parameters

    def _call(self, client: Any, request: Any, timeout: float = 20.0) -> Any:
        self.wait_for(lambda: client.service_is_ready(), timeout, f"service {client.srv_name}")
        future = client.call_async(request)
        self.wait_for(future.done, timeout, f"reply of {client.srv_name}")
        return future.result()

    def set_parameters(self, **values: Any) -> list[Any]:
        """One SetParameters call per parameter (each is accepted or refused on its own)."""
        results = []
        for name, value in values.items():
            request = SetParameters.Request(parameters=[_parameter_msg(name, value)])
            results.extend(self._call(self._set_client, request).results)
        return results

    def get_parameters(self, *names: str) -> dict[str, Any]:
        response = self._call(self._get_client, GetParameters.Request(names=list(names)))
        return {n: _parameter_value(v) for n, v in zip(names, response.values, strict=True)}
