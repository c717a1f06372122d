"""``stereo_semantic_node``: the ROS 2 shell around the shared ``StereoPipeline``.

Topics, QoS and parameters follow design.md (and stereo_image_proc): four synchronised inputs
(``left|right/image_rect``, ``left|right/camera_info``, sensor-data QoS), seven outputs (reliable,
depth 1) declared in the output table (:mod:`stereo_semantic_ros.outputs`), and ``/diagnostics``
at 1 Hz. The algorithm lives in the pipeline and what happens to a frame in the frame library
(:mod:`stereo_semantic_ros.frames`, shared with rosbag replay); this file only moves messages in
and out:

* Input subscriptions exist only while an enabled output has a subscriber (connected on the
  publishers' *matched* events, checked again every second).
* Synchronised sets go into a single-slot mailbox; an inference worker thread takes the newest
  set, so callbacks never wait for the network. A set replaced before the worker took it is
  dropped as ``busy``.
* Per frame only the outputs with subscribers are computed and copied off the device; with none,
  no inference runs at all.
* Every frame that produces no output is counted with its reason
  (:data:`~stereo_semantic_ros.frames.reasons.DROP_REASONS`) and logged, once per reason per
  5 s, with what was wrong and what to do. Every input frame is counted once in
  ``frames_received`` (:class:`~stereo_semantic_ros.frames.stats.FrameLedger`), so that
  ``frames_received == frames_published + dropped_total + skipped_no_subscribers +
  frames_in_flight`` in every /diagnostics message (in flight: queued in the synchroniser, in
  the mailbox or in the worker; 0 once the inputs are quiet, except with ``message_filters``,
  whose silent drops stay in flight).
* Nothing is published for a frame whose network output is not finite (``non_finite_output``,
  diagnostics ERROR), that exceeds ``max_input_pixels`` (``too_large``; or it is downscaled with
  ``oversize_policy: downscale``) or that runs out of memory (``out_of_memory``; the CUDA cache is
  emptied and the node goes on): the shared pipeline raises, the node counts.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.clock import Clock, ClockType, JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.event_handler import PublisherEventCallbacks, UnsupportedEventTypeError
from rclpy.exceptions import InvalidParameterValueException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy_impl
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CameraInfo, Image

from stereo_semantic_ros.checkpoint import CheckpointError
from stereo_semantic_ros.frames.diagnostics import DiagnosticsReporter, FrameCounts
from stereo_semantic_ros.frames.inputs import IMAGES, INPUT_TOPICS, Input
from stereo_semantic_ros.frames.stamps import BUSY_DETAIL, JUMP_BACK_NS, Mailbox, SetStamps
from stereo_semantic_ros.frames.stats import (
    DropCounter,
    FrameLedger,
    Latencies,
    RateMeter,
    Throttle,
    format_stamp,
)
from stereo_semantic_ros.frames.step import process_set
from stereo_semantic_ros.frames.sync_drops import SyncDropClassifier
from stereo_semantic_ros.outputs import OUTPUTS
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.ros.input_sync import create_input_sync
from stereo_semantic_ros.ros.outputs import RCLPY_MESSAGES, message_type
from stereo_semantic_ros.ros.settings import (
    LIVE_PARAMETERS,
    NODE_NAME,
    PARAMETERS,
    SPECS,
    NodeSettings,
    SettingsError,
    check_value,
)

RCLError = _rclpy_impl.RCLError  # rclpy's error of the C layer; not exported elsewhere

LOG_THROTTLE_S = 5.0
"""At most one log line per drop reason (and per warning kind) in this many seconds."""
NO_SET_WARN_S = 2.0
"""Warn when images arrive but no synchronised set has formed for this long."""


def input_qos(reliability: str) -> QoSProfile:
    """Sensor-data QoS (keep last 5, volatile) with the given reliability."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=5,
        reliability=(
            ReliabilityPolicy.RELIABLE
            if reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        ),
        durability=DurabilityPolicy.VOLATILE,
    )


def output_qos() -> QoSProfile:
    """Reliable, keep last 1, volatile. A new profile per publisher: rclpy applies a topic's
    ``qos_overrides`` parameters to the profile it is given, in place, so a shared one would
    carry one topic's override to every publisher created after it."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


DIAGNOSTICS_QOS = QoSProfile(depth=10)  # as diagnostic_updater


@dataclass
class _FrameSet:
    """One synchronised input set waiting for the worker."""

    left: Image
    right: Image
    left_info: CameraInfo
    right_info: CameraInfo
    stamp_ns: int
    received: float  # time.monotonic() when the left image arrived


class StereoSemanticNode(Node):
    """Synchronises a rectified stereo pair, runs the pipeline on a worker, publishes outputs.

    Raises (from the constructor): :class:`SettingsError`, ``CheckpointError`` or rclpy's
    ``ParameterException`` when a parameter is refused at start-up.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)

        # -- processing state
        self._started = False
        self._stopping = False
        self._mailbox: Mailbox[_FrameSet] = Mailbox()
        self._drops = DropCounter(self._log, throttle_s=LOG_THROTTLE_S)
        self._warn_throttle = Throttle(LOG_THROTTLE_S)
        self._latency = Latencies()
        self._input_rate = RateMeter()
        self._output_rate = RateMeter()
        self._ledger = FrameLedger()  # frames_received: every input frame once
        self._set_images: OrderedDict[int, None] = OrderedDict()  # image stamps of recent sets
        self._stamps = SetStamps()  # the last set's stamp: stale sets, backwards jumps
        self._reset_cause = "a backwards time jump"
        self._sets = 0
        self._published = 0
        self._skipped_no_subscribers = 0
        self._reporter = DiagnosticsReporter()
        self._refusal = ""  # reason of the last value refused by _validate_parameters
        # per input: monotonic time and stamp of the last message, recent stamps
        self._rx_time: list[float | None] = [None] * len(INPUT_TOPICS)
        self._rx_stamp: list[int | None] = [None] * len(INPUT_TOPICS)
        self._left_rx: OrderedDict[int, float] = OrderedDict()  # left stamp -> arrival
        self._unpaired_since: float | None = None  # first image after the last set

        # -- parameters: validate before anything is declared, apply live ones after a set
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._declare_parameters()
        self._settings = self._read_settings()  # replaced whole on a live change
        settings = self._settings
        self._drop_classifier = SyncDropClassifier(
            INPUT_TOPICS,
            self._drop,
            approximate=settings.approximate_sync,
            slop=settings.sync_slop,
            queue_size=settings.queue_size,
        )
        self._pipeline = settings.build_pipeline()
        self._log_startup()

        # -- publications
        self._pubs = {
            output.topic: self._create_output(message_type(output.msgtype), output.topic)
            for output in OUTPUTS
        }
        self._diagnostics_pub = self.create_publisher(
            DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS
        )

        # -- subscriptions (connected while an enabled output has a subscriber)
        self._inputs = create_input_sync(
            self,
            input_qos(settings.qos_reliability),
            approximate=settings.approximate_sync,
            slop=settings.sync_slop,
            queue_size=settings.queue_size,
            on_message=self._on_input,
            on_set=self._on_set,
            on_drop=self._on_sync_drop,
        )
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(
                min_forward=None,
                min_backward=Duration(nanoseconds=-JUMP_BACK_NS),
                on_clock_change=False,
            ),
            post_callback=self._on_time_jump,
        )

        # -- worker and timers
        self._worker = threading.Thread(
            target=self._work, name="stereo_semantic_inference", daemon=True
        )
        self._worker.start()
        # steady clock: diagnostics keep coming while a simulation is paused
        self._timer = self.create_timer(
            1.0, self._on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        self._started = True
        self._update_input_connection()

    # ------------------------------------------------------------------ parameters

    def _declare_parameters(self) -> None:
        defaults = NodeSettings()
        for spec in PARAMETERS:
            default = getattr(defaults, spec.name)
            descriptor = ParameterDescriptor(
                description=spec.description
                + ("" if spec.live else " (start-up only: restart the node to change it)")
            )
            if spec.choices:
                descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
            if spec.limits is not None:
                lo, hi, step = spec.limits
                if isinstance(default, int):
                    descriptor.integer_range = [
                        IntegerRange(from_value=int(lo), to_value=int(hi), step=int(step))
                    ]
                else:
                    descriptor.floating_point_range = [
                        FloatingPointRange(from_value=float(lo), to_value=float(hi), step=step)
                    ]
            self._refusal = ""
            try:
                self.declare_parameter(spec.name, default, descriptor)
            except InvalidParameterValueException as exc:
                # rclpy's text wraps our reason; say it plainly (range refusals are rclpy's own)
                raise SettingsError(self._refusal or str(exc)) from None

    def _read_settings(self) -> NodeSettings:
        return NodeSettings.from_parameters(
            {name: self.get_parameter(name).value for name in SPECS}
        )

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Refuses bad values, and start-up parameters once running, with a reason."""
        for param in params:
            if param.name not in SPECS:
                continue  # use_sim_time and rclpy's qos_overrides.* are not ours to judge
            if self._started and param.name not in LIVE_PARAMETERS:
                current = self.get_parameter(param.name).value
                if param.value != current:
                    return SetParametersResult(
                        successful=False,
                        reason=(
                            f"restart the node to change {param.name}: it is read only at "
                            f"start-up (running with {current!r})"
                        ),
                    )
            try:
                check_value(param.name, param.value)
            except SettingsError as exc:
                self._refusal = str(exc)
                return SetParametersResult(successful=False, reason=self._refusal)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        if not self._started:
            return
        changed = [p for p in params if p.name in LIVE_PARAMETERS]
        if not changed:
            return
        old, self._settings = self._settings, self._read_settings()
        for param in changed:
            if getattr(old, param.name) != getattr(self._settings, param.name):
                self.get_logger().info(f"parameter {param.name} set to {param.value!r}")
        self._update_input_connection()

    def _log_startup(self) -> None:
        settings, pipe = self._settings, self._pipeline
        precision = pipe.precision
        if pipe.precision != pipe.requested_precision:
            precision += f" ({pipe.requested_precision} requested; the CPU runs fp32)"
        weights = settings.weights_path()
        self.get_logger().info(
            f"architecture {settings.architecture}, weights {weights or 'none (untrained)'}, "
            f"device {self._device_name()}, precision {precision}, max_disparity "
            f"{pipe.max_disparity} px, label set {pipe.label_set.name} "
            f"({pipe.label_set.num_classes} classes), input_scale {settings.input_scale:g}, "
            f"input bound {pipe.input_bound.describe()}, sync {settings.sync_description()}, "
            f"inputs {settings.qos_reliability}"
        )
        if weights is None:
            self.get_logger().warning(
                "weights is '': running an UNTRAINED network with random weights, every output "
                "is meaningless; set weights to a checkpoint (a file name in the package's "
                "models/ or an absolute path) for real results"
            )

    def _device_name(self) -> str:
        device = self._pipeline.device
        if device.type == "cuda":
            return f"{device} ({torch.cuda.get_device_name(device)})"
        return str(device)

    # ------------------------------------------------------------------ connection

    def _create_output(self, msg_type: type, topic: str) -> Any:
        options = QoSOverridingOptions.with_default_policies()
        try:
            return self.create_publisher(
                msg_type,
                topic,
                output_qos(),
                qos_overriding_options=options,
                event_callbacks=PublisherEventCallbacks(matched=self._on_output_matched),
            )
        except UnsupportedEventTypeError:
            # rmw without matched events: the 1 Hz timer notices new subscribers instead
            return self.create_publisher(
                msg_type, topic, output_qos(), qos_overriding_options=options
            )

    def _on_output_matched(self, _info: Any) -> None:
        self._update_input_connection()

    def _wanted_topics(self, settings: NodeSettings) -> list[str]:
        """Enabled outputs that have at least one subscriber."""
        return [t for t in settings.enabled_topics() if self._pubs[t].get_subscription_count()]

    def _update_input_connection(self) -> None:
        """Subscribe to the inputs while someone listens to an enabled output, else unsubscribe.

        Runs on the executor thread only (matched events, timer, parameter changes).
        """
        if not self._started or self._stopping:
            return
        wanted = self._wanted_topics(self._settings)
        if wanted and not self._inputs.connected:
            self._inputs.connect()
            self._unpaired_since = None
            self.get_logger().info(
                f"subscribers on {', '.join(wanted)}: subscribing to the inputs "
                f"({self._inputs.backend})"
            )
        elif not wanted and self._inputs.connected:
            self._reset_cause = "the inputs were unsubscribed (no subscriber on any output)"
            self._inputs.disconnect()
            self.get_logger().info("no subscriber on any enabled output: inputs unsubscribed")

    # ------------------------------------------------------------------ input side

    def _on_input(self, index: int, msg: Any) -> None:
        """Book-keeping for every input message, before it is offered to the synchroniser."""
        now = time.monotonic()
        stamp = stamp_to_ns(msg.header.stamp)
        # any input: the first message of a looped bag may be a camera_info, and it must not be
        # dropped as stale before its images arrive
        if self._stamps.jumped_back(stamp):
            self._reset_inputs(
                self._stamps.jump_text(INPUT_TOPICS[index], stamp)
                + " (bag loop or simulator restart?)"
            )
        self._rx_time[index] = now
        self._rx_stamp[index] = stamp
        self._drop_classifier.seen_message(index, stamp)
        if index in IMAGES and self._unpaired_since is None:
            self._unpaired_since = now
        if index == Input.LEFT_IMAGE:
            self._ledger.receive(stamp)
            self._input_rate.tick()
            self._left_rx[stamp] = now
            while len(self._left_rx) > 64:
                self._left_rx.popitem(last=False)

    def _on_time_jump(self, jump: TimeJump) -> None:
        self._reset_inputs(f"ROS time jumped back by {-jump.delta.nanoseconds / 1e9:.3f} s")

    def _reset_inputs(self, why: str) -> None:
        if self._warn_throttle.admit("time_jump") is not None:
            self.get_logger().warning(f"{why}: resetting the synchroniser")
        self._stamps.forget()
        self._reset_cause = "a backwards time jump"
        self._inputs.reset()

    def _drop(self, reason: str, stamp: int | None, detail: str, level: str = "error") -> bool:
        """Count a dropped frame once; an image lost on its own is a received frame too."""
        counted = self._drops.drop(reason, stamp, detail, level=level)
        if counted:
            self._ledger.receive(stamp)
        return counted

    def _on_sync_drop(self, index: int, msg: Any, reason: str) -> None:
        """A message left the synchroniser without a set (executor thread, like _on_set)."""
        if index not in IMAGES:
            return  # a camera_info nobody paired is no lost frame
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp in self._set_images:
            return  # a copy of an image already in a set: that set's outcome counts the frame
        if reason == "reset":
            self._drop(
                "input_reset",
                stamp,
                f"{INPUT_TOPICS[index]} was still waiting for its partners when "
                f"{self._reset_cause} reset the synchroniser. Frame dropped",
                level="warn",
            )
            return
        self._drop_classifier(index, msg, reason)

    def _on_set(
        self, left: Image, right: Image, left_info: CameraInfo, right_info: CameraInfo
    ) -> None:
        """A synchronised set: into the mailbox, replacing (and counting) any pending one."""
        now = time.monotonic()
        stamp = stamp_to_ns(left.header.stamp)
        for image in (left, right):
            self._set_images[stamp_to_ns(image.header.stamp)] = None
        while len(self._set_images) > 1024:
            self._set_images.popitem(last=False)
        stale = self._stamps.admit(stamp)
        if stale:
            self._drop("stale_stamp", stamp, stale)
            return
        self._unpaired_since = None
        self._sets += 1
        frame = _FrameSet(left, right, left_info, right_info, stamp, self._left_rx.pop(stamp, now))
        replaced = self._mailbox.put(frame)
        if replaced is not None:
            self._drop("busy", replaced.stamp_ns, BUSY_DETAIL, level="warn")

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        while (frame := self._mailbox.take()) is not None:
            try:
                self._process(frame)
            except Exception as exc:  # keep the worker alive whatever publishing one frame does
                if self._stopping or not self.context.ok():
                    return
                text = f"{type(exc).__name__}: {exc}. Frame dropped\n{traceback.format_exc()}"
                if not self._drop("pipeline_error", frame.stamp_ns, text):
                    # the frame was already counted: the failure came after its drop
                    self.get_logger().error(f"internal error: {text}")

    def _process(self, frame: _FrameSet) -> None:
        settings = self._settings  # one snapshot per frame; live changes apply to the next
        topics = self._wanted_topics(settings)
        if not topics:
            self._skipped_no_subscribers += 1
            return
        outcome = process_set(
            self._pipeline,
            settings,
            topics,
            frame.left,
            frame.right,
            frame.left_info,
            frame.right_info,
            RCLPY_MESSAGES,
        )
        if outcome.failure is not None:
            reason, detail = outcome.failure
            if outcome.traceback:
                detail += "\n" + outcome.traceback
            self._drop(reason, frame.stamp_ns, detail)
            return
        result = outcome.result
        assert result is not None
        if result.input_scale != self._pipeline.input_scale:
            self._note_downscaled(frame, result.input_scale)
        for topic, msg in outcome.messages.items():
            self._pubs[topic].publish(msg)
        self._published += 1
        self._output_rate.tick()
        self._latency.add(result.timings_ms, (time.monotonic() - frame.received) * 1e3)

    def _note_downscaled(self, frame: _FrameSet, scale: float) -> None:
        held = self._warn_throttle.admit("downscaled")
        if held is None:
            return
        bound = self._pipeline.input_bound
        self.get_logger().warning(
            f"{frame.left.width}x{frame.left.height} frame at stamp {format_stamp(frame.stamp_ns)} "
            f"ran at input_scale {scale:.3f} instead of {self._pipeline.input_scale:g} to stay "
            f"within max_input_pixels ({bound.describe()})"
            + (f" [{held} more downscaled frame(s) not logged]" if held else "")
        )

    # ------------------------------------------------------------------ timer

    def _on_timer(self) -> None:
        self._update_input_connection()
        self._watch_for_missing_sets()
        self._diagnostics_pub.publish(self._diagnostics())

    def _watch_for_missing_sets(self) -> None:
        """Warn when images arrive but no set forms: with message_filters the only signal."""
        if not self._inputs.connected:
            return
        now = time.monotonic()
        fresh = [t is not None and now - t < NO_SET_WARN_S for t in self._rx_time]
        if self._unpaired_since is None or not any(fresh[i] for i in IMAGES):
            return
        waited = now - self._unpaired_since
        if waited <= NO_SET_WARN_S:
            return
        if self._warn_throttle.admit("no_set") is None:
            return
        silent = [topic for topic, ok in zip(INPUT_TOPICS, fresh) if not ok]
        if silent:
            why = f"nothing arrives on {', '.join(silent)}"
            if any(t.endswith("camera_info") for t in silent):
                why += " (is the driver publishing camera_info? check the remappings)"
        else:
            settings = self._settings
            stamps = ", ".join(
                f"{topic} {format_stamp(s)}" for topic, s in zip(INPUT_TOPICS, self._rx_stamp)
            )
            why = (
                "all four inputs arrive but their stamps never "
                + ("agree within sync_slop" if settings.approximate_sync else "match exactly")
                + f" (latest: {stamps}); camera_infos must carry their image's stamp"
                + ("" if settings.approximate_sync else ", or set approximate_sync: true")
            )
        self.get_logger().warning(
            f"images arrive but no synchronised input set for {waited:.1f} s: {why}"
        )

    def _diagnostics(self) -> DiagnosticArray:
        settings = self._settings
        drops = self._drops.counts
        # read after the drops: a frame counted in between shows as in flight, never negative
        counts = FrameCounts(
            received=self._ledger.received,
            sets=self._sets,
            published=self._published,
            skipped_no_subscribers=self._skipped_no_subscribers,
            drops=drops,
        )
        in_rate, out_rate = self._input_rate.rate(), self._output_rate.rate()
        if not self._inputs.connected:
            summary = "idle: no subscriber on any enabled output"
        else:
            summary = f"{in_rate:.1f} Hz in, {out_rate:.1f} Hz out"
        device = self._device_name()
        status = self._reporter.status(
            settings=settings,
            pipeline=self._pipeline,
            device=device,
            sync=f"{settings.sync_description()} ({self._inputs.backend})",
            summary=summary,
            counts=counts,
            latency=self._latency.summary(),
            sync_stats=self._inputs.stats,
            live={
                "inputs_subscribed": str(self._inputs.connected).lower(),
                "input_rate_hz": f"{in_rate:.2f}",
                "output_rate_hz": f"{out_rate:.2f}",
            },
        )
        array = DiagnosticArray(
            status=[
                DiagnosticStatus(
                    level=bytes([status.level]),
                    name=f"{self.get_name()}: stereo pipeline",
                    message=status.message,
                    hardware_id=device,
                    values=[KeyValue(key=k, value=v) for k, v in status.values],
                )
            ]
        )
        array.header.stamp = self.get_clock().now().to_msg()
        return array

    # ------------------------------------------------------------------ logging, shutdown

    def _log(self, level: str, text: str) -> None:
        # one call site per severity: rclpy refuses a call site whose severity changes
        if level == "warn":
            self.get_logger().warning(text)
        else:
            self.get_logger().error(text)

    def destroy_node(self) -> None:
        self._stopping = True
        self._mailbox.close()
        worker = getattr(self, "_worker", None)
        if worker is not None and worker.is_alive():
            worker.join(timeout=10.0)
        super().destroy_node()


def _parse_args(argv: list[str]) -> argparse.Namespace:
    lines = [f"  {s.name}: {s.description}" for s in PARAMETERS]
    parser = argparse.ArgumentParser(
        prog=NODE_NAME,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Joint stereo disparity, depth and semantic segmentation node.",
        epilog="Parameters (--ros-args -p name:=value or --params-file config/<arch>.yaml):\n"
        + "\n".join(lines),
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the node until Ctrl-C; returns 1 when a parameter or the weights refuse to start."""
    args = list(sys.argv if argv is None else [NODE_NAME, *argv])
    _parse_args(remove_ros_args(args)[1:])
    rclpy.init(args=args)
    node: StereoSemanticNode | None = None
    status = 0
    try:
        node = StereoSemanticNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # Ctrl-C shuts the context down from the signal handler; a wait or publish already
        # under way then fails with "context is not valid": that is a normal stop, not a crash
        if rclpy.ok():
            raise
    except (SettingsError, CheckpointError, ParameterException) as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        status = 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
