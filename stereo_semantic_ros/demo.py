"""``make demo`` / ``stereo-semantic-demo``: the whole rosbag path on a fresh machine, in minutes.

1. Unless ``--bag`` names one, write a small synthetic bag (``out/demo/bag``: rectified stereo
   pair, camera infos and ground truth) with ``stereo-semantic-make-bag``'s code, at the shipped
   model's training resolution.
2. Replay it with the shipped weights through the node's pipeline (``stereo-semantic-replay``'s
   code, the node's ``config/esp_joint.yaml``) into ``out/demo/replay``.
3. Print the summary table (accuracy against the ground truth, latency percentiles,
   throughput) and where the output bag, ``report.json`` and the PNG previews are.

No GPU and no ROS install are needed. If the shipped weights are missing the demo still runs,
with an untrained network and a loud warning (its accuracy is then meaningless).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stereo_semantic_ros.bagtools.bagio import BagError
from stereo_semantic_ros.bagtools.make_bag import (
    format_summary,
    synthetic_samples,
    write_bag,
)
from stereo_semantic_ros.checkpoint import load_checkpoint
from stereo_semantic_ros.replay.cli import run_replay
from stereo_semantic_ros.replay.options import (
    DEFAULT_WEIGHTS,
    ReplayOptions,
    default_params_file,
    load_settings,
    print_warnings,
)
from stereo_semantic_ros.replay.report import summary_table
from stereo_semantic_ros.resources import resolve_weights

DEFAULT_OUT = Path("out") / "demo"
DEFAULT_COUNT = 20
FALLBACK_SIZE = (384, 128)
"""(width, height) when the weights do not record their training size."""


def training_size(weights: Path | None) -> tuple[int, int]:
    """(width, height) of the images the weights were trained on, from the checkpoint's
    provenance (``data.image_size_hw``, else the training crop ``data.crop_hw``, both
    ``[H, W]``, as ``stereo-semantic-train`` records them); :data:`FALLBACK_SIZE` otherwise."""
    if weights is None or not weights.is_file():
        return FALLBACK_SIZE
    data = load_checkpoint(weights).provenance.get("data") or {}
    for key in ("image_size_hw", "crop_hw"):
        size = data.get(key) if isinstance(data, dict) else None
        if (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(v, int) and v >= 8 for v in size)
        ):
            return int(size[1]), int(size[0])
    return FALLBACK_SIZE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stereo-semantic-demo",
        description="Make a small synthetic rosbag, replay it with the shipped weights and print "
        "accuracy, latency and throughput (no GPU, no ROS install needed).",
    )
    p.add_argument("--bag", type=Path, help="replay this bag instead of making one")
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output directory (default: {DEFAULT_OUT}); replaced on each run",
    )
    p.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"frames in the synthetic bag (default: {DEFAULT_COUNT})",
    )
    p.add_argument(
        "--width", type=int, help="synthetic image width (default: the weights' training width)"
    )
    p.add_argument(
        "--height", type=int, help="synthetic image height (default: the weights' training height)"
    )
    p.add_argument(
        "--weights",
        default=None,
        help="checkpoint (default: the parameter file's weights, i.e. the shipped "
        f"models/{DEFAULT_WEIGHTS} for config/esp_joint.yaml); 'none' = untrained",
    )
    p.add_argument(
        "--params",
        type=Path,
        help="node parameter file (default: the package's config/esp_joint.yaml; "
        "config/corr_mtl.yaml runs the corr_mtl network with its shipped weights)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0, or 2 when the bag or a setting is unusable."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        params = args.params or default_params_file()
        settings, warnings = load_settings(params, weights=args.weights, device=args.device)
        print_warnings(warnings)
        out = Path(args.out)
        bag = args.bag
        if bag is None:
            width, height = training_size(resolve_weights(settings.weights))
            width, height = args.width or width, args.height or height
            print(
                f"demo: writing a {args.count}-frame synthetic bag at {width}x{height} ...",
                file=sys.stderr,
            )
            summary = write_bag(
                synthetic_samples(width, height),
                out / "bag",
                count=args.count,
                overwrite=True,
                progress=not args.no_progress,
            )
            print(format_summary(summary), file=sys.stderr)
            bag = summary.path
        options = ReplayOptions(
            bag=Path(bag),
            out=out / "replay",
            settings=settings,
            params_file=params,
            overwrite=True,
            progress=not args.no_progress,
            warnings=warnings,
        )
        report = run_replay(options)
    except KeyboardInterrupt:
        print("stereo-semantic-demo: interrupted", file=sys.stderr)
        return 130
    except (BagError, ValueError) as exc:
        print(f"stereo-semantic-demo: error: {exc}", file=sys.stderr)
        return 2
    print()
    print(summary_table(report))
    print()
    print(
        f"output bag: {report['output_bag']}  (ros2 bag play {report['output_bag']}, or open "
        "it in Foxglove)"
    )
    print(f"report:     {report['report']}")
    if report["previews"]:
        print(
            f"pictures:   {Path(report['previews'][0]).parent}/ "
            f"({len(report['previews'])} PNGs: left, disparity, semantic, ground truth)"
        )
    if report["warnings"]:
        print("WARNING: " + "; ".join(report["warnings"]))
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 2 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
