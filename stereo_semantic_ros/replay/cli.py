"""``stereo-semantic-replay``: a recorded rosbag2 through the node's pipeline, into a new bag.

Each message, in the bag's receive-time order, is handled as the live node
(:mod:`stereo_semantic_ros.ros.node`) handles it, without a ROS graph: the node's synchroniser
and drop reasons, the node worker's checks and pipeline, the node's output messages. These are
written at the left image's receive time beside copies of the input and ground-truth topics
(and ``/tf``, ``/tf_static``), so RViz or Foxglove can show input and output side by side, with
a ``/diagnostics`` summary once per second of bag time. Where the bag has ``ground_truth/disparity``
(stereo_msgs/DisparityImage, pixels below its ``min_disparity`` invalid) and/or
``ground_truth/labels`` (mono8 train ids) with the left image's stamp, each processed frame is
scored.

Results: ``<OUT>/bag`` (the output bag), ``<OUT>/report.json``, ``<OUT>/previews/*.png`` and a
summary table on stdout. ``<OUT>`` carries the marker ``.stereo_semantic_output`` from its
creation on: ``--overwrite`` deletes nothing else (:func:`~stereo_semantic_ros.bagtools.bagio.
check_output_path`). While replay runs, ``<OUT>/progress.json`` says how far it got, updated
after each frame once that frame is in the bag file; a replay killed with SIGKILL leaves it, and
``--repair <OUT>`` (:mod:`~stereo_semantic_ros.bagtools.recovery`) then rebuilds a readable bag
of every frame finished before the kill and a report saying so.

Exit codes: 0 done; 2 the bag cannot be read (missing, corrupt, truncated, empty, without the
input topics; or damage found part-way, after which the output keeps everything before it), the
output is refused (exists, a symbolic link, the input bag, not ours to delete), or a setting is
refused; 3 (:data:`EXIT_NOTHING_PROCESSED`) not a single frame was processed; 4
(:data:`EXIT_STRICT_FAILED`) with ``--strict``, a frame failed; 130 interrupted (the output bag
is still closed properly and the report written).

Here are the command (:func:`main`) and :func:`run_replay`, which opens the bag, runs the loop
with its progress bar and Ctrl-C handling, and writes the results. The parts, beside it:

* :mod:`~stereo_semantic_ros.replay.options`: :class:`ReplayOptions`, the node's settings from
  its parameter file, the command line;
* :mod:`~stereo_semantic_ros.replay.bag_input`: the input bag's topics checked, and its
  messages read in order up to any damage in the file;
* :mod:`~stereo_semantic_ros.replay.loop`: what happens to each message, step by step, with the
  node's frame library (:mod:`stereo_semantic_ros.frames`);
* :mod:`~stereo_semantic_ros.replay.report`: ``report.json`` and the summary table, from the
  loop's plain :class:`~stereo_semantic_ros.replay.report.ReplayTotals`;
  :mod:`~stereo_semantic_ros.replay.scores`: accuracy against the bag's ground truth;
  :mod:`~stereo_semantic_ros.replay.previews`: the PNG previews.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stereo_semantic_ros.bagtools.bagio import (
    PROGRESS,
    REPLAY_TOOL,
    BagError,
    BagWriter,
    check_output_path,
    create_output_dir,
    open_bag,
    storage_plugin,
)
from stereo_semantic_ros.bagtools.recovery import repair_main
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.replay.bag_input import (
    check_input_topics,
    messages_until_damage,
    resolve_image_topics,
)
from stereo_semantic_ros.replay.loop import ReplayRun
from stereo_semantic_ros.replay.options import (
    EXIT_NOTHING_PROCESSED,
    EXIT_STRICT_FAILED,
    ReplayOptions,
    build_parser,
    options_from_args,
    print_warnings,
)
from stereo_semantic_ros.replay.previews import preview_plan
from stereo_semantic_ros.replay.report import (
    frames_section,
    messages_section,
    replay_report,
    summary_table,
    write_report,
)
from stereo_semantic_ros.ros.settings import NodeSettings


def build_pipeline(settings: NodeSettings) -> StereoPipeline:
    """The node's pipeline for ``settings`` (same weights, device, precision, input scale)."""
    return settings.build_pipeline()


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
        options.topics = resolve_image_topics(reader, options.topics)
        available = check_input_topics(reader, options.topics, bag)
        out = check_output_path(options.out, options.overwrite, tool=REPLAY_TOOL, inputs=[bag])
        if pipeline is None:
            pipeline = build_pipeline(options.settings)
        create_output_dir(out, REPLAY_TOOL)
        state = ReplayRun(options, pipeline)
        roles = state.roles
        state.gt_present = {
            role for topic, role in roles.ground_truth.items() if topic in available
        }
        copied = roles.copied()
        connections = [c for c in reader.connections if c.topic in copied]
        n_left = available[options.topics.left_image][1]
        n_plan = n_left if options.max_frames is None else min(n_left, options.max_frames)
        state.preview_plan = preview_plan(n_plan, options.previews)
        state.writer = BagWriter(
            out / "bag", storage_plugin(options.storage), progress=out / PROGRESS
        )

        def commit() -> None:
            assert state.writer is not None
            state.writer.commit(
                {
                    "input_bag": str(bag),
                    "frames": frames_section(state.frame_totals()),
                    "messages": messages_section(state.messages_read, state.undecodable),
                }
            )

        commit()
        committed_fates = 0
        interrupted = False
        completed = False
        bar = tqdm(
            total=n_plan, unit="frame", desc="replay", disable=not options.progress, file=sys.stderr
        )
        stop = _CtrlC()
        try:
            with stop:
                for conn, log_ns, raw in messages_until_damage(
                    reader, connections, state.bag_damaged
                ):
                    state.handle(reader, conn, log_ns, raw)
                    if state.handled != committed_fates:  # a frame finished: into the file
                        committed_fates = state.handled
                        commit()
                    bar.update(state.handled - bar.n)
                    bar.set_postfix(
                        ok=state.processed,
                        dropped=state.dropped_total,
                        failed=state.failed_total,
                        refresh=False,
                    )
                    if stop.requested or options.max_frames_reached(state.processed_or_failed):
                        break
                else:
                    state.end_of_bag()
                if not stop.requested:
                    state.process_pending(final=True)
                    bar.update(state.handled - bar.n)
                    completed = state.error is None
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread's handler
            interrupted = True
        finally:
            bar.close()
            interrupted = interrupted or stop.requested
            if interrupted:
                state.error = (
                    "interrupted (Ctrl-C); the output bag holds every frame finished before"
                )
            state.maybe_diagnostics(state.now_ns, final=True)
            state.writer.close()
        report = replay_report(options, state.totals(time.perf_counter() - t_start), available)
        report["interrupted"] = interrupted
        report["complete"] = completed and not interrupted
        report["exit_code"] = 130 if interrupted else exit_code(report, options.strict)
        write_report(out / "report.json", report)
        (out / PROGRESS).unlink(missing_ok=True)  # finished: nothing for --repair to do
        if interrupted:
            raise KeyboardInterrupt
        return report
    finally:
        reader.close()


def exit_code(report: dict[str, Any], strict: bool) -> int:
    """0, or the documented code of what went wrong (see the module docstring)."""
    frames = report["frames"]
    if report["error"]:
        return 2
    if frames["processed"] == 0:
        return EXIT_NOTHING_PROCESSED
    if strict and frames["failed_total"]:
        return EXIT_STRICT_FAILED
    return 0


def exit_message(report: dict[str, Any]) -> str | None:
    """The one-line error for a non-zero :func:`exit_code` (None for 0)."""
    frames = report["frames"]
    reasons = {
        **{f"dropped {k}": n for k, n in frames["dropped"].items() if n},
        **{f"failed {k}": n for k, n in frames["failed"].items() if n},
    }
    why = ", ".join(f"{k} {n}" for k, n in reasons.items()) or "no frame formed"
    code = report["exit_code"]
    if code == 2:
        return str(report["error"])
    if code == EXIT_NOTHING_PROCESSED:
        return (
            f"no frame was processed: {frames['received']} left images read ({why}); see "
            f"{report['report']}"
        )
    if code == EXIT_STRICT_FAILED:
        n = frames["failed_total"]
        failed = ", ".join(f"{k} {v}" for k, v in frames["failed"].items() if v)
        plural = "s" if n != 1 else ""
        return f"--strict: {n} frame{plural} failed ({failed}); see {report['report']}"
    return None


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
        print(
            "\nreplay: Ctrl-C: stopping after the current frame (press again to stop at once)",
            file=sys.stderr,
        )

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: 0 done, 2 unusable bag / refused output or settings, 3 nothing
    processed, 4 ``--strict`` and a frame failed, 130 interrupted."""
    args = build_parser().parse_args(argv)
    if args.repair is not None:
        return repair_main(args.repair, REPLAY_TOOL)
    try:
        options = options_from_args(args)
        print_warnings(options.warnings)
        report = run_replay(options)
    except KeyboardInterrupt:
        print(
            "stereo-semantic-replay: interrupted; the output bag was closed properly",
            file=sys.stderr,
        )
        return 130
    except (BagError, ValueError) as exc:
        print(f"stereo-semantic-replay: error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(report))
    print(f"\noutput bag: {report['output_bag']}\nreport:     {report['report']}")
    if report["previews"]:
        print(f"previews:   {Path(report['previews'][0]).parent}/")
    message = exit_message(report)
    if message:
        print(f"stereo-semantic-replay: error: {message}", file=sys.stderr)
    return report["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
