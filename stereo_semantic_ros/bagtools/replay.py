"""``stereo-semantic-replay``: a recorded rosbag2 through the node's pipeline, into a new bag.

What happens to each message, in the bag's receive-time order, is what the live node does with
it (:mod:`stereo_semantic_ros.ros.node`), without a ROS graph:

1. The four inputs (``left|right/image_rect``, ``left|right/camera_info``; topic names
   configurable) go through :class:`stereo_semantic_ros.sync.Synchronizer` with the parameter
   file's ``approximate_sync``, ``sync_slop`` and ``queue_size``, newest-wins, as the node's
   built-in synchroniser. A stamp more than 1 s older than the last set resets it (bag loop).
2. Every left/right image that leaves the synchroniser without a set is a dropped frame, with
   the node's reasons: ``no_partner``, ``no_camera_info``, ``stale_stamp``. Replay never drops a
   frame as ``busy``: offline, every synchronised set is processed.
3. A set is checked and processed like the node's worker does: ``bad_encoding``,
   ``malformed_image``, ``size_mismatch``, ``bad_calibration`` and ``pipeline_error`` make a
   *failed* frame (counted, skipped, the replay goes on).
4. :func:`stereo_semantic_ros.ros.outputs.build_messages` builds the node's messages for every
   enabled output (``publish_*``), stamped with the left image's header; they are written at the
   left image's receive time, together with copies of the input and ground-truth topics (and
   ``/tf``, ``/tf_static``), so RViz or Foxglove can show input and output side by side. A
   ``/diagnostics`` summary is written once per second of bag time and at the end.

Where the bag has ``ground_truth/disparity`` (stereo_msgs/DisparityImage, pixels below its
``min_disparity`` invalid) and/or ``ground_truth/labels`` (mono8 train ids) with the left
image's stamp, each processed frame is scored (:mod:`stereo_semantic_ros.bagtools.report`).

Results: ``<OUT>/bag`` (the output bag), ``<OUT>/report.json``, ``<OUT>/previews/*.png`` and a
summary table on stdout. Exit codes: 0 done; 2 the bag cannot be read (missing, corrupt,
truncated, empty, without the input topics), the output exists, or a setting is refused;
130 interrupted (the output bag is still closed properly and the report written).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stereo_semantic_ros.bagtools import messages as M
from stereo_semantic_ros.bagtools.bagio import (
    BagError,
    BagWriter,
    check_output_path,
    connection_definition,
    normalize_topic,
    open_bag,
    storage_plugin,
    topics_of,
)
from stereo_semantic_ros.bagtools.make_bag import TOPICS as BAG_TOPICS
from stereo_semantic_ros.bagtools.report import GroundTruthScores, latency_summary, summary_table
from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.pipeline import InputError, StereoPipeline
from stereo_semantic_ros.ros.conversions import image_to_array, stamp_to_ns
from stereo_semantic_ros.ros.node_stats import DROP_REASONS, format_stamp
from stereo_semantic_ros.ros.outputs import build_messages, pipeline_outputs_for
from stereo_semantic_ros.ros.settings import (
    NODE_NAME,
    NodeSettings,
    disparity_range,
    read_parameter_file,
    resolve_weights,
)
from stereo_semantic_ros.ros.stereo_inputs import RejectedFrameError, decode_stereo_inputs
from stereo_semantic_ros.ros.sync_drops import (
    LEFT,
    LEFT_INFO,
    RIGHT,
    RIGHT_INFO,
    SyncDropClassifier,
)
from stereo_semantic_ros.sync import DROP_REASONS as SYNC_DROP_REASONS
from stereo_semantic_ros.sync import Synchronizer
from stereo_semantic_ros.visualize import colorize_disparity, colorize_labels, save_png, tile

INPUT_ROLES = ("left_image", "right_image", "left_info", "right_info")
GT_ROLES = ("gt_disparity", "gt_labels")
#: Reasons for which a frame is *dropped* (never formed a set) vs *failed* (set unusable).
DROPPED_REASONS = ("no_partner", "no_camera_info", "stale_stamp")
FAILED_REASONS = tuple(r for r in DROP_REASONS if r not in DROPPED_REASONS + ("busy",))
JUMP_BACK_NS = 1_000_000_000
"""As the node: an input stamp this much older than the last set resets the synchroniser."""
GT_WAIT_NS = 1_000_000_000
"""A synchronised set waits at most this much bag time for its ground-truth messages."""
DIAGNOSTICS_PERIOD_NS = 1_000_000_000
COPIED_EXTRA_TOPICS = ("/tf", "/tf_static")
DEFAULT_WEIGHTS = "esp_joint_synthetic.pt"
"""The shipped weights (in the package's models/), used by the demo."""


class ReplayError(ValueError):
    """Replay settings that cannot work (topics absent from the bag, bad options)."""


@dataclass(frozen=True)
class ReplayTopics:
    """Topic names in the input bag (fully qualified; relative names get a leading '/')."""

    left_image: str = BAG_TOPICS["left_image"]
    right_image: str = BAG_TOPICS["right_image"]
    left_info: str = BAG_TOPICS["left_info"]
    right_info: str = BAG_TOPICS["right_info"]
    gt_disparity: str = BAG_TOPICS["gt_disparity"]
    gt_labels: str = BAG_TOPICS["gt_labels"]

    def __post_init__(self) -> None:
        for role in INPUT_ROLES + GT_ROLES:
            object.__setattr__(self, role, normalize_topic(getattr(self, role)))

    def inputs(self) -> tuple[str, str, str, str]:
        return (self.left_image, self.right_image, self.left_info, self.right_info)


@dataclass
class ReplayOptions:
    """Everything one replay needs; see ``stereo-semantic-replay --help``."""

    bag: Path
    out: Path
    settings: NodeSettings
    params_file: Path | None = None
    topics: ReplayTopics = field(default_factory=ReplayTopics)
    storage: str = "mcap"
    namespace: str = ""
    max_frames: int | None = None
    overwrite: bool = False
    previews: int = 3
    progress: bool = True
    warnings: list[str] = field(default_factory=list)

    def max_frames_reached(self, handled: int) -> bool:
        """Whether ``handled`` synchronised frames (processed or failed) reach ``max_frames``."""
        return self.max_frames is not None and handled >= self.max_frames


# ------------------------------------------------------------------------------------- settings


def default_params_file() -> Path:
    """config/esp_joint.yaml of the installed package (ament index), else of this checkout."""
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("stereo_semantic_ros"))
        return share / "config" / "esp_joint.yaml"
    except (ImportError, LookupError, ValueError, OSError):
        # OSError: ament_index_python's answer when AMENT_PREFIX_PATH is unset (no ROS env)
        return Path(__file__).resolve().parents[2] / "config" / "esp_joint.yaml"


def load_settings(
    params_file: Path | None,
    *,
    weights: str | None = None,
    device: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[NodeSettings, list[str]]:
    """The node's settings from its parameter file, with command-line overrides.

    A ``weights`` file that does not exist (e.g. the shipped weights before they are trained)
    falls back to the UNTRAINED network; this and running untrained at all are returned as
    warnings to print loudly.

    Raises:
        SettingsError: unreadable file or a refused value.
    """
    values = read_parameter_file(params_file) if params_file is not None else {}
    values.update(overrides or {})
    if weights is not None:
        values["weights"] = "" if weights.lower() in ("", "none", "untrained") else weights
    if device is not None:
        values["device"] = device
    warnings: list[str] = []
    name = values.get("weights", "")
    if isinstance(name, str) and name:
        path = resolve_weights(name)
        if path is not None and not path.is_file():
            warnings.append(
                f"weights file {path} does not exist: falling back to an UNTRAINED network "
                "with random weights; outputs and accuracy are MEANINGLESS. Train or install "
                "the weights (models/) or pass --weights"
            )
            values["weights"] = ""
    settings = NodeSettings.from_parameters(values)
    if settings.weights_path() is None and not warnings:
        warnings.append(
            "no weights given: running an UNTRAINED network with random weights; outputs and "
            "accuracy are MEANINGLESS (set 'weights' in the parameter file or pass --weights)"
        )
    return settings, warnings


# ------------------------------------------------------------------------------ frame handling


@dataclass
class FrameOutcome:
    """What became of one synchronised set."""

    stamp_ns: int
    messages: dict[str, Any] = field(default_factory=dict)
    failure: tuple[str, str] | None = None  # (reason, detail)
    result: Any = None  # PipelineResult
    calib: StereoCalibration | None = None
    left_rgb: np.ndarray | None = None


def _rclpy_header(hdr: Any) -> Any:
    """An rclpy std_msgs/Header equal to a ``rosbags`` one (build_messages stamps with it)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(
        stamp=Time(sec=int(hdr.stamp.sec), nanosec=int(hdr.stamp.nanosec)),
        frame_id=str(hdr.frame_id),
    )


def _restamped(info: Any, hdr: Any) -> Any:
    """``info`` with the left image's header, as the node publishes ``depth/camera_info``."""
    same = (
        info.header.stamp.sec == hdr.stamp.sec
        and info.header.stamp.nanosec == hdr.stamp.nanosec
        and info.header.frame_id == hdr.frame_id
    )
    return info if same else replace(info, header=hdr)


def process_set(
    pipeline: StereoPipeline,
    settings: NodeSettings,
    topics: tuple[str, ...],
    extra_outputs: set[str],
    left: Any,
    right: Any,
    left_info: Any,
    right_info: Any,
) -> FrameOutcome:
    """One synchronised set -> the node's messages, or the node's reason for refusing it.

    The steps of the node's worker (``StereoSemanticNode._process``): the shared
    :func:`~stereo_semantic_ros.ros.stereo_inputs.decode_stereo_inputs` checks, the same
    pipeline call, the same :func:`~stereo_semantic_ros.ros.outputs.build_messages`.

    Args:
        topics: enabled output topics (``NodeSettings.enabled_topics()``).
        extra_outputs: pipeline outputs wanted beyond what ``topics`` need (for scoring).
        left, right, left_info, right_info: messages (``rosbags`` or rclpy).
    """
    out = FrameOutcome(stamp_to_ns(left.header.stamp))
    try:
        left_rgb, right_rgb, calib = decode_stereo_inputs(left, right, left_info, right_info)
    except RejectedFrameError as exc:
        out.failure = (exc.reason, str(exc))
        return out
    try:
        result = pipeline.run(
            left_rgb,
            right_rgb,
            calib,
            outputs=pipeline_outputs_for(topics) | extra_outputs,
            min_confidence=settings.min_confidence,
            cloud=settings.cloud_options(),
        )
    except InputError as exc:  # decode_stereo_inputs checked the pair: unexpected, as live
        out.failure = ("pipeline_error", str(exc))
        return out
    out.messages = build_messages(
        result,
        _rclpy_header(left.header),
        _restamped(left_info, left.header),
        calib,
        pipeline.label_set,
        left_rgb,
        topics,
        settings.output_style(pipeline),
    )
    out.result, out.calib, out.left_rgb = result, calib, left_rgb
    return out


# ---------------------------------------------------------------------------------- the replay


class _Replay:
    """State of one replay run (see :func:`run_replay`)."""

    def __init__(self, options: ReplayOptions, pipeline: StereoPipeline) -> None:
        self.o = options
        self.pipeline = pipeline
        self.settings = options.settings
        self.topics = self.settings.enabled_topics()
        self.input_names = options.topics.inputs()
        self.frame_drops = dict.fromkeys(DROP_REASONS, 0)
        self._dropped_stamps: set[int] = set()
        self.drop_log: list[dict[str, Any]] = []
        self.per_frame: list[dict[str, Any]] = []
        self.undecodable: dict[str, int] = {}
        self.left_images = 0
        self.paired = 0
        self.processed = 0
        self.latency = {"pipeline_total": [], "network": [], "end_to_end": []}
        self.processing_s = 0.0
        self.pending: deque[tuple[tuple[Any, ...], int]] = deque()  # (set, log time)
        self.gt: dict[str, dict[int, Any]] = {role: {} for role in GT_ROLES}
        self.gt_present: set[str] = set()
        self.scores = GroundTruthScores(pipeline.label_set)
        self.previews: list[str] = []
        self.preview_plan: set[int] = set()
        self.last_set_stamp: int | None = None
        self.last_diag_ns: int | None = None
        self.now_ns = 0
        self.writer: BagWriter | None = None
        self.classifier = SyncDropClassifier(
            self.input_names,
            self.drop_frame,
            approximate=self.settings.approximate_sync,
            slop=self.settings.sync_slop,
            queue_size=self.settings.queue_size,
        )
        self.sync = Synchronizer(
            4,
            self.on_set,
            queue_size=self.settings.queue_size,
            slop=self.settings.sync_slop,
            approximate=self.settings.approximate_sync,
            on_drop=self.classifier,
        )
        self._arrival_ns = 0  # receive time of the message that completed the newest set
        self.unprocessed = 0
        self.error: str | None = None

    # -- book-keeping --------------------------------------------------------------------------

    def drop_frame(self, reason: str, stamp: int | None, detail: str) -> None:
        """Count a frame once (several of its messages may be dropped), like DropCounter."""
        if stamp is not None:
            if stamp in self._dropped_stamps:
                return
            self._dropped_stamps.add(stamp)
        self.frame_drops[reason] += 1
        entry = {"stamp": format_stamp(stamp), "reason": reason, "detail": detail}
        self.drop_log.append(entry)
        if reason in FAILED_REASONS:
            self.per_frame.append({"stamp": entry["stamp"], "status": reason, "detail": detail})

    def out_topic(self, topic: str) -> str:
        ns = self.o.namespace.strip("/")
        return f"/{ns}/{topic}" if ns else f"/{topic}"

    # -- input side ----------------------------------------------------------------------------

    def offer(self, index: int, msg: Any, log_ns: int) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if self.last_set_stamp is not None and stamp < self.last_set_stamp - JUMP_BACK_NS:
            print(f"replay: {self.input_names[index]} stamp {format_stamp(stamp)} is "
                  f"{(self.last_set_stamp - stamp) / 1e9:.3f} s older than the last set (bag "
                  "loop?): resetting the synchroniser", file=sys.stderr)
            self.last_set_stamp = None
            self.sync.reset()
        if index == LEFT:
            self.left_images += 1
        self.classifier.seen_message(index, stamp)
        self._arrival_ns = log_ns
        self.sync.add(index, msg, stamp)

    def on_set(self, left: Any, right: Any, left_info: Any, right_info: Any) -> None:
        stamp = stamp_to_ns(left.header.stamp)
        if self.last_set_stamp is not None and stamp <= self.last_set_stamp:
            self.drop_frame("stale_stamp", stamp, "set is not newer than the last processed one")
            return
        self.last_set_stamp = stamp
        self.paired += 1
        self.pending.append(((left, right, left_info, right_info), self._arrival_ns))

    def add_ground_truth(self, role: str, msg: Any) -> None:
        self.gt[role][stamp_to_ns(msg.header.stamp)] = msg

    def ready(self, stamp: int, log_ns: int, final: bool) -> bool:
        if final or self.now_ns - log_ns > GT_WAIT_NS:
            return True
        return all(stamp in self.gt[role] for role in self.gt_present)

    def process_pending(self, final: bool = False) -> None:
        while self.pending and not self.o.max_frames_reached(self.processed_or_failed):
            msgs, log_ns = self.pending[0]
            stamp = stamp_to_ns(msgs[0].header.stamp)
            if not self.ready(stamp, log_ns, final):
                return
            self.pending.popleft()
            self.process(msgs, log_ns)
        if final:
            self.unprocessed += len(self.pending)  # left over when --max-frames stopped us
            self.pending.clear()

    @property
    def failed_total(self) -> int:
        return sum(self.frame_drops[r] for r in FAILED_REASONS)

    @property
    def dropped_total(self) -> int:
        return sum(self.frame_drops[r] for r in DROPPED_REASONS)

    @property
    def processed_or_failed(self) -> int:
        return self.processed + self.failed_total

    @property
    def handled(self) -> int:
        """Frames with a fate: processed, failed or dropped (the progress bar)."""
        return self.processed + self.failed_total + self.dropped_total

    def decode(self, reader: Any, conn: Any, raw: bytes, log_ns: int) -> Any:
        """The message, or None (counted) when it does not decode."""
        try:
            return reader.deserialize(raw, conn.msgtype)
        except Exception as exc:  # noqa: BLE001 - one undecodable message is skipped
            self.undecodable[conn.topic] = self.undecodable.get(conn.topic, 0) + 1
            print(f"replay: cannot decode a {conn.msgtype} on {conn.topic} at bag time "
                  f"{format_stamp(log_ns)}: {exc}", file=sys.stderr)
            return None

    # -- processing ----------------------------------------------------------------------------

    def process(self, msgs: tuple[Any, ...], log_ns: int) -> None:
        t0 = time.perf_counter()
        stamp = stamp_to_ns(msgs[0].header.stamp)
        gt_disp_msg = self.gt["gt_disparity"].pop(stamp, None)
        gt_label_msg = self.gt["gt_labels"].pop(stamp, None)
        for by_stamp in self.gt.values():  # ground truth of older (dropped) frames is not needed
            for old in [s for s in by_stamp if s < stamp]:
                del by_stamp[old]
        extra = set()
        if gt_disp_msg is not None:
            extra.add("disparity")
        if gt_label_msg is not None:
            extra.add("labels")
        try:
            outcome = process_set(self.pipeline, self.settings, self.topics, extra, *msgs)
        except Exception as exc:  # noqa: BLE001 - the node's worker survives any one frame too
            outcome = FrameOutcome(stamp, failure=("pipeline_error", f"{type(exc).__name__}: "
                                                   f"{exc}"))
        if outcome.failure is not None:
            self.drop_frame(outcome.failure[0], stamp, outcome.failure[1])
            return
        assert self.writer is not None
        for topic, msg in outcome.messages.items():
            self.writer.write(self.out_topic(topic), msg, log_ns)
        t1 = time.perf_counter()
        result = outcome.result
        self.processed += 1
        self.processing_s += t1 - t0
        self.latency["pipeline_total"].append(result.timings_ms.get("total", math.nan))
        self.latency["network"].append(result.timings_ms.get("network", math.nan))
        self.latency["end_to_end"].append((t1 - t0) * 1e3)
        frame: dict[str, Any] = {
            "stamp": format_stamp(stamp),
            "status": "ok",
            "latency_ms": {
                "pipeline_total": result.timings_ms.get("total"),
                "network": result.timings_ms.get("network"),
                "end_to_end": (t1 - t0) * 1e3,
            },
        }
        try:
            frame["metrics"] = self.score(outcome, gt_disp_msg, gt_label_msg)
        except ValueError as exc:
            frame["metrics"] = {}
            frame["ground_truth_error"] = str(exc)
        self.per_frame.append(frame)
        if (self.processed - 1) in self.preview_plan:
            self.preview(outcome, gt_disp_msg, gt_label_msg, frame)

    def score(self, outcome: FrameOutcome, gt_disp_msg: Any, gt_label_msg: Any) -> dict:
        if gt_disp_msg is None and gt_label_msg is None:
            return {}
        gt_disp = gt_valid = gt_labels = None
        if gt_disp_msg is not None:
            gt_disp = image_to_array(gt_disp_msg.image).astype(np.float32)
            with np.errstate(invalid="ignore"):
                gt_valid = np.isfinite(gt_disp) & (gt_disp >= gt_disp_msg.min_disparity)
        if gt_label_msg is not None:
            gt_labels = image_to_array(gt_label_msg)
            if gt_labels.ndim != 2 or gt_labels.dtype != np.uint8:
                raise ValueError(f"ground-truth labels must be mono8/8UC1, got "
                                 f"{gt_label_msg.encoding}")
        result = outcome.result
        return self.scores.update(outcome.calib, result.disparity, result.labels, gt_disp,
                                  gt_valid, gt_labels)

    def preview(self, outcome: FrameOutcome, gt_disp_msg: Any, gt_label_msg: Any,
                frame: dict[str, Any]) -> None:
        """Left image, the node's disparity/color and semantic/color, and the ground truth."""
        result = outcome.result
        top = disparity_range(self.pipeline)
        palette = self.pipeline.label_set.palette()
        cells = [outcome.left_rgb]
        names = ["left"]
        disp_color = (image_to_array(outcome.messages["disparity/color"])
                      if "disparity/color" in outcome.messages else
                      colorize_disparity(result.disparity, top)
                      if result.disparity is not None else None)
        sem_color = (image_to_array(outcome.messages["semantic/color"])
                     if "semantic/color" in outcome.messages else
                     colorize_labels(result.labels, palette)
                     if result.labels is not None else None)
        for name, img in (("disparity", disp_color), ("semantic", sem_color)):
            if img is not None:
                cells.append(np.ascontiguousarray(img))
                names.append(name)
        if gt_disp_msg is not None:
            gt = image_to_array(gt_disp_msg.image).astype(np.float32)
            cells.append(colorize_disparity(np.where(gt >= gt_disp_msg.min_disparity, gt, 0),
                                            top))
            names.append("gt_disparity")
        if gt_label_msg is not None:
            cells.append(colorize_labels(image_to_array(gt_label_msg), palette))
            names.append("gt_labels")
        base = Path(self.o.out) / "previews" / f"frame_{self.processed - 1:05d}"
        paths = []
        for name, img in zip(names, cells):
            paths.append(str(save_png(f"{base}_{name}.png", img)))
        sheet = tile(cells, cols=2, labels=names, pad=2)
        paths.append(str(save_png(f"{base}_sheet.png", sheet)))
        frame["previews"] = paths
        self.previews.extend(paths)

    # -- diagnostics ---------------------------------------------------------------------------

    def diagnostics(self, stamp_ns: int) -> Any:
        """A diagnostic_msgs/DiagnosticArray with the node's key names where they apply."""
        ts = M.typestore()
        kv = ts.types["diagnostic_msgs/msg/KeyValue"]
        lat = {k: latency_summary(v) for k, v in self.latency.items()}
        values = [
            ("device", str(self.pipeline.device)),
            ("precision", self.pipeline.precision),
            ("architecture", self.settings.architecture),
            ("weights", str(self.settings.weights_path() or "untrained (random weights)")),
            ("label_set", self.pipeline.label_set.name),
            ("max_disparity_px", f"{disparity_range(self.pipeline):g}"),
            ("input_scale", f"{self.settings.input_scale:g}"),
            ("sync", f"{self.settings.sync_description()} (stereo_semantic_ros.sync, replay)"),
            ("inference_ms_mean", f"{lat['network']['mean']:.2f}"),
            ("inference_ms_p90", f"{lat['network']['p90']:.2f}"),
            ("pipeline_ms_mean", f"{lat['pipeline_total']['mean']:.2f}"),
            ("pipeline_ms_p90", f"{lat['pipeline_total']['p90']:.2f}"),
            ("end_to_end_ms_mean", f"{lat['end_to_end']['mean']:.2f}"),
            ("end_to_end_ms_p90", f"{lat['end_to_end']['p90']:.2f}"),
            ("frames_received", self.left_images),
            ("sets_synchronised", self.paired),
            ("frames_published", self.processed),
            ("dropped_total", sum(self.frame_drops.values())),
            *((f"dropped_{r}", n) for r, n in self.frame_drops.items()),
            *((f"sync_{k}", n) for k, n in self.sync.stats.items()),
        ]
        drops = sum(self.frame_drops.values())
        untrained = self.settings.weights_path() is None
        level = 1 if drops or untrained else 0
        problems = (["untrained weights"] if untrained else []) + (
            [f"{drops} frame(s) dropped so far"] if drops else [])
        status = ts.types["diagnostic_msgs/msg/DiagnosticStatus"](
            level=level,
            name=f"{NODE_NAME}: stereo pipeline",
            message="; ".join(["rosbag replay", *problems]),
            hardware_id=str(self.pipeline.device),
            values=[kv(key=k, value=str(v)) for k, v in values],
        )
        return ts.types[M.DIAGNOSTIC_ARRAY](header=M.header(stamp_ns, ""), status=[status])

    def maybe_diagnostics(self, log_ns: int, final: bool = False) -> None:
        """Every second of bag time (the node: every second), and once at the end."""
        if self.writer is None or self.writer.closed:
            return
        if self.last_diag_ns is None:
            self.last_diag_ns = log_ns
        if final or log_ns - self.last_diag_ns >= DIAGNOSTICS_PERIOD_NS:
            self.writer.write("/diagnostics", self.diagnostics(log_ns), log_ns)
            self.last_diag_ns = log_ns


def build_pipeline(settings: NodeSettings) -> StereoPipeline:
    """The node's pipeline for ``settings`` (same weights, device, precision, input scale)."""
    return settings.build_pipeline()


def _check_topics(reader: Any, topics: ReplayTopics, bag: Path) -> dict[str, tuple[str, int]]:
    available = topics_of(reader)
    expected = {
        topics.left_image: M.IMAGE, topics.right_image: M.IMAGE,
        topics.left_info: M.CAMERA_INFO, topics.right_info: M.CAMERA_INFO,
    }
    missing = [t for t in expected if t not in available]
    if missing:
        listing = "\n  ".join(f"{t} [{typ}] {n} msgs" for t, (typ, n) in available.items())
        raise BagError(
            f"bag {bag} lacks the input topic(s) {', '.join(missing)}. Topics in the bag:\n  "
            f"{listing}\nName the bag's topics with --left-image/--right-image/--left-info/"
            "--right-info"
        )
    for topic, typ in expected.items():
        if available[topic][0] != typ:
            raise BagError(f"bag {bag}: {topic} holds {available[topic][0]}, expected {typ}")
    for topic, typ in ((topics.gt_disparity, M.DISPARITY_IMAGE), (topics.gt_labels, M.IMAGE)):
        if topic in available and available[topic][0] != typ:
            raise BagError(f"bag {bag}: ground truth {topic} holds {available[topic][0]}, "
                           f"expected {typ}")
    return available


def run_replay(options: ReplayOptions, pipeline: StereoPipeline | None = None) -> dict[str, Any]:
    """Replay ``options.bag``; returns the report (also written to ``<out>/report.json``).

    Raises:
        BagError: the bag cannot be opened or lacks the inputs, or the output exists
            (nothing is written in these cases).
        KeyboardInterrupt: after closing the output bag and writing the report (marked
            ``"interrupted": true``).
    """
    t_start = time.perf_counter()
    bag = Path(options.bag)
    reader = open_bag(bag)
    try:
        available = _check_topics(reader, options.topics, bag)
        out = check_output_path(options.out, options.overwrite)
        if pipeline is None:
            pipeline = build_pipeline(options.settings)
        out.mkdir(parents=True)
        state = _Replay(options, pipeline)
        t = options.topics
        roles = {t.left_image: LEFT, t.right_image: RIGHT, t.left_info: LEFT_INFO,
                 t.right_info: RIGHT_INFO}
        gt_roles = {t.gt_disparity: "gt_disparity", t.gt_labels: "gt_labels"}
        state.gt_present = {gt_roles[x] for x in gt_roles if x in available}
        copied = set(roles) | set(gt_roles) | set(COPIED_EXTRA_TOPICS)
        connections = [c for c in reader.connections if c.topic in copied]
        n_left = available[t.left_image][1]
        n_plan = n_left if options.max_frames is None else min(n_left, options.max_frames)
        if options.previews > 0 and n_plan > 0:
            state.preview_plan = {
                round(k * (n_plan - 1) / max(1, options.previews - 1))
                for k in range(min(options.previews, n_plan))
            }
        state.writer = BagWriter(out / "bag", storage_plugin(options.storage))
        interrupted = False
        from tqdm import tqdm

        bar = tqdm(total=n_plan, unit="frame", desc="replay", disable=not options.progress,
                   file=sys.stderr)
        stop = _CtrlC()
        try:
            with stop:
                for conn, log_ns, raw in _messages(reader, connections, state):
                    state.now_ns = log_ns
                    msgdef, digest = connection_definition(conn)
                    state.writer.write_raw(conn.topic, conn.msgtype, raw, log_ns, msgdef, digest)
                    if conn.topic in roles or conn.topic in gt_roles:
                        msg = state.decode(reader, conn, raw, log_ns)
                        if msg is None:
                            pass
                        elif conn.topic in roles:
                            state.offer(roles[conn.topic], msg, log_ns)
                        else:
                            state.add_ground_truth(gt_roles[conn.topic], msg)
                        state.process_pending()
                    state.maybe_diagnostics(log_ns)
                    bar.update(state.handled - bar.n)
                    bar.set_postfix(ok=state.processed, dropped=state.dropped_total,
                                    failed=state.failed_total, refresh=False)
                    if stop.requested or options.max_frames_reached(state.processed_or_failed):
                        break
                else:
                    # End of bag: images still waiting for partners are lost frames, as live.
                    state.classifier.count_resets = True
                    state.sync.reset()
                if not stop.requested:
                    state.process_pending(final=True)
                    bar.update(state.handled - bar.n)
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread's handler
            interrupted = True
        finally:
            bar.close()
            interrupted = interrupted or stop.requested
            if interrupted:
                state.error = ("interrupted (Ctrl-C); the output bag holds every frame finished "
                               "before")
            state.maybe_diagnostics(state.now_ns, final=True)
            state.writer.close()
        report = _report(options, state, available, time.perf_counter() - t_start)
        report["interrupted"] = interrupted
        (out / "report.json").write_text(json.dumps(_jsonable(report), indent=2) + "\n")
        if interrupted:
            raise KeyboardInterrupt
        return report
    finally:
        reader.close()


class _CtrlC:
    """While active (main thread only): the first Ctrl-C asks the replay to stop after the
    current frame, so the output holds whole frames; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nreplay: Ctrl-C: stopping after the current frame (press again to stop at once)",
              file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _messages(reader: Any, connections: list[Any], state: _Replay) -> Any:
    """The bag's messages in receive-time order; damage in the file ends the stream with
    ``state.error`` set instead of an exception, so everything before it is kept."""
    stream = reader.messages(connections=connections)
    while True:
        try:
            item = next(stream)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - rosbags raises whatever its parser hit
            state.error = (
                f"reading the bag failed after {state.left_images} left images "
                f"({type(exc).__name__}: {exc}); the bag is corrupt or truncated. Everything "
                "before that point was replayed and written"
            )
            return
        yield item


def _report(options: ReplayOptions, state: _Replay, available: dict[str, tuple[str, int]],
            wall_s: float) -> dict[str, Any]:
    settings = state.settings
    dropped = {r: state.frame_drops[r] for r in DROPPED_REASONS}
    failed = {r: state.frame_drops[r] for r in FAILED_REASONS}
    sync_stats = state.sync.stats
    out = Path(options.out)
    return {
        "bag": str(options.bag),
        "storage": options.storage,
        "output_bag": str(out / "bag"),
        "report": str(out / "report.json"),
        "params_file": str(options.params_file) if options.params_file else None,
        "warnings": list(options.warnings),
        "error": state.error,
        "model": {
            "architecture": settings.architecture,
            "weights": str(settings.weights_path() or "untrained (random weights)"),
            "device": str(state.pipeline.device),
            "precision": state.pipeline.precision,
            "label_set": state.pipeline.label_set.name,
            "max_disparity_px": disparity_range(state.pipeline),
            "input_scale": settings.input_scale,
        },
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "sync": {
            "description": settings.sync_description(),
            "received_messages": {
                name: sync_stats[f"received_{i}"] for i, name in enumerate(state.input_names)
            },
            "dropped_messages": {r: sync_stats[f"dropped_{r}"] for r in SYNC_DROP_REASONS},
        },
        "topics": {
            "inputs": dict(zip(INPUT_ROLES, state.input_names)),
            "ground_truth": {role: getattr(options.topics, role) for role in GT_ROLES
                             if role in state.gt_present},
            "in_bag": {t: {"type": typ, "messages": n} for t, (typ, n) in available.items()},
            "written": dict(state.writer.counts) if state.writer else {},
            "undecodable": dict(state.undecodable),
        },
        "frames": {
            "left_images": state.left_images,
            "paired": state.paired,
            "processed": state.processed,
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "failed": failed,
            "failed_total": sum(failed.values()),
            "unprocessed_at_stop": state.unprocessed + len(state.pending),
        },
        "drops": state.drop_log,
        "accuracy": state.scores.summary(),
        "latency_ms": {k: latency_summary(v) for k, v in state.latency.items()},
        "throughput": {
            "processing_fps": state.processed / state.processing_s
            if state.processing_s else math.nan,
            "overall_fps": state.processed / wall_s if wall_s else math.nan,
            "wall_s": wall_s,
        },
        "previews": state.previews,
        "per_frame": state.per_frame,
    }


def _jsonable(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    d = ReplayTopics()
    p = argparse.ArgumentParser(
        prog="stereo-semantic-replay",
        description="Replay a rosbag2 (mcap or sqlite3) through the node's pipeline: writes a "
        "bag with every output topic, report.json and PNG previews, and prints accuracy "
        "(where the bag has ground truth), latency and throughput.",
    )
    p.add_argument("bag", type=Path, help="rosbag2 directory, or a .mcap / .db3 file")
    p.add_argument("--params", type=Path, default=None,
                   help="the node's ROS 2 parameter file (default: the package's "
                   "config/esp_joint.yaml)")
    p.add_argument("--out", type=Path, help="output directory (default: out/replay/<bag name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--weights", help="checkpoint, overrides the parameter file (relative: "
                   "under models/; 'none' = untrained network)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N, overrides the parameter file")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                   help="storage of the output bag (default: mcap; any input storage is read)")
    p.add_argument("--namespace", default="", help="namespace of the output topics, as the "
                   "node's launch file argument (default: none, i.e. /disparity, /points2, ...)")
    p.add_argument("--max-frames", type=int, help="stop after this many synchronised frames")
    p.add_argument("--previews", type=int, default=3,
                   help="frames to save as PNG previews, spread over the bag (default: 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for role, flag in (("left_image", "--left-image"), ("right_image", "--right-image"),
                       ("left_info", "--left-info"), ("right_info", "--right-info"),
                       ("gt_disparity", "--gt-disparity"), ("gt_labels", "--gt-labels")):
        p.add_argument(flag, dest=role, default=getattr(d, role),
                       help=f"topic in the bag (default: {getattr(d, role)})")
    return p


def options_from_args(args: argparse.Namespace) -> ReplayOptions:
    """Parsed arguments -> :class:`ReplayOptions` (settings loaded and validated)."""
    if args.max_frames is not None and args.max_frames < 1:
        raise ReplayError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.previews < 0:
        raise ReplayError(f"--previews must be >= 0, got {args.previews}")
    params = args.params if args.params is not None else default_params_file()
    if args.params is None and not params.is_file():
        params = None  # no installed config: the node's defaults
    settings, warnings = load_settings(params, weights=args.weights, device=args.device)
    out = args.out if args.out is not None else Path("out") / "replay" / (
        args.bag.stem if args.bag.suffix in (".mcap", ".db3") else args.bag.name)
    topics = ReplayTopics(**{role: getattr(args, role) for role in INPUT_ROLES + GT_ROLES})
    return ReplayOptions(
        bag=args.bag, out=out, settings=settings, params_file=params, topics=topics,
        storage=args.storage, namespace=args.namespace, max_frames=args.max_frames,
        overwrite=args.overwrite, previews=args.previews, progress=not args.no_progress,
        warnings=warnings,
    )


def print_warnings(warnings: list[str]) -> None:
    for text in warnings:
        bar = "!" * 78
        print(f"{bar}\nWARNING: {text}\n{bar}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: 0 done, 2 unusable bag / refused settings, 130 interrupted."""
    args = build_parser().parse_args(argv)
    try:
        options = options_from_args(args)
        print_warnings(options.warnings)
        report = run_replay(options)
    except KeyboardInterrupt:
        print("stereo-semantic-replay: interrupted; the output bag was closed properly",
              file=sys.stderr)
        return 130
    except (BagError, ValueError) as exc:
        print(f"stereo-semantic-replay: error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(report))
    print(f"\noutput bag: {report['output_bag']}\nreport:     {report['report']}")
    if report["previews"]:
        print(f"previews:   {Path(report['previews'][0]).parent}/")
    return 2 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
