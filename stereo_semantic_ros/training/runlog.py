"""What a run writes beside its checkpoints: the per-step logs, the curves, the summary.

``log.csv`` and ``log.jsonl`` have one row per logged optimiser step (validation columns
filled every ``train.eval_every`` steps), ``curves.png`` plots them, ``summary.json`` sums the
run up at the end.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stereo_semantic_ros.losses import LossWeighting
from stereo_semantic_ros.training import FINAL, LAST, PROG
from stereo_semantic_ros.training.state import RunState
from stereo_semantic_ros.training.validation import VAL_KEYS


class RunLog:
    """Per-step CSV (fixed columns) and JSON-lines log; on resume, rows after the resumed
    step (written after the last checkpoint, before a kill) are dropped."""

    def __init__(self, out: Path, columns: Sequence[str], resume_step: int | None) -> None:
        self.csv_path = out / "log.csv"
        self.jsonl_path = out / "log.jsonl"
        self.columns = list(columns)
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.jsonl_path.is_file():
            for line in self.jsonl_path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    row = json.loads(line)
                    if int(row.get("step", 0)) <= resume_step:
                        self.rows.append(row)
        with open(self.csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, self.columns, extrasaction="ignore")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: _csv_value(row.get(k)) for k in self.columns})
        with open(self.jsonl_path, "w") as fh:
            for row in self.rows:
                fh.write(json.dumps(row) + "\n")
        self._csv = open(self.csv_path, "a", newline="")  # noqa: SIM115 (closed in close())
        self._writer = csv.DictWriter(self._csv, self.columns, extrasaction="ignore")
        self._jsonl = open(self.jsonl_path, "a")  # noqa: SIM115

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._writer.writerow({k: _csv_value(row.get(k)) for k in self.columns})
        self._jsonl.write(json.dumps(row) + "\n")
        self._csv.flush()
        self._jsonl.flush()

    def close(self) -> None:
        self._csv.close()
        self._jsonl.close()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def log_columns(
    tasks: Sequence[str], weighting: LossWeighting, with_val: bool, extra: Sequence[str] = ()
) -> list[str]:
    """The log's columns, in order: those of the tasks, ``extra`` (further losses), the
    weighting and the validation."""
    cols = ["step", "epoch", "session", "lr", "loss"]
    cols += [f"loss_{t}" for t in tasks] + list(extra) + [f"weight_{t}" for t in tasks]
    if weighting.kind == "uncertainty":
        cols += [f"log_var_{t}" for t in tasks]
    if weighting.kind == "gradnorm":
        cols += [f"gradnorm_{t}" for t in tasks]
    cols += ["grad_norm", "step_s", "images_per_s", "elapsed_s"]
    if with_val:
        cols += list(VAL_KEYS)
    return cols


def plot_run_curves(out: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Plot the logged ``rows`` to ``out/curves.png``, one panel per kind of column."""
    from stereo_semantic_ros.visualize import plot_curves

    present = {c for r in rows for c, v in r.items() if isinstance(v, (int, float))}
    groups = {
        "loss": [c for c in columns if c.startswith("loss")],
        "task weights": [c for c in columns if c.startswith("weight_")],
        "learning rate": ["lr"],
        "validation disparity error (px)": [c for c in ("val/epe_all", "val/epe_noc")],
        "validation bad-3 (%)": ["val/bad3_all"],
        "validation mIoU (%)": ["val/miou"],
    }
    groups = {k: [c for c in v if c in present] for k, v in groups.items()}
    groups = {k: v for k, v in groups.items() if v}
    keep = {"step", *[c for v in groups.values() for c in v]}
    records = [{k: r.get(k) for k in keep} for r in rows]
    try:
        plot_curves(records, out / "curves.png", x="step", groups=groups, title=out.name)
    except ValueError as exc:  # e.g. nothing numeric yet; the curves are a convenience
        print(f"{PROG}: warning: no training curves: {exc}", file=sys.stderr)


def write_summary(
    out: Path,
    state: RunState,
    rows: Sequence[Mapping[str, Any]],
    *,
    elapsed_s: float,
    session_s: float,
    device: str,
    world_size: int,
    machine: Mapping[str, Any],
    skipped_nonfinite: int,
) -> dict[str, Any]:
    """Write ``out/summary.json`` at the end of a run, say so on stderr, and return it.

    ``elapsed_s`` is the wall time of all sessions, ``session_s`` that of this one.
    """
    losses = [r["loss"] for r in rows[-50:] if isinstance(r.get("loss"), float)]
    summary: dict[str, Any] = {
        "steps": state.step,
        "sessions": state.sessions + 1,
        "wall_time_s": round(elapsed_s, 1),
        "wall_time_this_session_s": round(session_s, 1),
        "device": device,
        "world_size": world_size,
        "machine": machine,
        "train_loss_last50": float(np.mean(losses)) if losses else None,
        "skipped_nonfinite_steps": skipped_nonfinite,
        "validation": state.last_val,
        "best_validation": state.best,
        "final": str(out / FINAL),
        "last": str(out / LAST),
        "curves": str(out / "curves.png"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    loss = summary["train_loss_last50"]
    print(
        f"{PROG}: done: {state.step} steps in {elapsed_s / 60:.1f} min "
        f"({summary['sessions']} session(s)); training loss "
        + (f"{loss:.3g}" if loss is not None else "n/a")
        + " (the weighted sum of the task losses, mean of the last 50 steps; the progress bar "
        "shows single steps); "
        + (
            "validation "
            + ", ".join(f"{k} {v:.3f}" for k, v in state.last_val.items())
            + "; best "
            + ", ".join(f"{k} {v:.3f}" for k, v in state.best.items())
            if state.last_val
            else "no validation split"
        )
        + f"\n  weights     {out / FINAL}"
        + f"\n  resumable   {out / LAST}"
        + f"\n  curves      {out / 'curves.png'}"
        + f"\n  logs        {out / 'log.csv'}, {out / 'log.jsonl'}"
        + f"\n  summary     {out / 'summary.json'}",
        file=sys.stderr,
    )
    return summary
