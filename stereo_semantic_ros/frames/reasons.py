"""Why a frame produced no output: the one vocabulary of the node, replay and their reports.

A *frame* is one left/right image pair with its camera_infos. Each reason belongs to one stage:

* ``sync``: lost before it formed a synchronised set (replay's "dropped");
* ``live``: only the live node loses frames this way (a busy worker, a synchroniser reset);
* ``set``: the set formed but could not be used (replay's "failed").

The synchroniser's own, per-message reasons are another vocabulary:
:data:`stereo_semantic_ros.sync.MESSAGE_DROP_REASONS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DropReason:
    """One reason a frame produced no output."""

    name: str
    stage: str
    """``sync``, ``live`` or ``set`` (see the module docstring)."""
    meaning: str
    error: bool = False
    """The network or its weights are broken, not the input: diagnostics ERROR."""


DROP_REASON_TABLE: tuple[DropReason, ...] = (
    DropReason(
        "no_partner", "sync", "one image of the pair never came (within queue_size / sync_slop)"
    ),
    DropReason(
        "no_camera_info", "sync", "both images came but a camera_info with their stamp did not"
    ),
    DropReason("bad_encoding", "set", "an image encoding the node cannot read"),
    DropReason("malformed_image", "set", "step / data length disagree with width and height"),
    DropReason(
        "size_mismatch", "set", "left and right images, or images and camera_info, differ in size"
    ),
    DropReason(
        "bad_calibration", "set", "camera_info unusable: zero baseline, no P matrix, sizes differ"
    ),
    DropReason("stale_stamp", "sync", "stamp not newer than the last processed frame"),
    DropReason("frame_id_mismatch", "set", "an image and its camera_info name different frames"),
    DropReason(
        "busy", "live", "replaced in the single-slot mailbox by a newer frame while inference ran"
    ),
    DropReason(
        "too_large", "set", "more network pixels than max_input_pixels (oversize_policy: drop)"
    ),
    DropReason(
        "non_finite_output",
        "set",
        "the network returned NaN/Inf: nothing of the frame is published",
        error=True,
    ),
    DropReason(
        "out_of_memory",
        "set",
        "torch ran out of memory on the frame (the CUDA cache was emptied)",
        error=True,
    ),
    DropReason(
        "input_reset",
        "live",
        "queued when the synchroniser was reset (time jump back, inputs unsubscribed)",
    ),
    DropReason("pipeline_error", "set", "the network or post-processing raised anything else"),
)

#: Every reason, in table order (the diagnostics' ``dropped_<reason>`` keys).
DROP_REASONS: tuple[str, ...] = tuple(r.name for r in DROP_REASON_TABLE)
#: Reasons that mean the network or its weights are broken, not the input: diagnostics ERROR.
ERROR_REASONS: tuple[str, ...] = tuple(r.name for r in DROP_REASON_TABLE if r.error)
#: Lost before a set formed (replay's "dropped").
SYNC_REASONS: tuple[str, ...] = tuple(r.name for r in DROP_REASON_TABLE if r.stage == "sync")
#: A set that could not be used (replay's "failed").
SET_REASONS: tuple[str, ...] = tuple(r.name for r in DROP_REASON_TABLE if r.stage == "set")
