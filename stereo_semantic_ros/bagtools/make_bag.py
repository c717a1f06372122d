"""``stereo-semantic-make-bag``: stereo samples -> a rosbag2 the node (or replay) can play.

Each sample becomes one frame of six messages, all with the same header stamp
``start + i / rate`` (also the bag's receive time):

========================= =========================== =======================================
topic                     type                        contents
========================= =========================== =======================================
/left/image_rect          sensor_msgs/Image           rgb8, frame ``--frame-id``
/right/image_rect         sensor_msgs/Image           rgb8, frame ``--right-frame-id``
/left/camera_info         sensor_msgs/CameraInfo      K, R = I, P; plumb_bob, zero distortion
/right/camera_info        sensor_msgs/CameraInfo      as left, ``P[0,3] = -fx * B``
/ground_truth/disparity   stereo_msgs/DisparityImage  32FC1 px; invalid -1 (min_disparity 0)
/ground_truth/labels      sensor_msgs/Image           mono8 train ids, 255 = unknown
========================= =========================== =======================================

With ``--compressed jpeg|png`` the images go instead to ``/left/image_rect/compressed`` and
``/right/image_rect/compressed`` as sensor_msgs/CompressedImage, named and filled as
image_transport's ``compressed`` plugin publishes them (``format`` ``"rgb8; jpeg compressed
bgr8"``), like most recorded bags; ground-truth labels stay raw (mono8 must be exact).

Messages are serialised with ``rosbags`` (no ROS install needed); the metadata carries the
message definitions and RIHS01 type hashes that ``ros2 bag`` checks. Ground-truth topics are
only written for samples that have the ground truth.

The bag directory carries make-bag's marker ``.stereo_semantic_output`` (written before any
data; rosbag2 readers ignore it), so ``--overwrite`` replaces a bag make-bag wrote and nothing
else. Each frame is written through to the file as it is done and counted in ``progress.json``
(deleted at the end): a make-bag killed with SIGKILL leaves a bag that ``--repair DIR`` turns
into a readable one holding every whole frame (see :mod:`~stereo_semantic_ros.bagtools.bagio`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stereo_semantic_ros.bagtools import messages as M
from stereo_semantic_ros.bagtools.bagio import (
    MAKE_BAG_TOOL,
    PROGRESS,
    BagError,
    BagWriter,
    check_output_path,
    format_size,
    storage_plugin,
)
from stereo_semantic_ros.datasets.registry import dataset_names, open_dataset
from stereo_semantic_ros.datasets.sample import StereoSample

SOURCES = ("synthetic", *dataset_names(evaluated=True))
"""``synthetic``: scenes generated on the fly; the rest: the dataset table's evaluation rows."""
BUILTIN_MOTORCYCLE = "builtin:motorcycle"
DEFAULT_FRAME_ID = "left_camera_optical_frame"
DEFAULT_START_S = 1_700_000_000.0
"""Stamp of the first frame (2023-11-14T22:13:20Z): fixed, so the same command makes the same
bag; any value works with ``ros2 bag play --clock``."""

#: The topics make-bag writes, by role (replay's defaults).
TOPICS: dict[str, str] = {
    "left_image": "/left/image_rect",
    "right_image": "/right/image_rect",
    "left_info": "/left/camera_info",
    "right_info": "/right/camera_info",
    "gt_disparity": "/ground_truth/disparity",
    "gt_labels": "/ground_truth/labels",
}
COMPRESSED_SUFFIX = "/compressed"
"""image_transport's ``compressed`` transport publishes ``<image topic>/compressed``."""
COMPRESSED_FORMATS = ("jpeg", "png")
GT_MIN_DISPARITY = 0.0
GT_INVALID = -1.0
"""Ground-truth disparity of pixels without ground truth: below ``GT_MIN_DISPARITY``, as
DisparityImage consumers test it."""


class MakeBagError(ValueError):
    """Settings that cannot make a bag (bad size, rate, missing data root)."""


@dataclass
class BagSummary:
    """What :func:`write_bag` wrote."""

    path: Path
    storage: str
    frames: int = 0
    skipped: list[str] = field(default_factory=list)
    topic_counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    size_bytes: int = 0
    wall_s: float = 0.0
    width: int = 0
    height: int = 0
    compressed: str | None = None


def topic_for(role: str, compressed: str | None = None) -> str:
    """The topic make-bag writes ``role`` to: :data:`TOPICS`, with ``/compressed`` appended to
    the images when they are compressed."""
    topic = TOPICS[role]
    if compressed and role in ("left_image", "right_image"):
        return topic + COMPRESSED_SUFFIX
    return topic


def right_frame_for(frame_id: str) -> str:
    """``left_camera_optical_frame`` -> ``right_camera_optical_frame``; else ``<id>_right``."""
    return frame_id.replace("left", "right") if "left" in frame_id else f"{frame_id}_right"


def frame_messages(
    sample: StereoSample,
    stamp_ns: int,
    frame_id: str = DEFAULT_FRAME_ID,
    right_frame_id: str | None = None,
    compressed: str | None = None,
) -> dict[str, object]:
    """The ``rosbags`` messages of one frame, keyed by role (see :data:`TOPICS`).

    ``compressed``: None for rgb8 Images, ``jpeg`` or ``png`` for CompressedImages.
    """
    right_frame_id = right_frame_id or right_frame_for(frame_id)
    h_left = M.header(stamp_ns, frame_id)
    h_right = M.header(stamp_ns, right_frame_id)
    calib = sample.calib
    h, w = sample.size
    if (calib.width, calib.height) != (w, h):
        # the dataset readers fill the size; the CameraInfo must state the image's
        from dataclasses import replace

        calib = replace(calib, width=w, height=h)
    if compressed:
        left_msg = M.compressed_image_msg(sample.left, compressed, h_left)
        right_msg = M.compressed_image_msg(sample.right, compressed, h_right)
    else:
        left_msg = M.image_msg(sample.left, "rgb8", h_left)
        right_msg = M.image_msg(sample.right, "rgb8", h_right)
    msgs: dict[str, object] = {
        "left_image": left_msg,
        "right_image": right_msg,
        "left_info": M.camera_info_msg(calib, h_left, right=False),
        "right_info": M.camera_info_msg(calib, h_right, right=True),
    }
    if sample.disparity is not None:
        valid = sample.valid if sample.valid is not None else sample.disparity > 0
        gt = np.where(valid & np.isfinite(sample.disparity), sample.disparity, GT_INVALID)
        top = float(gt.max()) if gt.size and gt.max() > 0 else 1.0
        msgs["gt_disparity"] = M.disparity_msg(
            gt.astype(np.float32),
            h_left,
            calib,
            GT_MIN_DISPARITY,
            max_disparity=float(max(1.0, math.ceil(top))),
            delta_d=1.0 / 256.0,
        )
    if sample.labels is not None:
        msgs["gt_labels"] = M.image_msg(sample.labels.astype(np.uint8), "mono8", h_left)
    return msgs


def write_bag(
    samples: Iterator[StereoSample],
    out: str | Path,
    *,
    count: int,
    rate_hz: float = 10.0,
    storage: str = "mcap",
    frame_id: str = DEFAULT_FRAME_ID,
    right_frame_id: str | None = None,
    start_s: float = DEFAULT_START_S,
    overwrite: bool = False,
    progress: bool = True,
    bag_version: int = 9,
    compressed: str | None = None,
) -> BagSummary:
    """Write up to ``count`` samples as a rosbag2 directory at ``out``.

    ``compressed``: None writes rgb8 Images; ``jpeg`` or ``png`` writes CompressedImages on
    ``<image topic>/compressed`` instead (:func:`topic_for`).

    A sample that fails to load (the iterator yields None for it) is skipped and listed; its
    time slot stays empty so stamps still say ``start + i / rate``.

    Raises:
        MakeBagError: bad rate, count or frame id.
        BagError: ``out`` exists and ``overwrite`` is False.
    """
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise MakeBagError(f"--rate must be a positive number of Hz, got {rate_hz}")
    if count < 1:
        raise MakeBagError(f"--count must be >= 1, got {count}")
    if not frame_id or frame_id.startswith("/"):
        raise MakeBagError(f"--frame-id must be a non-empty tf frame without '/', got {frame_id!r}")
    if compressed is not None and compressed not in COMPRESSED_FORMATS:
        raise MakeBagError(
            f"--compressed must be one of {', '.join(COMPRESSED_FORMATS)}, got {compressed!r}"
        )
    out = check_output_path(out, overwrite, tool=MAKE_BAG_TOOL)
    summary = BagSummary(path=out, storage=storage, compressed=compressed)
    period_ns = round(1e9 / rate_hz)
    start_ns = round(start_s * 1e9)
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=count, unit="frame", desc="make-bag", disable=not progress, file=sys.stderr)
    writer = BagWriter(
        out,
        storage_plugin(storage),
        version=bag_version,
        owner=MAKE_BAG_TOOL,
        progress=out / PROGRESS,
    )
    writer.commit({"frames": {"written": 0, "skipped": 0}})
    try:
        for i, item in enumerate(samples):
            if i >= count:
                break
            bar.update(1)
            name, sample = item if isinstance(item, tuple) else (str(i), item)
            if sample is None:
                summary.skipped.append(name)
                continue
            stamp = start_ns + i * period_ns
            frame = frame_messages(sample, stamp, frame_id, right_frame_id, compressed)
            for role, msg in frame.items():
                writer.write(topic_for(role, compressed), msg, stamp)
            summary.frames += 1
            summary.height, summary.width = sample.size
            writer.commit({"frames": {"written": summary.frames, "skipped": len(summary.skipped)}})
    finally:
        bar.close()
        writer.close()
    (out / PROGRESS).unlink(missing_ok=True)  # finished: nothing for --repair to do
    summary.topic_counts = dict(writer.counts)
    summary.duration_s = (summary.frames - 1) / rate_hz if summary.frames > 1 else 0.0
    summary.size_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    summary.wall_s = time.perf_counter() - t0
    return summary


def synthetic_samples(
    width: int, height: int, seed: int = 0
) -> Iterator[tuple[str, StereoSample | None]]:
    """Synthetic street scenes ``seed, seed + 1, ...`` rendered at ``width`` x ``height``."""
    from stereo_semantic_ros.synth.generator import generate_sample

    i = seed
    while True:
        yield f"synth_{i:08d}", generate_sample(i, width, height)
        i += 1


def dataset_samples(
    source: str, root: Path, split: str | None, size: tuple[int, int] | None
) -> Iterator[tuple[str, StereoSample | None]]:
    """Samples of a dataset the loaders read, resized to ``size`` (W, H) when given.

    A sample that cannot be read yields ``(name, None)``: make-bag skips it and goes on.
    """
    from stereo_semantic_ros.augment import resize_sample

    dataset = open_dataset(source, root, split)
    for i in range(len(dataset)):
        name = dataset.records[i].name
        try:
            sample = dataset[i]
        except (ValueError, OSError) as exc:
            print(f"make-bag: skipping {name}: {exc}", file=sys.stderr)
            yield name, None
            continue
        if size is not None and (sample.size[1], sample.size[0]) != size:
            sample = resize_sample(sample, size[1], size[0])
        yield name, sample


def format_summary(summary: BagSummary) -> str:
    """Human-readable report of a written bag."""
    lines = [
        f"wrote {summary.path} ({summary.storage}, {format_size(summary.size_bytes)}) "
        f"in {summary.wall_s:.1f} s",
        f"  {summary.frames} frames of {summary.width}x{summary.height}"
        + (f" ({summary.compressed} compressed)" if summary.compressed else "")
        + f", {summary.duration_s:.2f} s of bag time",
    ]
    width = max((len(t) for t in summary.topic_counts), default=0)
    lines += [f"  {t:<{width}}  {n:5d} msgs" for t, n in summary.topic_counts.items()]
    if summary.skipped:
        lines.append(
            f"  skipped {len(summary.skipped)} unreadable sample(s): "
            + ", ".join(summary.skipped[:10])
        )
    lines.append(
        f"play it: ros2 bag play {summary.path} --clock   "
        f"replay it: stereo-semantic-replay {summary.path}"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stereo-semantic-make-bag",
        description="Write stereo samples (synthetic scenes or a dataset) as a rosbag2 with "
        "rectified images, camera infos and ground truth.",
    )
    p.add_argument("--out", type=Path, help="bag directory to create (required)")
    p.add_argument(
        "--source",
        choices=(*SOURCES, BUILTIN_MOTORCYCLE),
        default="synthetic",
        help="where the frames come from (default: synthetic); builtin:motorcycle is the "
        "Middlebury 2014 Motorcycle pair scikit-image ships (no --data, no download)",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="dataset root (for kitti2015, cityscapes, vkitti2, middlebury, eth3d); "
        "builtin:motorcycle also works here with --source middlebury",
    )
    p.add_argument(
        "--split",
        help="dataset split (kitti2015: training; cityscapes: val; "
        "vkitti2, middlebury, eth3d: comma-separated scenes)",
    )
    p.add_argument("--count", type=int, default=20, help="frames to write (default: 20)")
    p.add_argument(
        "--width",
        type=int,
        help="image width in pixels (synthetic default 512; "
        "datasets are resized only when --width and --height are given)",
    )
    p.add_argument("--height", type=int, help="image height in pixels (synthetic default 160)")
    p.add_argument("--seed", type=int, default=0, help="first synthetic scene seed (default: 0)")
    p.add_argument("--rate", type=float, default=10.0, help="frames per second (default: 10)")
    p.add_argument(
        "--start",
        type=float,
        default=DEFAULT_START_S,
        help=f"stamp of the first frame, seconds since the epoch (default: {DEFAULT_START_S:.0f})",
    )
    p.add_argument(
        "--storage",
        choices=("mcap", "sqlite3"),
        default="mcap",
        help="rosbag2 storage plugin (default: mcap)",
    )
    p.add_argument(
        "--bag-version",
        type=int,
        choices=(8, 9),
        default=9,
        help="rosbag2 metadata version: 9 for Jazzy and later (default), 8 for "
        "Humble/Iron's ros2 bag",
    )
    p.add_argument(
        "--frame-id",
        default=DEFAULT_FRAME_ID,
        help=f"tf frame of the left camera (default: {DEFAULT_FRAME_ID})",
    )
    p.add_argument(
        "--right-frame-id",
        help="tf frame of the right camera (default: the left one with 'left' replaced by 'right')",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out; only a bag make-bag wrote (marked by its "
        ".stereo_semantic_output file) is ever deleted",
    )
    p.add_argument(
        "--repair",
        type=Path,
        metavar="DIR",
        help="make the bag of a make-bag that was killed readable, keeping every whole frame",
    )
    p.add_argument(
        "--compressed",
        nargs="?",
        const="jpeg",
        choices=COMPRESSED_FORMATS,
        help="write the images as sensor_msgs/CompressedImage on <image topic>/compressed, as "
        "image_transport's compressed plugin does (jpeg when no format is given; png is "
        "lossless); default: raw rgb8 Images",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns 0 on success, 2 on bad input."""
    args = build_parser().parse_args(argv)
    if args.repair is not None:
        from stereo_semantic_ros.bagtools.recovery import repair_main

        return repair_main(args.repair, MAKE_BAG_TOOL)
    if args.out is None:
        print("stereo-semantic-make-bag: error: --out is required", file=sys.stderr)
        return 2
    try:
        if args.source == "synthetic":
            if args.data is not None:
                raise MakeBagError("--data is only for datasets; synthetic scenes need none")
            width = args.width or 512
            height = args.height or 160
            samples: Iterator = synthetic_samples(width, height, args.seed)
        else:
            if args.source == BUILTIN_MOTORCYCLE:
                if args.data is not None:
                    raise MakeBagError(f"--source {args.source} needs no --data")
                args.source, args.data = "middlebury", Path(BUILTIN_MOTORCYCLE)
            if args.data is None:
                raise MakeBagError(f"--source {args.source} needs --data ROOT (the dataset root)")
            if (args.width is None) != (args.height is None):
                raise MakeBagError("give both --width and --height to resize, or neither")
            size = (args.width, args.height) if args.width else None
            samples = dataset_samples(args.source, args.data, args.split, size)
        if args.width is not None and args.width < 8 or args.height is not None and args.height < 8:
            raise MakeBagError(f"image size must be at least 8x8, got {args.width}x{args.height}")
        summary = write_bag(
            samples,
            args.out,
            count=args.count,
            rate_hz=args.rate,
            storage=args.storage,
            frame_id=args.frame_id,
            right_frame_id=args.right_frame_id,
            start_s=args.start,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            bag_version=args.bag_version,
            compressed=args.compressed,
        )
    except (ValueError, BagError) as exc:
        print(f"stereo-semantic-make-bag: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0 if summary.frames else 2


if __name__ == "__main__":
    sys.exit(main())
