"""Confidence against error: what ``min_confidence`` keeps and what the kept pixels are worth.

For each threshold t of :data:`THRESHOLDS` (0.00, 0.01, ..., 1.00), a :class:`ConfidenceCurve`
accumulates over frames, on the pixels with ground-truth disparity (All):

* ``density``: % of them whose prediction the node keeps at ``min_confidence = t`` (a finite
  disparity > 0 with confidence >= t, the pipeline's own test, in float32 as it compares);
* ``epe``, ``bad1``, ``bad2``, ``bad3``: end-point error (px) and % of kept pixels with an error
  above 1, 2, 3 px, on the kept pixels only (a dropped pixel is not an error here; ``density``
  says what it costs).

``stereo-semantic-eval --confidence-curve`` writes one curve per split
(``confidence_curve.csv``, ``.png``); ``python -m stereo_semantic_ros.evaluation.confidence
A.csv B.csv --min-density 90`` pools the pixel counts of several splits and applies
:func:`choose_threshold`, the rule the parameter files' ``min_confidence`` comes from.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["THRESHOLDS", "ConfidenceCurve", "choose_threshold", "main", "plot_curves"]

THRESHOLDS = np.round(np.arange(101) / 100.0, 2)
"""min_confidence values the curve is measured at: 0 to 1 in steps of 0.01."""
# float32, as the pipeline compares ``conf >= min_confidence`` on float32 tensors
_THRESHOLDS_F32 = THRESHOLDS.astype(np.float32)
_COUNTS = ("pixels", "kept", "sum_abs_error", "bad1", "bad2", "bad3")
_COLUMNS = ("threshold", *_COUNTS, "density", "epe", "bad1_pct", "bad2_pct", "bad3_pct")


class ConfidenceCurve:
    """Pixel counts per confidence threshold, summed over frames (and mergeable over splits)."""

    def __init__(self) -> None:
        n = len(THRESHOLDS)
        self.pixels = 0  # pixels with ground truth, whatever the prediction
        # per bin k: pixels with a prediction whose confidence lies in [t_k, t_k+1)
        self._n = np.zeros(n, np.int64)
        self._err = np.zeros(n, np.float64)
        self._bad = np.zeros((3, n), np.int64)

    def update(
        self,
        disparity: np.ndarray,
        confidence: np.ndarray,
        truth: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """Add one frame.

        Args:
            disparity: (H, W) predicted px, unmasked (``min_confidence`` 0); non-finite or <= 0
                = no prediction.
            confidence: (H, W) the pipeline's stereo confidence in [0, 1].
            truth: (H, W) ground-truth disparity, px.
            valid: (H, W) bool, pixels with ground truth.
        """
        disparity = np.asarray(disparity, np.float32)
        confidence = np.asarray(confidence, np.float32)
        truth = np.asarray(truth, np.float32)
        valid = np.asarray(valid, bool)
        if not disparity.shape == confidence.shape == truth.shape == valid.shape:
            raise ValueError(
                f"disparity {disparity.shape}, confidence {confidence.shape}, truth "
                f"{truth.shape} and valid {valid.shape} must have one shape"
            )
        self.pixels += int(valid.sum())
        with np.errstate(invalid="ignore"):
            answered = valid & np.isfinite(disparity) & (disparity > 0)
        conf = confidence[answered]
        if not np.isfinite(conf).all():
            raise ValueError("confidence has non-finite values where disparity is predicted")
        # bin k holds t_k <= conf < t_k+1 (k = number of thresholds <= conf, minus one)
        bins = np.searchsorted(_THRESHOLDS_F32, conf, side="right") - 1
        bins = np.clip(bins, 0, len(THRESHOLDS) - 1)
        err = np.abs(disparity[answered].astype(np.float64) - truth[answered])
        n = len(THRESHOLDS)
        self._n += np.bincount(bins, minlength=n)
        self._err += np.bincount(bins, weights=err, minlength=n)
        for i, px in enumerate((1.0, 2.0, 3.0)):
            self._bad[i] += np.bincount(bins, weights=err > px, minlength=n).astype(np.int64)

    def merge(self, other: ConfidenceCurve) -> ConfidenceCurve:
        """A new curve with the pixels of both (pixel-weighted pooling of splits)."""
        out = ConfidenceCurve()
        out.pixels = self.pixels + other.pixels
        out._n = self._n + other._n
        out._err = self._err + other._err
        out._bad = self._bad + other._bad
        return out

    def rows(self) -> list[dict[str, float]]:
        """One row per threshold: the counts (kept pixels and their error sums) and the
        figures (``density`` %, ``epe`` px, ``bad1_pct`` ... %; NaN where nothing is kept)."""
        # kept at t_k: every bin >= k (reverse cumulative sums)
        kept = self._n[::-1].cumsum()[::-1]
        err = self._err[::-1].cumsum()[::-1]
        bad = self._bad[:, ::-1].cumsum(axis=1)[:, ::-1]
        rows = []
        for k, t in enumerate(THRESHOLDS):
            n = int(kept[k])
            rows.append(
                {
                    "threshold": float(t),
                    "pixels": self.pixels,
                    "kept": n,
                    "sum_abs_error": float(err[k]),
                    "bad1": int(bad[0, k]),
                    "bad2": int(bad[1, k]),
                    "bad3": int(bad[2, k]),
                    "density": 100.0 * n / self.pixels if self.pixels else float("nan"),
                    "epe": float(err[k]) / n if n else float("nan"),
                    "bad1_pct": 100.0 * float(bad[0, k]) / n if n else float("nan"),
                    "bad2_pct": 100.0 * float(bad[1, k]) / n if n else float("nan"),
                    "bad3_pct": 100.0 * float(bad[2, k]) / n if n else float("nan"),
                }
            )
        return rows

    def at(self, threshold: float) -> dict[str, float]:
        """The row of one threshold of :data:`THRESHOLDS`."""
        k = int(np.argmin(np.abs(THRESHOLDS - threshold)))
        if abs(THRESHOLDS[k] - threshold) > 1e-9:
            raise ValueError(f"threshold {threshold} is not one of 0, 0.01, ..., 1")
        return self.rows()[k]

    # -- files

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=_COLUMNS)
            writer.writeheader()
            for row in self.rows():
                writer.writerow(
                    {k: f"{v:.10g}" if isinstance(v, float) else v for k, v in row.items()}
                )
        return path

    @classmethod
    def from_csv(cls, path: str | Path) -> ConfidenceCurve:
        """A curve from :meth:`to_csv`'s file (the counts; the figures are recomputed)."""
        path = Path(path)
        try:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise ValueError(f"cannot read confidence curve {path}: {exc}") from None
        got = [float(r.get("threshold", "nan")) for r in rows]
        if len(rows) != len(THRESHOLDS) or not np.allclose(got, THRESHOLDS):
            raise ValueError(
                f"{path} is not a confidence_curve.csv of stereo-semantic-eval "
                f"--confidence-curve (thresholds 0, 0.01, ..., 1 expected)"
            )
        curve = cls()
        curve.pixels = int(rows[0]["pixels"])

        def per_bin(cumulative: np.ndarray) -> np.ndarray:
            return cumulative - np.append(cumulative[1:], 0)

        curve._n = per_bin(np.array([int(r["kept"]) for r in rows], np.int64))
        curve._err = per_bin(np.array([float(r["sum_abs_error"]) for r in rows]))
        curve._bad = np.stack(
            [per_bin(np.array([int(r[f"bad{i}"]) for r in rows], np.int64)) for i in (1, 2, 3)]
        )
        return curve


def choose_threshold(curve: ConfidenceCurve, min_density: float = 90.0) -> float:
    """The largest threshold whose density is still >= ``min_density`` % (0 if none is).

    The rule behind the parameter files' ``min_confidence``: keep at least that share of the
    pixels with ground truth, and drop the least confident of the rest.
    """
    if not 0.0 < min_density <= 100.0:
        raise ValueError(f"min_density must be a percentage in (0, 100], got {min_density}")
    ok = [r["threshold"] for r in curve.rows() if r["density"] >= min_density]
    return max(ok) if ok else 0.0


def plot_curves(
    curves: Mapping[str, ConfidenceCurve],
    path: str | Path,
    marks: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Two panels: bad-2 of the kept pixels against density, and density / bad-2 against the
    threshold; ``marks`` ({curve name: threshold}) are drawn as points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    right_bad = right.twinx()
    for i, (name, curve) in enumerate(curves.items()):
        rows = curve.rows()
        color = f"C{i}"
        t = np.array([r["threshold"] for r in rows])
        density = np.array([r["density"] for r in rows])
        bad2 = np.array([r["bad2_pct"] for r in rows])
        left.plot(density, bad2, color=color, label=name)
        right.plot(t, density, color=color, label=f"{name} density")
        right_bad.plot(t, bad2, color=color, linestyle="--")
        if marks and name in marks:
            row = curve.at(marks[name])
            left.plot(row["density"], row["bad2_pct"], "o", color=color)
            left.annotate(
                f"t={row['threshold']:.2f}",
                (row["density"], row["bad2_pct"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
    left.set_xlabel("density: % of ground-truth pixels kept")
    left.set_ylabel("bad-2 of the kept pixels (%)")
    left.invert_xaxis()  # from everything kept (left) to only the most confident (right)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.set_xlabel("min_confidence")
    right.set_ylabel("density (%), solid")
    right_bad.set_ylabel("bad-2 of the kept pixels (%), dashed")
    right.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def summary_table(curves: Mapping[str, ConfidenceCurve], thresholds: Sequence[float]) -> str:
    """Markdown: density, EPE and bad-2 of each curve at ``thresholds``."""
    lines = [
        "| min_confidence | "
        + " | ".join(f"{name} density % | {name} EPE | {name} bad-2 %" for name in curves)
        + " |"
    ]
    lines.append("|" + "---|" * (1 + 3 * len(curves)))
    for t in thresholds:
        cells = [f"{t:.2f}"]
        for curve in curves.values():
            row = curve.at(t)
            cells += [f"{row['density']:.2f}", f"{row['epe']:.2f}", f"{row['bad2_pct']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Pool confidence curves of several splits and choose ``min_confidence``."""
    parser = argparse.ArgumentParser(
        prog="python -m stereo_semantic_ros.evaluation.confidence",
        description="Pool the confidence_curve.csv files of stereo-semantic-eval "
        "--confidence-curve (pixel-weighted) and choose min_confidence: the largest threshold "
        "that keeps at least --min-density %% of the ground-truth pixels.",
    )
    parser.add_argument("curves", nargs="+", type=Path, help="confidence_curve.csv files")
    parser.add_argument(
        "--extra",
        nargs="*",
        type=Path,
        default=[],
        help="curves shown in the table and the plot but not pooled (held-out test data)",
    )
    parser.add_argument("--min-density", type=float, default=90.0, help="percent (default 90)")
    parser.add_argument("--out", type=Path, default=None, help="pooled CSV + PNG to write here")
    parser.add_argument(
        "--show", default="0,0.1,0.2,0.3,0.4,0.5", help="thresholds of the printed table"
    )
    args = parser.parse_args(argv)
    try:
        # named by their folder (out/eval_street/confidence_curve.csv -> eval_street) if unique
        files = [*args.curves, *args.extra]
        names = [p.parent.name or str(p) for p in files]
        if len(set(names)) < len(names):
            names = [str(p) for p in files]
        loaded = {n: ConfidenceCurve.from_csv(p) for n, p in zip(names, files, strict=True)}
        pooled = ConfidenceCurve()
        for name in names[: len(args.curves)]:
            pooled = pooled.merge(loaded[name])
        chosen = choose_threshold(pooled, args.min_density)
        show = sorted({*(float(t) for t in args.show.split(",")), chosen})
        shown = {**loaded, "pooled": pooled}
        table = summary_table(shown, show)
    except ValueError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    row = pooled.at(chosen)
    base = pooled.at(0.0)
    print(
        f"\nmin_confidence {chosen:.2f}: the largest threshold keeping >= {args.min_density:g} % "
        f"of the pooled ground-truth pixels: density {row['density']:.2f} %, bad-2 "
        f"{row['bad2_pct']:.2f} % (at 0: {base['bad2_pct']:.2f} %), EPE {row['epe']:.3f} px "
        f"(at 0: {base['epe']:.3f})"
    )
    if args.out is not None:
        pooled.to_csv(args.out / "confidence_curve_pooled.csv")
        png = plot_curves(
            shown,
            args.out / "confidence_curve_pooled.png",
            marks={"pooled": chosen},
        )
        print(f"wrote {args.out / 'confidence_curve_pooled.csv'} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
