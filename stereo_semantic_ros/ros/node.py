"""``stereo_semantic_node``: the ROS 2 shell around the shared ``StereoPipeline``.

Topics, QoS and parameters follow design.md (and stereo_image_proc): four synchronised inputs
(``left|right/image_rect``, or ``.../compressed`` with ``image_transport: compressed``;
``left|right/camera_info``; sensor-data QoS), the outputs of the output table
(:mod:`stereo_semantic_ros.outputs`; reliable, depth :data:`OUTPUT_DEPTH`), and ``/diagnostics``
at 1 Hz. The algorithm lives in the pipeline and what happens to a frame in the frame library
(:mod:`stereo_semantic_ros.frames`, shared with rosbag replay); this file only moves messages in
and out. It has two shells over the same pieces: :class:`StereoSemanticNode` (the default; sets
everything up in its constructor) and the lifecycle node
(:mod:`stereo_semantic_ros.ros.lifecycle_node`), both made of :class:`NodeParameters` (declared
at construction) and a :class:`NodeRuntime` (configure .. cleanup):

* Input subscriptions exist only while the runtime is active and an enabled output has a
  subscriber (connected on the publishers' *matched* events, checked again every second).
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
  the mailbox or in the worker; 0 once the inputs are quiet).
* Nothing is published for a frame whose network output is not finite (``non_finite_output``,
  diagnostics ERROR), that exceeds ``max_input_pixels`` (``too_large``; or it is downscaled with
  ``oversize_policy: downscale``) or that runs out of memory (``out_of_memory``; the CUDA cache is
  emptied and the node goes on): the shared pipeline raises, the node counts.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
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
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from stereo_semantic_ros.checkpoint import CheckpointError
from stereo_semantic_ros.frames.diagnostics import DiagnosticsReporter, FrameCounts, status_name
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
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.ros.input_sync import create_input_sync
from stereo_semantic_ros.ros.outputs import RCLPY_MESSAGES, message_type
from stereo_semantic_ros.ros.settings import (
    ALIAS_BY_NAME,
    ALIASES,
    LIVE_PARAMETERS,
    NODE_NAME,
    PARAMETERS,
    SPECS,
    NodeSettings,
    ParameterAlias,
    SettingsError,
    alias_conflict,
    check_value,
)

RCLError = _rclpy_impl.RCLError  # rclpy's error of the C layer; not exported elsewhere

LOG_THROTTLE_S = 5.0
"""At most one log line per drop reason (and per warning kind) in this many seconds."""
NO_SET_WARN_S = 2.0
"""Warn when images arrive but no synchronised set has formed for this long."""
WORKER_JOIN_S = 10.0
"""How long cleanup / shutdown waits for a frame still in inference."""

OUTPUT_DEPTH = 10
"""History depth of the output publishers (reliable, volatile; ``qos_overrides`` still apply).

Not stereo_image_proc's (and design.md's) depth 1, which loses frames to a reliable subscriber
that keeps up. Measured with test/measure_output_qos.py (the node on the CPU, 640x480 frames at
1 Hz, all eight outputs subscribed): at depth 1 each topic got 14-20 of the 20 frames
published, at depth 5 all (20 of 20, 21 of 21), at depth 10 all (27 of 27, 23 of 23). That
run is gentle (inference paces the bursts); test/measure_dds_burst.py publishes the same eight
messages back to back between two plain rclpy processes over Fast DDS, 30 frames at 2 Hz:
depth 1 18-30 per topic (and still lost at 0.5 Hz), depth 5 23-30 (1 Hz: 29-30; 10 Hz: 47-50
of 50), depth 10 all 30 in two runs and all 50 at 10 Hz; one topic alone, or small messages,
lost nothing at depth 1. Why: a burst of large outputs overflows the receiver's transport buffers
(UDP and shared memory alike), so some samples are lost on their first sending, with the
heartbeat sent after them. The reliable protocol resends a sample only once the reader learns
it is missing, from the writer's next heartbeat: Fast DDS's periodic one comes every 3 s, the
next piggy-backed one with the same topic's next sample, and a resend can be lost in the next
burst again. At depth 1 the next sample has already replaced the missing one in the publisher's
history and the heartbeat announces only the new one, so the old one is gone (with a 20 ms
heartbeat period depth 1 lost nothing, which confirms it); at depth N the last N frames stay
resendable, and 10 frames were enough in every run. The cost is memory on the publisher side,
only for topics that are published (have subscribers): up to N messages of each, about 10 x 13
MB for every output of a 640x480 frame (points2 is 6 of them; lower its depth through
``qos_overrides./points2.publisher.depth`` where memory is short).
"""

DEACTIVATED_DETAIL = (
    "the node stopped processing (lifecycle deactivate, or shutdown) before this frame's outputs "
    "were published. Frame dropped"
)


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
    """Reliable, keep last :data:`OUTPUT_DEPTH`, volatile. A new profile per publisher: rclpy
    applies a topic's ``qos_overrides`` parameters to the profile it is given, in place, so a
    shared one would carry one topic's override to every publisher created after it."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=OUTPUT_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


DIAGNOSTICS_QOS = QoSProfile(depth=10)  # as diagnostic_updater


def input_topics(image_transport: str) -> tuple[tuple[str, type], ...]:
    """(relative topic, message type) of the four inputs, indexed by :class:`Input`.

    ``compressed``: the images as sensor_msgs/CompressedImage on ``<image>/compressed``, the
    topic image_transport's ``compressed`` plugin publishes; camera_infos are unchanged.
    """
    compressed = image_transport == "compressed"
    return tuple(
        (f"{topic}/compressed", CompressedImage)
        if compressed and index in IMAGES
        else (topic, Image if index in IMAGES else CameraInfo)
        for index, topic in zip(Input, INPUT_TOPICS)
    )


@dataclass
class _FrameSet:
    """One synchronised input set waiting for the worker."""

    left: Any  # Image or CompressedImage
    right: Any
    left_info: CameraInfo
    right_info: CameraInfo
    stamp_ns: int
    received: float  # time.monotonic() when the left image arrived


# ---------------------------------------------------------------------------------- parameters


class NodeParameters:
    """The node's parameters on an rclpy node, plain or lifecycle.

    Declares every :data:`~stereo_semantic_ros.ros.settings.PARAMETERS` entry with its
    description and range; start-up parameters ``read_only`` (rclpy refuses a change at run time
    with "Trying to set a read-only parameter", and rqt shows them as fixed). stereo_image_proc's
    names (:data:`~stereo_semantic_ros.ros.settings.ALIASES`) are declared too, read_only, and
    set their target parameter: ``approximate_sync_tolerance_seconds: 0.05`` in a ported params
    file runs with ``sync_slop`` 0.05. Every value is checked with
    :func:`~stereo_semantic_ros.ros.settings.check_value` (a bad one is refused with a reason);
    live changes replace :attr:`settings` and are handed to :attr:`on_change`.

    Raises (from the constructor): :class:`SettingsError` for a refused value, or an alias and
    its target both given with different values.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self._refusal = ""  # reason of the last value refused by _validate
        self._ready = False
        self.on_change: Callable[[NodeSettings], None] | None = None
        # validate before anything is declared, apply live ones after a set
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)
        aliased = self._declare_aliases()
        self._declare_parameters(aliased)
        self.settings = self._read()  # replaced whole on a live change
        self._ready = True

    def _declare(self, name: str, default: Any, descriptor: ParameterDescriptor) -> Any:
        self._refusal = ""
        try:
            return self._node.declare_parameter(name, default, descriptor).value
        except InvalidParameterValueException as exc:
            # rclpy's text wraps our reason; say it plainly (range refusals are rclpy's own)
            raise SettingsError(self._refusal or str(exc)) from None

    def _declare_aliases(self) -> dict[str, tuple[ParameterAlias, Any, Any]]:
        """Declare stereo_image_proc's names; ``{target: (alias, its value, target value)}``
        for those given."""
        aliased = {}
        for alias in ALIASES:
            descriptor = ParameterDescriptor(
                description=alias.description, read_only=True, dynamic_typing=True
            )
            value = self._declare(alias.name, None, descriptor)  # None: not given
            if value is not None:
                aliased[alias.target] = (alias, value, alias.target_value(value))
        return aliased

    def _declare_parameters(self, aliased: dict[str, tuple[ParameterAlias, Any, Any]]) -> None:
        defaults = NodeSettings()
        for spec in PARAMETERS:
            default = getattr(defaults, spec.name)
            descriptor = ParameterDescriptor(
                description=spec.description
                + ("" if spec.live else " (start-up, read only: restart the node to change it)"),
                read_only=not spec.live,
            )
            if spec.choices:
                descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
            if spec.limits is not None:
                lo, hi, step = spec.limits
                if isinstance(default, int) and not isinstance(default, bool):
                    descriptor.integer_range = [
                        IntegerRange(from_value=int(lo), to_value=int(hi), step=int(step))
                    ]
                else:
                    descriptor.floating_point_range = [
                        FloatingPointRange(from_value=float(lo), to_value=float(hi), step=step)
                    ]
            given = aliased.get(spec.name)
            if given is None:
                self._declare(spec.name, default, descriptor)
                continue
            # the alias's value is the default: our own name, if given too, must agree with it
            alias, alias_value, target_value = given
            value = self._declare(spec.name, target_value, descriptor)
            if check_value(spec.name, value) != target_value:
                raise SettingsError(alias_conflict(alias, alias_value, value))
            self._node.get_logger().info(
                f"{alias.name}: {alias_value!r} (stereo_image_proc's name) sets "
                f"{spec.name}: {target_value!r}"
            )

    def _read(self) -> NodeSettings:
        return NodeSettings.from_parameters(
            {name: self._node.get_parameter(name).value for name in SPECS}
        )

    def _validate(self, params: list[Parameter]) -> SetParametersResult:
        """Refuses bad values with a reason (start-up ones never get here once declared:
        rclpy refuses read-only parameters first)."""
        for param in params:
            alias = ALIAS_BY_NAME.get(param.name)
            try:
                if param.name in SPECS:
                    check_value(param.name, param.value)
                elif alias is not None and param.value is not None:
                    alias.target_value(param.value)
            except SettingsError as exc:
                self._refusal = str(exc)
                return SetParametersResult(successful=False, reason=self._refusal)
            # use_sim_time and rclpy's qos_overrides.* are not ours to judge
        return SetParametersResult(successful=True)

    def _apply(self, params: list[Parameter]) -> None:
        if not self._ready or not any(p.name in LIVE_PARAMETERS for p in params):
            return
        old, self.settings = self.settings, self._read()
        for param in params:
            if param.name in LIVE_PARAMETERS and getattr(old, param.name) != getattr(
                self.settings, param.name
            ):
                self._node.get_logger().info(f"parameter {param.name} set to {param.value!r}")
        if self.on_change is not None:
            self.on_change(self.settings)


# ---------------------------------------------------------------------------------- runtime


class NodeRuntime:
    """What the node runs from configure to cleanup, on any rclpy node.

    The constructor (lifecycle: *configure*) loads the network and creates the output
    publishers, /diagnostics with its 1 Hz timer, the (unconnected) input subscriptions and the
    inference worker. :meth:`activate` lets the inputs connect (while an output has a
    subscriber); :meth:`deactivate` disconnects them and publishes nothing more (a frame still in
    inference is dropped as ``input_reset``); :meth:`destroy` (*cleanup*) stops the worker,
    destroys what the constructor created and frees the network and its GPU memory.

    Args:
        node: the rclpy node everything is created on.
        settings: the parameters at configure time (live ones change with
            :meth:`update_settings`).
        create_publisher, destroy_publisher: the node's (lifecycle) publisher functions for the
            outputs; ``create_publisher(msg_type, topic, qos, **kwargs)``.

    Raises (from the constructor): :class:`SettingsError` or ``CheckpointError`` when the
    weights cannot be used.
    """

    def __init__(
        self,
        node: Node,
        settings: NodeSettings,
        create_publisher: Callable[..., Any],
        destroy_publisher: Callable[[Any], Any],
    ) -> None:
        self._node = node
        self._destroy_publisher = destroy_publisher
        self._settings = settings

        # -- processing state
        self._ready = False  # set last: callbacks before then find nothing to do
        self._active = False
        self._stopping = False
        self._publish_lock = threading.Lock()  # deactivate waits for a frame being published
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
        self._inputs_spec = input_topics(settings.image_transport)
        self._input_names = [topic for topic, _ in self._inputs_spec]
        # per input: monotonic time and stamp of the last message, recent stamps
        self._rx_time: list[float | None] = [None] * len(INPUT_TOPICS)
        self._rx_stamp: list[int | None] = [None] * len(INPUT_TOPICS)
        self._left_rx: OrderedDict[int, float] = OrderedDict()  # left stamp -> arrival
        self._unpaired_since: float | None = None  # first image after the last set
        self._drop_classifier = SyncDropClassifier(
            self._input_names,
            self._drop,
            approximate=settings.approximate_sync,
            slop=settings.sync_slop,
            queue_size=settings.queue_size,
        )
        self.pipeline: StereoPipeline | None = settings.build_pipeline()
        self._log_startup()

        # -- publications
        self._pubs = {
            output.topic: self._create_output(
                create_publisher, message_type(output.msgtype), output.topic
            )
            for output in OUTPUTS
        }
        self._diagnostics_pub = node.create_publisher(
            DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS
        )

        # -- subscriptions (connected while active and an enabled output has a subscriber)
        self._inputs = create_input_sync(
            node,
            input_qos(settings.qos_reliability),
            approximate=settings.approximate_sync,
            slop=settings.sync_slop,
            queue_size=settings.queue_size,
            on_message=self._on_input,
            on_set=self._on_set,
            on_drop=self._on_sync_drop,
            inputs=self._inputs_spec,
        )
        self._jump_handle = node.get_clock().create_jump_callback(
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
        self._timer = node.create_timer(
            1.0, self._on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        self._ready = True

    # ------------------------------------------------------------------ states

    @property
    def active(self) -> bool:
        return self._active

    def activate(self) -> None:
        """Process frames: subscribe to the inputs while an output has a subscriber."""
        self._active = True
        self._update_input_connection()

    def deactivate(self) -> None:
        """Publish nothing more and unsubscribe from the inputs; the network stays loaded."""
        with self._publish_lock:  # a frame being published finishes first
            self._active = False
        if self._inputs.connected:
            self._reset_cause = "the node was deactivated"
            self._inputs.disconnect()
            self._node.get_logger().info("deactivated: inputs unsubscribed")

    def update_settings(self, settings: NodeSettings) -> None:
        """A live parameter changed: the next frame uses ``settings``."""
        self._settings = settings
        self._update_input_connection()

    def destroy(self) -> None:
        """Stop the worker, destroy the node's entities made here, free the network."""
        with self._publish_lock:
            self._active = False
        self._stopping = True  # from here on nothing is counted or logged per frame
        self._mailbox.close()
        if self._worker.is_alive():
            self._worker.join(timeout=WORKER_JOIN_S)
        node = self._node
        if self._ready:
            self._inputs.disconnect()
            node.destroy_timer(self._timer)
            self._jump_handle.unregister()
            for pub in self._pubs.values():
                self._destroy_publisher(pub)
            node.destroy_publisher(self._diagnostics_pub)
            self._ready = False
        self._release_network()

    def _release_network(self) -> None:
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is None:
            return
        cuda = pipeline.device.type == "cuda"
        before = torch.cuda.memory_allocated(pipeline.device) if cuda else 0
        del pipeline
        if self._worker.is_alive():
            self._node.get_logger().warning(
                f"a frame is still in inference after {WORKER_JOIN_S:g} s: the network is "
                "freed once it ends"
            )
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            after = torch.cuda.memory_allocated()
            self._node.get_logger().info(
                f"network released: CUDA memory allocated {before / 2**20:.1f} -> "
                f"{after / 2**20:.1f} MiB"
            )
        else:
            self._node.get_logger().info("network released")

    # ------------------------------------------------------------------ start-up log

    def _log_startup(self) -> None:
        settings, pipe = self._settings, self.pipeline
        assert pipe is not None
        precision = pipe.precision
        if pipe.precision != pipe.requested_precision:
            precision += f" ({pipe.requested_precision} requested; the CPU runs fp32)"
        weights = settings.weights_path()
        self._node.get_logger().info(
            f"architecture {settings.architecture}, weights {weights or 'none (untrained)'}, "
            f"device {self.device_name()}, precision {precision}, max_disparity "
            f"{pipe.max_disparity} px, label set {pipe.label_set.name} "
            f"({pipe.label_set.num_classes} classes), input_scale {settings.input_scale:g}, "
            f"input bound {pipe.input_bound.describe()}, sync {settings.sync_description()}, "
            f"inputs {settings.qos_reliability}, image_transport {settings.image_transport}"
        )
        if weights is None:
            self._node.get_logger().warning(
                "weights is '': running an UNTRAINED network with random weights, every output "
                "is meaningless; set weights to a checkpoint (a file name in the package's "
                "models/ or an absolute path) for real results"
            )

    def device_name(self) -> str:
        if self.pipeline is None:
            return "none (released)"
        device = self.pipeline.device
        if device.type == "cuda":
            return f"{device} ({torch.cuda.get_device_name(device)})"
        return str(device)

    # ------------------------------------------------------------------ connection

    def _create_output(self, create: Callable[..., Any], msg_type: type, topic: str) -> Any:
        options = QoSOverridingOptions.with_default_policies()
        try:
            return create(
                msg_type,
                topic,
                output_qos(),
                qos_overriding_options=options,
                event_callbacks=PublisherEventCallbacks(matched=self._on_output_matched),
            )
        except UnsupportedEventTypeError:
            # rmw without matched events: the 1 Hz timer notices new subscribers instead
            return create(msg_type, topic, output_qos(), qos_overriding_options=options)

    def _on_output_matched(self, _info: Any) -> None:
        self._update_input_connection()

    def _wanted_topics(self, settings: NodeSettings) -> list[str]:
        """Enabled outputs that have at least one subscriber."""
        return [t for t in settings.enabled_topics() if self._pubs[t].get_subscription_count()]

    def _update_input_connection(self) -> None:
        """While active, subscribe to the inputs while someone listens to an enabled output,
        else unsubscribe.

        Runs on the executor thread only (matched events, timer, parameter changes, lifecycle
        transitions).
        """
        if not self._ready or self._stopping or not self._active:
            return
        wanted = self._wanted_topics(self._settings)
        if wanted and not self._inputs.connected:
            self._inputs.connect()
            self._unpaired_since = None
            self._node.get_logger().info(
                f"subscribers on {', '.join(wanted)}: subscribing to "
                f"{', '.join(self._input_names)} ({self._inputs.backend})"
            )
        elif not wanted and self._inputs.connected:
            self._reset_cause = "the inputs were unsubscribed (no subscriber on any output)"
            self._inputs.disconnect()
            self._node.get_logger().info("no subscriber on any enabled output: inputs unsubscribed")

    # ------------------------------------------------------------------ input side

    def _on_input(self, index: int, msg: Any) -> None:
        """Book-keeping for every input message, before it is offered to the synchroniser."""
        now = time.monotonic()
        stamp = stamp_to_ns(msg.header.stamp)
        # any input: the first message of a looped bag may be a camera_info, and it must not be
        # dropped as stale before its images arrive
        if self._stamps.jumped_back(stamp):
            self._reset_inputs(
                self._stamps.jump_text(self._input_names[index], stamp)
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
            self._node.get_logger().warning(f"{why}: resetting the synchroniser")
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
        if index not in IMAGES or self._stopping:
            return  # a camera_info nobody paired is no lost frame
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp in self._set_images:
            return  # a copy of an image already in a set: that set's outcome counts the frame
        if reason == "reset":
            self._drop(
                "input_reset",
                stamp,
                f"{self._input_names[index]} was still waiting for its partners when "
                f"{self._reset_cause} reset the synchroniser. Frame dropped",
                level="warn",
            )
            return
        self._drop_classifier(index, msg, reason)

    def _on_set(self, left: Any, right: Any, left_info: CameraInfo, right_info: CameraInfo) -> None:
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
                if self._stopping or not self._node.context.ok():
                    return
                text = f"{type(exc).__name__}: {exc}. Frame dropped\n{traceback.format_exc()}"
                if not self._drop("pipeline_error", frame.stamp_ns, text):
                    # the frame was already counted: the failure came after its drop
                    self._node.get_logger().error(f"internal error: {text}")

    def _process(self, frame: _FrameSet) -> None:
        settings = self._settings  # one snapshot per frame; live changes apply to the next
        pipeline = self.pipeline
        if not self._active or pipeline is None:
            self._drop("input_reset", frame.stamp_ns, DEACTIVATED_DETAIL, level="warn")
            return
        topics = self._wanted_topics(settings)
        if not topics:
            self._skipped_no_subscribers += 1
            return
        outcome = process_set(
            pipeline,
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
        if result.input_scale != pipeline.input_scale:
            assert outcome.left_rgb is not None
            height, width = outcome.left_rgb.shape[:2]
            self._note_downscaled(frame, pipeline, result.input_scale, f"{width}x{height}")
        with self._publish_lock:
            if not self._active:
                self._drop("input_reset", frame.stamp_ns, DEACTIVATED_DETAIL, level="warn")
                return
            for topic, msg in outcome.messages.items():
                self._pubs[topic].publish(msg)
        self._published += 1
        self._output_rate.tick()
        self._latency.add(result.timings_ms, (time.monotonic() - frame.received) * 1e3)

    def _note_downscaled(
        self, frame: _FrameSet, pipeline: StereoPipeline, scale: float, size: str
    ) -> None:
        held = self._warn_throttle.admit("downscaled")
        if held is None:
            return
        bound = pipeline.input_bound
        self._node.get_logger().warning(
            f"{size} frame at stamp {format_stamp(frame.stamp_ns)} ran at input_scale {scale:.3f} "
            f"instead of {pipeline.input_scale:g} to stay within max_input_pixels "
            f"({bound.describe()})"
            + (f" [{held} more downscaled frame(s) not logged]" if held else "")
        )

    # ------------------------------------------------------------------ timer

    def _on_timer(self) -> None:
        self._update_input_connection()
        self._watch_for_missing_sets()
        self._diagnostics_pub.publish(self._diagnostics())

    def _watch_for_missing_sets(self) -> None:
        """Warn when images arrive but no set forms."""
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
        silent = [topic for topic, ok in zip(self._input_names, fresh) if not ok]
        if silent:
            why = f"nothing arrives on {', '.join(silent)}"
            if any(t.endswith("camera_info") for t in silent):
                why += " (is the driver publishing camera_info? check the remappings)"
        else:
            settings = self._settings
            stamps = ", ".join(
                f"{topic} {format_stamp(s)}" for topic, s in zip(self._input_names, self._rx_stamp)
            )
            why = (
                "all four inputs arrive but their stamps never "
                + ("agree within sync_slop" if settings.approximate_sync else "match exactly")
                + f" (latest: {stamps}); camera_infos must carry their image's stamp"
                + ("" if settings.approximate_sync else ", or set approximate_sync: true")
            )
        self._node.get_logger().warning(
            f"images arrive but no synchronised input set for {waited:.1f} s: {why}"
        )

    def _diagnostics(self) -> DiagnosticArray:
        settings, pipeline = self._settings, self.pipeline
        assert pipeline is not None
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
        if not self._active:
            summary = "inactive (lifecycle): network loaded, no processing until activated"
        elif not self._inputs.connected:
            summary = "idle: no subscriber on any enabled output"
        else:
            summary = f"{in_rate:.1f} Hz in, {out_rate:.1f} Hz out"
        device = self.device_name()
        status = self._reporter.status(
            settings=settings,
            pipeline=pipeline,
            device=device,
            sync=f"{settings.sync_description()} ({self._inputs.backend})",
            summary=summary,
            counts=counts,
            latency=self._latency.summary(),
            sync_stats=self._inputs.stats,
            live={
                "inputs_subscribed": str(self._inputs.connected).lower(),
                "image_transport": settings.image_transport,
                "input_rate_hz": f"{in_rate:.2f}",
                "output_rate_hz": f"{out_rate:.2f}",
            },
        )
        array = DiagnosticArray(
            status=[
                DiagnosticStatus(
                    level=bytes([status.level]),
                    name=status_name(self._node.get_fully_qualified_name()),
                    message=status.message,
                    hardware_id=device,
                    values=[KeyValue(key=k, value=v) for k, v in status.values],
                )
            ]
        )
        array.header.stamp = self._node.get_clock().now().to_msg()
        return array

    # ------------------------------------------------------------------ logging

    def _log(self, level: str, text: str) -> None:
        # one call site per severity: rclpy refuses a call site whose severity changes
        if level == "warn":
            self._node.get_logger().warning(text)
        else:
            self._node.get_logger().error(text)


# ---------------------------------------------------------------------------------- the node


class StereoSemanticNode(Node):
    """Synchronises a rectified stereo pair, runs the pipeline on a worker, publishes outputs.

    Configured and active from the constructor on (the lifecycle variant waits for its
    transitions: :mod:`stereo_semantic_ros.ros.lifecycle_node`).

    Raises (from the constructor): :class:`SettingsError`, ``CheckpointError`` or rclpy's
    ``ParameterException`` when a parameter is refused at start-up.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.parameters = NodeParameters(self)
        self.runtime = NodeRuntime(
            self, self.parameters.settings, self.create_publisher, self.destroy_publisher
        )
        self.parameters.on_change = self.runtime.update_settings
        self.runtime.activate()

    def destroy_node(self) -> None:
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.destroy()
        super().destroy_node()


# ---------------------------------------------------------------------------------- main


def _parse_args(prog: str, argv: list[str], description: str) -> argparse.Namespace:
    lines = [f"  {s.name}: {s.description}" for s in PARAMETERS]
    lines += [f"  {a.name}: {a.description}" for a in ALIASES]
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=description,
        epilog="Parameters (--ros-args -p name:=value or --params-file config/<arch>.yaml):\n"
        + "\n".join(lines),
    )
    return parser.parse_args(argv)


def run_node(
    make_node: Callable[[], Node],
    argv: list[str] | None,
    prog: str = NODE_NAME,
    description: str = "Joint stereo disparity, depth and semantic segmentation node.",
) -> int:
    """Spin the node ``make_node`` builds until Ctrl-C; 1 when a parameter or the weights
    refuse to start. Shared by both executables."""
    args = list(sys.argv if argv is None else [prog, *argv])
    _parse_args(prog, remove_ros_args(args)[1:], description)
    rclpy.init(args=args)
    node: Node | None = None
    status = 0
    try:
        node = make_node()
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


def main(argv: list[str] | None = None) -> int:
    """Run the node until Ctrl-C; returns 1 when a parameter or the weights refuse to start."""
    return run_node(StereoSemanticNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
