"""Random street-scene descriptions: what is where, with which class, texture and lighting.

World frame (metres): origin at the left camera centre, x right, y down, z forward (the
OpenCV camera axes before the camera's small pitch and roll). The ground is the plane
``y = camera_height``. A scene is a list of solid primitives (oriented boxes, finite elliptic
cylinders, ellipsoids) plus the ground plane and the sky; :mod:`.render` ray-casts it.

Everything is drawn from ``numpy.random.default_rng(seed)``: one seed, one scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stereo_semantic_ros.labels import CITYSCAPES_19
from stereo_semantic_ros.synth.textures import TextureBank

BOX, CYLINDER, ELLIPSOID = 0, 1, 2
"""Primitive kinds. Cylinders have their axis along the local y axis."""

_CLS = {name: i for i, name in enumerate(CITYSCAPES_19.names)}
ROAD, SIDEWALK, BUILDING, WALL, FENCE = (
    _CLS[n] for n in ("road", "sidewalk", "building", "wall", "fence")
)
POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = _CLS["pole"], _CLS["traffic light"], _CLS["traffic sign"]
VEGETATION, TERRAIN, SKY = _CLS["vegetation"], _CLS["terrain"], _CLS["sky"]
PERSON, RIDER, CAR, TRUCK, BUS = (_CLS[n] for n in ("person", "rider", "car", "truck", "bus"))
TRAIN, MOTORCYCLE, BICYCLE = _CLS["train"], _CLS["motorcycle"], _CLS["bicycle"]


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float64)


def rot_y(a: float) -> np.ndarray:
    """Rotation about the vertical axis (a heading change in the ground plane)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float64)


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)


@dataclass
class Primitive:
    """One solid. ``rotation`` columns are its local axes in world coordinates.

    The local frame is y-down like the world, so texture t runs down a surface.
    ``texel`` is metres per level-0 texel along (s, t); ``offset`` shifts the texture (texels).
    ``fit``: the texture is stretched once over the primitive (signs, vehicle sides) rather
    than tiled. ``shadow``: the primitive casts sun shadows.
    """

    kind: int
    label: int
    center: np.ndarray
    half: np.ndarray
    rotation: np.ndarray
    texture: int
    texel: np.ndarray
    tint: np.ndarray
    offset: np.ndarray
    fit: bool = False
    shadow: bool = True


@dataclass
class Ground:
    """The ground plane ``y = height``: road between ``road_x``, terrain outside (under sidewalks
    hidden by the sidewalk boxes). Lane lines are (x centre, half width m, dash period m,
    dash length m; period 0 = solid). ``crosswalk`` is (z0, z1, stripe width m) or None."""

    height: float
    road_x: tuple[float, float]
    road_texture: int
    road_texel: float
    road_tint: np.ndarray
    terrain_texture: int
    terrain_texel: float
    terrain_tint: np.ndarray
    lane_lines: list[tuple[float, float, float, float]] = field(default_factory=list)
    crosswalk: tuple[float, float, float] | None = None
    max_distance: float = 600.0


@dataclass
class Lighting:
    """Per-image light and camera response.

    ``sun_dir`` points from the scene towards the sun (world frame, unit). Colours are linear
    RGB multipliers; ``haze_m`` is the distance at which 63% of a surface colour is replaced by
    the horizon colour; ``noise_sigma`` is the sensor noise std in 8-bit grey levels.
    """

    sun_dir: np.ndarray
    sun: np.ndarray
    ambient: np.ndarray
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray
    clouds: float
    haze_m: float
    exposure: float
    white_balance: np.ndarray
    gamma: float
    saturation: float
    noise_sigma: float


@dataclass
class Scene:
    seed: int
    primitives: list[Primitive]
    ground: Ground
    lighting: Lighting
    camera_height: float
    pitch: float
    roll: float

    def camera_rotation(self) -> np.ndarray:
        """World-from-camera rotation (3x3): small pitch (about x) then roll (about z)."""
        return rot_x(self.pitch) @ rot_z(self.roll)

    def arrays(self) -> dict[str, np.ndarray]:
        """Primitives as stacked arrays (struct of arrays) for vectorised rendering; geometry in
        float64 plus float32 copies (``center32``, ``half32``, ``rotation32``) for per-pixel use."""
        p = self.primitives
        out = {
            "kind": np.array([q.kind for q in p], np.int8).reshape(-1),
            "label": np.array([q.label for q in p], np.uint8).reshape(-1),
            "center": np.array([q.center for q in p], np.float64).reshape(-1, 3),
            "half": np.array([q.half for q in p], np.float64).reshape(-1, 3),
            "rotation": np.array([q.rotation for q in p], np.float64).reshape(-1, 3, 3),
            "texture": np.array([q.texture for q in p], np.int64).reshape(-1),
            "texel": np.array([q.texel for q in p], np.float32).reshape(-1, 2),
            "tint": np.array([q.tint for q in p], np.float32).reshape(-1, 3),
            "offset": np.array([q.offset for q in p], np.float32).reshape(-1, 2),
            "fit": np.array([q.fit for q in p], bool).reshape(-1),
            "shadow": np.array([q.shadow for q in p], bool).reshape(-1),
        }
        for key in ("center", "half", "rotation"):
            out[key + "32"] = out[key].astype(np.float32)
        return out


# ----------------------------------------------------------------------------- building


_CAR_COLOURS = np.array(
    [
        (0.95, 0.95, 0.95),
        (0.15, 0.15, 0.17),
        (0.6, 0.62, 0.65),
        (0.35, 0.36, 0.4),
        (0.7, 0.1, 0.1),
        (0.12, 0.2, 0.5),
        (0.2, 0.35, 0.25),
        (0.8, 0.75, 0.6),
        (0.9, 0.6, 0.1),
        (0.45, 0.25, 0.15),
    ]
)


class _Builder:
    """Places primitives in the road frame: (x, height above ground, z) with heading yaw."""

    def __init__(self, rng: np.random.Generator, bank: TextureBank, height: float, z_near: float):
        self.rng = rng
        self.bank = bank
        self.h = height
        self.z_near = z_near
        self.prims: list[Primitive] = []
        self.occupied: list[tuple[float, float, float, float]] = []

    # -- materials
    def tex(self, prefix: str) -> int:
        ids = self.bank.ids(prefix)
        return int(ids[self.rng.integers(len(ids))])

    def tint(
        self, base: tuple[float, float, float] | np.ndarray = (1, 1, 1), var: float = 0.08
    ) -> np.ndarray:
        return np.clip(np.asarray(base) * self.rng.uniform(1 - var, 1 + var, 3), 0.02, 1.6)

    # -- primitives
    def add(
        self,
        kind: int,
        label: int,
        pos: tuple[float, float, float],
        half: tuple[float, ...],
        rotation: np.ndarray,
        texture: int,
        tint: np.ndarray | None = None,
        scale: float = 1.0,
        fit: bool = False,
        shadow: bool = True,
    ) -> None:
        """Add a primitive whose centre is ``pos`` = (x, height above ground, z).

        ``fit`` maps the texture once over the primitive's front (box) or around it
        (cylinder, ellipsoid) instead of tiling it at its natural size.
        """
        x, up, z = pos
        half_a = np.asarray(half, np.float64)
        size = self.bank.size
        if fit:
            if kind == BOX:  # along the longer horizontal side: a sign's front, a bus's flank
                texel = np.array([2 * max(half_a[0], half_a[2]), 2 * half_a[1]]) / size
            else:
                texel = np.array([np.pi * (half_a[0] + half_a[2]), 2 * half_a[1]]) / size
            offset = np.zeros(2)
        else:
            m = self.bank.tile_m[texture] * scale * self.rng.uniform(0.85, 1.2) / size
            texel = np.array([m, m])
            offset = self.rng.uniform(0, size, 2)
        self.prims.append(
            Primitive(
                kind=kind,
                label=label,
                center=np.array([x, self.h - up, z], np.float64),
                half=half_a,
                rotation=np.asarray(rotation, np.float64),
                texture=texture,
                texel=texel.astype(np.float32),
                tint=np.asarray(tint if tint is not None else self.tint(), np.float32),
                offset=offset.astype(np.float32),
                fit=fit,
                shadow=shadow,
            )
        )

    def local(self, x: float, z: float, yaw: float, dx: float, dz: float) -> tuple[float, float]:
        """World (x, z) of the point (dx, dz) in a frame at (x, z) turned by ``yaw``."""
        c, s = np.cos(yaw), np.sin(yaw)
        return x + c * dx + s * dz, z - s * dx + c * dz

    # -- occupancy in the ground plane (axis-aligned rectangles)
    def free(self, x0: float, x1: float, z0: float, z1: float) -> bool:
        if z0 < self.z_near:
            return False
        return all(x1 <= a0 or x0 >= a1 or z1 <= b0 or z0 >= b1 for a0, a1, b0, b1 in self.occupied)

    def claim(self, x: float, z: float, half_x: float, half_z: float, yaw: float = 0.0) -> bool:
        """Reserve the footprint's bounding rectangle; False (nothing reserved) if taken."""
        c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
        hx = c * half_x + s * half_z
        hz = s * half_x + c * half_z
        rect = (x - hx, x + hx, z - hz, z + hz)
        if not self.free(*rect):
            return False
        self.occupied.append(rect)
        return True


# -- objects -------------------------------------------------------------------------------


def _car(b: _Builder, x: float, z: float, yaw: float) -> None:
    rng = b.rng
    length, width, height = rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9), rng.uniform(1.38, 1.62)
    if not b.claim(x, z, width / 2 + 0.2, length / 2 + 0.4, yaw):
        return
    colour = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * rng.uniform(0.85, 1.1)
    ry = rot_y(yaw)
    body_top = 0.95
    paint = b.tex("paint_")
    b.add(
        BOX,
        CAR,
        (x, (0.25 + body_top) / 2, z),
        (width / 2, (body_top - 0.25) / 2, length / 2),
        ry,
        paint,
        b.tint(colour, 0.05),
        fit=True,
    )
    cab_len = length * rng.uniform(0.45, 0.55)
    cx, cz = b.local(x, z, yaw, 0.0, -length * rng.uniform(0.0, 0.08))
    b.add(
        BOX,
        CAR,
        (cx, (body_top + height) / 2, cz),
        (width / 2 - 0.08, (height - body_top) / 2, cab_len / 2),
        ry,
        b.bank.id("glass_0"),
        b.tint(0.6 + 0.4 * colour, 0.05),
        fit=True,
    )
    # bumpers (one dark box a little longer than the body) and light bars front and back
    b.add(
        BOX,
        CAR,
        (x, 0.38, z),
        (width / 2 + 0.02, 0.09, length / 2 + 0.06),
        ry,
        b.bank.id("rubber_0"),
        b.tint((1.4, 1.4, 1.4), 0.1),
        shadow=False,
    )
    for sz, tint in ((-1, (1.5, 0.15, 0.1)), (1, (1.6, 1.6, 1.45))):
        lx, lz = b.local(x, z, yaw, 0.0, sz * (length / 2 + 0.015))
        b.add(
            BOX,
            CAR,
            (lx, 0.8, lz),
            (width / 2 - 0.1, 0.06, 0.02),
            ry,
            b.tex("paint_"),
            b.tint(tint, 0.05),
            shadow=False,
        )
    wheel = ry @ rot_z(np.pi / 2)
    for sx in (-1, 1):
        for sz in (-1, 1):
            wx, wz = b.local(x, z, yaw, sx * (width / 2 - 0.12), sz * length * 0.32)
            # wheels sit in the body's shadow: skipping their shadow test saves time
            b.add(
                CYLINDER,
                CAR,
                (wx, 0.32, wz),
                (0.32, 0.11, 0.32),
                wheel,
                b.bank.id("rubber_0"),
                shadow=False,
            )


def _truck(b: _Builder, x: float, z: float, yaw: float) -> None:
    rng = b.rng
    cargo_len = rng.uniform(5.0, 8.5)
    width = 2.5
    length = cargo_len + 2.2
    if not b.claim(x, z, width / 2 + 0.2, length / 2 + 0.4, yaw):
        return
    ry = rot_y(yaw)
    cab_h = rng.uniform(2.6, 3.1)
    colour = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))]
    cx, cz = b.local(x, z, yaw, 0.0, length / 2 - 1.0)
    b.add(
        BOX,
        TRUCK,
        (cx, (0.5 + cab_h) / 2, cz),
        (1.2, (cab_h - 0.5) / 2, 1.0),
        ry,
        b.tex("paint_"),
        b.tint(colour, 0.05),
        fit=True,
    )
    gx, gz = b.local(x, z, yaw, 0.0, length / 2 - 1.55)
    b.add(BOX, TRUCK, (gx, cab_h - 0.55, gz), (1.1, 0.4, 0.47), ry, b.bank.id("glass_0"))
    box_h = rng.uniform(3.2, 3.9)
    kx, kz = b.local(x, z, yaw, 0.0, -1.1)
    cargo = b.tex("cargo_") if rng.random() < 0.6 else b.tex("photo_")
    b.add(
        BOX,
        TRUCK,
        (kx, (0.9 + box_h) / 2, kz),
        (width / 2, (box_h - 0.9) / 2, cargo_len / 2),
        ry,
        cargo,
        b.tint(rng.uniform(0.5, 1.0, 3), 0.05),
        fit=cargo != b.bank.ids("cargo_")[0],
    )
    wheel = ry @ rot_z(np.pi / 2)
    for sx in (-1, 1):
        for dz in (length / 2 - 1.2, -length / 2 + 1.4, -length / 2 + 2.6):
            wx, wz = b.local(x, z, yaw, sx * 1.05, dz)
            b.add(
                CYLINDER,
                TRUCK,
                (wx, 0.5, wz),
                (0.5, 0.16, 0.5),
                wheel,
                b.bank.id("rubber_0"),
                shadow=False,
            )


def _bus(b: _Builder, x: float, z: float, yaw: float, label: int = BUS) -> None:
    rng = b.rng
    if label == TRAIN:
        length, width, height, bottom = rng.uniform(20, 32), 2.65, rng.uniform(3.3, 3.8), 0.4
    else:
        length, width, height, bottom = rng.uniform(10.5, 13.5), 2.55, rng.uniform(2.9, 3.3), 0.35
    if not b.claim(x, z, width / 2 + 0.2, length / 2 + 0.5, yaw):
        return
    ry = rot_y(yaw)
    colour = rng.choice(
        [(0.9, 0.85, 0.2), (0.85, 0.15, 0.1), (0.95, 0.95, 0.95), (0.2, 0.4, 0.8), (0.3, 0.6, 0.3)]
    )
    b.add(
        BOX,
        label,
        (x, (bottom + height) / 2, z),
        (width / 2, (height - bottom) / 2, length / 2),
        ry,
        b.tex("bus_"),
        b.tint(colour, 0.05),
        fit=True,
    )
    wheel = ry @ rot_z(np.pi / 2)
    wheel_r = 0.5 if label == BUS else 0.42
    for sx in (-1, 1):
        for dz in (length / 2 - 2.5, -length / 2 + 2.8):
            wx, wz = b.local(x, z, yaw, sx * (width / 2 - 0.25), dz)
            b.add(
                CYLINDER,
                label,
                (wx, wheel_r, wz),
                (wheel_r, 0.14, wheel_r),
                wheel,
                b.bank.id("rubber_0"),
                shadow=False,
            )


def _two_wheeler(b: _Builder, x: float, z: float, yaw: float, motor: bool, rider: bool) -> None:
    rng = b.rng
    if not b.claim(x, z, 0.45, 1.1, yaw):
        return
    ry = rot_y(yaw)
    label = MOTORCYCLE if motor else BICYCLE
    r = 0.31 if motor else 0.34
    axle = 0.7 if motor else 0.52
    wheel = ry @ rot_z(np.pi / 2)
    rubber = b.bank.id("rubber_0")
    for dz in (-axle, axle):
        wx, wz = b.local(x, z, yaw, 0.0, dz)
        b.add(CYLINDER, label, (wx, r, wz), (r, 0.06 if motor else 0.025, r), wheel, rubber)
    colour = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))]
    if motor:
        b.add(
            BOX,
            label,
            (x, 0.72, z),
            (0.18, 0.25, 0.62),
            ry,
            b.tex("paint_"),
            b.tint(colour),
            fit=True,
        )
        fx, fz = b.local(x, z, yaw, 0.0, 0.62)
        b.add(BOX, label, (fx, 1.0, fz), (0.3, 0.04, 0.04), ry, b.bank.id("metal_0"))
    else:
        metal = b.bank.id("metal_0")
        b.add(BOX, label, (x, 0.78, z), (0.025, 0.025, 0.33), ry, metal, b.tint(colour))
        b.add(BOX, label, (x, 0.62, z), (0.025, 0.2, 0.025), ry @ rot_x(0.8), metal, b.tint(colour))
        sx, sz = b.local(x, z, yaw, 0.0, -0.25)
        b.add(
            BOX, label, (sx, 0.72, sz), (0.025, 0.2, 0.025), ry @ rot_x(-0.3), metal, b.tint(colour)
        )
        hx, hz = b.local(x, z, yaw, 0.0, 0.45)
        b.add(BOX, label, (hx, 1.0, hz), (0.28, 0.025, 0.025), ry, metal)
        b.add(BOX, label, (sx, 0.92, sz), (0.08, 0.03, 0.13), ry, rubber)
    if rider:
        _person(b, x, z, yaw, RIDER, seated=motor + 1)


def _person(
    b: _Builder, x: float, z: float, yaw: float, label: int = PERSON, seated: int = 0
) -> None:
    """Standing (``seated=0``), on a bicycle (1) or on a motorcycle (2)."""
    rng = b.rng
    if not seated and not b.claim(x, z, 0.3, 0.3, yaw):
        return
    height = rng.uniform(1.55, 1.95) if label == PERSON else rng.uniform(1.6, 1.9)
    ry = rot_y(yaw)
    shirt = b.tint(rng.uniform(0.15, 1.0, 3), 0.05)
    pants = b.tint(rng.uniform(0.1, 0.6, 3), 0.05)
    cloth_top = b.tex("cloth_") if rng.random() < 0.75 else b.tex("photo_")
    cloth_leg = b.tex("cloth_")
    skin_tint = b.tint(rng.choice([(1.0, 0.95, 0.9), (0.75, 0.6, 0.5), (0.45, 0.35, 0.3)]), 0.05)
    skin = b.bank.id("skin_0")
    if seated:
        hip = 0.95 if seated == 1 else 0.92
        bx, bz = b.local(x, z, yaw, 0.0, -0.15)
        lean = rot_x(0.45 if seated == 1 else 0.25)
        b.add(
            ELLIPSOID,
            label,
            (bx, hip + 0.3, bz),
            (0.2, 0.33, 0.13),
            ry @ lean,
            cloth_top,
            shirt,
            fit=True,
        )
        hx, hz = b.local(x, z, yaw, 0.0, 0.05)
        b.add(
            ELLIPSOID,
            label,
            (hx, hip + 0.72, hz),
            (0.11, 0.13, 0.12),
            ry,
            skin,
            skin_tint,
            fit=True,
        )
        for sx in (-1, 1):
            tx, tz = b.local(x, z, yaw, sx * 0.12, 0.05)
            b.add(
                CYLINDER,
                label,
                (tx, hip - 0.05, tz),
                (0.075, 0.24, 0.075),
                ry @ rot_x(1.1),
                cloth_leg,
                pants,
            )
            kx, kz = b.local(x, z, yaw, sx * 0.14, 0.22)
            b.add(
                CYLINDER,
                label,
                (kx, hip - 0.42, kz),
                (0.06, 0.24, 0.06),
                ry @ rot_x(-0.2),
                cloth_leg,
                pants,
            )
            ax, az = b.local(x, z, yaw, sx * 0.22, 0.22)
            b.add(
                CYLINDER,
                label,
                (ax, hip + 0.38, az),
                (0.05, 0.28, 0.05),
                ry @ rot_x(1.0),
                cloth_top,
                shirt,
            )
        return
    leg_len = 0.47 * height
    stride = rng.uniform(-0.35, 0.35)
    for sx, swing in ((-1, stride), (1, -stride)):
        lx, lz = b.local(x, z, yaw, sx * 0.1, 0.0)
        b.add(
            CYLINDER,
            label,
            (lx, leg_len / 2, lz),
            (0.075, leg_len / 2, 0.075),
            ry @ rot_x(swing),
            cloth_leg,
            pants,
        )
    torso_h = 0.33 * height
    b.add(
        CYLINDER,
        label,
        (x, leg_len + torso_h / 2 - 0.03, z),
        (0.2, torso_h / 2, 0.12),
        ry,
        cloth_top,
        shirt,
        fit=True,
    )
    b.add(
        ELLIPSOID,
        label,
        (x, leg_len + torso_h + 0.12 * height / 1.75, z),
        (0.1, 0.12, 0.11),
        ry,
        skin,
        skin_tint,
        fit=True,
    )
    for sx, swing in ((-1, -stride), (1, stride)):
        ax, az = b.local(x, z, yaw, sx * 0.26, 0.0)
        b.add(
            CYLINDER,
            label,
            (ax, leg_len + torso_h - 0.3, az),
            (0.05, 0.3, 0.05),
            ry @ rot_x(swing * 0.8),
            cloth_top,
            shirt,
        )
    if rng.random() < 0.25:  # backpack or bag
        px, pz = b.local(x, z, yaw, 0.0, -0.2)
        b.add(
            BOX,
            label,
            (px, leg_len + torso_h * 0.6, pz),
            (0.16, 0.2, 0.08),
            ry,
            b.tex("cloth_"),
            b.tint(rng.uniform(0.1, 0.8, 3)),
        )


def _tree(b: _Builder, x: float, z: float) -> None:
    rng = b.rng
    r = rng.uniform(0.12, 0.3)
    if not b.claim(x, z, r + 0.3, r + 0.3):
        return
    trunk_h = rng.uniform(1.8, 4.0)
    b.add(
        CYLINDER,
        VEGETATION,
        (x, trunk_h / 2, z),
        (r, trunk_h / 2, r),
        rot_y(rng.uniform(0, 6)),
        b.bank.id("bark_0"),
        b.tint((1, 1, 1), 0.15),
    )
    leaves = b.tex("leaves_")
    green = b.tint((1, 1, 1), 0.15)
    for _ in range(rng.integers(1, 4)):
        rad = rng.uniform(1.0, 2.8)
        cx = x + rng.uniform(-0.8, 0.8)
        cz = z + rng.uniform(-0.8, 0.8)
        b.add(
            ELLIPSOID,
            VEGETATION,
            (cx, trunk_h + rad * rng.uniform(0.5, 0.9), cz),
            rad * rng.uniform((0.8, 0.7, 0.8), (1.2, 1.1, 1.2)),
            rot_y(rng.uniform(0, 6)),
            leaves,
            green,
        )


def _bush(b: _Builder, x: float, z: float, size: float) -> None:
    if not b.claim(x, z, size, size):
        return
    rng = b.rng
    b.add(
        ELLIPSOID,
        VEGETATION,
        (x, size * 0.3, z),
        size * rng.uniform((0.8, 0.5, 0.8), (1.4, 0.9, 1.4)),
        rot_y(rng.uniform(0, 6)),
        b.tex("leaves_"),
        b.tint((1, 1, 1), 0.15),
    )


def _pole(b: _Builder, x: float, z: float, side: int, road_centre: float) -> None:
    """A pole with signs, a traffic light (maybe on an arm over the road) or a street lamp."""
    rng = b.rng
    r = rng.uniform(0.04, 0.09)
    if not b.claim(x, z, 0.4, 0.4):
        return
    metal = b.bank.id("metal_0")
    grey = b.tint((0.9, 0.9, 0.9), 0.1)
    kind = rng.choice(["sign", "light", "lamp"], p=[0.45, 0.38, 0.17])
    face = rot_y(rng.uniform(-0.35, 0.35) + (np.pi if rng.random() < 0.15 else 0.0))
    if kind == "sign":
        height = rng.uniform(2.4, 3.6)
        b.add(CYLINDER, POLE, (x, height / 2, z), (r, height / 2, r), np.eye(3), metal, grey)
        top = height
        for _ in range(rng.integers(1, 3)):
            size = rng.uniform(0.3, 0.45)
            k = rng.integers(6)
            tex = b.bank.id(f"sign_{k}")
            pos = (x, top - size, z - r - 0.03)
            if k in (0, 2, 3):  # round signs: a thin disc facing the street
                b.add(
                    CYLINDER,
                    TRAFFIC_SIGN,
                    pos,
                    (size, 0.015, size),
                    face @ rot_x(-np.pi / 2),
                    tex,
                    b.tint((1, 1, 1), 0.08),
                    fit=True,
                )
            elif k == 5:  # priority diamond: a square turned by 45 degrees
                b.add(
                    BOX,
                    TRAFFIC_SIGN,
                    pos,
                    (size * 0.75, size * 0.75, 0.015),
                    face @ rot_z(np.pi / 4),
                    tex,
                    b.tint((1, 1, 1), 0.08),
                    fit=True,
                )
            elif k == 4:
                b.add(
                    BOX,
                    TRAFFIC_SIGN,
                    pos,
                    (size * 1.4, size, 0.02),
                    face,
                    tex,
                    b.tint((1, 1, 1), 0.08),
                    fit=True,
                )
            else:
                b.add(
                    BOX,
                    TRAFFIC_SIGN,
                    pos,
                    (size, size, 0.015),
                    face,
                    tex,
                    b.tint((1, 1, 1), 0.08),
                    fit=True,
                )
            top -= 2 * size + 0.08
        return
    if kind == "light":
        height = rng.uniform(2.8, 4.0)
        light_tex = b.tex("light_")
        arm = rng.random() < 0.45
        total = height + (rng.uniform(1.5, 2.5) if arm else 0.0)
        b.add(CYLINDER, POLE, (x, total / 2, z), (r, total / 2, r), np.eye(3), metal, grey)
        b.add(
            BOX,
            TRAFFIC_LIGHT,
            (x, height - 0.5, z - r - 0.16),
            (0.17, 0.45, 0.14),
            face,
            light_tex,
            b.tint((1, 1, 1), 0.05),
            fit=True,
        )
        if arm:
            reach = min(abs(road_centre - x) * rng.uniform(0.5, 0.9), 7.0)
            ax = x - side * reach / 2
            b.add(BOX, POLE, (ax, total - 0.2, z), (reach / 2, 0.06, 0.06), np.eye(3), metal, grey)
            b.add(
                BOX,
                TRAFFIC_LIGHT,
                (x - side * reach, total - 0.75, z),
                (0.17, 0.45, 0.14),
                face,
                light_tex,
                b.tint((1, 1, 1), 0.05),
                fit=True,
            )
        return
    height = rng.uniform(6.0, 9.0)
    b.add(
        CYLINDER, POLE, (x, height / 2, z), (r * 1.3, height / 2, r * 1.3), np.eye(3), metal, grey
    )
    reach = rng.uniform(1.0, 2.5)
    b.add(
        BOX,
        POLE,
        (x - side * reach / 2, height - 0.1, z),
        (reach / 2, 0.07, 0.08),
        np.eye(3),
        metal,
        grey,
    )
    b.add(
        BOX,
        POLE,
        (x - side * reach, height - 0.2, z),
        (0.35, 0.08, 0.18),
        np.eye(3),
        metal,
        b.tint((0.6, 0.6, 0.6), 0.1),
    )


def _frontage(b: _Builder, side: int, x_line: float, z_start: float, z_end: float) -> None:
    """Buildings, walls, fences and hedges along one side of the street.

    ``x_line`` is where the frontage starts (outer edge of sidewalk/terrain); ``side`` is -1
    (left) or +1 (right); objects grow away from the road.
    """
    rng = b.rng
    z = z_start
    while z < z_end:
        kind = rng.choice(
            ["building", "wall", "fence", "hedge", "gap"], p=[0.55, 0.12, 0.12, 0.12, 0.09]
        )
        if kind == "building":
            length = rng.uniform(8, 35)
            depth = rng.uniform(8, 20)
            height = rng.uniform(5, 26)
            setback = rng.uniform(0, 2.5) if rng.random() < 0.5 else 0.0
            xc = x_line + side * (setback + depth / 2)
            tex = b.tex("facade_") if rng.random() < 0.9 else b.bank.id("facade_glass")
            tint = b.tint(rng.uniform(0.7, 1.1, 3), 0.05)
            b.add(
                BOX,
                BUILDING,
                (xc, height / 2, z + length / 2),
                (depth / 2, height / 2, length / 2),
                np.eye(3),
                tex,
                tint,
            )
            if rng.random() < 0.35:  # shop front: glass band on the ground floor
                b.add(
                    BOX,
                    BUILDING,
                    (xc - side * 0.05, 1.6, z + length / 2),
                    (depth / 2, 1.5, length / 2 - 0.5),
                    np.eye(3),
                    b.bank.id("facade_glass"),
                )
            if rng.random() < 0.3 and length > 8:  # billboard / poster on the facade
                w = rng.uniform(2, 5)
                hgt = w * rng.uniform(0.5, 0.9)
                xf = xc - side * (depth / 2 + 0.04)
                b.add(
                    BOX,
                    BUILDING,
                    (xf, rng.uniform(3.5, 6), z + length / 2),
                    (0.05, hgt / 2, w / 2),
                    np.eye(3),
                    b.tex("photo_"),
                    b.tint((1, 1, 1), 0.05),
                    fit=True,
                )
            z += length + (rng.uniform(0.5, 6) if rng.random() < 0.5 else 0.0)
        elif kind in ("wall", "fence"):
            length = rng.uniform(5, 25)
            height = rng.uniform(0.9, 3.2) if kind == "wall" else rng.uniform(0.8, 2.3)
            thick = 0.3 if kind == "wall" else 0.06
            tex = b.tex("wall_") if kind == "wall" else b.tex("fence_")
            if kind == "wall" and rng.random() < 0.25:
                tex = b.tex("photo_")  # graffiti / posters
            label = WALL if kind == "wall" else FENCE
            xc = x_line + side * (thick / 2 + rng.uniform(0, 0.5))
            b.add(
                BOX,
                label,
                (xc, height / 2, z + length / 2),
                (thick / 2, height / 2, length / 2),
                np.eye(3),
                tex,
                b.tint((1, 1, 1), 0.12),
            )
            behind = rng.random()
            if behind < 0.5:  # something behind the wall/fence
                depth = rng.uniform(8, 15)
                hb = rng.uniform(6, 20)
                xb = x_line + side * (rng.uniform(4, 12) + depth / 2)
                b.add(
                    BOX,
                    BUILDING,
                    (xb, hb / 2, z + length / 2),
                    (depth / 2, hb / 2, length / 2),
                    np.eye(3),
                    b.tex("facade_"),
                    b.tint(rng.uniform(0.7, 1.1, 3), 0.05),
                )
            elif behind < 0.8:
                for zt in np.arange(z + 2, z + length, rng.uniform(4, 8)):
                    _tree(b, x_line + side * rng.uniform(2, 5), float(zt))
            z += length
        elif kind == "hedge":
            length = rng.uniform(4, 15)
            height = rng.uniform(0.8, 2.2)
            xc = x_line + side * 0.6
            b.add(
                BOX,
                VEGETATION,
                (xc, height / 2, z + length / 2),
                (0.6, height / 2, length / 2),
                np.eye(3),
                b.tex("leaves_"),
                b.tint((1, 1, 1), 0.15),
            )
            if rng.random() < 0.6:
                _tree(b, x_line + side * rng.uniform(2.5, 4), z + length / 2)
            z += length
        else:
            length = rng.uniform(5, 20)
            for _ in range(rng.integers(1, 4)):
                _bush(
                    b,
                    x_line + side * rng.uniform(1, 5),
                    z + rng.uniform(0, length),
                    rng.uniform(0.5, 1.5),
                )
            if rng.random() < 0.7:
                _tree(b, x_line + side * rng.uniform(2, 6), z + length / 2)
            z += length


def make_scene(
    seed: int, bank: TextureBank, *, camera_height: float = 1.65, z_near: float = 3.0
) -> Scene:
    """Draw a random street scene.

    Args:
        seed: the only source of randomness.
        bank: texture bank (texture ids are looked up by name).
        camera_height: height of the left camera centre above the road (metres).
        z_near: no object is placed with any part of its footprint nearer than this (metres);
            the generator sets it so that every disparity stays below the maximum.
    """
    rng = np.random.default_rng(seed)
    b = _Builder(rng, bank, camera_height, z_near)

    # street cross-section
    lane_w = rng.uniform(2.9, 3.6)
    n_lanes = int(rng.choice([2, 2, 3, 4]))
    ego = int(rng.integers(n_lanes))
    two_way = rng.random() < 0.7
    x_left = -(ego + 0.5) * lane_w - rng.uniform(-0.3, 0.3)
    lanes = [x_left + (i + 0.5) * lane_w for i in range(n_lanes)]
    park_l = 2.2 if rng.random() < 0.5 else 0.0
    park_r = 2.2 if rng.random() < 0.5 else 0.0
    road_l = x_left - park_l
    road_r = x_left + n_lanes * lane_w + park_r
    curb = rng.uniform(0.08, 0.18) if rng.random() < 0.75 else 0.01
    sw = (rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5))
    terrain = tuple(0.0 if rng.random() < 0.5 else rng.uniform(1.0, 6.0) for _ in range(2))
    z_far = rng.uniform(110, 220)

    # sidewalks: long boxes whose top is ``curb`` above the road
    sw_tex = b.tex("sidewalk_")
    sw_tint = b.tint((1, 1, 1), 0.1)
    for side, edge, width in ((-1, road_l, sw[0]), (1, road_r, sw[1])):
        xc = edge + side * width / 2
        # the curb's own shadow is a few centimetres wide: not worth a shadow test
        b.add(
            BOX,
            SIDEWALK,
            (xc, curb - 0.25, (z_far - 30) / 2),
            (width / 2, 0.25, (z_far + 30) / 2),
            np.eye(3),
            sw_tex,
            sw_tint,
            shadow=False,
        )

    # frontage on both sides
    for side, edge, width, ter in ((-1, road_l, sw[0], terrain[0]), (1, road_r, sw[1], terrain[1])):
        x_line = edge + side * (width + ter)
        _frontage(b, side, x_line, rng.uniform(-25, -5), z_far)
        if ter > 0 and rng.random() < 0.7:
            for _ in range(rng.integers(1, 5)):
                _bush(
                    b,
                    edge + side * (width + rng.uniform(0.3, ter)),
                    rng.uniform(5, 80),
                    rng.uniform(0.4, 1.2),
                )

    # end of the street: buildings across (T-junction) and/or a distant skyline
    if rng.random() < 0.5:
        zc = rng.uniform(70, 200)
        x = -120.0
        while x < 120:
            width = rng.uniform(10, 40)
            depth = rng.uniform(10, 20)
            height = rng.uniform(8, 30)
            b.add(
                BOX,
                BUILDING,
                (x + width / 2, height / 2, zc + depth / 2),
                (width / 2, height / 2, depth / 2),
                np.eye(3),
                b.tex("facade_"),
                b.tint(rng.uniform(0.7, 1.1, 3), 0.05),
            )
            x += width + (rng.uniform(3, 15) if rng.random() < 0.3 else 0.0)
    if rng.random() < 0.6:
        for _ in range(rng.integers(6, 16)):
            width = rng.uniform(20, 70)
            height = rng.uniform(10, 60)
            zc = rng.uniform(250, 450)
            x = rng.uniform(-350, 350)
            if rng.random() < 0.3:  # wooded hill: a dome rising out of the ground
                b.add(
                    ELLIPSOID,
                    VEGETATION,
                    (x, 0.0, zc),
                    (width / 2, height / 2, width / 3),
                    np.eye(3),
                    b.tex("leaves_"),
                    b.tint((1, 1, 1), 0.1),
                    scale=4.0,
                )
            else:
                b.add(
                    BOX,
                    BUILDING,
                    (x, height / 2, zc),
                    (width / 2, height / 2, width / 4),
                    np.eye(3),
                    b.tex("facade_"),
                    b.tint((1, 1, 1), 0.1),
                    scale=2.0,
                )

    # a tram crossing the street ahead; placed before the street furniture and the traffic,
    # which then keep clear of it
    road_centre = (road_l + road_r) / 2
    if rng.random() < 0.3:
        _bus(
            b,
            road_centre + rng.uniform(-5, 5),
            rng.uniform(35, 70),
            np.pi / 2 + rng.normal(0, 0.03),
            label=TRAIN,
        )
    # poles, signs and traffic lights near the curbs
    for side, edge in ((-1, road_l), (1, road_r)):
        z = rng.uniform(3, 14)
        while z < min(z_far, 90):
            _pole(b, edge + side * rng.uniform(0.3, 0.7), z, side, road_centre)
            z += rng.uniform(10, 28)
    # street trees on the sidewalks
    for side, edge, width in ((-1, road_l, sw[0]), (1, road_r, sw[1])):
        if width > 2.2 and rng.random() < 0.55:
            z = rng.uniform(4, 15)
            step = rng.uniform(8, 18)
            while z < 90:
                _tree(b, edge + side * rng.uniform(1.0, width - 0.6), z)
                z += step * rng.uniform(0.8, 1.2)

    # people on the sidewalks; parked bicycles
    for side, edge, width in ((-1, road_l, sw[0]), (1, road_r, sw[1])):
        for _ in range(rng.poisson(2.5)):
            _person(
                b,
                edge + side * rng.uniform(0.4, width - 0.3),
                rng.uniform(4, 60),
                rng.uniform(0, 2 * np.pi),
            )
        if rng.random() < 0.3:
            z0 = rng.uniform(6, 40)
            for i in range(rng.integers(1, 4)):
                _two_wheeler(
                    b,
                    edge + side * rng.uniform(0.6, width - 0.3),
                    z0 + 1.0 * i,
                    np.pi / 2 + rng.uniform(-0.2, 0.2),
                    rng.random() < 0.3,
                    False,
                )

    # a crosswalk with people on it
    crosswalk = None
    if rng.random() < 0.3:
        z0 = rng.uniform(10, 35)
        crosswalk = (z0, z0 + rng.uniform(3, 5), rng.uniform(0.4, 0.6))
        for _ in range(rng.integers(1, 5)):
            _person(
                b,
                rng.uniform(road_l, road_r),
                rng.uniform(crosswalk[0], crosswalk[1]),
                rng.choice([np.pi / 2, -np.pi / 2]) + rng.uniform(-0.3, 0.3),
            )

    # traffic in the lanes
    for i, xl in enumerate(lanes):
        oncoming = two_way and i < ego if ego > 0 else (two_way and i < n_lanes // 2 and i != ego)
        z = rng.uniform(5, 25) if i == ego else rng.uniform(2, 20)
        while z < 110:
            yaw = (np.pi if oncoming else 0.0) + rng.normal(0, 0.04)
            x = xl + rng.normal(0, 0.25)
            u = rng.random()
            if u < 0.68:
                _car(b, x, z, yaw)
                z += 5
            elif u < 0.78:
                _truck(b, x, z + 5, yaw)
                z += 11
            elif u < 0.86:
                _bus(b, x, z + 6, yaw)
                z += 13
            elif u < 0.92:
                _bus(b, x, z + 17, yaw, label=TRAIN)  # up to 32 m long
                z += 34
            else:
                _two_wheeler(b, x + rng.uniform(-0.8, 0.8), z, yaw, rng.random() < 0.5, True)
                z += 2
            z += rng.exponential(14) + 2
    # riders near the curb
    for _ in range(rng.poisson(0.8)):
        side = rng.choice([-1, 1])
        edge = road_l if side < 0 else road_r
        _two_wheeler(
            b,
            edge - side * rng.uniform(0.6, 1.4),
            rng.uniform(6, 45),
            rng.normal(0, 0.05) + (np.pi if (side < 0 and two_way) else 0.0),
            rng.random() < 0.4,
            True,
        )
    # parked vehicles
    for side, edge, park in ((-1, road_l, park_l), (1, road_r, park_r)):
        if park <= 0:
            continue
        z = rng.uniform(3, 10)
        while z < 90:
            x = edge - side * (1.1 + rng.uniform(-0.1, 0.15))
            yaw = rng.normal(0, 0.03) + (np.pi if rng.random() < 0.3 else 0.0)
            u = rng.random()
            if u < 0.1:
                z += 3
            elif u < 0.86:
                _car(b, x, z + 2.4, yaw)
                z += 4.8
            elif u < 0.94:
                _truck(b, x, z + 5, yaw)
                z += 10
            else:
                _bus(b, x, z + 6.5, yaw)
                z += 13
            z += rng.uniform(0.5, 4)

    # ground, markings and lights
    lines: list[tuple[float, float, float, float]] = []
    for i in range(1, n_lanes):
        xb = x_left + i * lane_w
        solid = two_way and (i == ego or i == n_lanes // 2) and rng.random() < 0.4
        lines.append((xb, 0.06, 0.0 if solid else rng.uniform(8, 12), rng.uniform(2.5, 4)))
    for edge_x in (x_left, x_left + n_lanes * lane_w):
        if rng.random() < 0.7:
            lines.append((edge_x + (0.25 if edge_x == x_left else -0.25), 0.07, 0.0, 0.0))
    ground = Ground(
        height=camera_height,
        road_x=(road_l, road_r),
        road_texture=b.tex("asphalt_"),
        road_texel=float(bank.tile_m[0] * rng.uniform(0.8, 1.3) / bank.size),
        road_tint=b.tint((1, 1, 1), 0.08),
        terrain_texture=b.tex("terrain_"),
        terrain_texel=float(bank.tile_m[7] * rng.uniform(0.8, 1.3) / bank.size),
        terrain_tint=b.tint((1, 1, 1), 0.12),
        lane_lines=lines,
        crosswalk=crosswalk,
    )
    elev = rng.uniform(np.radians(15), np.radians(65))
    azim = rng.uniform(0, 2 * np.pi)
    sun_dir = np.array([np.cos(elev) * np.sin(azim), -np.sin(elev), np.cos(elev) * np.cos(azim)])
    overcast = rng.random() < 0.3
    sun_strength = rng.uniform(0.15, 0.4) if overcast else rng.uniform(0.55, 0.9)
    warm = rng.uniform(-0.06, 0.1)
    horizon = np.array([0.78, 0.84, 0.9]) * rng.uniform(0.85, 1.05)
    zenith = (np.array([0.5, 0.6, 0.65]) if overcast else np.array([0.3, 0.5, 0.85])) * rng.uniform(
        0.85, 1.1
    )
    lighting = Lighting(
        sun_dir=sun_dir,
        sun=sun_strength * np.array([1 + warm, 1.0, 1 - warm]),
        ambient=rng.uniform(0.45, 0.65) * np.array([1 - warm / 2, 1.0, 1 + warm / 2]),
        sky_horizon=horizon,
        sky_zenith=zenith,
        clouds=rng.uniform(0.1, 0.6) if not overcast else rng.uniform(0.5, 0.9),
        haze_m=rng.uniform(250, 1200),
        exposure=rng.uniform(0.85, 1.2),
        white_balance=rng.normal(1.0, 0.04, 3),
        gamma=rng.uniform(0.85, 1.15),
        saturation=rng.uniform(0.75, 1.2),
        noise_sigma=rng.uniform(0.8, 3.0),
    )
    return Scene(
        seed=int(seed),
        primitives=b.prims,
        ground=ground,
        lighting=lighting,
        camera_height=camera_height,
        pitch=float(rng.normal(0, np.radians(1.0))),
        roll=float(rng.normal(0, np.radians(0.7))),
    )
