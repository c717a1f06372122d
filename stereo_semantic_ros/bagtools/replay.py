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
summary table on stdout. Exit codes: 0 done; 2 the bag cannot be read (missing, corrupt,
truncated, empty, without the input topics), the output exists, or a setting is refused;
130 interrupted (the output bag is still closed properly and the report written).

Here are the command (:func:`main`) and :func:`run_replay`, which opens the bag, runs the loop
with its progress bar and Ctrl-C handling, and writes the results. The parts, beside it:

* :mod:`~stereo_semantic_ros.bagtools.replay_options`: :class:`ReplayOptions`, the node's
  settings from its parameter file, the command line;
* :mod:`~stereo_semantic_ros.bagtools.replay_input`: the input bag's topics checked, and its
  messages read in order up to any damage in the file;
* :mod:`~stereo_semantic_ros.bagtools.replay_run`: what happens to each message, step by step;
* :mod:`~stereo_semantic_ros.bagtools.replay_frame`: one synchronised set through the node
  worker's steps; which frames count as dropped and which as failed;
* :mod:`~stereo_semantic_ros.bagtools.report`: accuracy, latency, ``report.json`` and the
  summary table; :mod:`~stereo_semantic_ros.bagtools.previews`: the PNG previews.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stereo_semantic_ros.bagtools.bagio import (
    BagError,
    BagWriter,
    check_output_path,
    open_bag,
    storage_plugin,
)
from stereo_semantic_ros.bagtools.previews import preview_plan
from stereo_semantic_ros.bagtools.replay_input import check_input_topics, messages_until_damage
from stereo_semantic_ros.bagtools.replay_options import (
    ReplayOptions,
    build_parser,
    options_from_args,
    print_warnings,
)
from stereo_semantic_ros.bagtools.replay_run import ReplayRun
from stereo_semantic_ros.bagtools.report import replay_report, summary_table, write_report
from stereo_semantic_ros.pipeline import StereoPipeline
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
        available = check_input_topics(reader, options.topics, bag)
        out = check_output_path(options.out, options.overwrite)
        if pipeline is None:
            pipeline = build_pipeline(options.settings)
        out.mkdir(parents=True)
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
        state.writer = BagWriter(out / "bag", storage_plugin(options.storage))
        interrupted = False
        from tqdm import tqdm

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
        report = replay_report(options, state, available, time.perf_counter() - t_start)
        report["interrupted"] = interrupted
        write_report(out / "report.json", report)
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
        print(
            "\nreplay: Ctrl-C: stopping after the current frame (press again to stop at once)",
            file=sys.stderr,
        )

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: 0 done, 2 unusable bag / refused settings, 130 interrupted."""
    args = build_parser().parse_args(argv)
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
    return 2 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
