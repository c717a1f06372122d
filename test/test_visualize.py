"""Visualisation: exact colours on tiny inputs, invalid pixels black, files that read back."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_semantic_ros.labels import CITYSCAPES_19
from stereo_semantic_ros.metrics import disparity_metrics
from stereo_semantic_ros.visualize import (
    KITTI_ERROR_COLORS,
    VisualizationError,
    colorize_disparity,
    colorize_error,
    colorize_labels,
    disparity_lut,
    plot_curves,
    save_png,
    tile,
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


def test_colorize_disparity_speed_at_kitti_resolution() -> None:
    rng = np.random.default_rng(0)
    disp = rng.uniform(0, 192, (375, 1242)).astype(np.float32)
    disp[rng.random(disp.shape) < 0.1] = np.nan
    colorize_disparity(disp, 192.0)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        colorize_disparity(disp, 192.0)
        times.append(time.perf_counter() - t0)
    # about 1.5 ms on a 2-core dev VM; the bound only catches a per-pixel Python loop or similar
    assert min(times) < 0.05


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
    assert (out[:2, 7:10] == 20).all() and (out[2:4, 7:] == 0).all()
    assert (out[5:9, :6] == 30).all()
    assert (out[4] == 0).all() and (out[:, 6] == 0).all()  # padding
    assert (out[5:, 7:] == 0).all()  # empty last cell
    assert tile([a], cols=3).shape == (4, 6, 3)


def test_tile_labels_draw_text() -> None:
    imgs = [np.zeros((60, 120, 3), np.uint8) for _ in range(2)]
    plain = tile(imgs, cols=2)
    labelled = tile(imgs, cols=2, labels=["disp", ""])
    assert (labelled[:, :120] != plain[:, :120]).any()
    np.testing.assert_array_equal(labelled[:, 120:], plain[:, 120:])  # empty label: nothing
    with pytest.raises(VisualizationError):
        tile(imgs, labels=["one"])
    with pytest.raises(VisualizationError):
        tile([np.zeros((2, 2), np.float32)])
    with pytest.raises(VisualizationError):
        tile([])


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
