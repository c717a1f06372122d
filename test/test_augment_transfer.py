"""Synthetic-to-real augmentations keep the pair and its ground truth consistent.

The fixture is an exactly consistent pair rendered from a smooth analytic texture: left pixel
``(u, v)`` shows ``T(u, v)``, right pixel ``(x, v)`` shows ``T(x + d(v), v)`` with a planar
disparity ``d(v) = D0 + G * v`` (a slanted ground plane). The red and green channels carry the
texture; the blue channel marks the invalid box of the ground truth, so masks can be checked
against the image they must move with.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stereo_semantic_ros.augment import (
    PRESETS,
    Augmentor,
    Photometric,
    blur_image,
    crop_sample,
    erase_patches,
    mirror_sample,
    photometric_pair,
    resize_sample,
    scale_sample,
    shift_right_vertically,
)
from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.training.config import ConfigError, DataConfig, config_from_dict
from stereo_semantic_ros.training.data import build_augmentor

TINY_RECIPE = Path(__file__).resolve().parents[1] / "config" / "train" / "tiny_test.yaml"
H, W = 48, 96
D0, G = 4.0, 0.15  # disparity 4.0 .. 11.05 px
BOX = (10, 22, 56, 70)  # invalid ground truth: rows 10..21, texture columns 56..69
CALIB = StereoCalibration(
    fx=120.0, fy=110.0, cx=47.0, cy=23.5, baseline=0.3, width=W, height=H, doffs=1.5
)
_WAVES = np.random.default_rng(7).uniform(0, 1, size=(2, 6, 4))  # channel, wave, params


def texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(..., 2) red and green of the analytic texture at real coordinates (periods 12-32 px)."""
    out = []
    for waves in _WAVES:
        value = np.zeros(np.broadcast(x, y).shape)
        for period, angle, phase, amp in waves:
            k = 2 * np.pi / (12 + 20 * period)
            theta = np.pi * angle
            value += (10 + 15 * amp) * np.sin(
                k * (np.cos(theta) * x + np.sin(theta) * y) + 2 * np.pi * phase
            )
        out.append(128 + value)
    return np.stack(out, axis=-1)


def disparity_of_row(v: np.ndarray) -> np.ndarray:
    return D0 + G * v


def in_box(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    top, bottom, left, right = BOX
    return (v >= top) & (v < bottom) & (u >= left) & (u < right)


def render_right(h: int = H, w: int = W, dy: float = 0.0) -> np.ndarray:
    """The right view, its content moved down by ``dy`` (rows sampled at ``v - dy``)."""
    x, v = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float) - dy)
    world_u = x + disparity_of_row(v)
    rg = texture(world_u, v)
    blue = np.where(in_box(np.rint(world_u), np.rint(v)), 20.0, 230.0)
    return np.clip(np.rint(np.dstack([rg, blue])), 0, 255).astype(np.uint8)


def planar_pair(calib: StereoCalibration = CALIB) -> StereoSample:
    u, v = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    d = disparity_of_row(v)
    invalid = in_box(u, v)
    left = np.dstack([texture(u, v), np.where(invalid, 20.0, 230.0)])
    disparity = np.where(invalid, 0.0, d).astype(np.float32)
    valid = ~invalid
    right_world = u + d  # what right pixel (u, v) shows
    right_disparity = np.where(in_box(np.rint(right_world), v), 0.0, d).astype(np.float32)
    return StereoSample(
        left=np.clip(np.rint(left), 0, 255).astype(np.uint8),
        right=render_right(),
        calib=calib,
        disparity=disparity,
        valid=valid,
        noc=valid & (u - d >= 0),
        labels=((u // 8) % 19).astype(np.uint8),
        depth=calib.depth_from_disparity(disparity),
        right_disparity=right_disparity,
        name="planar",
    )


def warp_error(s: StereoSample, offset: float = 0.0, where: np.ndarray | None = None) -> float:
    """Mean |left - right(u - d - offset)| of the texture channels on the usable NOC pixels."""
    h, w = s.size
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    src = u - s.disparity - np.float32(offset)
    warped = cv2.remap(s.right, src, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    usable = s.noc & s.valid & (src >= 1) & (src <= w - 2) & (u <= w - 2)
    usable[:1] = usable[-1:] = False
    if where is not None:
        usable &= where
    assert usable.sum() > 0.2 * usable.size, "too few pixels to compare"
    diff = np.abs(warped[..., :2].astype(np.float32) - s.left[..., :2].astype(np.float32))
    return float(diff[usable].mean())


def right_warp_error(s: StereoSample) -> float:
    """Mean |right - left(x + d_right)| of the texture channels where the right GT is usable."""
    h, w = s.size
    x, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    src = x + s.right_disparity
    warped = cv2.remap(s.left, src, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    usable = (s.right_disparity > 0) & (src <= w - 2) & (x >= 1)
    usable[:1] = usable[-1:] = False
    assert usable.sum() > 0.2 * usable.size, "too few right pixels to compare"
    diff = np.abs(warped[..., :2].astype(np.float32) - s.right[..., :2].astype(np.float32))
    return float(diff[usable].mean())


TOL = 1.2  # grey levels; the rendered pair itself is at 0.26, a 1 px error costs 3..12


def assert_consistent(s: StereoSample, cropped: bool = False) -> None:
    """The pair, its disparities, masks, depth and calibration still describe one scene.

    ``cropped``: a crop keeps NOC as it was (NOC marks scene occlusion; a left pixel whose
    match left the window stays NOC), so only "match inside the image => NOC" is checked.
    """
    h, w = s.size
    # the right image warped by the left disparity is the left image (texture channels) ...
    assert warp_error(s) < TOL
    # ... and the texture is fine enough that a disparity 1 px off would show
    assert warp_error(s, offset=1.0) > 2 * TOL
    assert right_warp_error(s) < TOL
    # the masks moved with the image: the invalid box is where the blue marker is dark
    dark = s.left[..., 2] < 125
    band = cv2.dilate(dark.view(np.uint8), np.ones((3, 3), np.uint8)) != cv2.erode(
        dark.view(np.uint8), np.ones((3, 3), np.uint8)
    )
    wrong = s.valid == dark
    off = wrong & ~band
    assert not off.any(), f"valid mask off the image at {np.argwhere(off)[:3].tolist()}"
    # NOC = valid and the match lies in the right image (1 px slack for nearest resampling)
    u = np.arange(w)[None, :]
    assert not (s.noc & ~s.valid).any()
    assert s.noc[s.valid & (u - s.disparity >= 1)].all()
    if not cropped:
        assert not s.noc[s.valid & (u - s.disparity < -1)].any()
    assert np.all(s.disparity[~s.valid] == 0)
    # depth = fx * B / (d + doffs) with the sample's own calibration
    np.testing.assert_allclose(
        s.depth[s.valid], s.calib.depth_from_disparity(s.disparity)[s.valid], rtol=1e-5
    )
    assert np.isnan(s.depth[~s.valid]).all()
    assert (s.calib.width, s.calib.height) == (w, h)


def assert_same_ground_truth(a: StereoSample, b: StereoSample) -> None:
    for key in ("disparity", "valid", "noc", "labels", "depth", "right_disparity"):
        assert np.array_equal(getattr(a, key), getattr(b, key), equal_nan=key == "depth"), key
    assert a.calib == b.calib


def test_fixture_is_consistent_and_the_checks_can_fail() -> None:
    s = planar_pair()
    assert_consistent(s)
    scaled = resize_sample(s, 60, 120)
    assert_consistent(scaled)
    broken = [
        replace(scaled, disparity=scaled.disparity / np.float32(120 / W)),  # disparity not scaled
        replace(s, right_disparity=s.right_disparity * np.float32(1.2)),
        replace(s, valid=np.roll(s.valid, 3, axis=1), noc=np.roll(s.noc, 3, axis=1)),
        replace(s, noc=s.valid),  # NOC ignoring the left border
        replace(s, right=render_right(dy=1.5)),  # a 1.5 px rectification error
        replace(s, calib=replace(s.calib, doffs=0.0)),  # depth no longer matches
        replace(s, calib=replace(s.calib, width=W + 1)),
    ]
    for sample in broken:
        with pytest.raises(AssertionError):
            assert_consistent(sample)


def disparity_values(s: StereoSample) -> np.ndarray:
    return np.unique(s.disparity[s.valid])


@pytest.mark.parametrize(
    ("height", "width"),
    [(24, 48), (60, 120), (96, 192), (48, 72), (58, 130), (40, 150)],
    ids=["half", "1.25", "double", "x-only-0.75", "x1.35-y1.2", "x1.56-y0.83"],
)
def test_resize_scales_disparity_by_sx_only_and_keeps_the_pair(height: int, width: int) -> None:
    s = planar_pair()
    out = resize_sample(s, height, width)
    sx, sy = width / W, height / H
    assert out.size == (height, width)
    assert_consistent(out)
    # nearest resampling on pixel centres: every new disparity is an old one times sx exactly
    expected = disparity_values(s) * np.float32(sx)
    assert np.isin(disparity_values(out), expected).all()
    right_expected = np.unique(s.right_disparity) * np.float32(sx)
    assert np.isin(np.unique(out.right_disparity), right_expected).all()
    # depth is invariant (nearest samples of the same depths)
    assert np.isin(np.unique(out.depth[out.valid]), np.unique(s.depth[s.valid])).all()
    c = out.calib
    assert c.fx == pytest.approx(CALIB.fx * sx) and c.fy == pytest.approx(CALIB.fy * sy)
    assert c.doffs == pytest.approx(CALIB.doffs * sx)
    assert c.cx == pytest.approx((CALIB.cx + 0.5) * sx - 0.5)
    assert c.cy == pytest.approx((CALIB.cy + 0.5) * sy - 0.5)
    assert c.baseline == CALIB.baseline


def test_scale_sample_is_the_isotropic_resize() -> None:
    s = planar_pair()
    a, b = scale_sample(s, 1.25), resize_sample(s, 60, 120)
    assert np.array_equal(a.left, b.left) and np.array_equal(a.disparity, b.disparity)
    assert a.calib == b.calib


def test_crop_keeps_doffs_and_the_pair() -> None:
    s = planar_pair()
    out = crop_sample(s, top=6, left=20, height=32, width=64)
    assert_consistent(out, cropped=True)
    assert np.array_equal(out.noc, s.noc[6:38, 20:84])
    assert np.array_equal(out.valid, s.valid[6:38, 20:84])
    assert out.calib.doffs == CALIB.doffs
    assert out.calib.cx == CALIB.cx - 20 and out.calib.cy == CALIB.cy - 6
    assert out.calib.cx_right == CALIB.cx_right - 20
    assert np.array_equal(out.disparity, s.disparity[6:38, 20:84])


def test_mirror_keeps_doffs_and_projects_the_mirrored_scene() -> None:
    s = planar_pair()
    m = mirror_sample(s)
    assert_consistent(m)
    c, mc = s.calib, m.calib
    assert mc.doffs == c.doffs and mc.baseline == c.baseline and mc.fx == c.fx
    # the new left camera is the old right one, mirrored: principal point W-1-cx_right
    assert mc.cx == pytest.approx(W - 1 - c.cx_right)
    # a 3D point seen by the original rig, and the same point in the mirrored world
    # (origin at the old right camera, x flipped) project to mirrored pixels
    x, z = 0.7, 5.0
    u_left = c.fx * x / z + c.cx
    u_right = c.fx * (x - c.baseline) / z + c.cx_right
    xm = c.baseline - x
    assert mc.fx * xm / z + mc.cx == pytest.approx(W - 1 - u_right)
    assert mc.fx * (xm - mc.baseline) / z + mc.cx_right == pytest.approx(W - 1 - u_left)
    # the pair's disparity at that point gives the same depth in both rigs
    d = u_left - u_right
    assert mc.depth_from_disparity(np.float32([d]))[0] == pytest.approx(z, rel=1e-5)
    assert c.depth_from_disparity(np.float32([d]))[0] == pytest.approx(z, rel=1e-5)
    back = mirror_sample(m)
    assert back.calib == s.calib


def test_augmentor_stretch_scales_disparity_by_sx_only() -> None:
    s = planar_pair()
    ratios = []
    for seed in range(6):
        aug = Augmentor(
            rng=np.random.default_rng(seed),
            crop_size=(32, 64),
            stretch_prob=1.0,
            max_stretch=0.3,
        )
        out = aug(s)
        assert out.size == (32, 64)
        assert_consistent(out, cropped=True)
        sx, sy = out.calib.fx / CALIB.fx, out.calib.fy / CALIB.fy
        ratios.append(sx / sy)
        got = disparity_values(out)
        want = disparity_values(s) * sx
        assert np.abs(got[:, None] - want[None, :]).min(axis=1).max() < 1e-4 * got.max()
        assert out.calib.doffs == pytest.approx(CALIB.doffs * sx)
    assert max(abs(np.log(r)) for r in ratios) > 0.05  # the aspect ratio did change


def test_augmentor_wide_scale_range_shows_many_disparity_ranges() -> None:
    s = planar_pair()
    aug = replace(
        Augmentor.for_transfer((32, 64), np.random.default_rng(0)),
        mirror_prob=0.0,
        per_view_photometric_prob=0.0,
        photometric_prob=0.0,
        blur_prob=0.0,
        vshift_prob=0.0,
        eraser_prob=0.0,
    )
    largest = []
    for _ in range(12):
        out = aug(s)
        assert_consistent(out, cropped=True)
        largest.append(out.disparity.max())
    assert max(largest) / min(largest) > 1.4


def estimate_vshift(right: np.ndarray) -> float:
    """The vertical shift of a right image against the analytic scene (0.02 px grid)."""
    h, w = right.shape[:2]
    inner = (slice(2, h - 2), slice(1, w - 1), slice(0, 2))
    candidates = np.arange(-1.0, 1.0001, 0.02)
    errors = [
        np.abs(render_right(h, w, dy)[inner].astype(float) - right[inner]).mean()
        for dy in candidates
    ]
    return float(candidates[int(np.argmin(errors))])


@pytest.mark.parametrize("dy", [-0.5, -0.2, 0.3, 0.5])
def test_vertical_shift_moves_only_the_right_view_by_a_subpixel_amount(dy: float) -> None:
    s = planar_pair()
    out = shift_right_vertically(s, dy)
    assert np.array_equal(out.left, s.left)
    assert_same_ground_truth(out, s)
    assert not np.array_equal(out.right, s.right)
    assert estimate_vshift(out.right) == pytest.approx(dy, abs=0.05)
    assert estimate_vshift(s.right) == pytest.approx(0.0, abs=0.03)


def test_augmentor_vertical_shift_is_subpixel_and_right_only() -> None:
    s = planar_pair()
    aug = Augmentor(rng=np.random.default_rng(0), vshift_prob=1.0, max_vshift=0.5)
    shifts = []
    for _ in range(6):
        out = aug(s)
        assert np.array_equal(out.left, s.left)
        assert_same_ground_truth(out, s)
        shifts.append(estimate_vshift(out.right))
    assert max(abs(v) for v in shifts) <= 0.5 + 0.05
    assert max(abs(v) for v in shifts) >= 0.1  # it does shift
    # a shift within half a pixel leaves the pair matching along the rows
    assert warp_error(out) < 3 * TOL
    # off: the same stream leaves the right view alone
    off = Augmentor(rng=np.random.default_rng(0), vshift_prob=0.0, max_vshift=0.5)
    assert np.array_equal(off(s).right, s.right)


def test_eraser_boxes_and_fill() -> None:
    aug = Augmentor(
        rng=np.random.default_rng(0), eraser_max_count=3, eraser_min_size=0.1, eraser_max_size=0.3
    )
    counts = set()
    for _ in range(60):
        boxes = aug.draw_eraser_boxes(H, W)
        counts.add(len(boxes))
        for top, left, bh, bw in boxes:
            assert 0 <= top and top + bh <= H and 0 <= left and left + bw <= W
            assert round(0.1 * H) <= bh <= round(0.3 * H)
            assert round(0.1 * W) <= bw <= round(0.3 * W)
    assert counts == {1, 2, 3}
    image = planar_pair().right
    out = erase_patches(image, [(2, 3, 4, 5), (10, 20, 3, 3)])
    mean = np.rint(image.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    changed = np.zeros((H, W), bool)
    changed[2:6, 3:8] = changed[10:13, 20:23] = True
    assert np.all(out[changed] == mean)
    assert np.array_equal(out[~changed], image[~changed])


def test_augmentor_eraser_occludes_the_right_view_only() -> None:
    s = planar_pair()
    mean = np.rint(s.right.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    h, w = s.size
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    for seed in range(4):
        aug = Augmentor(rng=np.random.default_rng(seed), eraser_prob=1.0)
        out = aug(s)
        assert np.array_equal(out.left, s.left)
        assert_same_ground_truth(out, s)
        changed = (out.right != s.right).any(axis=-1)
        assert changed.any()
        assert np.all(out.right[changed] == mean)  # patches of the mean colour
        assert changed.sum() <= 3 * (0.25 * h + 1) * (0.25 * w + 1)
        # left pixels whose match is outside the patches still match ...
        match_col = np.clip(np.rint(u - s.disparity).astype(int), 0, w - 1)
        hits = changed[v, match_col] | changed[v, np.clip(match_col + 1, 0, w - 1)]
        hits |= changed[v, np.clip(match_col - 1, 0, w - 1)]
        assert warp_error(out, where=~hits) < TOL
        # ... and those matching into a patch lost their photometric evidence (an occlusion)
        into = changed[v, match_col] & s.noc
        if into.sum() > 20:
            u_in = s.left[into][..., :2].astype(float)
            r_in = out.right[v[into], match_col[into]][..., :2].astype(float)
            assert np.abs(u_in - r_in).mean() > 3 * TOL


def test_blur_smooths_each_view_with_its_own_sigma() -> None:
    s = planar_pair()
    image = s.right
    assert np.array_equal(blur_image(image, 0.0), image)
    soft, softer = blur_image(image, 0.7), blur_image(image, 1.5)

    def sharpness(img: np.ndarray) -> float:
        return float(np.abs(np.diff(img[..., :2].astype(float), axis=1)).mean())

    assert sharpness(image) > sharpness(soft) > sharpness(softer)
    same = replace(s, right=s.left.copy())
    aug = Augmentor(rng=np.random.default_rng(0), blur_prob=1.0, blur_min_sigma=0.8)
    for _ in range(4):
        out = aug(same)
        assert_same_ground_truth(out, s)
        assert not np.array_equal(out.left, out.right)  # per-view sigma
        assert sharpness(out.left) < sharpness(s.left)
        assert sharpness(out.right) < sharpness(s.left)


def photometric_augmentor(seed: int, per_view: float, **kw) -> Augmentor:
    return Augmentor(
        rng=np.random.default_rng(seed),
        brightness=30,
        contrast=0.3,
        gamma=0.3,
        color=0.2,
        per_view_photometric_prob=per_view,
        **kw,
    )


def test_per_view_photometric_draws_differ_only_when_asymmetric() -> None:
    s = planar_pair()
    same = replace(s, right=s.left.copy())
    for seed in range(4):
        out = photometric_augmentor(seed, per_view=1.0)(same)
        assert not np.array_equal(out.left, out.right)
        assert_same_ground_truth(out, s)
        out = photometric_augmentor(seed, per_view=0.0)(same)
        assert np.array_equal(out.left, out.right)
        assert not np.array_equal(out.left, same.left)
    # the draws themselves: the right view's own parameters come from the same ranges
    aug = photometric_augmentor(0, per_view=0.5)
    draws = [aug.draw_photometric() for _ in range(40)]
    own = [d for d in draws if d.right_view is not None]
    assert 5 < len(own) < 35  # about half
    for d in own:
        r = d.right_view
        assert r.gain != d.gain and r.brightness != d.brightness and r.gamma != d.gamma
        assert 0.8 <= min(r.gain) <= max(r.gain) <= 1.2
        assert abs(r.brightness) <= 30 and 0.7 <= r.contrast <= 1.3
        assert 1 / 1.3 <= r.gamma <= 1.3
    assert photometric_augmentor(0, per_view=0.0).draw_photometric().right_view is None


def test_per_view_noise_levels() -> None:
    aug = Augmentor(rng=np.random.default_rng(0), noise_std=8.0, per_view_noise_prob=1.0)
    draws = [aug.draw_photometric() for _ in range(10)]
    assert all(d.right_noise_std is not None for d in draws)
    assert all(0 <= d.right_noise_std <= 8.0 for d in draws)
    assert any(abs(d.right_noise_std - d.noise_std) > 1.0 for d in draws)
    aug = Augmentor(rng=np.random.default_rng(0), noise_std=8.0)
    assert aug.draw_photometric().right_noise_std is None
    # the right view's own std is the one applied to it
    flat = np.full((64, 64, 3), 128, np.uint8)
    params = Photometric(noise_std=0.0, right_noise_std=6.0)
    left, right = photometric_pair(flat, flat.copy(), params, np.random.default_rng(0))
    assert np.array_equal(left, flat) and 4.5 < right.astype(float).std() < 7.5


def test_photometric_only_augmentations_leave_ground_truth_identical() -> None:
    s = planar_pair()
    aug = Augmentor(
        rng=np.random.default_rng(1),
        noise_std=4.0,
        brightness=20,
        contrast=0.2,
        gamma=0.2,
        color=0.1,
        asymmetric=0.02,
        per_view_photometric_prob=1.0,
        per_view_noise_prob=1.0,
        blur_prob=1.0,
        vshift_prob=1.0,
        eraser_prob=1.0,
    )
    for _ in range(4):
        out = aug(s)
        assert_same_ground_truth(out, s)
        assert out.meta == s.meta and out.size == s.size
        assert out.left.dtype == np.uint8 and not np.array_equal(out.left, s.left)


def test_transfer_preset_and_recipe() -> None:
    assert PRESETS == ("default", "transfer")
    rng = np.random.default_rng(0)
    t = Augmentor.preset("transfer", (32, 64), rng)
    d = Augmentor.for_training((32, 64), rng)
    for name in (
        "per_view_photometric_prob",
        "per_view_noise_prob",
        "stretch_prob",
        "blur_prob",
        "vshift_prob",
        "eraser_prob",
    ):
        assert getattr(t, name) > 0 and getattr(d, name) == 0, name
    assert t.min_scale < d.min_scale and t.max_scale > d.max_scale
    assert t.max_vshift <= 0.5  # sub-pixel
    # the recipe's names: the config accepts the preset, build_augmentor builds it
    raw = yaml.safe_load(TINY_RECIPE.read_text())
    raw["data"]["augment"] = "transfer"
    assert config_from_dict(raw).data.augment == "transfer"
    raw["data"]["augment"] = "strong"
    with pytest.raises(ConfigError, match="transfer"):
        config_from_dict(raw)
    built = build_augmentor(DataConfig(root="x", crop=[32, 64], augment="transfer"), 0)
    assert built == replace(t, rng=built.rng)
    built = build_augmentor(
        DataConfig(root="x", crop=[32, 64], augment={"preset": "transfer", "eraser_prob": 0.2}), 0
    )
    assert built.eraser_prob == 0.2 and built.vshift_prob == t.vshift_prob
    built = build_augmentor(DataConfig(root="x", crop=[32, 64], augment={"vshift_prob": 1.0}), 0)
    assert built.vshift_prob == 1.0 and built.eraser_prob == 0.0 and built.min_scale == 0.8
    with pytest.raises(ConfigError, match="preset"):
        build_augmentor(DataConfig(root="x", augment={"preset": "strong"}), 0)
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        Augmentor.preset("strong", None, rng)
    # the whole preset runs and keeps the disparity scaled with the calibration
    s = planar_pair()
    aug = Augmentor.for_transfer((32, 64), np.random.default_rng(3))
    for _ in range(8):
        out = aug(s)
        assert out.size == (32, 64) and out.left.dtype == np.uint8
        sx = out.calib.fx / CALIB.fx
        got, want = disparity_values(out), disparity_values(s) * sx
        assert np.abs(got[:, None] - want[None, :]).min(axis=1).max() < 1e-4 * got.max()
        assert out.calib.doffs == pytest.approx(CALIB.doffs * sx)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("vshift_prob", 1.5, "vshift_prob"),
        ("max_vshift", -0.1, "max_vshift"),
        ("max_stretch", -0.1, "max_stretch"),
        ("blur_min_sigma", 2.0, "blur_min_sigma"),
        ("eraser_min_size", 0.0, "eraser_min_size"),
        ("eraser_max_size", 1.5, "eraser_max_size"),
        ("eraser_max_count", 0, "eraser_max_count"),
        ("per_view_photometric_prob", -0.1, "per_view_photometric_prob"),
    ],
)
def test_transfer_fields_are_validated(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Augmentor(rng=np.random.default_rng(0), **{field: value})
