"""The "objects" scene family: textured planar shapes at random depths, for learning to match.

Street scenes teach a network the layout of a street (road plane, horizon, object sizes), and a
network can predict their disparity from that layout alone without comparing the two views;
on a real camera that fails. In this family nothing but the pair itself says how far a surface
is: a slanted background plane and 8-40 randomly placed, rotated and slanted planar shapes
(ellipses, polygons, blobs, thin bars) textured with the texture bank's photographs and
procedural patterns (a few nearly textureless), each at a depth drawn so that the disparities of
the scene cover ``[1, max_disparity)`` roughly uniformly. Objects occlude each other and the
background, thin bars make thin structures, and the two views get slightly different gain,
offset and gamma (real cameras never match exactly). The semantic classes of the street label
set do not apply: every label is the ignore label.

The views are ray-cast exactly: a left pixel at depth Z matches the right pixel ``u - fx*B/Z``
(see :mod:`stereo_semantic_ros.calibration`), so the ground truth is exact up to the shapes'
hard edges.
"""

from __future__ import annotations

import numpy as np

from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.labels import IGNORE_LABEL
from stereo_semantic_ros.synth.generator import (
    DEFAULT_BASELINE,
    GENERATOR_VERSION,
    SynthConfigError,
    make_calibration,
    non_occluded,
)
from stereo_semantic_ros.synth.textures import TextureBank, build_texture_bank

SHAPES = ("ellipse", "polygon", "blob", "bar")
DEFAULT_OBJECTS_MAX_DISPARITY = 88.0


def _rotation(rng: np.random.Generator, max_tilt: float) -> np.ndarray:
    """Rows: the plane's two in-plane axes and its normal (facing the camera, tilted by at most
    ``max_tilt`` radians)."""
    tilt = rng.uniform(0.0, max_tilt)
    azimuth = rng.uniform(0.0, 2 * np.pi)
    normal = np.array(
        [np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), -np.cos(tilt)]
    )
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a1 = np.cross(normal, helper)
    a1 /= np.linalg.norm(a1)
    a2 = np.cross(normal, a1)
    spin = rng.uniform(0.0, 2 * np.pi)
    a1, a2 = np.cos(spin) * a1 + np.sin(spin) * a2, -np.sin(spin) * a1 + np.cos(spin) * a2
    return np.stack([a1, a2, normal])


class _Plane:
    """One textured planar shape in the left camera's frame (metres, z forward, y down)."""

    def __init__(
        self,
        rng: np.random.Generator,
        bank: TextureBank,
        centre: np.ndarray,
        radius: float,
        axes: np.ndarray,
        shape: str | None,
        fx: float,
    ) -> None:
        self.centre = centre
        self.radius = radius
        self.axes = axes
        self.shape = shape  # None = unbounded (the background)
        self.aspect = rng.uniform(0.3, 1.0)
        self.tex = int(rng.integers(len(bank.names)))
        # texture scale in pixels at the plane's centre: from fine grain to large patterns
        metres_per_px = float(centre[2]) / fx
        self.tile = metres_per_px * float(np.exp(rng.uniform(np.log(24.0), np.log(320.0))))
        self.contrast = float(rng.uniform(1.0, 2.2))
        self.offset = rng.uniform(0, 1e3, 2)
        self.tint = rng.uniform(0.55, 1.25, 3).astype(np.float32)
        # nearly textureless surfaces exist on real cameras (walls, sky, paint)
        self.flat = rng.random() < 0.1
        self.albedo = 0.55 + 0.45 * float(-axes[2, 2])  # lit from the camera side
        if shape == "polygon" or shape == "blob":
            n = int(rng.integers(3, 9))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            lo = 0.8 if shape == "polygon" else 0.35
            radii = rng.uniform(lo, 1.0, n)
            self.vertices = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1)
        if shape == "bar":
            self.aspect = rng.uniform(0.01, 0.06)

    def intersect(
        self, origin: np.ndarray, rays: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Depth (z, inf where missed) and in-plane coordinates (metres) for (N, 3) rays."""
        normal = self.axes[2]
        denom = rays @ normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((self.centre - origin) @ normal) / denom
        hit = origin + t[:, None] * rays
        local = (hit - self.centre) @ self.axes[:2].T
        inside = np.isfinite(t) & (t > 0.05)
        if self.shape is not None:
            x, y = local[:, 0] / self.radius, local[:, 1] / self.radius
            if self.shape == "ellipse":
                inside &= x**2 + (y / self.aspect) ** 2 <= 1.0
            elif self.shape == "bar":
                inside &= (np.abs(x) <= 1.0) & (np.abs(y) <= self.aspect)
            else:
                inside &= _inside_polygon(x, y, self.vertices)
        z = np.where(inside, t * rays[:, 2], np.inf)
        return z, local[:, 0], local[:, 1]

    def colour(
        self, bank: TextureBank, s: np.ndarray, t: np.ndarray, footprint: np.ndarray
    ) -> np.ndarray:
        """(n, 3) colours at in-plane coordinates; ``footprint``: metres per pixel there."""
        scale = bank.size / self.tile
        level = np.log2(np.maximum(footprint * scale, 1e-6))
        tex = np.full(s.shape, self.tex, np.int64)
        texels = bank.sample(tex, (s + self.offset[0]) * scale, (t + self.offset[1]) * scale, level)
        mean = texels.mean(0, keepdims=True)
        # nearly textureless surfaces keep 8 % of their texture, the others are boosted
        texels = mean + (texels - mean) * np.float32(0.08 if self.flat else self.contrast)
        return texels * self.tint * np.float32(self.albedo)


def _inside_polygon(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon test, vectorised over the points."""
    inside = np.zeros(x.shape, bool)
    n = len(vertices)
    for i in range(n):
        x0, y0 = vertices[i]
        x1, y1 = vertices[(i + 1) % n]
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xc)
    return inside


def _render(
    planes: list[_Plane], bank: TextureBank, rays: np.ndarray, origin: np.ndarray, fx: float
) -> tuple[np.ndarray, np.ndarray]:
    """Colour (N, 3) and depth (N,) of the nearest plane along each ray."""
    depth = np.full(len(rays), np.inf)
    owner = np.full(len(rays), -1)
    coords = np.zeros((len(rays), 2))
    for i, plane in enumerate(planes):
        z, s, t = plane.intersect(origin, rays)
        nearer = z < depth
        depth[nearer] = z[nearer]
        owner[nearer] = i
        coords[nearer, 0] = s[nearer]
        coords[nearer, 1] = t[nearer]
    colour = np.zeros((len(rays), 3), np.float32)
    for i, plane in enumerate(planes):
        mine = owner == i
        if mine.any():
            slant = np.abs(rays[mine] @ plane.axes[2]) / np.linalg.norm(rays[mine], axis=1)
            footprint = depth[mine] / (fx * np.maximum(slant, 0.2))
            colour[mine] = plane.colour(bank, coords[mine, 0], coords[mine, 1], footprint)
    return colour, depth


def generate_objects_sample(
    seed: int,
    width: int = 512,
    height: int = 160,
    *,
    focal: float | None = None,
    baseline: float = DEFAULT_BASELINE,
    max_disparity: float = DEFAULT_OBJECTS_MAX_DISPARITY,
    noise: bool = True,
    use_photos: bool = True,
    name: str | None = None,
) -> StereoSample:
    """Render one "objects" scene (module docstring) as a rectified pair with ground truth.

    Args:
        seed: scene seed (non-negative); the same seed and settings give identical arrays.
        width, height: image size in pixels.
        focal, baseline: the rig, as :func:`~stereo_semantic_ros.synth.generate_sample`.
        max_disparity: disparities are drawn from ``[1, max_disparity)`` pixels.
        noise: add independent sensor noise and a slightly different camera response (gain,
            offset, gamma) to each view; False renders both views with the same response.
        use_photos: allow scikit-image photographs as textures.
        name: sample name; default ``objects_<seed>``.

    Returns:
        A :class:`StereoSample` like the street generator's (disparity of both views, valid,
        noc, depth, calib), with every label ``IGNORE_LABEL`` and ``meta['family'] = 'objects'``.
    """
    if int(seed) < 0:
        raise SynthConfigError(f"seed must be >= 0, got {seed}")
    if not 2.0 <= max_disparity <= width / 2:
        raise SynthConfigError(
            f"max_disparity must be in [2, width / 2 = {width / 2:g}] pixels, got {max_disparity}"
        )
    calib = make_calibration(width, height, focal, baseline)
    bank = build_texture_bank(use_photos)
    fb = calib.fx * calib.baseline
    rng = np.random.default_rng([int(seed), 0x0B1EC7])

    def depth_of(d: float) -> float:
        return fb / d

    # background: a slanted plane whose disparity lies in the lower part of the range; its tilt
    # keeps the depth at the image corners within [0.5, 2] x the centre's (a steeper plane
    # would reach the horizon or the camera inside the view)
    d_bg = rng.uniform(1.0, 0.5 * max_disparity)
    centre_bg = np.array([0.0, 0.0, depth_of(d_bg)])
    half_fov = max(
        max(calib.cx, width - 1 - calib.cx) / calib.fx,
        max(calib.cy, height - 1 - calib.cy) / calib.fy,
    )
    bg_tilt = min(np.radians(50), np.arctan(0.5 / half_fov))
    planes = [_Plane(rng, bank, centre_bg, 1.0, _rotation(rng, bg_tilt), None, calib.fx)]
    count = int(rng.integers(12, 49))
    for _ in range(count):
        d = rng.uniform(max(1.0, d_bg), max_disparity)
        z = depth_of(d)
        # centres over the left view and the strip the right view adds on its side
        u = rng.uniform(-0.05 * width, 1.05 * width + 0.5 * d)
        v = rng.uniform(-0.05 * height, 1.05 * height)
        centre = np.array([(u - calib.cx) * z / calib.fx, (v - calib.cy) * z / calib.fy, z])
        shape = SHAPES[int(rng.choice(len(SHAPES), p=[0.3, 0.25, 0.25, 0.2]))]
        radius_px = np.exp(rng.uniform(np.log(6.0), np.log(0.45 * min(width, height * 2))))
        if shape == "bar":
            radius_px *= 2.0
        # the tilt keeps the depth over the shape within +-30 % of its centre's, so its
        # disparities stay near the drawn one
        reach = 1.6 * radius_px / calib.fx  # (in-plane extent / depth), polygons reach ~1.6 r
        axes = _rotation(rng, min(np.radians(60), float(np.arcsin(min(1.0, 0.3 / reach)))))
        planes.append(_Plane(rng, bank, centre, radius_px * z / calib.fx, axes, shape, calib.fx))

    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack(
        [((u - calib.cx) / calib.fx).ravel(), ((v - calib.cy) / calib.fy).ravel(), np.ones(u.size)],
        1,
    )
    views = []
    for origin in (np.zeros(3), np.array([calib.baseline, 0.0, 0.0])):
        colour, depth = _render(planes, bank, rays, origin, calib.fx)
        views.append((colour.reshape(height, width, 3), depth.reshape(height, width)))

    noise_rng = np.random.default_rng([int(seed), 0x5EED, 1])
    sigma = float(noise_rng.uniform(0.5, 3.0)) if noise else 0.0
    images = []
    for colour, _ in views:
        # per-view camera response: real left and right cameras differ slightly
        gain, offset, gamma = 1.0, 0.0, 1.0
        if noise:
            gain = noise_rng.uniform(0.92, 1.08)
            offset = noise_rng.uniform(-0.02, 0.02)
            gamma = noise_rng.uniform(0.92, 1.08)
        img = np.clip(colour * gain + offset, 0.0, 1.0) ** gamma * 255.0
        if noise:
            img = img + noise_rng.standard_normal(img.shape) * sigma
        images.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))

    with np.errstate(divide="ignore"):
        disp = np.where(np.isfinite(views[0][1]), fb / views[0][1], 0.0).astype(np.float32)
        disp_r = np.where(np.isfinite(views[1][1]), fb / views[1][1], 0.0).astype(np.float32)
    valid = disp > 0
    depth = np.where(valid, views[0][1], np.nan).astype(np.float32)
    labels = np.full((height, width), IGNORE_LABEL, np.uint8)
    meta = {
        "source": "stereo_semantic_ros.synth",
        "family": "objects",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "noise_sigma": sigma,
        "num_objects": count,
        "photos": bank.photos,
        "max_disparity": float(disp.max()),
        "right_labels": labels.copy(),
    }
    return StereoSample(
        left=images[0],
        right=images[1],
        calib=calib,
        disparity=disp,
        valid=valid,
        noc=non_occluded(disp, disp_r),
        labels=labels,
        depth=depth,
        right_disparity=disp_r,
        name=name if name is not None else f"objects_{int(seed):08d}",
        meta=meta,
    )
