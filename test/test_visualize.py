"""Visualisation: exact colours on tiny inputs, invalid pixels black, files that read back, and
the pictures people read: colour bars, legends, titled sheets without empty cells."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.labels import CITYSCAPES_19, LabelSet
from stereo_semantic_ros.metrics import disparity_metrics
from stereo_semantic_ros.visualize import (
    DISPARITY_CMAP,
    KITTI_ERROR_COLORS,
    PANEL_BG,
    PICTURE_MIN_HEIGHT,
    VisualizationError,
    class_legend,
    classes_present,
    colorbar,
    colorize_disparity,
    colorize_error,
    colorize_labels,
    disparity_lut,
    enlarge,
    error_legend,
    plot_curves,
    save_png,
    tile,
    with_colorbar,
    with_error_legend,
    with_legend,
)

BLACK = (0, 0, 0)

# ---------------------------------------------------------------------------------------------
# colorize_disparity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cmap", ["turbo", "kitti"])
def test_colorize_disparity_shape_and_invalid_black(cmap: str) -> None:
    disp = np.array([[np.nan, 0.0, -3.0, np.inf], [10.0, 20.0, 40.0, 80.0]], np.float32)
    rgb = colorize_disparity(disp, max_disparity=80.0, cmap=cmap)
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    assert (rgb[0] == 0).all()
    assert (rgb[1] != 0).any(axis=1).all()


def test_colorize_disparity_follows_lut_in_order() -> None:
    lut = disparity_lut("turbo")
    max_d = 96.0
    ramp = (np.arange(1, 256) * (max_d / 255.0)).reshape(1, -1)
    rgb = colorize_disparity(ramp, max_disparity=max_d)
    np.testing.assert_array_equal(rgb[0], lut[1:256])
    # far (small disparity) is blue, near (large disparity) is red
    far, near = rgb[0, 0].astype(int), rgb[0, -1].astype(int)
    assert far[2] > far[0] and near[0] > near[2]
    # turbo never hits black, so valid pixels stay distinguishable from invalid ones
    assert (lut[:256].astype(int).sum(axis=1) > 0).all()
    assert (lut[256] == 0).all()


def test_colorize_disparity_saturates_and_autoscales() -> None:
    lut = disparity_lut("turbo")
    rgb = colorize_disparity(np.array([[500.0, 1e-6]]), max_disparity=100.0)
    np.testing.assert_array_equal(rgb[0, 0], lut[255])
    np.testing.assert_array_equal(rgb[0, 1], lut[0])
    auto = colorize_disparity(np.array([[5.0, 10.0, np.nan]]))
    np.testing.assert_array_equal(auto[0, 1], lut[255])  # image maximum gets the top colour
    np.testing.assert_array_equal(auto[0, 0], lut[128])  # half way, rounded
    assert (colorize_disparity(np.full((3, 3), np.nan)) == 0).all()
    assert colorize_disparity(np.zeros((0, 4))).shape == (0, 4, 3)
    with pytest.raises(VisualizationError):
        colorize_disparity(np.ones((2, 2)), max_disparity=0.0)
    with pytest.raises(VisualizationError):
        colorize_disparity(np.ones((2, 2, 1)))
    with pytest.raises(VisualizationError, match="turbo"):
        colorize_disparity(np.ones((2, 2)), cmap="jet")


def test_kitti_map_knots() -> None:
    lut = disparity_lut("kitti").astype(int)
    np.testing.assert_array_equal(lut[0], BLACK)
    np.testing.assert_array_equal(lut[255], (255, 255, 255))
    # the first knot after black is pure blue at 114/1000 of the range
    blue = lut[round(0.114 * 255)]
    assert blue[2] > 230 and blue[0] < 30 and blue[1] < 30


# ---------------------------------------------------------------------------------------------
# colorize_labels
# ---------------------------------------------------------------------------------------------


def test_colorize_labels_exact_palette_colours() -> None:
    palette = CITYSCAPES_19.palette()
    ids = np.array([list(range(10)), list(range(10, 19)) + [255]], np.uint8)
    rgb = colorize_labels(ids, palette)
    assert rgb.shape == (2, 10, 3) and rgb.dtype == np.uint8
    for (r, c), i in np.ndenumerate(ids):
        expected = BLACK if i == 255 else CITYSCAPES_19.colors[i]
        assert tuple(rgb[r, c]) == expected, (i, rgb[r, c])


def test_colorize_labels_unknown_black_even_with_coloured_palette() -> None:
    palette = CITYSCAPES_19.palette()
    palette[255] = (9, 9, 9)
    rgb = colorize_labels(np.array([[255, 13]], np.int32), palette)
    assert tuple(rgb[0, 0]) == BLACK
    assert tuple(rgb[0, 1]) == CITYSCAPES_19.colors[13]
    assert tuple(palette[255]) == (9, 9, 9)  # caller's palette not modified


def test_colorize_labels_blend() -> None:
    image = np.full((1, 3, 3), 100, np.uint8)
    labels = np.array([[0, 13, 255]], np.uint8)
    out = colorize_labels(labels, CITYSCAPES_19.palette(), image=image, alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], (114, 82, 114))  # (100 + (128, 64, 128)) / 2
    np.testing.assert_array_equal(out[0, 1], (50, 50, 121))  # (100 + (0, 0, 142)) / 2
    np.testing.assert_array_equal(out[0, 2], (100, 100, 100))  # unknown: image unchanged
    grey = colorize_labels(labels, CITYSCAPES_19.palette(), image=image[:, :, 0], alpha=1.0)
    assert tuple(grey[0, 1]) == CITYSCAPES_19.colors[13]
    with pytest.raises(VisualizationError):
        colorize_labels(labels, CITYSCAPES_19.palette(), image=np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(VisualizationError, match="palette"):
        colorize_labels(labels, np.zeros((19, 3), np.uint8))
    assert colorize_labels(np.zeros((0, 2), np.uint8), CITYSCAPES_19.palette()).shape == (0, 2, 3)
    with pytest.raises(VisualizationError, match="0..255"):
        colorize_labels(np.array([[256]]), CITYSCAPES_19.palette())


# ---------------------------------------------------------------------------------------------
# colorize_error
# ---------------------------------------------------------------------------------------------


def _bin_colour(i: int) -> tuple[int, int, int]:
    return KITTI_ERROR_COLORS[i][2]


def test_colorize_error_hand_computed_bins() -> None:
    gt = np.array([[10, 100, 50], [20, 30, 5]], np.float32)
    pred = np.array([[10, 104, 40], [np.nan, 30.1, 5]], np.float32)
    valid = np.array([[True, True, True], [True, True, False]])
    rgb = colorize_error(pred, gt, valid)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == _bin_colour(0)  # exact
    assert tuple(rgb[0, 1]) == _bin_colour(4)  # min(4/3, 4/100/0.05 = 0.8) in [0.5, 1)
    assert tuple(rgb[0, 2]) == _bin_colour(6)  # min(10/3, 10/50/0.05 = 4) in [2, 4)
    assert tuple(rgb[1, 0]) == _bin_colour(9)  # no prediction: worst colour
    assert tuple(rgb[1, 1]) == _bin_colour(0)  # min(0.033, 0.067) < 0.0625
    assert tuple(rgb[1, 2]) == BLACK  # not valid


def test_colorize_error_threshold_is_strict_like_d1() -> None:
    gt = np.array([[10.0, 10.0]])
    pred = np.array([[13.0, 13.5]])  # errors exactly 3 px (not an outlier) and 3.5 px
    rgb = colorize_error(pred, gt)
    assert tuple(rgb[0, 0]) == _bin_colour(4)
    assert tuple(rgb[0, 1]) == _bin_colour(5)
    assert disparity_metrics(pred, gt)["d1"] == 50.0


def test_colorize_error_red_half_matches_d1_outliers() -> None:
    rng = np.random.default_rng(5)
    gt = rng.uniform(1, 100, (20, 30))
    pred = gt + rng.normal(0, 5, gt.shape)
    valid = rng.random(gt.shape) < 0.8
    rgb = colorize_error(pred, gt, valid)
    bad_colours = np.array([c for _, _, c in KITTI_ERROR_COLORS[5:]])
    is_bad = (rgb[:, :, None, :] == bad_colours[None, None]).all(axis=3).any(axis=2)
    err = np.abs(pred - gt)
    # negative predictions are "no answer", an outlier in the metrics as in the image
    d1 = (((err > 3) & (err > 0.05 * gt)) | (pred < 0)) & valid
    assert (valid & (pred < 0)).any()
    np.testing.assert_array_equal(is_bad, d1)
    assert 100.0 * is_bad.sum() / valid.sum() == pytest.approx(
        disparity_metrics(pred, gt, valid)["d1"]
    )
    assert (rgb[~valid] == 0).all()
    # default mask: finite gt > 0
    gt0 = gt.copy()
    gt0[0, 0] = 0
    assert (colorize_error(pred, gt0)[0, 0] == 0).all()


# ---------------------------------------------------------------------------------------------
# save_png, tile
# ---------------------------------------------------------------------------------------------


def test_save_png_round_trip_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # pure-ish red; a missing RGB->BGR swap would read back blue
    rgb[1, 2] = (1, 2, 3)
    path = save_png(tmp_path / "a" / "b" / "img.png", rgb)
    assert path.exists()
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back[..., ::-1], rgb)


def test_save_png_grey_uint16_and_errors(tmp_path: Path) -> None:
    depth = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    save_png(tmp_path / "d.png", depth)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED), depth)
    with pytest.raises(VisualizationError):
        save_png(tmp_path / "f.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(VisualizationError):
        save_png(tmp_path / "g.png", np.zeros((2, 2, 2), np.uint8))


def test_tile_layout() -> None:
    a = np.full((4, 6, 3), 10, np.uint8)
    b = np.full((2, 3), 20, np.uint8)  # grey, smaller
    c = np.full((4, 6, 3), 30, np.uint8)
    out = tile([a, b, c], cols=2, pad=1)
    assert out.shape == (2 * 4 + 1, 2 * 6 + 1, 3) and out.dtype == np.uint8
    assert (out[:4, :6] == 10).all()
    # a narrower image is centred across its cell, at the top
    assert (out[:2, 8:11] == 20).all() and (out[2:4, 7:] == PANEL_BG).all()
    assert (out[:2, 7] == PANEL_BG).all() and (out[:2, 11:] == PANEL_BG).all()
    assert (out[4] == PANEL_BG).all() and (out[:4, 6] == PANEL_BG).all()  # padding
    # the short last row is centred: half a cell (with its pad) in, background either side
    assert (out[5:9, 3:9] == 30).all()
    assert (out[5:, :3] == PANEL_BG).all() and (out[5:, 9:] == PANEL_BG).all()
    assert tile([a], cols=3).shape == (4, 6, 3)


def _cells(sheet: np.ndarray, n: int, cols: int, pad: int) -> list[np.ndarray]:
    """The grid cells of a sheet of ``n`` equal tiles (as a reader sees the grid)."""
    cols = min(cols, n)
    rows = -(-n // cols)
    ch = (sheet.shape[0] - (rows - 1) * pad) // rows
    cw = (sheet.shape[1] - (cols - 1) * pad) // cols
    return [
        sheet[r * (ch + pad) : r * (ch + pad) + ch, c * (cw + pad) : c * (cw + pad) + cw]
        for r in range(rows)
        for c in range(cols)
    ]


def _content_fraction(cell: np.ndarray) -> float:
    """Share of a cell's pixels that are neither black nor the panel background."""
    blank = (cell == 0).all(axis=2) | (cell == PANEL_BG).all(axis=2)
    return float(1.0 - blank.mean())


@pytest.mark.parametrize("n", range(1, 8))
def test_tile_leaves_no_empty_cell(n: int) -> None:
    rng = np.random.default_rng(n)
    imgs = [rng.integers(40, 255, (30, 50, 3), dtype=np.uint8) for _ in range(n)]
    sheet = tile(imgs, cols=2, labels=[f"img {i}" for i in range(n)], pad=2)
    for i, cell in enumerate(_cells(sheet, n, 2, 2)):
        assert _content_fraction(cell) > 0.02, f"cell {i} of {n} is empty"


def test_tile_titles_sit_on_a_contrasting_band_above_the_image() -> None:
    bright = np.full((60, 200, 3), 255, np.uint8)  # white titles used to vanish on this
    dark = np.zeros((60, 200, 3), np.uint8)
    plain = tile([bright, dark], cols=2)
    sheet = tile([bright, dark], cols=2, labels=["bright sky", "shadow"])
    band = sheet.shape[0] - 60
    assert plain.shape[0] == 60 and band >= 12  # the band is added, not drawn over the image
    assert (sheet[band:, :200] == 255).all() and (sheet[band:, 200:] == 0).all()
    for x0 in (0, 200):
        region = sheet[:band, x0 : x0 + 200].astype(float)
        lum = region @ np.array([0.2126, 0.7152, 0.0722])
        bg, text = np.median(lum), lum.max()
        assert (region == PANEL_BG).all(axis=2).mean() > 0.5  # mostly band colour
        assert text - bg > 180, (bg, text)  # light text on a dark band
        # WCAG contrast ratio of the brightest text pixel against the band
        rel = [(v / 255) ** 2.2 for v in (bg, text)]
        assert (rel[1] + 0.05) / (rel[0] + 0.05) > 7
        # the band is far from the bright picture below it, so a title never runs into it
        assert 255 - bg > 180
    np.testing.assert_array_equal(
        tile([bright, dark], cols=2, labels=["", ""]), plain
    )  # empty titles: no band at all
    with pytest.raises(VisualizationError):
        tile([bright, dark], labels=["one"])
    with pytest.raises(VisualizationError):
        tile([np.zeros((2, 2), np.float32)])
    with pytest.raises(VisualizationError):
        tile([])


# ---------------------------------------------------------------------------------------------
# Colour bars and legends
# ---------------------------------------------------------------------------------------------


def _lut_index_column(panel: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """LUT indices, top to bottom, of the panel column that holds the most LUT colours."""
    codes = {tuple(int(v) for v in c): i for i, c in enumerate(lut)}
    best: list[int] = []
    for x in range(panel.shape[1]):
        col = [codes.get(tuple(int(v) for v in px)) for px in panel[:, x]]
        hits = [i for i in col if i is not None]
        if len(hits) > len(best):
            best = hits
    return np.array(best)


def test_colorbar_follows_the_lut_and_labels_its_ticks() -> None:
    h, w, top = 240, 300, 96.0
    img = colorize_disparity(np.tile(np.linspace(1, top, w), (h, 1)), top)
    out = with_colorbar(img, top)
    bar = colorbar(h, top, "disparity px")
    # the picture is untouched and grows by exactly the bar's width
    assert out.shape == (h, w + bar.shape[1], 3) and bar.shape[1] >= 40
    np.testing.assert_array_equal(out[:, :w], img)
    np.testing.assert_array_equal(out[:, w:], bar)
    lut = disparity_lut(DISPARITY_CMAP)[:256]
    idx = _lut_index_column(bar, lut)
    assert len(idx) > h // 2  # the strip spans most of the height
    assert idx[0] == 255 and idx[-1] == 0  # saturation colour on top, zero at the bottom
    assert (np.diff(idx) <= 0).all() and len(np.unique(idx)) > 100
    # tick labels and the unit are text: bright pixels right of / above the strip, and they
    # change with the values and the unit while the strip does not
    strip_x = max(range(bar.shape[1]), key=lambda x: (bar[:, x] == lut[0]).all(axis=1).sum())
    labels = bar[:, strip_x + 4 :]
    assert ((labels > 200).all(axis=2)).sum() > 50
    other = colorbar(h, 50.0, "disparity px")
    assert other.shape[0] == h
    np.testing.assert_array_equal(
        _lut_index_column(other, lut), idx
    )  # same colours, different numbers
    assert not np.array_equal(other, bar)
    metres = colorbar(h, top, "depth m", invalid_label=None)
    assert not np.array_equal(metres, bar)
    with pytest.raises(VisualizationError):
        colorbar(h, 0.0, "px")
    # a picture too low for text still gets a strip
    tiny = colorbar(8, top, "px")
    assert tiny.shape[0] == 8 and len(_lut_index_column(tiny, lut)) == 8


def test_error_legend_shows_every_bin_in_order() -> None:
    h = 260
    legend = error_legend(h)
    out = with_error_legend(np.zeros((h, 50, 3), np.uint8))
    assert out.shape == (h, 50 + legend.shape[1], 3)
    colours = np.array([c for _, _, c in KITTI_ERROR_COLORS], np.uint8)
    idx = _lut_index_column(legend, colours)
    runs = [int(i) for k, i in enumerate(idx) if k == 0 or idx[k - 1] != i]
    assert runs == list(range(len(KITTI_ERROR_COLORS) - 1, -1, -1))  # worst on top
    sizes = np.bincount(idx)
    assert sizes.max() - sizes.min() <= 2  # equal bins, as the colours are log-spaced


SIX = LabelSet(
    name="six",
    names=("road", "car", "tree", "sky", "person", "sign"),
    colors=(
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
    ),
)


def _colour_pixels(img: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((img == np.array(colour, np.uint8)).all(axis=2).sum())


@pytest.mark.parametrize("present", [[0, 2, 5], [1], [0, 1, 2, 3, 4, 5]])
def test_legend_lists_exactly_the_classes_present(present: list[int]) -> None:
    h = 200
    labels = np.full((h, 120), 255, np.uint8)
    for k, i in enumerate(present):
        labels[:, k * 10 : k * 10 + 10] = i
    assert classes_present(labels) == present
    palette = SIX.palette()
    legend = class_legend(labels, SIX.names, palette, h)
    assert legend.shape[0] == h
    for i, colour in enumerate(SIX.colors):
        n = _colour_pixels(legend, colour)
        if i in present:
            assert n >= 36, (SIX.names[i], n)  # a swatch of at least 6 x 6 px
        else:
            assert n == 0, f"{SIX.names[i]} is not in the image but in the legend"
    image = colorize_labels(labels, palette)
    out = with_legend(image, labels, SIX.names, palette)
    np.testing.assert_array_equal(out[:, :120], image)
    np.testing.assert_array_equal(out[:, 120:], legend)


def test_legend_without_classes_and_with_unnamed_ids() -> None:
    palette = SIX.palette()
    empty = class_legend(np.full((100, 10), 255, np.uint8), SIX.names, palette, 100)
    assert all(_colour_pixels(empty, c) == 0 for c in SIX.colors)
    assert ((empty > 200).all(axis=2)).any()  # says "no classes"
    assert classes_present(np.array([[7, 255, 0]], np.uint8)) == [0, 7]
    class_legend(np.array([[7, 0]], np.uint8), SIX.names, palette, 100)  # "id 7", no IndexError
    # many classes in a low picture wrap into more columns instead of running off the panel
    many = np.arange(19, dtype=np.uint8).reshape(1, -1).repeat(5, axis=0)
    few = class_legend(many[:, :3], CITYSCAPES_19.names, CITYSCAPES_19.palette(), 120)
    low = class_legend(many, CITYSCAPES_19.names, CITYSCAPES_19.palette(), 120)
    assert low.shape[0] == 120 and low.shape[1] > 2 * few.shape[1]
    assert all(_colour_pixels(low, c) > 0 for c in CITYSCAPES_19.colors if c != (0, 0, 0))


def test_enlarge_keeps_colours_exact() -> None:
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = enlarge(img, 5)
    assert big.shape == (6, 9, 3)
    np.testing.assert_array_equal(big[::3, ::3], img)
    assert enlarge(img, 2) is img


# ---------------------------------------------------------------------------------------------
# The pictures: replay previews, eval pictures, the node's disparity/color
# ---------------------------------------------------------------------------------------------


def _contains(sheet: np.ndarray, img: np.ndarray) -> bool:
    """Whether ``img`` appears unchanged somewhere in ``sheet``."""
    diff = cv2.matchTemplate(sheet.astype(np.float32), img.astype(np.float32), cv2.TM_SQDIFF)
    # matchTemplate finds the best place (its sums are not exact); the pixels there decide
    _, _, (x, y), _ = cv2.minMaxLoc(diff)
    return bool(np.array_equal(sheet[y : y + img.shape[0], x : x + img.shape[1]], img))


@pytest.fixture(scope="module")
def scene() -> StereoSample:
    from stereo_semantic_ros.synth.generator import generate_sample

    return generate_sample(3, 192, 64)


def _prediction(scene: StereoSample) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    disp = (scene.disparity + rng.normal(0, 2.0, scene.disparity.shape)).astype(np.float32)
    labels = scene.labels.copy()
    labels[:, :40] = 8  # a wrong band, so prediction and ground truth differ
    return disp, labels


def test_replay_preview_has_an_error_tile_and_no_empty_cell(scene: StereoSample) -> None:
    from stereo_semantic_ros.replay.previews import (
        SHEET_ORDER,
        preview_images,
        preview_sheet,
    )

    disp, labels = _prediction(scene)
    top = 96.0
    images = preview_images(
        scene.left, disp, labels, top, CITYSCAPES_19, scene.disparity, scene.valid, scene.labels
    )
    assert tuple(images) == SHEET_ORDER  # six pictures: the old 3 x 2 sheet had five
    np.testing.assert_array_equal(
        images["error"], colorize_error(disp, scene.disparity, scene.valid)
    )
    sheet = preview_sheet(images, top, CITYSCAPES_19, labels, scene.labels)
    for i, cell in enumerate(_cells(sheet, len(images), 2, 4)):
        assert _content_fraction(cell) > 0.02, f"cell {i} is empty"
    h = enlarge(scene.left).shape[0]  # 64 rows, enlarged 4 x on the sheet
    assert h == 256 == PICTURE_MIN_HEIGHT
    assert _contains(sheet, enlarge(images["error"]))
    assert _contains(sheet, error_legend(h))
    assert _contains(sheet, colorbar(h, top, "disparity px"))
    assert _contains(sheet, class_legend(labels, CITYSCAPES_19.names, CITYSCAPES_19.palette(), h))

    # without ground truth: no error tile (nothing to compare with) and still no empty cell
    bare = preview_images(scene.left, disp, labels, top, CITYSCAPES_19)
    assert tuple(bare) == ("left", "disparity", "semantic")
    sheet = preview_sheet(bare, top, CITYSCAPES_19, labels)
    for i, cell in enumerate(_cells(sheet, len(bare), 2, 4)):
        assert _content_fraction(cell) > 0.02, f"cell {i} is empty"


@pytest.mark.parametrize("with_labels", [True, False])
def test_eval_picture_has_bars_legends_and_no_empty_cell(
    scene: StereoSample, with_labels: bool
) -> None:
    from dataclasses import replace

    from stereo_semantic_ros.evaluation.pictures import sample_picture
    from stereo_semantic_ros.evaluation.predictors import Prediction

    disp, labels = _prediction(scene)
    sample = scene if with_labels else replace(scene, labels=None)
    preds = {"ours": Prediction(disp, labels), "SGBM": Prediction(disp * 0.9)}
    picture = sample_picture(sample, preds, CITYSCAPES_19, max_disparity=96.0)
    n = 2 + 2 * 2 + (2 if with_labels else 1)
    for i, cell in enumerate(_cells(picture, n, 2, 4)):
        assert _content_fraction(cell) > 0.02, f"cell {i} of {n} is empty"
    h = enlarge(scene.left).shape[0]
    assert _contains(picture, enlarge(colorize_disparity(disp, 96.0)))
    assert _contains(picture, colorbar(h, 96.0, "disparity px"))
    assert _contains(picture, error_legend(h))
    legend = class_legend(labels, CITYSCAPES_19.names, CITYSCAPES_19.palette(), h)
    assert _contains(picture, legend)


def test_one_disparity_colour_map_for_node_replay_and_eval(scene: StereoSample) -> None:
    """The node's disparity/color, a replay preview and an eval picture colour the same
    disparity identically, given the same range (the network's)."""
    pytest.importorskip("rclpy")
    from std_msgs.msg import Header

    from stereo_semantic_ros.evaluation.pictures import sample_picture
    from stereo_semantic_ros.evaluation.predictors import Prediction
    from stereo_semantic_ros.pipeline import PipelineResult
    from stereo_semantic_ros.replay.previews import preview_images
    from stereo_semantic_ros.ros.conversions import image_to_array
    from stereo_semantic_ros.ros.outputs import OutputStyle, build_messages

    disp, _ = _prediction(scene)
    top = 48.0
    msgs = build_messages(
        PipelineResult(disparity=disp),
        Header(frame_id="cam"),
        None,
        scene.calib,
        CITYSCAPES_19,
        scene.left,
        ("disparity/color",),
        OutputStyle(max_disparity=top),
    )
    node = image_to_array(msgs["disparity/color"])
    np.testing.assert_array_equal(node, colorize_disparity(disp, top, cmap=DISPARITY_CMAP))
    replay = preview_images(scene.left, disp, None, top, CITYSCAPES_19)["disparity"]
    np.testing.assert_array_equal(replay, node)
    picture = sample_picture(scene, {"ours": Prediction(disp)}, CITYSCAPES_19, top)
    assert _contains(picture, enlarge(node))


# ---------------------------------------------------------------------------------------------
# plot_curves
# ---------------------------------------------------------------------------------------------


def _read_png_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path))
    assert img is not None
    return img.shape[0], img.shape[1]


def test_plot_curves_from_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "log.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "phase", "train/loss", "val/loss", "val/epe", "lr"])
        for step in range(0, 200, 10):
            val = step % 50 == 0
            w.writerow(
                [
                    step,
                    "train",
                    2.0 / (1 + step),
                    0.5 if val else "",
                    3.0 - step / 100 if val else "",
                    1e-3,
                ]
            )
    out = plot_curves(csv_path, tmp_path / "plots" / "curves.png", title="run")
    assert out.exists() and out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h, w = _read_png_size(out)
    # groups loss, epe, lr -> three subplots side by side at 100 dpi
    assert (h, w) == (340, 1500)


def test_plot_curves_from_records_and_groups(tmp_path: Path) -> None:
    records = [{"step": i, "loss": 1.0 / (i + 1), "miou": i / 10} for i in range(10)]
    out = plot_curves(records, tmp_path / "r.png", groups={"all": ["loss", "miou"]})
    assert _read_png_size(out) == (340, 500)  # one subplot
    with pytest.raises(VisualizationError, match="nope"):
        plot_curves(records, tmp_path / "x.png", groups={"g": ["nope"]})
    with pytest.raises(VisualizationError):
        plot_curves([], tmp_path / "y.png")
    with pytest.raises(VisualizationError, match="numeric"):
        plot_curves([{"step": 1, "phase": "train"}], tmp_path / "z.png")
