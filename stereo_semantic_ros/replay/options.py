"""What one replay is told: the bag's topic names, :class:`ReplayOptions`, and where they come from.

From code, build :class:`ReplayOptions` with settings from :func:`load_settings` (the node's
parameter file through the node's own reader and checks, so a file the node refuses is refused
here too). From the command line, :func:`build_parser` and :func:`options_from_args` do the same
for ``stereo-semantic-replay``. A weights file that cannot be found is an error naming every
place tried; only an explicit ``--untrained`` (``--weights none``, ``weights: ''``) runs the
untrained network, with a warning :func:`print_warnings` prints loudly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stereo_semantic_ros.bagtools.bagio import normalize_topic
from stereo_semantic_ros.bagtools.make_bag import TOPICS as BAG_TOPICS
from stereo_semantic_ros.resources import ResourceError
from stereo_semantic_ros.resources import default_params_file as _package_params_file
from stereo_semantic_ros.ros.settings import NodeSettings, read_parameter_file

INPUT_ROLES = ("left_image", "right_image", "left_info", "right_info")
EXIT_NOTHING_PROCESSED = 3
"""Exit code of a replay that processed no frame at all (e.g. no image decoded)."""
EXIT_STRICT_FAILED = 4
"""Exit code of a ``--strict`` replay in which a frame failed."""
GT_ROLES = ("gt_disparity", "gt_labels")
IMAGE_TRANSPORTS = ("auto", "raw", "compressed")
"""How replay reads the image topics: ``raw`` sensor_msgs/Image on the named topic,
``compressed`` sensor_msgs/CompressedImage on ``<topic>/compressed`` (image_transport's name),
``auto`` (default) the named topic whatever it holds of the two, else ``<topic>/compressed``."""
DEFAULT_WEIGHTS = "esp_joint_mixed.pt"
"""The shipped weights (in the package's models/), used by the demo."""


class ReplayError(ValueError):
    """Replay settings that cannot work (topics absent from the bag, bad options)."""


@dataclass(frozen=True)
class ReplayTopics:
    """Topic names in the input bag (fully qualified; relative names get a leading '/').

    ``left_image`` / ``right_image`` name the image topics as the node's remappings do (the raw
    topic, ``/left/image_rect``); with ``image_transport`` ``compressed`` (or ``auto`` and no
    raw topic in the bag) replay reads ``<topic>/compressed``:
    :func:`~stereo_semantic_ros.replay.bag_input.resolve_image_topics` gives the topics read.
    """

    left_image: str = BAG_TOPICS["left_image"]
    right_image: str = BAG_TOPICS["right_image"]
    left_info: str = BAG_TOPICS["left_info"]
    right_info: str = BAG_TOPICS["right_info"]
    gt_disparity: str = BAG_TOPICS["gt_disparity"]
    gt_labels: str = BAG_TOPICS["gt_labels"]
    image_transport: str = "auto"

    def __post_init__(self) -> None:
        for role in INPUT_ROLES + GT_ROLES:
            object.__setattr__(self, role, normalize_topic(getattr(self, role)))
        if self.image_transport not in IMAGE_TRANSPORTS:
            raise ReplayError(
                f"image transport must be one of {', '.join(IMAGE_TRANSPORTS)}, got "
                f"{self.image_transport!r}"
            )

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
    strict: bool = False
    previews: int = 3
    progress: bool = True
    warnings: list[str] = field(default_factory=list)

    def max_frames_reached(self, handled: int) -> bool:
        """Whether ``handled`` synchronised frames (processed or failed) reach ``max_frames``."""
        return self.max_frames is not None and handled >= self.max_frames


# ------------------------------------------------------------------------------------- settings


def default_params_file() -> Path:
    """The package's config/esp_joint.yaml (wherever it is installed: resources.py).

    Raises:
        ReplayError: the package's config/ is nowhere (a broken install).
    """
    try:
        return _package_params_file()
    except ResourceError as exc:
        raise ReplayError(f"{exc}; or pass --params") from None


def load_settings(
    params_file: Path | None,
    *,
    weights: str | None = None,
    device: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[NodeSettings, list[str]]:
    """The node's settings from its parameter file, with command-line overrides.

    ``weights``: ``none``/``untrained``/``''`` ask for the untrained network (returned with a
    warning to print loudly); anything else must exist (the node's rule: a relative path in the
    current directory, then in the package's models/).

    Raises:
        SettingsError: unreadable file, a refused value, or weights that are nowhere.
    """
    values = read_parameter_file(params_file) if params_file is not None else {}
    values.update(overrides or {})
    if weights is not None:
        values["weights"] = "" if weights.lower() in ("", "none", "untrained") else weights
    if device is not None:
        values["device"] = device
    warnings: list[str] = []
    settings = NodeSettings.from_parameters(values)
    if settings.weights_path() is None:
        warnings.append(
            "running an UNTRAINED network with random weights, as asked (weights ''); outputs "
            "and accuracy are MEANINGLESS (set 'weights' in the parameter file or pass --weights)"
        )
    return settings, warnings


def print_warnings(warnings: list[str]) -> None:
    """Each warning between bars of '!' on stderr, so it is not lost in the progress output."""
    for text in warnings:
        bar = "!" * 78
        print(f"{bar}\nWARNING: {text}\n{bar}", file=sys.stderr)


# ------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    """The ``stereo-semantic-replay`` command line."""
    d = ReplayTopics()
    p = argparse.ArgumentParser(
        prog="stereo-semantic-replay",
        description="Replay a rosbag2 (mcap or sqlite3) through the node's pipeline: writes a "
        "bag with every output topic, report.json and PNG previews, and prints accuracy "
        "(where the bag has ground truth), latency and throughput.",
    )
    p.add_argument("bag", type=Path, nargs="?", help="rosbag2 directory, or a .mcap / .db3 file")
    p.add_argument(
        "--params",
        type=Path,
        default=None,
        help="the node's ROS 2 parameter file (default: the package's config/esp_joint.yaml)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: out/replay/<bag name>)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out; only an output of stereo-semantic-replay (marked by "
        "its .stereo_semantic_output file) is ever deleted",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help=f"exit with {EXIT_STRICT_FAILED} when any frame failed (bad encoding, size, "
        "calibration, undecodable bytes, pipeline error), not only when none was processed",
    )
    p.add_argument(
        "--repair",
        type=Path,
        metavar="DIR",
        help="make an unfinished output (a replay or make-bag that was killed) readable: "
        "rebuild its bag from every frame finished before the kill and write its report; "
        "no BAG needed",
    )
    p.add_argument(
        "--weights",
        help="checkpoint, overrides the parameter file (a relative path: in the current "
        "directory, then in the package's models/; a missing file is an error)",
    )
    p.add_argument(
        "--untrained",
        action="store_true",
        help="run the UNTRAINED network (random weights; plumbing checks only)",
    )
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N, overrides the parameter file")
    p.add_argument(
        "--storage",
        choices=("mcap", "sqlite3"),
        default="mcap",
        help="storage of the output bag (default: mcap; any input storage is read)",
    )
    p.add_argument(
        "--namespace",
        default="",
        help="namespace of the output topics, as the "
        "node's launch file argument (default: none, i.e. /disparity, /points2, ...)",
    )
    p.add_argument("--max-frames", type=int, help="stop after this many synchronised frames")
    p.add_argument(
        "--previews",
        type=int,
        default=3,
        help="frames to save as PNG previews, spread over the bag (default: 3)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--image-transport",
        choices=IMAGE_TRANSPORTS,
        default="auto",
        help="raw: sensor_msgs/Image on --left-image/--right-image; compressed: "
        "sensor_msgs/CompressedImage (JPEG/PNG) on <topic>/compressed, as image_transport names "
        "it; auto (default): the named topic if the bag has it (Image or CompressedImage), else "
        "<topic>/compressed",
    )
    for role, flag in (
        ("left_image", "--left-image"),
        ("right_image", "--right-image"),
        ("left_info", "--left-info"),
        ("right_info", "--right-info"),
        ("gt_disparity", "--gt-disparity"),
        ("gt_labels", "--gt-labels"),
    ):
        p.add_argument(
            flag,
            dest=role,
            default=getattr(d, role),
            help=f"topic in the bag (default: {getattr(d, role)})",
        )
    return p


def options_from_args(args: argparse.Namespace) -> ReplayOptions:
    """Parsed arguments -> :class:`ReplayOptions` (settings loaded and validated)."""
    if args.bag is None:
        raise ReplayError("give the BAG to replay (or --repair DIR)")
    if args.max_frames is not None and args.max_frames < 1:
        raise ReplayError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.previews < 0:
        raise ReplayError(f"--previews must be >= 0, got {args.previews}")
    params = args.params if args.params is not None else default_params_file()
    if args.untrained and args.weights is not None:
        raise ReplayError("give --weights or --untrained, not both")
    weights = "" if args.untrained else args.weights
    settings, warnings = load_settings(params, weights=weights, device=args.device)
    out = (
        args.out
        if args.out is not None
        else Path("out")
        / "replay"
        / (args.bag.stem if args.bag.suffix in (".mcap", ".db3") else args.bag.name)
    )
    topics = ReplayTopics(
        **{role: getattr(args, role) for role in INPUT_ROLES + GT_ROLES},
        image_transport=args.image_transport,
    )
    return ReplayOptions(
        bag=args.bag,
        out=out,
        settings=settings,
        params_file=params,
        topics=topics,
        storage=args.storage,
        namespace=args.namespace,
        max_frames=args.max_frames,
        overwrite=args.overwrite,
        strict=args.strict,
        previews=args.previews,
        progress=not args.no_progress,
        warnings=warnings,
    )
