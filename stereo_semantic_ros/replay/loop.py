"""The offline replay loop: each message of the bag, in receive-time order, as the node handles it.

:class:`ReplayRun` holds one replay's state; :meth:`ReplayRun.handle` takes one message:

1. Every message of a copied topic (:class:`~stereo_semantic_ros.replay.bag_input.TopicRoles`)
   is written to the output bag as it is, at its receive time.
2. The four inputs go through :class:`stereo_semantic_ros.sync.Synchronizer` with the parameter
   file's ``approximate_sync``, ``sync_slop`` and ``queue_size``, newest-wins, as the node's
   built-in synchroniser, with the node's stamp rules
   (:class:`~stereo_semantic_ros.frames.stamps.SetStamps`: a backwards jump resets it, a set
   not newer than the last is stale).
3. Every left/right image that leaves the synchroniser without a set is a dropped frame, with
   the node's reasons (:class:`~stereo_semantic_ros.frames.sync_drops.SyncDropClassifier`). A
   left image whose bytes do not decode is a failed frame (``undecodable``).
4. A set waits for its ground truth (same stamp as the left image) at most 1 s of bag time, then
   goes through the node's :func:`~stereo_semantic_ros.frames.step.process_set`, built as
   ``rosbags`` messages; they are written at the left image's receive time, the frame is scored
   against the ground truth (:class:`~stereo_semantic_ros.replay.scores.GroundTruthScores`) and,
   if planned, previewed.
5. A ``/diagnostics`` status, the node's (:mod:`stereo_semantic_ros.frames.diagnostics`), is
   written once per second of bag time and at the end.

Every left image read gets one fate, so the report's counts add up:
``left images read + frames dropped without a left image == processed + dropped + failed +
unprocessed at stop + left images without a fate`` (the last: still waiting in the synchroniser
when replay stopped, replaced by a copy with the same stamp, or cleared by a time jump).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from stereo_semantic_ros.bagtools import messages
from stereo_semantic_ros.bagtools.bagio import BagWriter, connection_definition
from stereo_semantic_ros.evaluation.scorer import GroundTruth
from stereo_semantic_ros.frames.diagnostics import DiagnosticsReporter, FrameCounts
from stereo_semantic_ros.frames.inputs import Input
from stereo_semantic_ros.frames.reasons import SET_REASONS, SYNC_REASONS
from stereo_semantic_ros.frames.stamps import SetStamps
from stereo_semantic_ros.frames.stats import (
    DropCounter,
    Latencies,
    format_stamp,
    frame_latencies,
)
from stereo_semantic_ros.frames.step import FrameOutcome, process_set
from stereo_semantic_ros.frames.sync_drops import SyncDropClassifier
from stereo_semantic_ros.outputs import MessageKit
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.replay.bag_input import TopicRoles
from stereo_semantic_ros.replay.ground_truth import decode_ground_truth
from stereo_semantic_ros.replay.options import GT_ROLES, ReplayOptions
from stereo_semantic_ros.replay.previews import save_previews
from stereo_semantic_ros.replay.report import FrameTotals, ReplayTotals, model_section
from stereo_semantic_ros.replay.scores import GroundTruthScores
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.ros.settings import NODE_NAME
from stereo_semantic_ros.sync import Synchronizer

ROSBAGS_MESSAGES = MessageKit(messages.image_msg, messages.disparity_msg, messages.cloud_msg)
"""The output table's messages as ``rosbags`` objects, written without a round trip through
rclpy types."""
GT_WAIT_NS = 1_000_000_000
"""A synchronised set waits at most this much bag time for its ground-truth messages."""
DIAGNOSTICS_PERIOD_NS = 1_000_000_000
UNDECODABLE_PRINTED = 5
"""Undecodable messages printed per topic; a topic of foreign bytes would flood the terminal."""


class ReplayRun:
    """State of one replay run (see :func:`stereo_semantic_ros.replay.cli.run_replay`)."""

    def __init__(self, options: ReplayOptions, pipeline: StereoPipeline) -> None:
        self.options = options
        self.pipeline = pipeline
        self.settings = options.settings
        self.topics = self.settings.enabled_topics()
        self.input_names = options.topics.inputs()
        self.roles = TopicRoles.of(options.topics)
        self.drops = DropCounter(None, remember=None)  # counted only: the report lists them
        self.drop_log: list[dict[str, Any]] = []
        self.per_frame: list[dict[str, Any]] = []
        self.undecodable: dict[str, int] = {}
        self.messages_read: dict[str, int] = {}
        self.undecodable_left = 0
        self.without_left_image = 0
        # left image stamp -> left images read with that stamp whose frame has no fate yet
        self._unfated: dict[int, int] = {}
        self.left_images = 0
        self.paired = 0
        self.processed = 0
        self.latency = Latencies(size=None)
        self.processing_s = 0.0
        self.pending: deque[tuple[tuple[Any, ...], int]] = deque()  # (set, log time)
        self.gt: dict[str, dict[int, Any]] = {role: {} for role in GT_ROLES}
        self.gt_present: set[str] = set()
        self.scores = GroundTruthScores(pipeline.label_set)
        self.previews: list[str] = []
        self.preview_plan: set[int] = set()
        self.stamps = SetStamps()
        self.reporter = DiagnosticsReporter()
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

    def drop_frame(
        self, reason: str, stamp: int | None, detail: str, *, paired: bool = False
    ) -> None:
        """Count a frame once (several of its messages may be dropped).

        ``paired``: the frame is a synchronised set whose left image already has its fate.
        """
        if not self.drops.drop(reason, stamp, detail):
            return
        if stamp is not None and not paired and not self._settle_left(stamp):
            self.without_left_image += 1
        entry = {"stamp": format_stamp(stamp), "reason": reason, "detail": detail}
        self.drop_log.append(entry)
        if reason in SET_REASONS:
            self.per_frame.append({"stamp": entry["stamp"], "status": reason, "detail": detail})

    def _settle_left(self, stamp: int) -> bool:
        """Give one left image of ``stamp`` its fate; False when none is waiting for one."""
        n = self._unfated.get(stamp, 0)
        if not n:
            return False
        if n == 1:
            del self._unfated[stamp]
        else:
            self._unfated[stamp] = n - 1
        return True

    @property
    def left_without_fate(self) -> int:
        """Left images read that are neither processed, failed nor dropped (yet)."""
        return sum(self._unfated.values())

    def out_topic(self, topic: str) -> str:
        ns = self.options.namespace.strip("/")
        return f"/{ns}/{topic}" if ns else f"/{topic}"

    def bag_damaged(self, exc: Exception) -> None:
        """The input bag's remaining messages cannot be read: the run ends with an error."""
        self.error = (
            f"reading the bag failed after {self.left_images} left images "
            f"({type(exc).__name__}: {exc}); the bag is corrupt or truncated. Everything "
            "before that point was replayed and written"
        )

    @property
    def failed(self) -> dict[str, int]:
        """Failed frames per reason: the node's, and ``undecodable`` left images."""
        counts = self.drops.counts
        out = {r: counts[r] for r in SET_REASONS}
        out["undecodable"] = self.undecodable_left
        return out

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def dropped_total(self) -> int:
        return sum(n for r, n in self.drops.counts.items() if r in SYNC_REASONS)

    @property
    def processed_or_failed(self) -> int:
        return self.processed + self.failed_total

    @property
    def handled(self) -> int:
        """Frames with a fate: processed, failed or dropped (the progress bar)."""
        return self.processed + self.failed_total + self.dropped_total

    # -- input side ----------------------------------------------------------------------------

    def handle(self, reader: Any, conn: Any, log_ns: int, raw: bytes) -> None:
        """One message of the input bag (``reader`` deserialises it)."""
        assert self.writer is not None
        self.now_ns = log_ns
        msgdef, digest = connection_definition(conn)
        self.writer.write_raw(conn.topic, conn.msgtype, raw, log_ns, msgdef, digest)
        self.messages_read[conn.topic] = self.messages_read.get(conn.topic, 0) + 1
        if self.roles.decoded(conn.topic):
            msg = self.decode(reader, conn, raw, log_ns)
            if msg is None:
                if self.roles.inputs.get(conn.topic) == Input.LEFT_IMAGE:
                    self.left_images += 1
                    self.undecodable_left += 1
                    self.drop_log.append(
                        {
                            "stamp": None,
                            "reason": "undecodable",
                            "detail": f"{conn.topic} at bag time {format_stamp(log_ns)} does "
                            f"not decode as {conn.msgtype}",
                        }
                    )
            elif conn.topic in self.roles.inputs:
                self.offer(self.roles.inputs[conn.topic], msg, log_ns)
            else:
                self.add_ground_truth(self.roles.ground_truth[conn.topic], msg)
            self.process_pending()
        self.maybe_diagnostics(log_ns)

    def end_of_bag(self) -> None:
        """Images still waiting for partners when the bag ends are lost frames, as live."""
        self.classifier.count_resets = True
        self.sync.reset()

    def decode(self, reader: Any, conn: Any, raw: bytes, log_ns: int) -> Any:
        """The message, or None (counted) when it does not decode."""
        try:
            return reader.deserialize(raw, conn.msgtype)
        except Exception as exc:  # noqa: BLE001 - one undecodable message is skipped
            n = self.undecodable[conn.topic] = self.undecodable.get(conn.topic, 0) + 1
            if n <= UNDECODABLE_PRINTED:
                more = (
                    f" (further ones on {conn.topic} are only counted, in report.json)"
                    if n == UNDECODABLE_PRINTED
                    else ""
                )
                print(
                    f"replay: cannot decode a {conn.msgtype} on {conn.topic} at bag time "
                    f"{format_stamp(log_ns)}: {exc}{more}",
                    file=sys.stderr,
                )
            return None

    def offer(self, index: int, msg: Any, log_ns: int) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if self.stamps.jumped_back(stamp):
            why = self.stamps.jump_text(self.input_names[index], stamp)
            print(f"replay: {why} (bag loop?): resetting the synchroniser", file=sys.stderr)
            self.stamps.forget()
            self.sync.reset()
        if index == Input.LEFT_IMAGE:
            self.left_images += 1
            self._unfated[stamp] = self._unfated.get(stamp, 0) + 1
        self.classifier.seen_message(index, stamp)
        self._arrival_ns = log_ns
        self.sync.add(index, msg, stamp)

    def on_set(self, left: Any, right: Any, left_info: Any, right_info: Any) -> None:
        stamp = stamp_to_ns(left.header.stamp)
        stale = self.stamps.admit(stamp)
        if stale:
            self.drop_frame("stale_stamp", stamp, stale)
            return
        self._settle_left(stamp)
        self.paired += 1
        self.pending.append(((left, right, left_info, right_info), self._arrival_ns))

    def add_ground_truth(self, role: str, msg: Any) -> None:
        self.gt[role][stamp_to_ns(msg.header.stamp)] = msg

    def ready(self, stamp: int, log_ns: int, final: bool) -> bool:
        if final or self.now_ns - log_ns > GT_WAIT_NS:
            return True
        return all(stamp in self.gt[role] for role in self.gt_present)

    def process_pending(self, final: bool = False) -> None:
        while self.pending and not self.options.max_frames_reached(self.processed_or_failed):
            msgs, log_ns = self.pending[0]
            stamp = stamp_to_ns(msgs[0].header.stamp)
            if not self.ready(stamp, log_ns, final):
                return
            self.pending.popleft()
            self.process(msgs, log_ns)
        if final:
            self.unprocessed += len(self.pending)  # left over when --max-frames stopped us
            self.pending.clear()

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
        outcome = process_set(
            self.pipeline,
            self.settings,
            self.topics,
            *msgs,
            ROSBAGS_MESSAGES,
            extra_outputs=extra,
        )
        if outcome.failure is not None:
            self.drop_frame(outcome.failure[0], stamp, outcome.failure[1], paired=True)
            return
        assert self.writer is not None
        for topic, msg in outcome.messages.items():
            self.writer.write(self.out_topic(topic), msg, log_ns)
        t1 = time.perf_counter()
        result = outcome.result
        assert result is not None
        self.processed += 1
        self.processing_s += t1 - t0
        self.latency.add(result.timings_ms, (t1 - t0) * 1e3)
        frame: dict[str, Any] = {
            "stamp": format_stamp(stamp),
            "status": "ok",
            "latency_ms": frame_latencies(result.timings_ms, (t1 - t0) * 1e3),
        }
        truth, problem = decode_ground_truth(gt_disp_msg, gt_label_msg)
        try:
            if problem:
                raise ValueError(problem)
            frame["metrics"] = self.score(outcome, truth)
        except ValueError as exc:  # bad labels, or (MetricInputError) another size
            frame["metrics"] = {}
            frame["ground_truth_error"] = str(exc)
        self.per_frame.append(frame)
        if (self.processed - 1) in self.preview_plan:
            paths = save_previews(
                Path(self.options.out) / "previews",
                self.processed - 1,
                self.pipeline,
                outcome,
                truth,
            )
            frame["previews"] = paths
            self.previews.extend(paths)

    def score(self, outcome: FrameOutcome, truth: GroundTruth) -> dict:
        if truth.disparity is None and truth.labels is None:
            return {}
        result = outcome.result
        assert result is not None
        return self.scores.update(
            outcome.calib,
            result.disparity,
            result.labels,
            truth.disparity,
            truth.valid,
            truth.labels,
        )

    # -- diagnostics ---------------------------------------------------------------------------

    def counts(self) -> FrameCounts:
        """The node's frame counts (``frames_received``: left images read)."""
        return FrameCounts(
            received=self.left_images,
            sets=self.paired,
            published=self.processed,
            skipped_no_subscribers=0,
            drops=self.drops.counts,
        )

    def diagnostics(self, stamp_ns: int) -> Any:
        """The node's diagnostic_msgs/DiagnosticArray, as ``rosbags`` messages."""
        status = self.reporter.status(
            settings=self.settings,
            pipeline=self.pipeline,
            device=str(self.pipeline.device),
            sync=f"{self.settings.sync_description()} (stereo_semantic_ros.sync, replay)",
            summary="rosbag replay",
            counts=self.counts(),
            latency=self.latency.summary(),
            sync_stats=self.sync.stats,
        )
        types = messages.typestore().types
        key_value = types["diagnostic_msgs/msg/KeyValue"]
        diagnostic = types["diagnostic_msgs/msg/DiagnosticStatus"](
            level=status.level,
            name=f"{NODE_NAME}: stereo pipeline",
            message=status.message,
            hardware_id=str(self.pipeline.device),
            values=[key_value(key=k, value=v) for k, v in status.values],
        )
        return types[messages.DIAGNOSTIC_ARRAY](
            header=messages.header(stamp_ns, ""), status=[diagnostic]
        )

    def frame_totals(self) -> FrameTotals:
        """The fate of every frame read so far."""
        counts = self.drops.counts
        return FrameTotals(
            received=self.left_images,
            paired=self.paired,
            processed=self.processed,
            dropped={r: counts[r] for r in SYNC_REASONS},
            failed=self.failed,
            unprocessed_at_stop=self.unprocessed + len(self.pending),
            without_left_image=self.without_left_image,
            left_without_fate=self.left_without_fate,
        )

    def totals(self, wall_s: float) -> ReplayTotals:
        """Everything the report says about this run, as plain data."""
        return ReplayTotals(
            frames=self.frame_totals(),
            messages_read=dict(self.messages_read),
            undecodable=dict(self.undecodable),
            error=self.error,
            model=model_section(self.settings, self.pipeline),
            sync_stats=dict(self.sync.stats),
            input_names=self.input_names,
            ground_truth_roles=tuple(r for r in GT_ROLES if r in self.gt_present),
            written=dict(self.writer.counts) if self.writer else {},
            drops=list(self.drop_log),
            accuracy=self.scores.summary(),
            latency_ms=self.latency.summary(),
            processing_s=self.processing_s,
            wall_s=wall_s,
            previews=list(self.previews),
            per_frame=list(self.per_frame),
        )

    def maybe_diagnostics(self, log_ns: int, final: bool = False) -> None:
        """Every second of bag time (the node: every second), and once at the end."""
        if self.writer is None or self.writer.closed:
            return
        if self.last_diag_ns is None:
            self.last_diag_ns = log_ns
        if final or log_ns - self.last_diag_ns >= DIAGNOSTICS_PERIOD_NS:
            self.writer.write("/diagnostics", self.diagnostics(log_ns), log_ns)
            self.last_diag_ns = log_ns
