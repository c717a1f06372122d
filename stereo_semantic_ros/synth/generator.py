"""One seed -> one rendered, fully annotated synthetic stereo sample."""

from __future__ import annotations

import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.synth.render import Pinhole, ViewRender, render_view
from stereo_semantic_ros.synth.scene import Scene, make_scene
from stereo_semantic_ros.synth.textures import build_texture_bank

GENERATOR_VERSION = "1.0"
"""Bumped whenever the same seed would render a different sample."""

KITTI_FOCAL = 720.0
KITTI_WIDTH = 1242
DEFAULT_BASELINE = 0.54
DEFAULT_CAMERA_HEIGHT = 1.65
MAX_DISPARITY = 192.0
NOC_TOLERANCE_PX = 0.5
"""A left pixel is non-occluded when the right view's disparity at ``u - d`` (linearly
interpolated) is within this many pixels of ``d``: on a plane 1/Z is affine in u, so a visible
surface interpolates almost exactly, while a nearer occluder differs by far more."""


class SynthConfigError(ValueError):
    """Generator settings that cannot produce a valid sample."""


def default_focal(width: int) -> float:
    """KITTI's ~720 px focal length scaled to ``width`` (KITTI images are 1242 px wide)."""
    return KITTI_FOCAL * width / KITTI_WIDTH


def make_calibration(
    width: int, height: int, focal: float | None = None, baseline: float = DEFAULT_BASELINE
) -> StereoCalibration:
    """Calibration of the synthetic rig: square pixels, principal point at the image centre."""
    if width < 8 or height < 8:
        raise SynthConfigError(f"image size {width}x{height} is too small; use at least 8x8")
    f = default_focal(width) if focal is None else float(focal)
    if not np.isfinite(f) or f <= 0:
        raise SynthConfigError(f"focal length must be positive pixels, got {focal}")
    if not np.isfinite(baseline) or baseline <= 0:
        raise SynthConfigError(f"baseline must be positive metres, got {baseline}")
    return StereoCalibration(
        fx=f,
        fy=f,
        cx=(width - 1) / 2,
        cy=(height - 1) / 2,
        baseline=float(baseline),
        width=int(width),
        height=int(height),
    )


def _camera_response(
    color: np.ndarray, scene: Scene, rng: np.random.Generator, noise: bool
) -> np.ndarray:
    """Exposure, white balance, saturation, gamma and sensor noise -> uint8 RGB."""
    light = scene.lighting
    img = color * np.float32(light.exposure) * light.white_balance.astype(np.float32)
    lum = img.mean(axis=2, keepdims=True)
    img = lum + (img - lum) * np.float32(light.saturation)
    img = np.clip(img, 0.0, 1.0) ** np.float32(light.gamma) * np.float32(255.0)
    if noise:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(light.noise_sigma)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _disparity(view: ViewRender, fb: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        d = np.float32(fb) / view.depth
    return np.where(np.isfinite(view.depth), d, np.float32(0.0)).astype(np.float32)


def non_occluded(
    disp_left: np.ndarray, disp_right: np.ndarray, tol: float = NOC_TOLERANCE_PX
) -> np.ndarray:
    """(H, W) bool: left pixels with disparity whose match ``u - d`` is in the right image and
    shows the same surface (right disparity there agrees within ``tol`` pixels)."""
    H, W = disp_left.shape
    u = np.arange(W, dtype=np.float32)[None, :] - disp_left
    inside = (disp_left > 0) & (u >= 0) & (u <= W - 1)
    uc = np.clip(u, 0, W - 1)
    u0 = np.minimum(np.floor(uc).astype(np.int64), W - 2)
    frac = uc - u0
    rows = np.arange(H)[:, None]
    dr0 = disp_right[rows, u0]
    dr1 = disp_right[rows, u0 + 1]
    both = (dr0 > 0) & (dr1 > 0)
    interp = dr0 * (1 - frac) + dr1 * frac
    return inside & both & (np.abs(interp - disp_left) <= tol)


def generate_sample(
    seed: int,
    width: int = 512,
    height: int = 160,
    *,
    focal: float | None = None,
    baseline: float = DEFAULT_BASELINE,
    camera_height: float = DEFAULT_CAMERA_HEIGHT,
    noise: bool = True,
    use_photos: bool = True,
    name: str | None = None,
) -> StereoSample:
    """Render one synthetic street scene as a rectified stereo pair with full ground truth.

    Args:
        seed: scene seed (non-negative int); the same seed and settings give identical arrays.
        width, height: image size in pixels.
        focal: fx = fy in pixels; default 720 * width / 1242 (KITTI's field of view).
        baseline: metres between the camera centres; the right camera is at +x.
        camera_height: metres above the road.
        noise: add sensor noise (std ``meta['noise_sigma']`` grey levels, independent per view).
        use_photos: allow scikit-image photographs as textures (procedural stand-ins otherwise).
        name: sample name; default ``synth_<seed>``.

    Returns:
        A :class:`StereoSample` with left/right uint8 RGB, disparity/right_disparity in pixels
        (0 = sky, invalid), valid (finite depth), noc, labels (19-class train ids), depth
        (metres, NaN for sky), calib and meta: seed, generator version, noise_sigma (grey
        levels), camera_height, camera_pitch_rad / camera_roll_rad / camera_rotation (world from
        camera; world y points down, the road is the plane y = camera_height), num_primitives,
        photos, max_disparity, and ``right_labels``, the right view's (H, W) uint8 train ids
        (an array: drop it before serialising meta as JSON).
    """
    if int(seed) < 0:
        raise SynthConfigError(f"seed must be >= 0, got {seed}")
    if camera_height <= 0.2:
        raise SynthConfigError(f"camera_height must be > 0.2 m, got {camera_height}")
    calib = make_calibration(width, height, focal, baseline)
    bank = build_texture_bank(use_photos)
    fb = calib.fx * calib.baseline
    # nothing nearer than the depth of the maximum disparity (plus margin) -> all d < 192
    z_near = max(3.0, 1.2 * fb / MAX_DISPARITY)
    scene = make_scene(int(seed), bank, camera_height=camera_height, z_near=z_near)
    rotation = scene.camera_rotation()
    cam = Pinhole(calib.fx, calib.fy, calib.cx, calib.cy, calib.width, calib.height, rotation)
    dirs = cam.ray_directions()
    arrays = scene.arrays()
    left_view = render_view(scene, arrays, bank, cam, dirs, np.zeros(3))
    right_origin = rotation @ np.array([calib.baseline, 0.0, 0.0])
    right_view = render_view(scene, arrays, bank, cam, dirs, right_origin)

    disp = _disparity(left_view, fb)
    disp_r = _disparity(right_view, fb)
    valid = disp > 0
    noc = non_occluded(disp, disp_r)
    depth = np.where(valid, left_view.depth, np.float32(np.nan)).astype(np.float32)

    noise_rng = np.random.default_rng([int(seed), 0x5EED])
    left = _camera_response(left_view.color, scene, noise_rng, noise)
    right = _camera_response(right_view.color, scene, noise_rng, noise)
    labels = left_view.labels
    light = scene.lighting
    meta = {
        "source": "stereo_semantic_ros.synth",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "noise_sigma": float(light.noise_sigma) if noise else 0.0,
        "camera_height": float(camera_height),
        "camera_pitch_rad": scene.pitch,
        "camera_roll_rad": scene.roll,
        "camera_rotation": rotation.tolist(),
        "num_primitives": len(scene.primitives),
        "photos": bank.photos,
        "max_disparity": float(disp.max()),
        "right_labels": right_view.labels,
    }
    return StereoSample(
        left=left,
        right=right,
        calib=calib,
        disparity=disp,
        valid=valid,
        noc=noc,
        labels=labels,
        depth=depth,
        right_disparity=disp_r,
        name=name if name is not None else f"synth_{int(seed):08d}",
        meta=meta,
    )
