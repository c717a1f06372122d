"""Vectorised ray casting of a :class:`~.scene.Scene` through a pinhole camera.

One call renders one view: every pixel's ray is intersected with the ground plane and with each
primitive (numpy, on the primitive's screen-space bounding rectangle only), the nearest hit wins,
and then surface attributes (normal, texture coordinates, class) are computed for the winning
primitive of each pixel in one batch per primitive kind. The two stereo views call this with the
same scene and ray directions and camera centres ``0`` and ``R @ (B, 0, 0)``, so occlusions and
disparities follow from the geometry alone.

Ray directions are scaled so that their camera-frame z component is 1: the ray parameter ``t``
at a hit *is* the depth Z of that point in the camera frame (metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stereo_semantic_ros.synth.scene import (
    BOX,
    CYLINDER,
    ELLIPSOID,
    ROAD,
    SKY,
    TERRAIN,
    Ground,
    Lighting,
    Scene,
)
from stereo_semantic_ros.synth.textures import TextureBank

_NEAR = 0.05  # metres; hits nearer than this along the ray are ignored


@dataclass(frozen=True)
class Pinhole:
    """Intrinsics (pixels) of both rectified views plus the shared orientation ``rotation``
    (world-from-camera, 3x3)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: np.ndarray

    def ray_directions(self) -> np.ndarray:
        """(H, W, 3) float32 world-frame ray directions with camera-frame z = 1."""
        u = (np.arange(self.width, dtype=np.float64) - self.cx) / self.fx
        v = (np.arange(self.height, dtype=np.float64) - self.cy) / self.fy
        cam = np.empty((self.height, self.width, 3))
        cam[..., 0] = u[None, :]
        cam[..., 1] = v[:, None]
        cam[..., 2] = 1.0
        return (cam @ np.asarray(self.rotation).T).astype(np.float32)


@dataclass
class ViewRender:
    """One rendered view before the camera response.

    Attributes:
        depth: (H, W) float32 camera-frame Z in metres, inf for sky.
        labels: (H, W) uint8 train ids.
        color: (H, W, 3) float32 linear radiance (about 0..1).
        prim: (H, W) int32 hit id: -1 sky, 0 ground, i + 1 primitive i.
    """

    depth: np.ndarray
    labels: np.ndarray
    color: np.ndarray
    prim: np.ndarray


# ------------------------------------------------------------------------- intersections


# Every intersection routine takes per-axis components (o, d, h), each a scalar or an array,
# and broadcasts: the same code serves one primitive against a block of pixels and a batch of
# (pixel, primitive) pairs. Callers silence numpy's divide/invalid warnings (inf/nan are
# handled by the comparisons).
Vec = tuple  # (x, y, z) components


def _hit_box(o: Vec, d: Vec, h: Vec) -> np.ndarray:
    """Slab method in the box frame; half sizes h. Returns the entry t, inf = miss."""
    tmin = tmax = None
    for k in range(3):
        inv = 1.0 / d[k]
        t1 = (-h[k] - o[k]) * inv
        t2 = (h[k] - o[k]) * inv
        lo = np.minimum(t1, t2)
        hi = np.maximum(t1, t2)
        tmin = lo if tmin is None else np.maximum(tmin, lo)
        tmax = hi if tmax is None else np.minimum(tmax, hi)
    return np.where((tmax >= tmin) & (tmin > _NEAR), tmin, np.inf)


def _hit_ellipsoid(o: Vec, d: Vec, h: Vec) -> np.ndarray:
    ox, oy, oz = o[0] / h[0], o[1] / h[1], o[2] / h[2]
    dx, dy, dz = d[0] / h[0], d[1] / h[1], d[2] / h[2]
    a = dx * dx + dy * dy + dz * dz
    b = dx * ox + dy * oy + dz * oz
    c = ox * ox + oy * oy + oz * oz - 1.0
    disc = b * b - a * c
    t = (-b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > _NEAR), t, np.inf)


def _hit_cylinder(o: Vec, d: Vec, h: Vec) -> np.ndarray:
    """Finite elliptic cylinder, axis = local y, radii h[0], h[2], half height h[1], with caps."""
    ox, oy, oz = o[0] / h[0], o[1], o[2] / h[2]
    dx, dy, dz = d[0] / h[0], d[1], d[2] / h[2]
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - 1.0
    disc = b * b - a * c
    t_side = (-b - np.sqrt(disc)) / a
    y_side = oy + t_side * dy
    t = np.where((disc >= 0) & (t_side > _NEAR) & (np.abs(y_side) <= h[1]), t_side, np.inf)
    # only the cap on the origin's side can be a first hit, and only from outside its slab
    t_cap = (np.where(oy > 0, h[1], -h[1]) - oy) / dy
    cx = ox + t_cap * dx
    cz = oz + t_cap * dz
    cap_ok = (np.abs(oy) > h[1]) & (t_cap > _NEAR) & (cx * cx + cz * cz <= 1.0) & (t_cap < t)
    return np.where(cap_ok, t_cap, t)


_HIT = {BOX: _hit_box, CYLINDER: _hit_cylinder, ELLIPSOID: _hit_ellipsoid}

# Shadow tests: does the ray from o along the (never axis-parallel, see _shadow_mask) sun
# direction d pass through the solid anywhere beyond _SHADOW_EPS? For a convex solid that is
# "the entry/exit interval is non-empty and ends in front of the origin".
_SHADOW_EPS = 0.01  # metres along the sun ray; origins are already lifted off their surface


def _blocks_box(o: Vec, d: Vec, h: Vec) -> np.ndarray:
    lo = hi = None
    for k in range(3):
        t1 = (-h[k] - o[k]) / d[k]
        t2 = (h[k] - o[k]) / d[k]
        a, b = np.minimum(t1, t2), np.maximum(t1, t2)
        lo = a if lo is None else np.maximum(lo, a)
        hi = b if hi is None else np.minimum(hi, b)
    return (hi >= lo) & (hi > _SHADOW_EPS)


def _blocks_ellipsoid(o: Vec, d: Vec, h: Vec) -> np.ndarray:
    ox, oy, oz = o[0] / h[0], o[1] / h[1], o[2] / h[2]
    dx, dy, dz = d[0] / h[0], d[1] / h[1], d[2] / h[2]
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - 1.0
    disc = b * b - a * c
    far = (-b + np.sqrt(disc)) / a
    return (disc >= 0) & (far > _SHADOW_EPS)


def _blocks_cylinder(o: Vec, d: Vec, h: Vec) -> np.ndarray:
    ox, oy, oz = o[0] / h[0], o[1], o[2] / h[2]
    dx, dy, dz = d[0] / h[0], d[1], d[2] / h[2]
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - 1.0
    disc = b * b - a * c
    root = np.sqrt(disc)
    lo = np.where(disc >= 0, (-b - root) / a, np.inf)
    hi = np.where(disc >= 0, (-b + root) / a, -np.inf)
    t1 = (-h[1] - oy) / dy
    t2 = (h[1] - oy) / dy
    lo = np.maximum(lo, np.minimum(t1, t2))
    hi = np.minimum(hi, np.maximum(t1, t2))
    return (hi >= lo) & (hi > _SHADOW_EPS)


_BLOCKS = {BOX: _blocks_box, CYLINDER: _blocks_cylinder, ELLIPSOID: _blocks_ellipsoid}

BATCH_MAX_AREA = 2500
"""Primitives covering at most this many pixels are intersected together in one vectorised
batch of (pixel, primitive) pairs; bigger ones one by one on their own pixel rectangle."""


def _rect_pairs(rects: np.ndarray, ids: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """All (primitive id, flat pixel index) pairs of the rectangles (v0, v1, u0, u1) of ``ids``."""
    h = rects[:, 1] - rects[:, 0]
    w = rects[:, 3] - rects[:, 2]
    area = h * w
    total = int(area.sum())
    owner = np.repeat(np.arange(len(ids)), area)
    j = np.arange(total) - np.repeat(np.cumsum(area) - area, area)
    row = rects[owner, 0] + j // w[owner]
    col = rects[owner, 2] + j % w[owner]
    return ids[owner], row * width + col


def _split(v: np.ndarray) -> Vec:
    return v[:, 0], v[:, 1], v[:, 2]


_CORNER_SIGNS = np.array(
    [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64
)


def _corners(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 8, 3) world corners of every primitive's bounding box."""
    return arrays["center"][:, None, :] + np.einsum(
        "ck,nk,njk->ncj", _CORNER_SIGNS, arrays["half"], arrays["rotation"]
    )


def _screen_rects(
    corners: np.ndarray, origin: np.ndarray, cam: Pinhole
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rectangles (N, 4) = (v0, v1, u0, u1) covering each primitive's bounding box
    (empty where unseen) and the nearest camera-frame depth (N,) of each bounding box."""
    pc = (corners - origin) @ cam.rotation
    zmin = np.maximum(pc[..., 2].min(axis=1), _NEAR)
    return _point_set_rects(pc, cam), zmin


def _point_set_rects(pc: np.ndarray, cam: Pinhole) -> np.ndarray:
    """Pixel rectangles (N, 4) = (v0, v1, u0, u1) covering the convex hulls of point sets
    ``pc`` (N, K, 3) in the camera frame, clipped at the near plane (empty when unseen)."""
    n = pc.shape[0]
    rects = np.zeros((n, 4), np.int64)
    front = pc[..., 2] > _NEAR
    all_front = front.all(axis=1)

    def bounds(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.stack(
            [
                np.clip(np.floor(v.min(axis=-1)) - 1, 0, cam.height),
                np.clip(np.ceil(v.max(axis=-1)) + 2, 0, cam.height),
                np.clip(np.floor(u.min(axis=-1)) - 1, 0, cam.width),
                np.clip(np.ceil(u.max(axis=-1)) + 2, 0, cam.width),
            ],
            axis=-1,
        ).astype(np.int64)

    pa = pc[all_front]
    rects[all_front] = bounds(
        cam.fx * pa[..., 0] / pa[..., 2] + cam.cx, cam.fy * pa[..., 1] / pa[..., 2] + cam.cy
    )
    for i in np.nonzero(front.any(axis=1) & ~all_front)[0]:
        # the hull's part in front of the near plane lies in the hull of the points in front
        # and of the plane crossings of every (front, behind) pair of points
        f = front[i]
        a = pc[i][f][:, None, :]
        b = pc[i][~f][None, :, :]
        w = (_NEAR - a[..., 2]) / (b[..., 2] - a[..., 2])
        cut = (a + (b - a) * w[..., None]).reshape(-1, 3)
        cut[:, 2] = _NEAR
        pts = np.concatenate([pc[i][f], cut])
        rects[i] = bounds(
            cam.fx * pts[:, 0] / pts[:, 2] + cam.cx, cam.fy * pts[:, 1] / pts[:, 2] + cam.cy
        )
    return rects


def _shadow_mask(
    arrays: dict[str, np.ndarray],
    cam: Pinhole,
    origin: np.ndarray,
    pts: np.ndarray,
    sun_dir: np.ndarray,
    ground_height: float,
) -> np.ndarray:
    """(H, W) bool: surface points ``pts`` (3, H, W) (NaN = nothing to test) from which the
    sun is blocked by a primitive. Only pixels inside the image rectangle of a primitive's
    shadow volume (its box extruded away from the sun down to the ground) are tested."""
    H, W = cam.height, cam.width
    shadow = np.zeros(H * W, bool)
    kinds, centers = arrays["kind"], arrays["center"]
    halves, rots = arrays["half"], arrays["rotation"]
    n = len(kinds)
    if n == 0 or sun_dir[1] >= -1e-6:
        return shadow.reshape(H, W)
    # a sun ray exactly parallel to a box face would divide 0 by 0; a 1e-6 nudge avoids it
    sun = np.where(np.abs(sun_dir) < 1e-6, 1e-6, sun_dir)
    corners = _corners(arrays)
    reach = np.maximum((corners[..., 1] - ground_height) / sun[1], 0.0)
    on_ground = corners - reach[..., None] * sun
    pc = (np.concatenate([corners, on_ground], axis=1) - origin) @ cam.rotation
    rects = _point_set_rects(pc, cam)
    area = (rects[:, 1] - rects[:, 0]) * (rects[:, 3] - rects[:, 2])
    casts = arrays["shadow"] & (area > 0)
    axis_aligned = np.all(np.abs(rots - np.eye(3)) < 1e-12, axis=(1, 2))
    sun_local = np.einsum("j,nji->ni", sun, rots)
    sun_local = np.where(np.abs(sun_local) < 1e-6, 1e-6, sun_local).astype(np.float32)
    flat = pts.reshape(3, -1)

    # small shadow volumes: all (pixel, primitive) pairs of one kind in one batch
    small = casts & (area <= BATCH_MAX_AREA)
    for kind in (BOX, CYLINDER, ELLIPSOID):
        ids = np.nonzero(small & (kinds == kind))[0]
        if not len(ids):
            continue
        owner, pix = _rect_pairs(rects[ids], ids, W)
        p = flat[:, pix].T
        keep = ~np.isnan(p[:, 0]) & ~shadow[pix]
        owner, pix, p = owner[keep], pix[keep], p[keep]
        rel = np.einsum("pj,pjk->pk", p - arrays["center32"][owner], arrays["rotation32"][owner])
        blocked = _BLOCKS[kind](
            _split(rel), _split(sun_local[owner]), _split(arrays["half32"][owner])
        )
        shadow[pix[blocked]] = True

    # big ones one by one. Axis-aligned boxes (buildings, walls: the big casters) use a cheaper
    # slab test: along the sun ray the slab bounds are (c -+ h - P) / s, so with Q = P / s
    # precomputed per pixel each bound is a constant minus Q.
    shadow = shadow.reshape(H, W)
    sun32 = sun.astype(np.float32)
    q = tuple(pts[k] / sun32[k] for k in range(3))
    b1 = (centers - halves) / sun
    b2 = (centers + halves) / sun
    lo_c = np.minimum(b1, b2).astype(np.float32)
    hi_c = np.maximum(b1, b2).astype(np.float32)
    for i in np.nonzero(casts & ~small)[0]:
        v0, v1, u0, u1 = rects[i]
        sl = (slice(v0, v1), slice(u0, u1))
        if axis_aligned[i] and kinds[i] == BOX:
            lo = np.maximum(
                np.maximum(lo_c[i, 0] - q[0][sl], lo_c[i, 1] - q[1][sl]), lo_c[i, 2] - q[2][sl]
            )
            hi = np.minimum(
                np.minimum(hi_c[i, 0] - q[0][sl], hi_c[i, 1] - q[1][sl]), hi_c[i, 2] - q[2][sl]
            )
            shadow[sl] |= (hi >= lo) & (hi > _SHADOW_EPS)
            continue
        c = arrays["center32"][i]
        rel = (pts[0][sl] - c[0], pts[1][sl] - c[1], pts[2][sl] - c[2])
        if not axis_aligned[i]:
            r = arrays["rotation32"][i]
            rel = tuple(rel[0] * r[0, k] + rel[1] * r[1, k] + rel[2] * r[2, k] for k in range(3))
        shadow[sl] |= _BLOCKS[int(kinds[i])](rel, tuple(sun_local[i]), tuple(arrays["half32"][i]))
    return shadow


# --------------------------------------------------------------------------- shading


def _coverage(x: np.ndarray, foot: np.ndarray, a: float, b: float) -> np.ndarray:
    """Fraction of the footprint [x - foot/2, x + foot/2] inside [a, b] (box-filtered edge)."""
    lo = np.maximum(x - foot / 2, a)
    hi = np.minimum(x + foot / 2, b)
    return np.clip((hi - lo) / foot, 0.0, 1.0)


def _dash_coverage(z: np.ndarray, foot: np.ndarray, period: float, length: float) -> np.ndarray:
    if period <= 0:
        return np.ones_like(z)
    ph = np.mod(z, period)
    cov = _coverage(ph, foot, 0.0, length) + _coverage(ph - period, foot, 0.0, length)
    return np.where(foot >= period, length / period, np.clip(cov, 0.0, 1.0))


def _ground_albedo(
    g: Ground, bank: TextureBank, pts: np.ndarray, dist: np.ndarray, cos: np.ndarray, fx: float
) -> tuple[np.ndarray, np.ndarray]:
    """Albedo (n, 3) and labels (n,) of ground hits at world points ``pts`` (n, 3)."""
    x, z = pts[:, 0], pts[:, 2]
    on_road = (x >= g.road_x[0]) & (x <= g.road_x[1])
    tex = np.where(on_road, g.road_texture, g.terrain_texture)
    texel = np.where(on_road, g.road_texel, g.terrain_texel).astype(np.float32)
    foot = dist / (fx * np.sqrt(np.maximum(cos, 0.05)))
    level = np.log2(np.maximum(foot / texel, 1e-6))
    # road and terrain use different offsets so the two textures do not line up
    albedo = bank.sample(tex, x / texel + 37.0, z / texel, level)
    albedo *= np.where(on_road[:, None], g.road_tint, g.terrain_tint).astype(np.float32)
    labels = np.where(on_road, ROAD, TERRAIN).astype(np.uint8)
    # lane markings and a zebra crossing, box-filtered over the pixel footprint on the ground
    foot_x = dist / fx
    foot_z = dist / (fx * np.maximum(cos, 0.02))
    paint = np.zeros_like(x)
    for xc, hw, period, length in g.lane_lines:
        paint = np.maximum(
            paint,
            _coverage(x, foot_x, xc - hw, xc + hw) * _dash_coverage(z, foot_z, period, length),
        )
    if g.crosswalk is not None:
        z0, z1, stripe = g.crosswalk
        across = _coverage(z, foot_z, z0, z1)
        along = _dash_coverage(x - g.road_x[0], foot_x, 2 * stripe, stripe)
        paint = np.maximum(paint, across * along * (x > g.road_x[0]) * (x < g.road_x[1]))
    paint = (paint * on_road)[:, None].astype(np.float32)
    lum = albedo.mean(axis=1, keepdims=True)
    marking = np.float32(0.55) + np.float32(0.9) * lum  # worn paint keeps the asphalt's grain
    return albedo * (1 - paint) + marking * paint, labels


def _sky(light: Lighting, bank: TextureBank, d: np.ndarray, fx: float) -> np.ndarray:
    """Sky colour (n, 3) for world directions d (n, 3); depends on direction only."""
    norm = np.linalg.norm(d, axis=1)
    up = -d[:, 1] / norm
    k = np.clip(up * 3.0, 0.0, 1.0)[:, None] ** 0.7
    col = light.sky_horizon + (light.sky_zenith - light.sky_horizon) * k
    # clouds on a virtual plane 1 km up: texture coordinates from where the ray meets it
    up_c = np.maximum(up, 0.02)
    s = d[:, 0] / norm / up_c * 1000.0
    t = d[:, 2] / norm / up_c * 1000.0
    texel = np.float32(12.0)
    foot = 1000.0 / (up_c * up_c * fx)
    cloud = bank.sample(
        np.full(len(d), bank.id("clouds_0")),
        s / texel,
        t / texel,
        np.log2(np.maximum(foot / texel, 1e-6)),
    )[:, :1]
    fade = np.clip((up - 0.01) * 8.0, 0.0, 1.0)[:, None]
    amount = np.clip(cloud * 1.6 * light.clouds, 0, 1) * fade
    return (col * (1 - amount) + 0.95 * amount * np.array([1.0, 1.0, 1.0])).astype(np.float32)


# ----------------------------------------------------------------------------- render


def render_view(
    scene: Scene,
    arrays: dict[str, np.ndarray],
    bank: TextureBank,
    cam: Pinhole,
    dirs: np.ndarray,
    origin: np.ndarray,
) -> ViewRender:
    """Render one view.

    Args:
        scene: the scene (ground, lighting).
        arrays: ``scene.arrays()`` (passed in so both views share it).
        bank: texture bank the scene's texture ids refer to.
        cam: intrinsics and orientation.
        dirs: (H, W, 3) float32 from ``cam.ray_directions()``.
        origin: (3,) camera centre in the world frame (metres).
    """
    origin = np.asarray(origin, np.float64)
    # inf and nan from rays parallel to faces or missing quadrics are resolved by comparisons
    with np.errstate(divide="ignore", invalid="ignore"):
        depth, prim = cast_rays(scene, arrays, cam, dirs, origin)
        return _shade(scene, arrays, bank, cam, dirs, origin, depth, prim)


def cast_rays(
    scene: Scene, arrays: dict[str, np.ndarray], cam: Pinhole, dirs: np.ndarray, origin: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit per pixel: (depth (H, W) float32, inf = sky; prim id (H, W) int32)."""
    W = cam.width
    g = scene.ground
    planes = tuple(np.ascontiguousarray(dirs[..., k]) for k in range(3))
    t_ground = (np.float32(g.height - origin[1])) / planes[1]
    depth = np.where(
        (t_ground > _NEAR) & (t_ground < g.max_distance), t_ground, np.float32(np.inf)
    ).astype(np.float32)
    prim = np.where(np.isfinite(depth), 0, -1).astype(np.int32)
    kinds = arrays["kind"]
    if not len(kinds):
        return depth, prim
    rots = arrays["rotation"]
    rects, zmin = _screen_rects(_corners(arrays), origin, cam)
    area = (rects[:, 1] - rects[:, 0]) * (rects[:, 3] - rects[:, 2])
    axis_aligned = np.all(np.abs(rots - np.eye(3)) < 1e-12, axis=(1, 2))
    o_local = np.einsum("nj,nji->ni", origin - arrays["center"], rots).astype(np.float32)
    halves32, rots32 = arrays["half32"], arrays["rotation32"]

    # small primitives: all (pixel, primitive) pairs of one kind in one batch, then the
    # nearest hit per pixel by a scatter-min
    small = (area > 0) & (area <= BATCH_MAX_AREA)
    flat_depth = depth.reshape(-1)
    flat_prim = prim.reshape(-1)
    flat_dirs = dirs.reshape(-1, 3)
    found_pix, found_t, found_id = [], [], []
    for kind in (BOX, CYLINDER, ELLIPSOID):
        ids = np.nonzero(small & (kinds == kind))[0]
        if not len(ids):
            continue
        owner, pix = _rect_pairs(rects[ids], ids, W)
        d_local = np.einsum("pj,pjk->pk", flat_dirs[pix], rots32[owner])
        t = _HIT[kind](_split(o_local[owner]), _split(d_local), _split(halves32[owner]))
        hit = t < flat_depth[pix]
        found_pix.append(pix[hit])
        found_t.append(t[hit].astype(np.float32))
        found_id.append(owner[hit])
    if found_pix:
        pix = np.concatenate(found_pix)
        t = np.concatenate(found_t)
        ids = np.concatenate(found_id)
        np.minimum.at(flat_depth, pix, t)
        win = t <= flat_depth[pix]
        flat_prim[pix[win]] = ids[win] + 1

    # big primitives one by one on their rectangle, front to back, so that those hidden
    # behind nearer ones are skipped cheaply
    big = np.nonzero(area > BATCH_MAX_AREA)[0]
    for i in big[np.argsort(zmin[big], kind="stable")]:
        v0, v1, u0, u1 = rects[i]
        cur = depth[v0:v1, u0:u1]
        if cur.max() <= zmin[i]:
            continue
        sub = (planes[0][v0:v1, u0:u1], planes[1][v0:v1, u0:u1], planes[2][v0:v1, u0:u1])
        if axis_aligned[i]:
            d_local = sub
        else:
            r = rots32[i]
            d_local = tuple(
                sub[0] * r[0, k] + sub[1] * r[1, k] + sub[2] * r[2, k] for k in range(3)
            )
        t = _HIT[int(kinds[i])](tuple(o_local[i]), d_local, tuple(halves32[i]))
        closer = t < cur
        np.copyto(cur, t, where=closer)
        np.copyto(prim[v0:v1, u0:u1], i + 1, where=closer)
    return depth, prim


def _shade(
    scene: Scene,
    arrays: dict[str, np.ndarray],
    bank: TextureBank,
    cam: Pinhole,
    dirs: np.ndarray,
    origin: np.ndarray,
    depth: np.ndarray,
    prim: np.ndarray,
) -> ViewRender:
    """Surface attributes, texture, lighting and sky for the hits found by :func:`cast_rays`."""
    H, W = cam.height, cam.width
    g = scene.ground
    kinds = arrays["kind"]
    labels = np.full((H, W), SKY, np.uint8)
    color = np.zeros((H, W, 3), np.float32)
    flat_prim = prim.reshape(-1)
    flat_depth = depth.reshape(-1)
    flat_dirs = dirs.reshape(-1, 3)
    flat_labels = labels.reshape(-1)
    flat_color = color.reshape(-1, 3)
    light = scene.lighting

    hit = np.nonzero(flat_prim >= 0)[0]
    d_hit = flat_dirs[hit]
    t_hit = flat_depth[hit]
    pts = origin.astype(np.float32) + d_hit * t_hit[:, None]
    dnorm = np.linalg.norm(d_hit, axis=1)
    dist = t_hit * dnorm
    normal = np.empty_like(pts)
    albedo = np.empty_like(pts)

    is_ground = flat_prim[hit] == 0
    gi = np.nonzero(is_ground)[0]
    normal[gi] = (0.0, -1.0, 0.0)
    cos_g = np.abs(d_hit[gi, 1]) / dnorm[gi]
    albedo[gi], flat_labels[hit[gi]] = _ground_albedo(g, bank, pts[gi], dist[gi], cos_g, cam.fx)

    oi = np.nonzero(~is_ground)[0]
    if len(oi):
        pid = flat_prim[hit[oi]] - 1
        rot = arrays["rotation32"][pid]
        half = arrays["half32"][pid]
        p = np.einsum("nj,nji->ni", pts[oi] - arrays["center32"][pid], rot)
        kind = kinds[pid]
        n_loc = np.zeros_like(p)
        s = np.zeros(len(oi), np.float32)
        t = np.zeros(len(oi), np.float32)

        m = kind == BOX
        if m.any():
            pb, hb = p[m], half[m]
            axis = np.argmax(np.abs(pb) / hb, axis=1)
            rows = np.arange(len(pb))
            nb = np.zeros_like(pb)
            nb[rows, axis] = np.sign(pb[rows, axis])
            n_loc[m] = nb
            q = pb + hb  # 0 .. 2h from the face corner
            # s/t per face: x faces (z, y); y faces (x, z); z faces (x, y)
            s[m] = np.where(axis == 0, q[:, 2], q[:, 0])
            t[m] = np.where(axis == 1, q[:, 2], q[:, 1])

        m = (kind == CYLINDER) | (kind == ELLIPSOID)
        if m.any():
            pc, hc = p[m], half[m]
            rx, rz = pc[:, 0] / hc[:, 0], pc[:, 2] / hc[:, 2]
            rad = np.sqrt(rx * rx + rz * rz)
            circ = 0.5 * (hc[:, 0] + hc[:, 2])
            ang = np.arctan2(rx, -rz)
            s_c = (ang + np.pi) * circ
            t_c = pc[:, 1] + hc[:, 1]
            ell = kind[m] == ELLIPSOID
            n_c = pc / (hc * hc)
            n_c[~ell, 1] = 0.0
            cap = ~ell & (np.abs(1.0 - np.abs(pc[:, 1]) / hc[:, 1]) < np.abs(1.0 - rad))
            if cap.any():
                n_c[cap] = 0.0
                n_c[cap, 1] = np.sign(pc[cap, 1])
                s_c[cap] = pc[cap, 0] + hc[cap, 0]
                t_c[cap] = pc[cap, 2] + hc[cap, 2]
                # a fitted texture covers each cap once (the face of a round sign)
                fit = arrays["fit"][pid[m]] & cap
                if fit.any():
                    texel_m = arrays["texel"][pid[m][fit]]
                    s_c[fit] *= bank.size * texel_m[:, 0] / (2 * hc[fit, 0])
                    t_c[fit] *= bank.size * texel_m[:, 1] / (2 * hc[fit, 2])
            n_loc[m] = n_c
            s[m] = s_c
            t[m] = t_c

        n_w = np.einsum("nij,nj->ni", rot, n_loc)
        n_w /= np.maximum(np.linalg.norm(n_w, axis=1, keepdims=True), 1e-9)
        normal[oi] = n_w
        texel = arrays["texel"][pid]
        off = arrays["offset"][pid]
        cos_o = np.abs(np.einsum("ni,ni->n", n_w, d_hit[oi])) / dnorm[oi]
        foot = dist[oi] / (cam.fx * np.sqrt(np.maximum(cos_o, 0.05)))
        level = np.log2(np.maximum(foot / np.sqrt(texel[:, 0] * texel[:, 1]), 1e-6))
        albedo[oi] = (
            bank.sample(
                arrays["texture"][pid],
                s / texel[:, 0] + off[:, 0],
                t / texel[:, 1] + off[:, 1],
                level,
            )
            * arrays["tint"][pid]
        )
        flat_labels[hit[oi]] = arrays["label"][pid]

    # Lambert sun + sky ambient (up-facing surfaces see more sky); face the normal to the viewer
    facing = np.einsum("ni,ni->n", normal, d_hit) > 0
    normal[facing] *= -1
    lambert = np.clip(normal @ light.sun_dir.astype(np.float32), 0.0, None)[:, None]
    # cast shadows: is the sun visible from each lit point (lifted a little off its surface)?
    lit = np.nonzero(lambert[:, 0] > 0)[0]
    planes = np.full((3, H * W), np.nan, np.float32)
    planes[:, hit[lit]] = (pts[lit] + 0.02 * normal[lit]).T
    shadow = _shadow_mask(arrays, cam, origin, planes.reshape(3, H, W), light.sun_dir, g.height)
    lambert[shadow.reshape(-1)[hit]] = 0.0
    sky_view = (0.7 - 0.3 * normal[:, 1])[:, None]
    shade = light.ambient.astype(np.float32) * sky_view + light.sun.astype(np.float32) * lambert
    rgb = albedo * shade
    # aerial perspective: far surfaces fade towards the horizon colour
    fog = np.exp(-dist / light.haze_m)[:, None].astype(np.float32)
    rgb = rgb * fog + light.sky_horizon.astype(np.float32) * 0.95 * (1 - fog)
    flat_color[hit] = rgb

    sky = np.nonzero(flat_prim < 0)[0]
    if len(sky):
        flat_color[sky] = _sky(light, bank, flat_dirs[sky], cam.fx)
    return ViewRender(depth=depth, labels=labels, color=color, prim=prim)
