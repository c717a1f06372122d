"""The ``/diagnostics`` status of the node (and of replay, which writes the same keys), as data.

The status is named after the node's fully qualified name (:func:`status_name`, as
diagnostic_updater does), so two cameras' nodes in two namespaces report apart.
:class:`DiagnosticsReporter` turns a run's counters into a level, a message and the key/value
list; the live node wraps it in diagnostic_msgs (rclpy), replay in ``rosbags`` messages. Keys:

* the model: device, precision, architecture, weights, label set, disparity range, input scale
  and bound, the synchroniser;
* what only the live node knows (``inputs_subscribed``, rates), passed in as ``live``;
* latencies (:data:`~stereo_semantic_ros.frames.stats.LATENCY_KEYS`, mean and p90);
* frame counts: ``frames_received == frames_published + dropped_total + skipped_no_subscribers +
  frames_in_flight``, ``dropped_<reason>`` for every reason, and the synchroniser's counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stereo_semantic_ros.frames.reasons import DROP_REASONS, ERROR_REASONS
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.ros.settings import NodeSettings, disparity_range

OK, WARN, ERROR = 0, 1, 2
"""diagnostic_msgs/DiagnosticStatus levels."""

STATUS_TASK = "stereo pipeline"
"""The part of the status name after the node's name."""


def status_name(node_name: str) -> str:
    """``"<fully qualified node name>: stereo pipeline"``, e.g. ``"/left_cam/stereo_semantic_node:
    stereo pipeline"``."""
    return f"{node_name}: {STATUS_TASK}"


def is_node_status(name: str, node_name: str) -> bool:
    """Whether a status ``name`` is the one of a node called ``node_name`` (without namespace),
    in any namespace (``/a/b/node: ...``) or none (replay's ``node: ...``)."""
    node, sep, task = name.partition(": ")
    return bool(sep) and task == STATUS_TASK and node.rsplit("/", 1)[-1] == node_name


#: latency key -> the diagnostics' key prefix
LATENCY_DIAGNOSTIC_KEYS = {
    "network": "inference_ms",
    "pipeline_total": "pipeline_ms",
    "end_to_end": "end_to_end_ms",
}


@dataclass(frozen=True)
class FrameCounts:
    """Every input frame once: received, and what became of it so far."""

    received: int
    sets: int
    published: int
    skipped_no_subscribers: int
    drops: Mapping[str, int]

    @property
    def dropped_total(self) -> int:
        return sum(self.drops.values())

    @property
    def in_flight(self) -> int:
        """Queued in the synchroniser, the mailbox or the worker (or, in replay, waiting)."""
        return self.received - self.published - self.skipped_no_subscribers - self.dropped_total


@dataclass(frozen=True)
class Status:
    """One diagnostic status as plain data."""

    level: int
    message: str
    values: list[tuple[str, str]]


def weights_text(settings: NodeSettings) -> str:
    return str(settings.weights_path() or "untrained (random weights)")


class DiagnosticsReporter:
    """Makes one status per period; problems are those new since the previous status."""

    def __init__(self) -> None:
        self._drops_reported = 0
        self._errors_reported = dict.fromkeys(ERROR_REASONS, 0)

    def status(
        self,
        *,
        settings: NodeSettings,
        pipeline: StereoPipeline,
        device: str,
        sync: str,
        summary: str,
        counts: FrameCounts,
        latency: Mapping[str, Mapping[str, float]],
        sync_stats: Mapping[str, int],
        live: Mapping[str, Any] | None = None,
    ) -> Status:
        """The status now.

        Args:
            device: the device as the node names it.
            sync: the synchroniser's description (settings and back end).
            summary: first part of the message (rates, idle, "rosbag replay").
            latency: ``{key: latency_summary}``
                (:meth:`~stereo_semantic_ros.frames.stats.Latencies.summary`).
            live: keys only the live node has, placed after ``sync``.
        """
        drops = counts.drops
        total = counts.dropped_total
        new_drops, self._drops_reported = total - self._drops_reported, total
        new_errors = {r: drops[r] - self._errors_reported[r] for r in ERROR_REASONS}
        self._errors_reported = {r: drops[r] for r in ERROR_REASONS}

        level, problems = OK, []
        if settings.weights_path() is None:
            level, problems = WARN, ["untrained weights"]
        if new_drops:
            level = WARN
            problems.append(f"{new_drops} frame(s) dropped in the last second")
        if new_errors["non_finite_output"]:
            level = ERROR
            problems.append(
                f"{new_errors['non_finite_output']} frame(s) with non-finite (NaN/Inf) network "
                "output, not published: check the weights and precision"
            )
        if new_errors["out_of_memory"]:
            level = ERROR
            problems.append(
                f"{new_errors['out_of_memory']} frame(s) ran out of memory: lower "
                "max_input_pixels or input_scale"
            )
        values: list[tuple[str, Any]] = [
            ("device", device),
            ("precision", pipeline.precision),
            ("requested_precision", pipeline.requested_precision),
            ("architecture", settings.architecture),
            ("weights", weights_text(settings)),
            ("label_set", pipeline.label_set.name),
            ("max_disparity_px", f"{disparity_range(pipeline):g}"),
            ("input_scale", f"{settings.input_scale:g}"),
            ("max_input_pixels", pipeline.input_bound.max_pixels),
            ("oversize_policy", pipeline.input_bound.policy),
            ("sync", sync),
            *(live or {}).items(),
        ]
        for key, prefix in LATENCY_DIAGNOSTIC_KEYS.items():
            values += [
                (f"{prefix}_mean", f"{latency[key]['mean']:.2f}"),
                (f"{prefix}_p90", f"{latency[key]['p90']:.2f}"),
            ]
        values += [
            ("latency_window_frames", latency["end_to_end"]["n"]),
            ("frames_received", counts.received),
            ("sets_synchronised", counts.sets),
            ("frames_published", counts.published),
            ("skipped_no_subscribers", counts.skipped_no_subscribers),
            ("dropped_total", total),
            ("frames_in_flight", counts.in_flight),
            *((f"dropped_{reason}", drops[reason]) for reason in DROP_REASONS),
            *((f"sync_{key}", n) for key, n in sync_stats.items()),
        ]
        return Status(level, "; ".join([summary, *problems]), [(k, str(v)) for k, v in values])
