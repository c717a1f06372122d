"""The paper's task ablation, small scale: joint vs disparity-only vs segmentation-only.

``stereo-semantic-ablation`` trains the same recipe three times, changing only
``train.tasks`` -- same data, augmentation, seed, batch, step budget and schedule -- then
evaluates each result on the same held-out split with ``stereo-semantic-eval`` (the shared
pipeline, so the figures are what the node would publish) and writes:

* ``<out>/<variant>/``: each run directory (``last.pt``, ``final.pt``, logs, curves) and its
  evaluation in ``<out>/<variant>/eval/`` (``metrics.json``, ``metrics.md``);
* ``<out>/ablation.md`` and ``ablation.json``: one row per variant (parameters, training
  time, disparity and segmentation figures);
* ``<out>/ablation.png``: each task's training loss, joint next to single-task.

Every run resumes from its ``last.pt`` (``--resume auto`` of the trainer), so a killed
ablation continues where it stopped and a finished one is only re-evaluated.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stereo_semantic_ros import evaluate
from stereo_semantic_ros.checkpoint import CheckpointError, load_checkpoint
from stereo_semantic_ros.networks.blocks import count_parameters
from stereo_semantic_ros.train import train
from stereo_semantic_ros.training import FINAL
from stereo_semantic_ros.training.config import ConfigError, load_config

PROG = "stereo-semantic-ablation"
# variant name -> train.tasks; the order is the table's
VARIANTS: dict[str, tuple[str, ...]] = {
    "joint": ("disparity", "segmentation"),
    "disparity-only": ("disparity",),
    "segmentation-only": ("segmentation",),
}
# per-step losses are noisy at batch 2; the figure shows their running mean
SMOOTH_STEPS = 25


class AblationError(ValueError):
    """Bad arguments or a failed training/evaluation; the message says which and why."""


def run_ablation(
    config: Path,
    test_data: Path,
    out: Path,
    *,
    overrides: Sequence[str] = (),
    steps: int | None = None,
    max_images: int | None = None,
    dataset: str = "kitti2015",
    device: str = "auto",
    progress: bool = True,
    command: Sequence[str] = (),
) -> dict[str, Any]:
    """Train and evaluate every variant; returns the report also written to ``ablation.json``.

    Args:
        config: the training recipe shared by all variants.
        test_data: root of the held-out split, in ``dataset``'s on-disk layout.
        overrides: ``SECTION.KEY=VALUE`` config overrides applied to every variant.
        steps: step budget of every variant (``train.steps``), or the recipe's.
        max_images: evaluate only the first N samples of ``test_data``.
    """
    if not test_data.is_dir():
        raise AblationError(f"test data {test_data} does not exist or is not a directory")
    rows: list[dict[str, Any]] = []
    for name, tasks in VARIANTS.items():
        extra = [*overrides, f"train.tasks=[{','.join(tasks)}]"]
        if "segmentation" not in tasks:
            extra.append("loss.seg_warp=0")  # the corr_mtl warp method is a segmentation loss
        if steps is not None:
            extra.append(f"train.steps={int(steps)}")
        try:
            cfg = load_config(config, extra)
        except ConfigError as exc:
            raise AblationError(str(exc)) from exc
        run_dir = out / name
        print(f"{PROG}: {name}: training {cfg.train.steps} steps in {run_dir}", file=sys.stderr)
        summary = train(cfg, run_dir, resume="auto", command=command, progress=progress)
        metrics = _evaluate(
            run_dir / FINAL, test_data, run_dir / "eval", dataset, max_images, device, progress
        )
        rows.append(_row(name, tasks, run_dir, summary, metrics))
    report = {
        "config": str(config),
        "test_data": str(test_data),
        "variants": rows,
        "command": list(command),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(report, indent=2))
    (out / "ablation.md").write_text(markdown_table(rows) + "\n")
    plot_losses(out, [r["name"] for r in rows])
    return report


def _evaluate(
    weights: Path,
    data: Path,
    out: Path,
    dataset: str,
    max_images: int | None,
    device: str,
    progress: bool,
) -> dict[str, Any]:
    # through the evaluation CLI itself, so the table is exactly what stereo-semantic-eval prints
    argv = ["--weights", str(weights), "--data", str(data), "--dataset", dataset]
    argv += ["--out", str(out), "--baseline", "none", "--num-pictures", "0", "--device", device]
    if max_images is not None:
        argv += ["--max-images", str(max_images)]
    if not progress:
        argv.append("--no-progress")
    if evaluate.main(argv) != 0:
        raise AblationError(f"evaluating {weights} failed (see the message above)")
    return json.loads((out / "metrics.json").read_text())["methods"]["ours"]


def _row(
    name: str,
    tasks: Sequence[str],
    run_dir: Path,
    summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    try:
        model = load_checkpoint(run_dir / FINAL).build_model()
    except CheckpointError as exc:
        raise AblationError(str(exc)) from exc
    disp = metrics.get("disparity") or {}
    seg = metrics.get("segmentation") or {}
    return {
        "name": name,
        "tasks": list(tasks),
        "parameters": count_parameters(model),
        "steps": summary["steps"],
        "train_minutes": summary["wall_time_s"] / 60.0,
        "epe_noc": disp.get("noc", {}).get("epe"),
        "bad3_noc": disp.get("noc", {}).get("bad3"),
        "epe_all": disp.get("all", {}).get("epe"),
        "bad3_all": disp.get("all", {}).get("bad3"),
        "miou": _percent(seg.get("miou")),
        "global_accuracy": _percent(seg.get("global_accuracy")),
        "class_accuracy": _percent(seg.get("class_accuracy")),
        "ms_per_image": metrics["runtime_ms"]["mean"],
        "run": str(run_dir),
    }


def _percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


COLUMNS = (
    ("parameters", "params", "{:,}"),
    ("steps", "steps", "{}"),
    ("train_minutes", "train min", "{:.1f}"),
    ("epe_noc", "EPE NOC", "{:.2f}"),
    ("bad3_noc", "bad-3 NOC", "{:.2f}"),
    ("epe_all", "EPE All", "{:.2f}"),
    ("bad3_all", "bad-3 All", "{:.2f}"),
    ("miou", "mIoU", "{:.2f}"),
    ("global_accuracy", "G", "{:.2f}"),
    ("class_accuracy", "C", "{:.2f}"),
    ("ms_per_image", "ms/img", "{:.0f}"),
)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One Markdown row per variant; ``-`` where the variant has no such output."""
    lines = ["| variant | " + " | ".join(title for _, title, _ in COLUMNS) + " |"]
    lines.append("|" + "---|" * (len(COLUMNS) + 1))
    for row in rows:
        cells = ["-" if row[key] is None else fmt.format(row[key]) for key, _, fmt in COLUMNS]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_losses(out: Path, names: Sequence[str]) -> Path | None:
    """``out/ablation.png``: each task's training loss (running mean), one line per variant."""
    from stereo_semantic_ros.visualize import VisualizationError, plot_curves

    by_step: dict[int, dict[str, float]] = {}
    groups: dict[str, list[str]] = {}
    for name in names:
        rows = _read_log(out / name / "log.jsonl")
        for task in ("disparity", "segmentation"):
            key = f"loss_{task}"
            logged = [(int(r["step"]), float(r[key])) for r in rows if _is_number(r.get(key))]
            if not logged:
                continue
            steps, values = zip(*logged, strict=True)
            # the legend names the variant; the panel title names the task
            column = f"{name} ({task})"
            title = f"{task} loss ({SMOOTH_STEPS}-step mean)"
            groups.setdefault(title, []).append(column)
            for step, value in zip(steps, running_mean(values, SMOOTH_STEPS), strict=True):
                by_step.setdefault(step, {})[column] = value
    if not by_step:
        print(f"{PROG}: warning: no training logs to plot", file=sys.stderr)
        return None
    records = [{"step": s, **v} for s, v in sorted(by_step.items())]
    try:
        return plot_curves(records, out / "ablation.png", groups=groups, title="task ablation")
    except VisualizationError as exc:
        print(f"{PROG}: warning: no ablation figure: {exc}", file=sys.stderr)
        return None


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of each value and up to ``window - 1`` values before it."""
    sums = np.concatenate([[0.0], np.cumsum(np.asarray(values, dtype=np.float64))])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    return ((sums[end] - sums[start]) / (end - start)).tolist()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train one recipe as joint, disparity-only and segmentation-only networks "
        "(same data and budget), evaluate each on a held-out split and tabulate.",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML training recipe")
    parser.add_argument(
        "--test-data", type=Path, required=True, help="held-out split (KITTI 2015 layout)"
    )
    parser.add_argument(
        "--dataset",
        choices=("kitti2015", "cityscapes", "vkitti2"),
        default="kitti2015",
        help="on-disk layout of --test-data (default: kitti2015, which the generator writes)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"), help="output directory")
    parser.add_argument("--steps", type=int, default=None, help="step budget of every variant")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override for every variant, e.g. --set train.milestones=[0.667,0.833]",
    )
    parser.add_argument("--max-images", type=int, default=None, help="evaluate N test samples")
    parser.add_argument("--device", default="auto", help="evaluation device: auto, cpu, cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``stereo-semantic-ablation``; returns 0, or 2 for bad input (one line on stderr)."""
    args = build_parser().parse_args(argv)
    command = [PROG, *(sys.argv[1:] if argv is None else argv)]
    try:
        report = run_ablation(
            args.config,
            args.test_data,
            args.out,
            overrides=args.set,
            steps=args.steps,
            max_images=args.max_images,
            dataset=args.dataset,
            device=args.device,
            progress=not args.no_progress,
            command=command,
        )
    except ValueError as exc:  # AblationError, ConfigError, CheckpointError, DatasetError
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(report["variants"]))
    print(f"table:  {args.out / 'ablation.md'}\nfigure: {args.out / 'ablation.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
