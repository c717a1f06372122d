"""Images for people: coloured disparity, label overlays, error maps, grids and training curves.

Everything returns (H, W, 3) uint8 **RGB** (the package's image convention); only
:func:`save_png` converts to OpenCV's BGR, at the file boundary. The per-frame functions
(:func:`colorize_disparity`, :func:`colorize_labels`) are lookup-table based so the live node can
call them on every frame; matplotlib is imported only by :func:`plot_curves`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "KITTI_ERROR_COLORS",
    "VisualizationError",
    "colorize_disparity",
    "colorize_error",
    "colorize_labels",
    "disparity_lut",
    "plot_curves",
    "save_png",
    "tile",
]


class VisualizationError(ValueError):
    """An input that cannot be drawn (wrong shape, dtype or parameter)."""


# --------------------------------------------------------------------------------------------
# Colour lookup tables
# --------------------------------------------------------------------------------------------

_LEVELS = 256  # colour levels of a disparity LUT; index _LEVELS is the black "invalid" entry


def _turbo_lut() -> np.ndarray:
    grey = np.arange(_LEVELS, dtype=np.uint8).reshape(-1, 1)
    bgr = cv2.applyColorMap(grey, cv2.COLORMAP_TURBO).reshape(_LEVELS, 3)
    return bgr[:, ::-1]


def _kitti_lut() -> np.ndarray:
    # The KITTI devkit's disp_to_color map: (r, g, b) knots and the width of the segment that
    # starts at each knot, black -> blue -> red -> magenta -> green -> cyan -> yellow -> white.
    knots = np.array(
        [
            [0, 0, 0, 114],
            [0, 0, 1, 185],
            [1, 0, 0, 114],
            [1, 0, 1, 174],
            [0, 1, 0, 114],
            [0, 1, 1, 185],
            [1, 1, 0, 114],
            [1, 1, 1, 0],
        ],
        dtype=np.float64,
    )
    widths = knots[:-1, 3] / knots[:-1, 3].sum()
    starts = np.concatenate([[0.0], np.cumsum(widths)])
    val = np.arange(_LEVELS) / (_LEVELS - 1)
    seg = np.clip(np.searchsorted(starts, val, side="right") - 1, 0, len(widths) - 1)
    t = ((val - starts[seg]) / widths[seg])[:, None]
    rgb = (1.0 - t) * knots[seg, :3] + t * knots[seg + 1, :3]
    return np.clip(rgb * 255.0, 0, 255).astype(np.uint8)


_DISPARITY_LUTS: dict[str, np.ndarray] = {}


def disparity_lut(cmap: str = "turbo") -> np.ndarray:
    """(257, 3) uint8 RGB table used by :func:`colorize_disparity`.

    Rows 0..255 run from the smallest to the largest disparity; row 256 is black (invalid).
    ``cmap`` is ``"turbo"`` (default; its dark blue for far points stays distinct from the black
    of invalid pixels) or ``"kitti"`` (the KITTI devkit's disp_to_color map, which starts at
    black like the published KITTI figures).
    """
    if cmap not in _DISPARITY_LUTS:
        makers = {"turbo": _turbo_lut, "kitti": _kitti_lut}
        if cmap not in makers:
            raise VisualizationError(
                f"unknown disparity colour map {cmap!r}; choose one of {sorted(makers)}"
            )
        lut = np.zeros((_LEVELS + 1, 3), dtype=np.uint8)
        lut[:_LEVELS] = makers[cmap]()
        lut.setflags(write=False)
        _DISPARITY_LUTS[cmap] = lut
    return _DISPARITY_LUTS[cmap]


# KITTI devkit error-image colours: normalised error range (lo, hi] -> RGB, blue (good) to red
# (bad). The normalised error is min(err / 3 px, (err / gt) / 5 %), so 1.0 is the D1 threshold.
KITTI_ERROR_COLORS: tuple[tuple[float, float, tuple[int, int, int]], ...] = (
    (0.0, 0.0625, (49, 54, 149)),
    (0.0625, 0.125, (69, 117, 180)),
    (0.125, 0.25, (116, 173, 209)),
    (0.25, 0.5, (171, 217, 233)),
    (0.5, 1.0, (224, 243, 248)),
    (1.0, 2.0, (254, 224, 144)),
    (2.0, 4.0, (253, 174, 97)),
    (4.0, 8.0, (244, 109, 67)),
    (8.0, 16.0, (215, 48, 39)),
    (16.0, math.inf, (165, 0, 38)),
)
_ERROR_EDGES = np.array([lo for lo, _, _ in KITTI_ERROR_COLORS[1:]], dtype=np.float64)
_ERROR_LUT = np.zeros((len(KITTI_ERROR_COLORS) + 1, 3), dtype=np.uint8)  # last row: black
_ERROR_LUT[:-1] = [c for _, _, c in KITTI_ERROR_COLORS]


def _check_2d(name: str, arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise VisualizationError(f"{name} must be a 2-D (H, W) array, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------------------------
# Per-frame colourisation
# --------------------------------------------------------------------------------------------


def colorize_disparity(
    disp: np.ndarray, max_disparity: float | None = None, cmap: str = "turbo"
) -> np.ndarray:
    """Colour a disparity map.

    Args:
        disp: (H, W) disparity in pixels. NaN, +-inf and values <= 0 are invalid and drawn black.
        max_disparity: disparity (px) that gets the last colour; larger values saturate.
            None uses the largest valid value of this image (colours then change from frame to
            frame; pass a fixed value for a live stream).
        cmap: ``"turbo"`` or ``"kitti"``, see :func:`disparity_lut`.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    d = _check_2d("disp", disp)
    lut = disparity_lut(cmap)
    d = np.ascontiguousarray(d, dtype=np.float32)
    if d.size == 0:
        return np.zeros((*d.shape, 3), dtype=np.uint8)
    ok = np.isfinite(d) & (d > 0)
    if max_disparity is None:
        max_disparity = float(d[ok].max()) if ok.any() else 1.0
    elif not (math.isfinite(max_disparity) and max_disparity > 0):
        raise VisualizationError(f"max_disparity must be finite and > 0, got {max_disparity}")
    # OpenCV does scale + round + saturate to uint8 and the table lookup in single passes, about
    # 3x faster than the numpy equivalent; invalid pixels get whatever index and are blacked out
    # by the mask afterwards.
    index = cv2.convertScaleAbs(d, alpha=(_LEVELS - 1) / max_disparity)
    rgb = cv2.LUT(cv2.merge([index, index, index]), _lut3(lut))
    return cv2.bitwise_and(rgb, rgb, mask=ok.view(np.uint8))


def _lut3(lut: np.ndarray) -> np.ndarray:
    """(256, 3) table -> the (256, 1, 3) layout cv2.LUT wants for 3-channel images."""
    return np.ascontiguousarray(lut[:256].reshape(256, 1, 3))


def colorize_labels(
    labels: np.ndarray,
    palette: np.ndarray,
    image: np.ndarray | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Colour a train-id map, optionally blended over the camera image.

    Args:
        labels: (H, W) integer train ids in 0..255; 255 means unknown / ignore.
        palette: (256, 3) uint8 RGB, e.g. ``LabelSet.palette()``. Id 255 is always drawn black,
            whatever the palette says.
        image: optional (H, W, 3) uint8 RGB or (H, W) grey image to blend over. Where the label
            is 255 the image is shown unchanged (there is no class colour to blend).
        alpha: weight of the label colour in the blend, 0..1.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    lab = _check_2d("labels", labels)
    pal = np.asarray(palette)
    if pal.shape != (256, 3) or pal.dtype != np.uint8:
        raise VisualizationError(
            f"palette must be (256, 3) uint8, got {pal.shape} {pal.dtype}; use LabelSet.palette()"
        )
    if lab.dtype != np.uint8:
        if not np.issubdtype(lab.dtype, np.integer):
            raise VisualizationError(f"labels must be integer train ids, got dtype {lab.dtype}")
        if lab.size and (lab.min() < 0 or lab.max() > 255):
            raise VisualizationError("labels must lie in 0..255")
        lab = lab.astype(np.uint8)
    if pal[255].any():
        pal = pal.copy()
        pal[255] = 0
    lab = np.ascontiguousarray(lab)
    if lab.size == 0:
        return np.zeros((*lab.shape, 3), dtype=np.uint8)
    colour = cv2.LUT(cv2.merge([lab, lab, lab]), _lut3(pal))
    if image is None:
        return colour
    if not 0.0 <= alpha <= 1.0:
        raise VisualizationError(f"alpha must lie in [0, 1], got {alpha}")
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape != colour.shape or img.dtype != np.uint8:
        raise VisualizationError(
            f"image must be (H, W, 3) uint8 matching labels {lab.shape}, got {img.shape} "
            f"{img.dtype}"
        )
    img = np.ascontiguousarray(img)
    out = cv2.addWeighted(img, 1.0 - alpha, colour, alpha, 0.0)
    # cv2.copyTo writes into ``out`` in place, far faster than boolean-mask assignment.
    cv2.copyTo(img, (lab == 255).view(np.uint8), out)
    return out


def colorize_error(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray | None = None,
    abs_thresh: float = 3.0,
    rel_thresh: float = 0.05,
) -> np.ndarray:
    """KITTI-style disparity error image: log-spaced colours from blue (good) to red (bad).

    Each scored pixel gets the normalised error ``min(err / abs_thresh, err / |gt| / rel_thresh)``
    coloured by :data:`KITTI_ERROR_COLORS` (bins double in width; > 1 is a D1 outlier).
    As in :func:`stereo_semantic_ros.metrics.disparity_metrics`, a NaN/inf/negative prediction
    counts as the worst error (top bin). Pixels outside ``valid`` or with non-finite ground
    truth are black.

    Args:
        pred, gt: (H, W) disparities in pixels.
        valid: (H, W) bool mask of pixels with ground truth; None means finite ``gt > 0``.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if not (abs_thresh > 0 and rel_thresh > 0):
        raise VisualizationError(
            f"abs_thresh and rel_thresh must be > 0, got {abs_thresh}, {rel_thresh}"
        )
    # float64 like the metrics, so the red half of the image is exactly the D1 outliers.
    p = _check_2d("pred", pred).astype(np.float64, copy=False)
    g = _check_2d("gt", gt).astype(np.float64, copy=False)
    if p.shape != g.shape:
        raise VisualizationError(f"pred {p.shape} and gt {g.shape} differ in shape")
    ok = np.isfinite(g)
    if valid is None:
        ok &= g > 0
    else:
        v = np.asarray(valid).astype(bool, copy=False)
        if v.shape != g.shape:
            raise VisualizationError(f"valid {v.shape} and gt {g.shape} differ in shape")
        ok &= v
    no_pred = ~(np.isfinite(p) & (p >= 0))
    err = np.abs(np.where(no_pred, 0.0, p) - g)
    # min(err / a, err / (|g| r)) == err / max(a, |g| r), with no division by a zero gt.
    n_err = err / np.maximum(abs_thresh, np.abs(g) * rel_thresh)
    idx = np.zeros(g.shape, dtype=np.uint8)
    # Bins are (lo, hi] rather than the devkit's [lo, hi) so that "> 1" is exactly the strict
    # D1 test of the metrics; 9 vector compares beat searchsorted's per-element search.
    for edge in _ERROR_EDGES:
        idx += n_err > edge
    idx[no_pred] = len(KITTI_ERROR_COLORS) - 1
    idx[~ok] = len(KITTI_ERROR_COLORS)
    return np.take(_ERROR_LUT, idx, axis=0)


# --------------------------------------------------------------------------------------------
# Files and layouts
# --------------------------------------------------------------------------------------------


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB (H, W, 3), RGBA (H, W, 4) or grey (H, W) uint8/uint16 image as PNG.

    Parent directories are created. Returns the path written.
    """
    path = Path(path)
    img = np.asarray(rgb)
    if img.dtype not in (np.uint8, np.uint16):
        raise VisualizationError(f"PNG needs uint8 or uint16 pixels, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    elif img.ndim != 2:
        raise VisualizationError(f"expected (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"OpenCV could not write {path} (check the suffix is .png and the disk)")
    return path


def _to_rgb_u8(img: np.ndarray, i: int) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise VisualizationError(
            f"tile image {i} is {a.dtype}; colourise it to uint8 first (e.g. colorize_disparity)"
        )
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] == 3:
        return a
    raise VisualizationError(f"tile image {i} has shape {a.shape}; need (H, W) or (H, W, 3)")


def _put_label(cell: np.ndarray, text: str) -> None:
    scale = max(0.4, cell.shape[0] / 400.0)
    thick = max(1, round(scale * 1.5))
    org = (4, 4 + int(22 * scale))
    # Black outline under white text stays readable on any background.
    cv2.putText(cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(
        cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA
    )


def tile(
    images: Sequence[np.ndarray],
    cols: int = 2,
    labels: Sequence[str] | None = None,
    pad: int = 0,
) -> np.ndarray:
    """Arrange uint8 RGB (or grey) images in a grid, row by row.

    Every cell is as large as the largest image; smaller images sit in the top-left corner of
    their cell on black. ``labels`` (one per image) are written in each cell's top-left corner.
    ``pad`` pixels of black separate the cells.

    Returns:
        (rows * cell_h + (rows - 1) * pad, cols * cell_w + (cols - 1) * pad, 3) uint8 RGB.
    """
    if not images:
        raise VisualizationError("tile needs at least one image")
    if cols < 1 or pad < 0:
        raise VisualizationError(f"need cols >= 1 and pad >= 0, got cols={cols}, pad={pad}")
    if labels is not None and len(labels) != len(images):
        raise VisualizationError(f"{len(labels)} labels for {len(images)} images")
    rgb = [_to_rgb_u8(im, i) for i, im in enumerate(images)]
    ch = max(im.shape[0] for im in rgb)
    cw = max(im.shape[1] for im in rgb)
    cols = min(cols, len(rgb))
    rows = -(-len(rgb) // cols)
    out = np.zeros((rows * ch + (rows - 1) * pad, cols * cw + (cols - 1) * pad, 3), np.uint8)
    for i, im in enumerate(rgb):
        r, c = divmod(i, cols)
        y, x = r * (ch + pad), c * (cw + pad)
        cell = out[y : y + ch, x : x + cw]
        cell[: im.shape[0], : im.shape[1]] = im
        if labels is not None and labels[i]:
            _put_label(cell, str(labels[i]))
    return out


# --------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------


def _to_float(value: object) -> float | None:
    """float(value), NaN for blanks/None, None if the value is not numeric."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return math.nan
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _load_records(data: str | Path | Iterable[Mapping[str, object]]) -> list[Mapping[str, object]]:
    if isinstance(data, (str, Path)):
        with open(data, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    return list(data)


def _default_group(column: str) -> str:
    # "train/loss" and "val/loss" share one subplot "loss".
    return column.rsplit("/", 1)[-1]


def plot_curves(
    data: str | Path | Iterable[Mapping[str, object]],
    out_png: str | Path,
    x: str = "step",
    groups: Mapping[str, Sequence[str]] | None = None,
    title: str | None = None,
) -> Path:
    """Plot training curves to a PNG, one subplot per group of columns.

    Args:
        data: a CSV file with a header row, or records (dicts) such as a training log. Blank or
            missing values (e.g. validation metrics logged every N steps) are skipped per
            column; columns with any non-numeric value are ignored.
        out_png: output path; parent directories are created.
        x: column for the horizontal axis; if absent, the row number is used.
        groups: ``{subplot title: [columns]}``. By default columns are grouped by the part of
            their name after the last "/", so ``train/loss`` and ``val/loss`` share a subplot.
            Groups whose title contains "loss" and whose values are all positive get a log
            y axis.
        title: optional figure title.

    Returns:
        The PNG path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = _load_records(data)
    if not records:
        raise VisualizationError("no records to plot")
    columns: dict[str, list[float]] = {}
    non_numeric: set[str] = set()
    order: list[str] = []
    for rec in records:
        for key in rec:
            if key not in columns and key not in non_numeric:
                order.append(key)
                columns[key] = []
    for key in order:
        values = []
        for rec in records:
            v = _to_float(rec.get(key))
            if v is None:
                non_numeric.add(key)
                break
            values.append(v)
        columns[key] = values
    numeric = {k: np.asarray(v) for k, v in columns.items() if k not in non_numeric}
    xs = numeric.pop(x, np.arange(len(records), dtype=np.float64))
    xlabel = x if x in columns and x not in non_numeric else "row"
    if groups is None:
        grouped: dict[str, list[str]] = {}
        for key in numeric:
            grouped.setdefault(_default_group(key), []).append(key)
    else:
        missing = [c for cols in groups.values() for c in cols if c not in numeric]
        if missing:
            raise VisualizationError(
                f"columns {missing} are not numeric columns of the data; have {sorted(numeric)}"
            )
        grouped = {k: list(v) for k, v in groups.items()}
    grouped = {k: v for k, v in grouped.items() if v}
    if not grouped:
        raise VisualizationError(f"no numeric columns to plot besides {x!r}")

    ncols = min(3, len(grouped))
    nrows = -(-len(grouped) // ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.4 * nrows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, cols) in zip(axes, grouped.items(), strict=False):
        all_positive = True
        for col in cols:
            y = numeric[col]
            m = np.isfinite(y) & np.isfinite(xs)
            if not m.any():
                continue
            all_positive &= bool((y[m] > 0).all())
            ax.plot(xs[m], y[m], label=col, marker="o" if m.sum() < 30 else None, markersize=3)
        if "loss" in name.lower() and all_positive and ax.has_data():
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
    for ax in axes[len(grouped) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
