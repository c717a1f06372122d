"""Images for people: coloured disparity, label overlays, error maps, grids and training curves.

Everything returns (H, W, 3) uint8 **RGB** (the package's image convention); only
:func:`save_png` converts to OpenCV's BGR, at the file boundary. The per-frame functions
(:func:`colorize_disparity`, :func:`colorize_labels`) are lookup-table based so the live node can
call them on every frame; matplotlib is imported only by :func:`plot_curves`.

Pictures that people read (eval pictures, replay preview sheets) add a side panel to each
colourised image: :func:`with_colorbar` (disparity, depth: colours with ticks and a unit),
:func:`with_error_legend` (KITTI error bins) and :func:`with_legend` (the classes present), and
:func:`tile` writes titles on a dark band above each image rather than over it. Disparity is
coloured with one map everywhere, :data:`DISPARITY_CMAP`, from 0 to the network's disparity
range, so eval pictures, replay previews and the node's ``disparity/color`` agree pixel for pixel.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DISPARITY_CMAP",
    "KITTI_ERROR_COLORS",
    "PANEL_BG",
    "PICTURE_MIN_HEIGHT",
    "TEXT_FG",
    "VisualizationError",
    "class_legend",
    "classes_present",
    "colorbar",
    "colorize_disparity",
    "colorize_error",
    "colorize_labels",
    "disparity_lut",
    "enlarge",
    "error_legend",
    "plot_curves",
    "save_png",
    "tile",
    "with_colorbar",
    "with_error_legend",
    "with_legend",
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

DISPARITY_CMAP = "turbo"
"""The disparity colour map of every picture and of the node's ``disparity/color`` topic."""


def disparity_lut(cmap: str = DISPARITY_CMAP) -> np.ndarray:
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
    disp: np.ndarray, max_disparity: float | None = None, cmap: str = DISPARITY_CMAP
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
# Files
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


# --------------------------------------------------------------------------------------------
# Text, colour bars and legends
# --------------------------------------------------------------------------------------------

PANEL_BG: tuple[int, int, int] = (32, 32, 32)
"""Background of title bands, side panels and the space between tiles. Dark grey rather than
black, which means "no data" inside a colourised image; white text on it has a contrast ratio
of about 16:1 whatever the picture shows."""
TEXT_FG: tuple[int, int, int] = (255, 255, 255)
_OUTLINE = (140, 140, 140)  # frames dark swatches (black "none", navy classes) on the dark panel
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text_scale(height: int, lo: float = 0.35, hi: float = 0.8) -> float:
    # Hershey simplex capitals are about 22 px high at scale 1: below 0.35 (8 px) text stops
    # being legible, above 0.8 it crowds a side panel; in between it follows the picture size.
    return min(hi, max(lo, height / 600.0))


def _thickness(scale: float) -> int:
    return 1 if scale < 0.6 else 2


def _text_size(text: str, scale: float) -> tuple[int, int]:
    (w, h), _ = cv2.getTextSize(text, _FONT, scale, _thickness(scale))
    return w, h


def _put_text(img: np.ndarray, text: str, x: int, baseline: int, scale: float) -> None:
    cv2.putText(img, text, (x, baseline), _FONT, scale, TEXT_FG, _thickness(scale), cv2.LINE_AA)


def _panel(height: int, width: int) -> np.ndarray:
    out = np.empty((height, width, 3), np.uint8)
    out[:] = PANEL_BG
    return out


def _bar_panel(
    height: int,
    strip: np.ndarray,
    ticks: Sequence[tuple[float, str]],
    title: Sequence[str],
    invalid_label: str | None,
) -> np.ndarray:
    """A vertical colour strip with tick labels on its right, ``title`` lines above it and an
    optional black "no data" swatch below it.

    Args:
        strip: (256, 3) colours, bottom (first) to top (last), resampled to the strip's height.
        ticks: (fraction of the strip from the bottom, label); labels that would overlap an
            earlier one are dropped, so list the important ones first.
    """
    scale = _text_scale(height)
    _, th = _text_size("0", scale)
    m = max(3, th // 2)
    sw = max(6, th)
    title_h = len(title) * (th + m)
    invalid_h = (th + 2 + m) if invalid_label else 0
    y0 = m + title_h + th // 2
    y1 = height - 1 - m - th // 2 - invalid_h
    if y1 - y0 < 4 * th:
        # Too short for any text: a bare strip is still a key to the colours.
        y0, y1, ticks, title, invalid_label = 0, height - 1, (), (), None
    x_label = m + sw + 3 + max(2, m // 2)
    kept: list[tuple[int, str]] = []
    for frac, text in ticks:
        y = round(y1 - min(1.0, max(0.0, frac)) * (y1 - y0))
        if all(abs(y - ky) > th + 2 for ky, _ in kept):
            kept.append((y, text))
    widths = [_text_size(t, scale)[0] for _, t in kept]
    if invalid_label:
        widths.append(th + 2 + m // 2 + _text_size(invalid_label, scale)[0] - x_label + m)
    width = max(
        x_label + max(widths, default=0) + m,
        max((_text_size(t, scale)[0] + 2 * m for t in title), default=0),
        m + sw + m,
    )
    out = _panel(height, width)
    n = y1 - y0 + 1
    rows = np.round(np.linspace(len(strip) - 1, 0, n)).astype(int)  # top row = last colour
    out[y0 : y1 + 1, m : m + sw] = np.asarray(strip)[rows][:, None, :]
    for i, text in enumerate(title):
        _put_text(out, text, m, m + (i + 1) * th + i * m, scale)
    for y, text in kept:
        cv2.line(out, (m + sw, y), (m + sw + 3, y), TEXT_FG, 1)
        _put_text(out, text, x_label, y + th // 2, scale)
    if invalid_label:
        ys = height - m - th - 2
        cv2.rectangle(out, (m, ys), (m + th + 1, ys + th + 1), _OUTLINE, 1)
        out[ys + 1 : ys + th + 1, m + 1 : m + th + 1] = 0
        _put_text(out, invalid_label, m + th + 2 + m // 2, ys + th + 1, scale)
    return out


def _nice_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Round values (1, 2, 2.5 or 5 times a power of ten apart) in [lo, hi]."""
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / max(1, max_ticks - 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(k * mag for k in (1, 2, 2.5, 5, 10) if k * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def colorbar(
    height: int,
    vmax: float,
    unit: str,
    vmin: float = 0.0,
    cmap: str = DISPARITY_CMAP,
    invalid_label: str | None = "none",
) -> np.ndarray:
    """(height, w, 3) uint8 RGB panel: the colours of :func:`colorize_disparity` (``cmap``) from
    ``vmin`` (bottom) to ``vmax`` (top) with round tick values, ``unit`` above the strip and,
    unless ``invalid_label`` is None, a black swatch saying what black pixels mean.

    ``vmax`` is where the colours saturate, so it is always labelled.
    """
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmax > vmin):
        raise VisualizationError(f"colour bar needs finite vmin < vmax, got {vmin}, {vmax}")
    lut = disparity_lut(cmap)[:_LEVELS]
    _, th = _text_size("0", _text_scale(height))
    values = _nice_ticks(vmin, vmax, max(2, int(height / (3 * th))))
    span = vmax - vmin
    ticks = [(0.0, _fmt_tick(vmin)), (1.0, _fmt_tick(vmax))]
    ticks += [((v - vmin) / span, _fmt_tick(v)) for v in values if vmin < v < vmax]
    return _bar_panel(height, lut, ticks, [unit], invalid_label)


def error_legend(
    height: int, abs_thresh: float = 3.0, rel_thresh: float = 0.05, invalid_label: str = "no GT"
) -> np.ndarray:
    """(height, w, 3) uint8 RGB key to :func:`colorize_error`: its ten bins, bottom (exact) to
    top (worst), labelled in multiples of the D1 threshold (``abs_thresh`` px and
    ``rel_thresh`` of the true disparity, whichever is larger), so 1 is where outliers start."""
    colours = np.array([c for _, _, c in KITTI_ERROR_COLORS], np.uint8)
    strip = np.repeat(colours, 26, axis=0)  # equal-height bins
    n = len(KITTI_ERROR_COLORS)
    ticks: list[tuple[float, str]] = []
    for i, (lo, _, _) in enumerate(KITTI_ERROR_COLORS[1:], start=1):
        text = f"1/{round(1 / lo)}" if lo < 1 else f"{lo:g}"
        ticks.append((i / n, text))
    ticks.sort(key=lambda t: t[1] != "1")  # the D1 threshold first: it is never dropped
    title = ["error /", f"max({abs_thresh:g}px,{100 * rel_thresh:g}%)"]
    return _bar_panel(height, strip, ticks, title, invalid_label)


def classes_present(labels: np.ndarray) -> list[int]:
    """Sorted train ids that occur in ``labels``, without 255 (unknown / ignore)."""
    ids = np.unique(np.asarray(labels))
    return [int(i) for i in ids if i != 255]


def class_legend(
    labels: np.ndarray, names: Sequence[str], palette: np.ndarray, height: int
) -> np.ndarray:
    """(height, w, 3) uint8 RGB panel listing the classes present in ``labels``: a swatch of the
    palette colour and the name, in columns of as many rows as fit. Ids without a name are
    listed as "id N"; 255 is not listed (it is drawn as the image or black)."""
    pal = np.asarray(palette)
    ids = classes_present(labels)
    scale = _text_scale(height)
    _, th = _text_size("0", scale)
    m = max(3, th // 2)
    sq = th + 2
    row_h = sq + max(3, m)
    per_col = max(1, (height - 2 * m + max(3, m)) // row_h)
    texts = [names[i] if i < len(names) else f"id {i}" for i in ids] or ["no classes"]
    columns = [list(range(k, min(k + per_col, len(texts)))) for k in range(0, len(texts), per_col)]
    gap = max(2, m // 2)
    swatch_w = (sq + gap) if ids else 0
    col_w = [swatch_w + max(_text_size(texts[j], scale)[0] for j in col) + m for col in columns]
    out = _panel(height, m + sum(col_w))
    x = m
    for col, w in zip(columns, col_w, strict=True):
        for row, j in enumerate(col):
            y = m + row * row_h
            if ids:
                cv2.rectangle(out, (x, y), (x + sq - 1, y + sq - 1), _OUTLINE, 1)
                out[y + 1 : y + sq - 1, x + 1 : x + sq - 1] = pal[ids[j]]
            _put_text(out, texts[j], x + swatch_w, y + sq - 2, scale)
        x += w
    return out


def _beside(image: np.ndarray, panel: np.ndarray) -> np.ndarray:
    img = _to_rgb_u8(image, 0)
    return np.concatenate([img, panel], axis=1)


def with_colorbar(
    rgb: np.ndarray,
    vmax: float,
    unit: str = "disparity px",
    vmin: float = 0.0,
    cmap: str = DISPARITY_CMAP,
) -> np.ndarray:
    """``rgb`` (e.g. from :func:`colorize_disparity` with ``max_disparity=vmax``) with its
    :func:`colorbar` on the right."""
    return _beside(rgb, colorbar(np.shape(rgb)[0], vmax, unit, vmin, cmap))


def with_error_legend(
    rgb: np.ndarray, abs_thresh: float = 3.0, rel_thresh: float = 0.05
) -> np.ndarray:
    """A :func:`colorize_error` image with its :func:`error_legend` on the right."""
    return _beside(rgb, error_legend(np.shape(rgb)[0], abs_thresh, rel_thresh))


def with_legend(
    rgb: np.ndarray, labels: np.ndarray, names: Sequence[str], palette: np.ndarray
) -> np.ndarray:
    """A :func:`colorize_labels` image with the :func:`class_legend` of ``labels`` on the right."""
    return _beside(rgb, class_legend(labels, names, palette, np.shape(rgb)[0]))


PICTURE_MIN_HEIGHT = 256
"""Pictures lower than this are enlarged on sheets (eval pictures, replay previews), so that
titles, tick labels and class names stay legible next to them (the demo's frames are 128 rows)."""


def enlarge(image: np.ndarray, min_height: int = PICTURE_MIN_HEIGHT) -> np.ndarray:
    """``image`` scaled up by the smallest whole factor that makes it ``min_height`` rows or
    more (nearest neighbour, so colours stay exact); unchanged if it already is."""
    img = np.asarray(image)
    k = -(-min_height // max(1, img.shape[0]))
    if k <= 1:
        return img
    return cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)


# --------------------------------------------------------------------------------------------
# Sheets
# --------------------------------------------------------------------------------------------


def _title_band(width: int, height: int, text: str, scale: float) -> np.ndarray:
    band = _panel(height, width)
    _, th = _text_size("0", scale)
    _put_text(band, text, max(3, th // 2), (height + th) // 2, scale)
    return band


def tile(
    images: Sequence[np.ndarray],
    cols: int = 2,
    labels: Sequence[str] | None = None,
    pad: int = 0,
) -> np.ndarray:
    """Arrange uint8 RGB (or grey) images in a grid, row by row, on :data:`PANEL_BG`.

    Every cell is as large as the largest image; smaller images sit at the top of their cell,
    centred across it. A last row with fewer images than ``cols`` is centred, so a sheet has
    no empty cells. With ``labels`` (one per image) every cell gets a title band of
    :data:`PANEL_BG` above its image with the label in white, never drawn over the picture
    itself. ``pad`` pixels separate the cells.

    Returns:
        (rows * (band + cell_h) + (rows - 1) * pad, cols * cell_w + (cols - 1) * pad, 3) uint8
        RGB, where band is 0 without labels.
    """
    if not images:
        raise VisualizationError("tile needs at least one image")
    if cols < 1 or pad < 0:
        raise VisualizationError(f"need cols >= 1 and pad >= 0, got cols={cols}, pad={pad}")
    if labels is not None and len(labels) != len(images):
        raise VisualizationError(f"{len(labels)} labels for {len(images)} images")
    rgb = [_to_rgb_u8(im, i) for i, im in enumerate(images)]
    ih = max(im.shape[0] for im in rgb)
    cw = max(im.shape[1] for im in rgb)
    scale = _text_scale(ih * 4 // 3, lo=0.5, hi=0.9)
    band = 0
    if labels is not None and any(labels):
        _, th = _text_size("Ag", scale)
        band = th + 2 * max(4, th // 2)
    ch = band + ih
    cols = min(cols, len(rgb))
    rows = -(-len(rgb) // cols)
    out = _panel(rows * ch + (rows - 1) * pad, cols * cw + (cols - 1) * pad)
    last = len(rgb) - (rows - 1) * cols
    for i, im in enumerate(rgb):
        r, c = divmod(i, cols)
        y, x = r * (ch + pad), c * (cw + pad)
        if r == rows - 1:
            x += (cols - last) * (cw + pad) // 2
        if band and labels is not None and labels[i]:
            out[y : y + band, x : x + cw] = _title_band(cw, band, str(labels[i]), scale)
        # centred in its cell, so a wide neighbour (a long legend) leaves even margins
        x += (cw - im.shape[1]) // 2
        out[y + band : y + band + im.shape[0], x : x + im.shape[1]] = im
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
