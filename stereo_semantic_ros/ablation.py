"""Small-scale ablations: the paper's task ablation, or one recipe setting varied.

``stereo-semantic-ablation`` trains the same recipe three times, changing only
``train.tasks`` (joint vs disparity-only vs segmentation-only) -- same data, augmentation,
seed, batch, step budget and schedule -- or, with ``--vary SECTION.KEY=V1,V2,...``, once per
value of that one setting (e.g. ``model.matching_cost=concat,census``), or, with
``--variant NAME:KEY=V[;KEY=V...]`` (repeated), once per named set of settings (a paper's
ablation that switches several losses at once), then evaluates each
result on the same held-out split with ``stereo-semantic-eval`` (the shared pipeline, so the
figures are what the node would publish) and, with ``--real-data`` (e.g.
``builtin:motorcycle``), on a real pair too (dense EPE and bad-2: whether an option transfers
to a real camera; never tune on it), and writes:

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

from stereo_semantic_ros.checkpoint import CheckpointError, load_checkpoint
from stereo_semantic_ros.datasets.registry import dataset_names
from stereo_semantic_ros.evaluation import cli as evaluate_cli
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


def task_variants() -> list[tuple[str, list[str]]]:
    """The paper's task ablation: (variant name, its config overrides)."""
    variants = []
    for name, tasks in VARIANTS.items():
        extra = [f"train.tasks=[{','.join(tasks)}]"]
        if "segmentation" not in tasks:
            extra.append("loss.seg_warp=0")  # the corr_mtl warp method is a segmentation loss
        variants.append((name, extra))
    return variants


def setting_variants(vary: str) -> list[tuple[str, list[str]]]:
    """``SECTION.KEY=V1,V2,...`` -> one variant per value, named ``KEY=V``."""
    key, sep, values = vary.partition("=")
    choices = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or "." not in key or len(choices) < 2:
        raise AblationError(
            f"--vary needs SECTION.KEY=VALUE1,VALUE2[,...] with at least two values, got {vary!r}"
        )
    short = key.rsplit(".", 1)[1]
    return [(f"{short}={v}", [f"{key}={v}"]) for v in choices]


def named_variants(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``NAME:SECTION.KEY=V[;...]`` each -> (name, overrides); ``NAME:`` is the recipe as is."""
    variants: list[tuple[str, list[str]]] = []
    for spec in specs:
        name, sep, rest = spec.partition(":")
        name = name.strip()
        overrides = [o.strip() for o in rest.split(";") if o.strip()]
        if not sep or not name or "/" in name or any("=" not in o for o in overrides):
            raise AblationError(
                f"--variant needs NAME:SECTION.KEY=VALUE[;SECTION.KEY=VALUE...] (NAME: alone is "
                f"the recipe as it is), got {spec!r}"
            )
        if name in (n for n, _ in variants):
            raise AblationError(
                f"--variant {name!r} is given twice; each variant needs its own name"
            )
        variants.append((name, overrides))
    return variants


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
    variants: Sequence[tuple[str, Sequence[str]]] | None = None,
    real_data: str | None = None,
    real_dataset: str = "middlebury",
) -> dict[str, Any]:
    """Train and evaluate every variant; returns the report also written to ``ablation.json``.

    Args:
        config: the training recipe shared by all variants.
        test_data: root of the held-out split, in ``dataset``'s on-disk layout.
        overrides: ``SECTION.KEY=VALUE`` config overrides applied to every variant.
        steps: step budget of every variant (``train.steps``), or the recipe's.
        max_images: evaluate only the first N samples of ``test_data``.
        variants: (name, overrides) of each variant; default the task ablation.
        real_data: a real pair (``builtin:motorcycle``) or a folder in ``real_dataset``'s
            layout (middlebury, eth3d) each variant is also evaluated on.
    """
    if not test_data.is_dir():
        raise AblationError(f"test data {test_data} does not exist or is not a directory")
    rows: list[dict[str, Any]] = []
    for name, variant in variants if variants is not None else task_variants():
        extra = [*overrides, *variant]
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
        row = _row(name, cfg.train.tasks, run_dir, summary, metrics)
        row["overrides"] = list(variant)
        if real_data is not None:
            real = _evaluate(
                run_dir / FINAL,
                real_data,
                run_dir / "eval_real",
                real_dataset,
                None,
                device,
                progress,
            )
            dense = (real.get("benchmark") or {}).get("all", {}).get("dense", {})
            row["real_epe"], row["real_bad2"] = dense.get("epe"), dense.get("bad2")
        rows.append(row)
    report = {
        "config": str(config),
        "test_data": str(test_data),
        "real_data": real_data,
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
    data: Path | str,
    out: Path,
    dataset: str | None,
    max_images: int | None,
    device: str,
    progress: bool,
) -> dict[str, Any]:
    # through the evaluation CLI itself, so the table is exactly what stereo-semantic-eval prints
    argv = ["--weights", str(weights), "--data", str(data)]
    if dataset is not None:
        argv += ["--dataset", dataset]
    argv += ["--out", str(out), "--baseline", "none", "--num-pictures", "0", "--device", device]
    if max_images is not None:
        argv += ["--max-images", str(max_images)]
    if not progress:
        argv.append("--no-progress")
    if evaluate_cli.main(argv) != 0:
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
REAL_COLUMNS = (("real_epe", "real EPE", "{:.2f}"), ("real_bad2", "real bad-2", "{:.2f}"))


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One Markdown row per variant; ``-`` where the variant has no such output."""
    columns = COLUMNS + (REAL_COLUMNS if any("real_epe" in r for r in rows) else ())
    lines = ["| variant | " + " | ".join(title for _, title, _ in columns) + " |"]
    lines.append("|" + "---|" * (len(columns) + 1))
    for row in rows:
        cells = ["-" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in columns]
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
        return plot_curves(records, out / "ablation.png", groups=groups, title=title_of(names))
    except VisualizationError as exc:
        print(f"{PROG}: warning: no ablation figure: {exc}", file=sys.stderr)
        return None


def title_of(names: Sequence[str]) -> str:
    """The figure's title: the task ablation by its name, any other by its variants."""
    if list(names) == list(VARIANTS):
        return "task ablation"
    return "ablation: " + ", ".join(names)


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
        "(or once per value of one --vary setting; same data and budget), evaluate each on a "
        "held-out split (and a real pair) and tabulate.",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML training recipe")
    parser.add_argument(
        "--test-data", type=Path, required=True, help="held-out split (KITTI 2015 layout)"
    )
    parser.add_argument(
        "--dataset",
        choices=dataset_names(evaluated=True, two_view=False),
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
    parser.add_argument(
        "--vary",
        default=None,
        metavar="SECTION.KEY=V1,V2,...",
        help="one variant per value of this setting instead of the task ablation, e.g. "
        "--vary model.matching_cost=concat,census",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:SECTION.KEY=V[;SECTION.KEY=V...]",
        help="a named variant with its settings (repeat for each; 'NAME:' alone is the recipe "
        "as it is), instead of the task ablation, e.g. --variant "
        "'no-confidence:loss.cross_view.confidence=false'",
    )
    parser.add_argument(
        "--real-data",
        default=None,
        help="also evaluate each variant on a real pair (builtin:motorcycle, or a Middlebury "
        "folder); test data only, never for tuning",
    )
    parser.add_argument(
        "--real-dataset",
        choices=dataset_names(evaluated=True, two_view=True),
        default="middlebury",
        help="on-disk layout of a --real-data folder (default: middlebury)",
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
        if args.vary and args.variant:
            raise AblationError("give either --vary or --variant, not both")
        if args.vary:
            variants = setting_variants(args.vary)
        elif args.variant:
            variants = named_variants(args.variant)
        else:
            variants = None
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
            variants=variants,
            real_data=args.real_data,
            real_dataset=args.real_dataset,
        )
    except ValueError as exc:  # AblationError, ConfigError, CheckpointError, DatasetError
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(report["variants"]))
    print(f"table:  {args.out / 'ablation.md'}\nfigure: {args.out / 'ablation.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
