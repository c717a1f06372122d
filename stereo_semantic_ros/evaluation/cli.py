"""``stereo-semantic-eval``: our network (through the shared pipeline) and OpenCV StereoSGBM on
a data split; prints the headline (or two-view benchmark) table and writes ``metrics.json``
(full precision), ``metrics.md`` (figures rounded to 2 decimals) and one tiled PNG per pictured
sample; with ``--confidence-curve`` also the network's confidence-vs-error curve
(``confidence_curve.csv`` and ``.png``, :mod:`stereo_semantic_ros.evaluation.confidence`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from stereo_semantic_ros.checkpoint import CheckpointError
from stereo_semantic_ros.datasets.base import DatasetError
from stereo_semantic_ros.datasets.middlebury import is_builtin
from stereo_semantic_ros.datasets.registry import dataset_names, get_dataset_spec, open_dataset
from stereo_semantic_ros.evaluation.baselines import (
    SgbmBaseline,
    SgbmFilledBaseline,
    disparity_range_for,
)
from stereo_semantic_ros.evaluation.confidence import (
    ConfidenceCurve,
    choose_threshold,
    plot_curves,
    summary_table,
)
from stereo_semantic_ros.evaluation.predictors import PipelinePredictor, Predictor
from stereo_semantic_ros.evaluation.report import (
    benchmark_table,
    headline_table,
    jsonable,
    markdown_report,
)
from stereo_semantic_ros.evaluation.runner import evaluate, iterate_samples
from stereo_semantic_ros.labels import CITYSCAPES_19
from stereo_semantic_ros.metrics import DEPTH_CAP_M
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.ros.settings import NodeSettings

__all__ = ["DATASETS", "TWO_VIEW_DATASETS", "build_parser", "main"]

TWO_VIEW_DATASETS = dataset_names(evaluated=True, two_view=True)
"""Two-view benchmark layouts (:mod:`stereo_semantic_ros.datasets.middlebury`)."""
DATASETS = dataset_names(evaluated=True)
DEFAULT_WEIGHTS = Path("models/esp_joint_mixed.pt")


class _UsageError(ValueError):
    """Bad command-line input; reported in one line with exit code 2."""


def max_gt_disparity(dataset: Any, max_images: int | None = None) -> float:
    """Largest valid ground-truth disparity (px) over the first ``max_images`` samples;
    samples that fail to load are passed over (the evaluation reports them)."""
    top = 0.0
    for count, (_, sample, _) in enumerate(iterate_samples(dataset)):
        if max_images is not None and count >= max_images:
            break
        if sample is None or sample.disparity is None or sample.valid is None:
            continue
        if sample.valid.any():
            top = max(top, float(np.nanmax(sample.disparity[sample.valid])))
    return top


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights_info(path: Path, pipeline: StereoPipeline) -> dict[str, Any]:
    ckpt = pipeline.checkpoint
    info: dict[str, Any] = {
        "path": str(path),
        "resolved_path": str(path.resolve()),
        "sha256": _sha256(path),
        "size_bytes": path.stat().st_size,
    }
    if ckpt is not None:
        info.update(
            architecture=ckpt.architecture,
            hyper_parameters=ckpt.hyper_parameters,
            label_set=ckpt.label_set.name,
            provenance=ckpt.provenance,
            stored_metrics=ckpt.metrics,
        )
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stereo-semantic-eval",
        description="Evaluate the network (through the shared pipeline) and OpenCV StereoSGBM "
        "on a data split: disparity, depth and semantic metrics, a Markdown table and pictures.",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help=f"checkpoint of the network (default: the --params file's weights, else "
        f"{DEFAULT_WEIGHTS})",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="the node's parameter YAML (e.g. config/esp_joint.yaml): the network is built "
        "from its architecture, weights (relative to models/), device, precision, "
        "max_disparity and input_scale, as the node builds it; --weights, --device, "
        "--precision and --input-scale override it",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="data set root, e.g. data/synth_val (KITTI 2015 layout), a Middlebury/ETH3D "
        "folder, or builtin:motorcycle (Middlebury 2014 Motorcycle from scikit-image)",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="on-disk layout of --data (default: kitti2015, which the synthetic generator "
        "writes; middlebury for builtin: pairs)",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="kitti2015: training|testing; cityscapes: train|val|test; "
        "vkitti2, middlebury, eth3d: comma-separated scenes",
    )
    parser.add_argument(
        "--baseline",
        choices=("sgbm", "sgbm+fill", "none"),
        default=None,
        help="classical baseline rows: sgbm (StereoSGBM), sgbm+fill (StereoSGBM and "
        "StereoSGBM+fill, its holes filled along rows) or none (default: sgbm+fill for "
        "middlebury/eth3d, sgbm otherwise)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/eval"), help="output directory (default: out/eval)"
    )
    parser.add_argument(
        "--max-images", type=int, default=None, help="evaluate only the first N samples"
    )
    parser.add_argument(
        "--device", default=None, help="auto, cpu, cuda or cuda:N (default: --params', else auto)"
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16"),
        default=None,
        help="default: --params', else fp32 (half precisions fall back to fp32 on a CPU)",
    )
    parser.add_argument(
        "--input-scale",
        type=float,
        default=None,
        help="resize factor of the pair before the network (default: --params', else 1.0)",
    )
    parser.add_argument(
        "--num-pictures", type=int, default=4, help="tiled PNGs to write (default: 4)"
    )
    parser.add_argument(
        "--max-depth",
        type=float,
        default=DEPTH_CAP_M,
        help=f"depth metric cap in metres (default: {DEPTH_CAP_M:g})",
    )
    parser.add_argument(
        "--sgbm-disparity-range",
        type=int,
        default=None,
        help="SGBM search range (multiple of 16); default: the split's largest "
        "ground-truth disparity (and, for two-view data, ndisp - 1) rounded up to a multiple "
        "of 16 (found by a first pass over the split, which this option skips)",
    )
    parser.add_argument(
        "--confidence-curve",
        action="store_true",
        help="also measure the network's confidence against its error: for min_confidence "
        "0, 0.01, ..., 1 the density (%% of ground-truth pixels kept) and EPE / bad-1/2/3 of the "
        "kept pixels; writes confidence_curve.csv and confidence_curve.png",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``stereo-semantic-eval``; returns 0, or 2 for bad input (one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except _UsageError as exc:
        print(f"stereo-semantic-eval: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.max_images is not None and args.max_images < 1:
        raise _UsageError(f"--max-images must be >= 1, got {args.max_images}")
    builtin = is_builtin(args.data)
    if args.dataset is None:
        args.dataset = "middlebury" if builtin else "kitti2015"
    two_view = args.dataset in TWO_VIEW_DATASETS
    if args.baseline is None:
        args.baseline = "sgbm+fill" if two_view else "sgbm"
    if not builtin and not args.data.is_dir():
        raise _UsageError(f"data root {args.data} does not exist or is not a directory")
    try:
        dataset = open_dataset(args.dataset, args.data, args.split)
    except DatasetError as exc:  # DatasetUseError included
        raise _UsageError(str(exc)) from exc
    pipeline, weights_path = _build_pipeline(args)
    ours = PipelinePredictor(pipeline, confidence=args.confidence_curve)
    label_set = CITYSCAPES_19  # every loader yields Cityscapes-19 train ids
    if tuple(pipeline.label_set.names) != tuple(label_set.names):
        raise _UsageError(
            f"{weights_path} predicts label set {pipeline.label_set.name!r}, but the "
            f"{args.dataset} loader gives {label_set.name!r} train ids"
        )
    predictors: list[Predictor] = [ours]
    sgbm_range_source = None
    if args.baseline in ("sgbm", "sgbm+fill"):
        if args.sgbm_disparity_range is not None:
            sgbm_range, sgbm_range_source = args.sgbm_disparity_range, "--sgbm-disparity-range"
        else:
            top = max_gt_disparity(dataset, args.max_images)
            sgbm_range_source = f"largest ground-truth disparity of the split: {top:.2f} px"
            ndisp = max_ndisp(dataset, args.max_images) if two_view else 0
            if ndisp:
                sgbm_range_source += f"; largest ndisp of the split: {ndisp:g} px"
                top = max(top, float(ndisp) - 1.0)
            sgbm_range = disparity_range_for(top)
        try:
            sgbm = SgbmBaseline(disparity_range=sgbm_range)
        except ValueError as exc:
            raise _UsageError(str(exc)) from exc
        predictors.append(sgbm)
        if args.baseline == "sgbm+fill":
            predictors.append(SgbmFilledBaseline(sgbm))

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate(
        predictors,
        dataset,
        label_set=label_set,
        max_images=args.max_images,
        pictures_dir=out / "pictures",
        num_pictures=args.num_pictures,
        progress=not args.no_progress,
        max_depth=args.max_depth,
    )
    report["dataset"] = {
        "name": args.dataset,
        "root": str(args.data),
        "split": args.split or get_dataset_spec(args.dataset).eval_split or "all scenes",
        "size": len(dataset),
    }
    report["two_view"] = two_view
    report["weights"] = (
        _weights_info(weights_path, pipeline) if weights_path is not None else {"path": None}
    )
    report["network"] = {
        "max_disparity": pipeline.max_disparity,
        "input_scale": pipeline.input_scale,
        "params": None if args.params is None else str(args.params),
    }
    if sgbm_range_source is not None:
        for name in ("StereoSGBM", "StereoSGBM+fill"):
            if name in report["methods"]:
                report["methods"][name]["info"]["disparity_range_source"] = sgbm_range_source
    report["command"] = " ".join(["stereo-semantic-eval", *_argv_of(args)])
    curves = _confidence_curves(report, out, f"{args.data}: {weights_path or 'untrained'}")

    json_path = out / "metrics.json"
    md_path = out / "metrics.md"
    json_path.write_text(json.dumps(jsonable(report), indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown_report(report, title=f"Evaluation on {args.data}"))

    if two_view:
        print(benchmark_table(report))
    else:
        print(headline_table(report))
    print()
    print(f"evaluated {report['num_images']} images, skipped {report['num_skipped']}")
    for s in report["skipped"]:
        print(f"  skipped {s['name']}: {s['reason']}")
    print(f"metrics:  {json_path}")
    print(f"table:    {md_path}")
    for p in report["pictures"]:
        print(f"picture:  {p}")
    if curves:
        print()
        print(summary_table(curves, CURVE_TABLE_THRESHOLDS))
        print(f"curve:    {out / CURVE_CSV}, {out / CURVE_PNG}")
    return 0


CURVE_CSV, CURVE_PNG = "confidence_curve.csv", "confidence_curve.png"
CURVE_TABLE_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def _confidence_curves(report: dict[str, Any], out: Path, title: str) -> dict[str, Any]:
    """Writes the confidence curves of the report's methods (ours only) to ``out`` and puts
    their headline rows in the report instead of the accumulators; returns the curves."""
    curves: dict[str, ConfidenceCurve] = {}
    for name, method in report["methods"].items():
        curve = method.pop("confidence_curve", None)
        if curve is None:
            continue
        curves[name] = curve
        chosen = choose_threshold(curve, 90.0)
        method["confidence_curve"] = {
            "csv": str(out / CURVE_CSV),
            "png": str(out / CURVE_PNG),
            "rows": {f"{t:.2f}": curve.at(t) for t in (*CURVE_TABLE_THRESHOLDS, chosen)},
            "largest_threshold_with_density_90": chosen,
        }
    if not curves:
        return {}
    if len(curves) > 1:  # one network per run today; keep the file name for the one curve
        raise RuntimeError(f"one confidence curve per run, got {sorted(curves)}")
    ((name, curve),) = curves.items()
    curve.to_csv(out / CURVE_CSV)
    plot_curves(curves, out / CURVE_PNG, marks={name: choose_threshold(curve, 90.0)}, title=title)
    return curves


def _build_pipeline(args: argparse.Namespace) -> tuple[StereoPipeline, Path | None]:
    """The network as ``--params`` (the node's YAML) and the explicit options describe it."""
    if args.params is None:
        weights = args.weights if args.weights is not None else DEFAULT_WEIGHTS
        if not weights.is_file():
            raise _UsageError(
                f"weights file {weights} does not exist; pass --weights PATH to a checkpoint "
                "written by stereo-semantic-train"
            )
        try:
            pipeline = StereoPipeline.from_checkpoint(
                weights,
                device=args.device or "auto",
                precision=args.precision or "fp32",
                input_scale=1.0 if args.input_scale is None else args.input_scale,
            )
        except (CheckpointError, ValueError) as exc:
            raise _UsageError(str(exc)) from exc
        return pipeline, weights
    try:
        settings = NodeSettings.from_yaml(args.params)
        changes: dict[str, Any] = {}
        if args.weights is not None:
            changes["weights"] = str(args.weights.resolve())
        for key in ("device", "precision", "input_scale"):
            if getattr(args, key) is not None:
                changes[key] = getattr(args, key)
        settings = settings.updated(**changes)
        weights_path = settings.weights_path()
        if weights_path is not None and not weights_path.is_file():
            raise _UsageError(f"weights file {weights_path} (from {args.params}) does not exist")
        pipeline = settings.build_pipeline()
    except (CheckpointError, ValueError, OSError) as exc:
        raise _UsageError(f"{args.params}: {exc}") from exc
    return pipeline, weights_path


def max_ndisp(dataset: Any, max_images: int | None = None) -> float:
    """Largest ``ndisp`` (the benchmarks' stated disparity bound) of the first samples' meta;
    0 when none states one."""
    top = 0.0
    records = getattr(dataset, "records", None)
    if records is not None:
        for record in records[:max_images]:
            top = max(top, float(record.extra.get("ndisp", 0) or 0))
        if top or not hasattr(dataset, "pair"):
            return top
    for count, (_, sample, _) in enumerate(iterate_samples(dataset)):
        if max_images is not None and count >= max_images:
            break
        if sample is not None:
            top = max(top, float(sample.meta.get("ndisp", 0) or 0))
    return top


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The effective options, so the report says how to reproduce it."""
    parts = []
    for key, value in sorted(vars(args).items()):
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        parts += [flag] if value is True else [flag, str(value)]
    return parts


if __name__ == "__main__":
    sys.exit(main())
