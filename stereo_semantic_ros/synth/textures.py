"""Texture bank for the synthetic scenes: tileable procedural patterns plus real photographs.

Every texture is a square, tileable (H = W = ``TEXTURE_SIZE``) float32 RGB image in [0, 1]
with a full mip pyramid. Surfaces look a texture up by surface coordinates in metres, so a point
on a surface has the same colour in both stereo views; the mip level follows the pixel footprint
so that far surfaces are pre-filtered instead of aliasing differently in the two views.

Photographs come from scikit-image's bundled sample images (``skimage.data``; they ship inside
the wheel, no download). The bank is built once per process from a fixed seed, so a scene seed
alone determines every pixel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

TEXTURE_SIZE = 256
"""Side of every texture at mip level 0, in texels (power of two)."""

PHOTO_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "camera",
    "coins",
    "clock",
    "moon",
    "text",
    "page",
    "brick",
    "grass",
    "gravel",
)
"""scikit-image sample images used as photographs (all bundled with the scikit-image wheel)."""

_BANK_SEED = 20240917  # fixed: the bank is part of the generator, not of a scene


@dataclass(frozen=True)
class TextureBank:
    """All textures with their mip pyramids packed into one flat texel array.

    Attributes:
        names: texture names; the index is the texture id.
        tile_m: (N,) natural width of one tile in metres (a scene may scale it).
        flat: (T,) uint32 texels of every level of every texture, RGBA8 packed (byte order
            R, G, B, A in memory): one 4-byte gather per tap keeps the lookups cache-friendly.
        offsets: (N, L) int64 start of level l of texture n in ``flat``.
        size: texels per side at level 0.
        levels: number of mip levels (size, size/2, ..., 1).
        photos: True when the scikit-image photographs were available.
    """

    names: tuple[str, ...]
    tile_m: np.ndarray
    flat: np.ndarray
    offsets: np.ndarray
    size: int
    levels: int
    photos: bool

    def id(self, name: str) -> int:
        """Texture id of ``name``; ValueError lists the known names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown texture {name!r}; known: {', '.join(self.names)}") from None

    def ids(self, prefix: str) -> list[int]:
        """Ids of all textures whose name starts with ``prefix``."""
        found = _prefix_ids(self.names, prefix)
        if not found:
            raise ValueError(f"no texture named {prefix}*; known: {', '.join(self.names)}")
        return found

    def sample(
        self, tex: np.ndarray, s: np.ndarray, t: np.ndarray, level: np.ndarray
    ) -> np.ndarray:
        """Trilinear lookup with wrap-around.

        Args:
            tex: (n,) texture ids.
            s, t: (n,) coordinates in level-0 texels (s along the width, t down the height).
            level: (n,) fractional mip level, clipped to [0, levels - 1].

        Returns:
            (n, 3) float32 colours.
        """
        level = np.clip(level, 0.0, self.levels - 1.0).astype(np.float32)
        l0 = np.floor(level).astype(np.int64)
        l1 = np.minimum(l0 + 1, self.levels - 1)
        w1 = (level - l0)[:, None]
        c0 = self._bilinear(tex, s, t, l0)
        c1 = self._bilinear(tex, s, t, l1)
        return c0 + (c1 - c0) * w1

    def _bilinear(
        self, tex: np.ndarray, s: np.ndarray, t: np.ndarray, lev: np.ndarray
    ) -> np.ndarray:
        scale = np.ldexp(np.float32(1.0), -lev.astype(np.int32)).astype(np.float32)
        dim = (self.size >> lev).astype(np.int64)
        x = s * scale - 0.5
        y = t * scale - 0.5
        x0f = np.floor(x)
        y0f = np.floor(y)
        fx = (x - x0f).astype(np.float32)[:, None]
        fy = (y - y0f).astype(np.float32)[:, None]
        x0 = np.mod(x0f.astype(np.int64), dim)
        y0 = np.mod(y0f.astype(np.int64), dim)
        x1 = x0 + 1
        x1[x1 == dim] = 0
        y1 = y0 + 1
        y1[y1 == dim] = 0
        base = self.offsets[tex, lev]
        r0 = base + y0 * dim
        r1 = base + y1 * dim
        f = self.flat

        def tap(index: np.ndarray) -> np.ndarray:
            return f.take(index).view(np.uint8).reshape(-1, 4).astype(np.float32)

        top = tap(r0 + x0) * (1 - fx) + tap(r0 + x1) * fx
        bot = tap(r1 + x0) * (1 - fx) + tap(r1 + x1) * fx
        return (top * (1 - fy) + bot * fy)[:, :3] * np.float32(1.0 / 255.0)


@functools.lru_cache(maxsize=512)
def _prefix_ids(names: tuple[str, ...], prefix: str) -> list[int]:
    return [i for i, n in enumerate(names) if n.startswith(prefix)]


# --------------------------------------------------------------------------- generators


def _spectral_noise(
    rng: np.random.Generator, size: int, beta: float, fmin: float = 1.0
) -> np.ndarray:
    """Zero-mean, unit-std 1/f^beta noise; tileable because it is made in Fourier space."""
    white = rng.standard_normal((size, size))
    spec = np.fft.fft2(white)
    fy = np.fft.fftfreq(size)[:, None] * size
    fx = np.fft.fftfreq(size)[None, :] * size
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec *= np.where(f >= fmin, f ** (-beta), 0.0)
    out = np.real(np.fft.ifft2(spec))
    out -= out.mean()
    return (out / (out.std() + 1e-8)).astype(np.float32)


def _rgb(gray: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    return np.clip(gray[..., None] * np.asarray(color, np.float32), 0.0, 1.0).astype(np.float32)


def _asphalt(rng: np.random.Generator, n: int, base: float) -> np.ndarray:
    g = (
        base
        + 0.035 * _spectral_noise(rng, n, 1.6)
        + 0.05 * _spectral_noise(rng, n, 0.3)
        + 0.03 * _spectral_noise(rng, n, 1.0, fmin=24)
    )
    speck = rng.random((n, n)) < 0.02
    g = np.where(speck, g + rng.uniform(0.1, 0.25, (n, n)), g)
    return _rgb(g, (1.0, 1.0, 1.03))


def _tiles(rng: np.random.Generator, n: int, count: int, base: tuple, joint: float) -> np.ndarray:
    cell = n // count
    yy, xx = np.mgrid[0:n, 0:n]
    tile_id = (yy // cell) * count + (xx // cell)
    shade = rng.uniform(0.85, 1.12, count * count)[tile_id]
    seam = ((yy % cell) < 2) | ((xx % cell) < 2)
    g = shade * (1.0 + 0.08 * _spectral_noise(rng, n, 1.0, fmin=8)) + 0.04 * _spectral_noise(
        rng, n, 1.4
    )
    g = np.where(seam, joint, g)
    return _rgb(g.astype(np.float32), base)


def _bricks(
    rng: np.random.Generator,
    n: int,
    rows: int,
    cols: int,
    color: tuple,
    mortar: float,
    var: float = 0.15,
) -> np.ndarray:
    bh = n // rows
    bw = n // cols
    yy, xx = np.mgrid[0:n, 0:n]
    row = yy // bh
    shift = (row % 2) * (bw // 2)
    col = ((xx + shift) % n) // bw
    brick = rng.uniform(1 - var, 1 + var, (rows, cols))[row, col]
    rgb_var = rng.uniform(0.92, 1.08, (rows, cols, 3))[row, col]
    mortar_mask = ((yy % bh) < 2) | (((xx + shift) % bw) < 2)
    g = brick * (1 + 0.08 * _spectral_noise(rng, n, 0.8, fmin=16))
    img = g[..., None] * np.asarray(color, np.float32) * rgb_var
    img[mortar_mask] = mortar
    return np.clip(img, 0, 1).astype(np.float32)


def _plaster(rng: np.random.Generator, n: int, color: tuple, amp: float = 0.07) -> np.ndarray:
    # weathering (low frequency) plus a fine grain that a stereo matcher can lock on to
    g = 1.0 + amp * _spectral_noise(rng, n, 1.3) + 0.8 * amp * _spectral_noise(rng, n, 0.3)
    return _rgb(g, color)


def _facade(
    rng: np.random.Generator,
    n: int,
    wall: np.ndarray,
    floors: int,
    cols: int,
    glass: tuple = (0.12, 0.16, 0.2),
) -> np.ndarray:
    """Periodic facade: ``floors`` x ``cols`` windows on a wall texture."""
    img = wall.copy()
    ch = n // floors
    cw = n // cols
    refl = 0.5 + 0.5 * _spectral_noise(rng, n, 1.8)
    for r in range(floors):
        for c in range(cols):
            y0 = r * ch + int(ch * rng.uniform(0.22, 0.3))
            y1 = r * ch + int(ch * rng.uniform(0.78, 0.85))
            x0 = c * cw + int(cw * rng.uniform(0.18, 0.28))
            x1 = c * cw + int(cw * rng.uniform(0.72, 0.82))
            frame = np.asarray(rng.choice([0.9, 0.25, 0.6]) * np.ones(3), np.float32)
            img[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2] = frame
            lit = rng.uniform(0.6, 1.6)
            tone = np.asarray(glass, np.float32) * lit
            pane = tone + 0.12 * refl[y0:y1, x0:x1, None]
            if rng.random() < 0.4:  # curtains / interior light
                pane = pane * 0.5 + 0.5 * np.asarray(rng.uniform(0.3, 0.9, 3), np.float32)
            img[y0:y1, x0:x1] = pane
            mx = (x0 + x1) // 2
            img[y0:y1, mx - 1 : mx + 1] = frame  # mullion
            img[y1 + 2 : y1 + 5, x0 - 4 : x1 + 4] = 0.8  # sill
    return np.clip(img, 0, 1).astype(np.float32)


def _glass_front(rng: np.random.Generator, n: int) -> np.ndarray:
    refl = _spectral_noise(rng, n, 1.5)
    img = _rgb(0.35 + 0.12 * refl, (0.55, 0.7, 0.8))
    for x in range(0, n, n // 4):
        img[:, x : x + 5] = 0.2
    img[n // 3 : n // 3 + 4] = 0.2
    return img


def _fence(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    wood = 1 + 0.15 * _spectral_noise(rng, n, 1.0, fmin=4)
    if kind == 0:  # vertical slats with dark gaps
        gap = (xx % 16) < 4
        g = np.where(gap, 0.18, 0.75 * wood)
        return _rgb(g.astype(np.float32), (0.85, 0.7, 0.55))
    if kind == 1:  # chain link: diamond mesh over a dim background
        d1 = (xx + yy) % 24 < 3
        d2 = (xx - yy) % 24 < 3
        bg = 0.3 + 0.1 * _spectral_noise(rng, n, 1.5)
        g = np.where(d1 | d2, 0.8, bg)
        return _rgb(g.astype(np.float32), (0.8, 0.85, 0.8))
    # metal railing: vertical bars and two rails
    bars = (xx % 32) < 5
    rails = (yy % 128) < 8
    bg = 0.35 + 0.12 * _spectral_noise(rng, n, 1.2)
    g = np.where(bars | rails, 0.15, bg)
    return _rgb(g.astype(np.float32), (0.9, 0.9, 1.0))


def _leaves(rng: np.random.Generator, n: int, color: tuple) -> np.ndarray:
    clumps = _spectral_noise(rng, n, 1.3)
    fine = _spectral_noise(rng, n, 0.2)
    g = 0.75 + 0.3 * clumps + 0.25 * fine
    g = np.where(clumps < -1.0, g * 0.45, g)  # gaps in the foliage look dark
    img = _rgb(g, color)
    img[..., 0] *= 1 + 0.15 * _spectral_noise(rng, n, 1.5)
    return np.clip(img, 0, 1).astype(np.float32)


def _bark(rng: np.random.Generator, n: int) -> np.ndarray:
    streaks = cv2.resize(
        rng.standard_normal((n, 16)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC
    )
    g = 0.5 + 0.12 * streaks + 0.08 * _spectral_noise(rng, n, 1.0, fmin=16)
    return _rgb(g.astype(np.float32), (0.55, 0.42, 0.32))


def _paint(rng: np.random.Generator, n: int, lines: bool) -> np.ndarray:
    g = 0.78 + 0.05 * _spectral_noise(rng, n, 1.4) + 0.025 * _spectral_noise(rng, n, 0.0, fmin=32)
    if lines:  # panel gaps, trim strip and a few dirt blotches give the matcher features
        g[n // 2 - 2 : n // 2 + 1] *= 0.45
        g[:, n // 3 : n // 3 + 2] *= 0.5
        g[:, 2 * n // 3 : 2 * n // 3 + 2] *= 0.5
        g[int(0.8 * n) : int(0.8 * n) + 6] *= 0.6
        dirt = _spectral_noise(rng, n, 2.0) > 1.2
        g = np.where(dirt, g * 0.8, g)
    return _rgb(g.astype(np.float32), (1.0, 1.0, 1.0))


def _car_glass(rng: np.random.Generator, n: int) -> np.ndarray:
    refl = _spectral_noise(rng, n, 1.7)
    yy = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    g = 0.22 + 0.12 * refl + 0.2 * (1 - yy)
    img = _rgb(g, (0.8, 0.9, 1.0))
    img[int(0.75 * n) :] = img[int(0.75 * n) :] * 0.5 + 0.35  # door panel below the windows
    for x in (n // 3, 2 * n // 3):
        img[:, x - 3 : x + 3] = 0.1  # pillars
    return np.clip(img, 0, 1).astype(np.float32)


def _bus_side(rng: np.random.Generator, n: int, photo: np.ndarray | None) -> np.ndarray:
    img = _paint(rng, n, lines=True)
    top, bot = int(0.12 * n), int(0.45 * n)
    glass = _car_glass(rng, n)[top:bot]
    img[top:bot] = glass
    for x in range(0, n, n // 4):
        img[top:bot, x : x + 4] = 0.15
    if photo is not None:  # advertising panel below the windows
        ad = cv2.resize(photo, (n // 2, int(0.3 * n)), interpolation=cv2.INTER_AREA)
        img[int(0.55 * n) : int(0.55 * n) + ad.shape[0], n // 4 : n // 4 + ad.shape[1]] = ad
    return img


def _corrugated(rng: np.random.Generator, n: int) -> np.ndarray:
    xx = np.arange(n, dtype=np.float32)[None, :]
    g = 0.7 + 0.12 * np.sin(xx * 2 * np.pi / 8) + 0.06 * _spectral_noise(rng, n, 1.2)
    g[: n // 40] = 0.4
    return _rgb(np.broadcast_to(g, (n, n)).astype(np.float32), (1.0, 1.0, 1.0))


def _fabric(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    weave = 0.06 * _spectral_noise(rng, n, 0.0, fmin=40)
    folds = 0.12 * _spectral_noise(rng, n, 1.6)
    if kind == 0:
        g = 0.7 + folds + weave
    elif kind == 1:  # stripes
        g = np.where((yy // 12) % 2 == 0, 0.85, 0.45) + folds + weave
    elif kind == 2:  # checks
        g = np.where(((yy // 20) + (xx // 20)) % 2 == 0, 0.8, 0.5) + folds + weave
    else:  # denim-like
        g = 0.55 + folds + 0.1 * _spectral_noise(rng, n, 0.0, fmin=60)
    return _rgb(g.astype(np.float32), (1.0, 1.0, 1.0))


def _skin(rng: np.random.Generator, n: int) -> np.ndarray:
    g = 0.8 + 0.06 * _spectral_noise(rng, n, 1.5)
    img = _rgb(g, (1.0, 0.85, 0.72))
    yy, xx = np.mgrid[0:n, 0:n]
    hair = yy < n // 3
    img[hair] = img[hair] * 0.25  # dark hair on the upper part of the head
    return img


def _rubber(rng: np.random.Generator, n: int) -> np.ndarray:
    g = 0.13 + 0.05 * _spectral_noise(rng, n, 0.8)
    xx = np.arange(n)[None, :]
    g = g + 0.05 * ((xx % 16) < 3)
    return _rgb(g.astype(np.float32), (1.0, 1.0, 1.0))


def _metal(rng: np.random.Generator, n: int) -> np.ndarray:
    brushed = cv2.resize(
        rng.standard_normal((n, 8)).astype(np.float32), (n, n), interpolation=cv2.INTER_LINEAR
    )
    g = (
        0.55
        + 0.06 * brushed
        + 0.08 * _spectral_noise(rng, n, 1.2)
        + 0.04 * _spectral_noise(rng, n, 0.0, fmin=30)
    )
    g[(np.arange(n) % 64) < 3] *= 0.6  # bands / clamps along the pole
    return _rgb(g.astype(np.float32), (0.95, 0.97, 1.0))


def _sign(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    """Traffic sign face filling the whole tile (drawn once per face, not tiled)."""
    back = 0.55 + 0.05 * _spectral_noise(rng, n, 1.0)
    img = np.ascontiguousarray((_rgb(back, (0.8, 0.8, 0.8)) * 255).astype(np.uint8))
    c = n // 2
    red, white, blue = (204, 20, 20), (242, 242, 242), (25, 64, 190)
    black, yellow = (13, 13, 13), (242, 204, 25)
    aa = cv2.LINE_AA
    if kind == 0:  # prohibition: red ring, white centre, black number
        cv2.circle(img, (c, c), int(0.48 * n), red, -1, aa)
        cv2.circle(img, (c, c), int(0.36 * n), white, -1, aa)
        cv2.putText(
            img,
            str(rng.choice([30, 50, 70])),
            (int(0.22 * n), int(0.62 * n)),
            cv2.FONT_HERSHEY_SIMPLEX,
            n / 110,
            black,
            max(2, n // 40),
            aa,
        )
    elif kind == 1:  # warning triangle
        pts = np.array(
            [[c, int(0.05 * n)], [int(0.97 * n), int(0.92 * n)], [int(0.03 * n), int(0.92 * n)]],
            np.int32,
        )
        cv2.fillPoly(img, [pts], red, aa)
        centre = np.array([c, int(0.63 * n)])
        inner = ((pts - centre) * 0.72 + centre).astype(np.int32)
        cv2.fillPoly(img, [inner], white, aa)
        cv2.rectangle(img, (c - n // 28, int(0.4 * n)), (c + n // 28, int(0.7 * n)), black, -1)
        cv2.circle(img, (c, int(0.78 * n)), n // 22, black, -1, aa)
    elif kind == 2:  # mandatory: blue disc with white arrow
        cv2.circle(img, (c, c), int(0.48 * n), blue, -1, aa)
        cv2.arrowedLine(
            img, (c, int(0.8 * n)), (c, int(0.2 * n)), white, n // 12, aa, tipLength=0.35
        )
    elif kind == 3:  # stop octagon
        ang = np.pi / 8 + np.arange(8) * np.pi / 4
        pts = np.stack([c + 0.48 * n * np.cos(ang), c + 0.48 * n * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(img, [pts], red, aa)
        cv2.polylines(img, [pts], True, white, n // 40, aa)
        cv2.putText(
            img,
            "STOP",
            (int(0.12 * n), int(0.6 * n)),
            cv2.FONT_HERSHEY_SIMPLEX,
            n / 100,
            white,
            max(2, n // 30),
            aa,
        )
    elif kind == 4:  # blue information panel with text
        img[:] = blue
        cv2.rectangle(img, (n // 20, n // 20), (n - n // 20, n - n // 20), white, n // 40)
        for i, word in enumerate(("EXIT", "CITY", "P+R")):
            cv2.putText(
                img,
                word,
                (int(0.15 * n), int((0.32 + 0.25 * i) * n)),
                cv2.FONT_HERSHEY_SIMPLEX,
                n / 180,
                white,
                max(1, n // 60),
                aa,
            )
    else:  # priority diamond
        pts = np.array([[c, 4], [n - 4, c], [c, n - 4], [4, c]], np.int32)
        cv2.fillPoly(img, [pts], white, aa)
        inner = ((pts - c) * 0.6 + c).astype(np.int32)
        cv2.fillPoly(img, [inner], yellow, aa)
    return img.astype(np.float32) / 255.0


def _traffic_light(rng: np.random.Generator, n: int) -> np.ndarray:
    """Housing face: three lamps stacked vertically over the whole tile, one of them lit."""
    housing = _rgb(0.12 + 0.03 * _spectral_noise(rng, n, 1.0), (1.0, 1.0, 0.9))
    img = np.ascontiguousarray((housing * 255).astype(np.uint8))
    lit = rng.integers(0, 3)
    colours = [(255, 40, 25), (255, 180, 25), (50, 255, 128)]
    for i, col in enumerate(colours):
        cy = int((i + 0.5) * n / 3)
        cv2.circle(img, (n // 2, cy), int(n * 0.14), (90, 90, 90), -1, cv2.LINE_AA)
        lamp = col if i == lit else tuple(int(0.25 * v) for v in col)
        cv2.circle(img, (n // 2, cy), int(n * 0.11), lamp, -1, cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


def _clouds(rng: np.random.Generator, n: int) -> np.ndarray:
    g = _spectral_noise(rng, n, 1.6)
    g = np.clip((g + 0.3) * 0.6, 0, 1)
    return _rgb(g, (1.0, 1.0, 1.0))


def _photo(name: str, n: int) -> np.ndarray | None:
    try:
        import skimage.data  # noqa: PLC0415 - optional at import time, bundled images only

        img = getattr(skimage.data, name)()
    except Exception:  # missing scikit-image or a sample not bundled: fall back to procedural
        return None
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    h, w = img.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(img[y0 : y0 + side, x0 : x0 + side])
    out = cv2.resize(crop, (n, n), interpolation=cv2.INTER_AREA)
    return out.astype(np.float32) / 255.0


def _tileable(img: np.ndarray, border: int = 24) -> np.ndarray:
    """Blend a photograph's edges with its wrapped copy so tiling has no hard seam."""
    n = img.shape[0]
    ramp = np.clip(np.minimum(np.arange(n), n - 1 - np.arange(n)) / border, 0, 1).astype(np.float32)
    w = np.minimum(ramp[:, None], ramp[None, :])[..., None]
    shifted = np.roll(img, (n // 2, n // 2), axis=(0, 1))
    return (img * w + shifted * (1 - w)).astype(np.float32)


def _mip_chain(img: np.ndarray) -> list[np.ndarray]:
    chain = [img]
    while chain[-1].shape[0] > 1:
        a = chain[-1]
        # 2x2 box filter: exact for power-of-two sizes and keeps tileability
        chain.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
    return chain


def _make_textures(use_photos: bool) -> tuple[list[str], list[float], list[np.ndarray], bool]:
    rng = np.random.default_rng(_BANK_SEED)
    n = TEXTURE_SIZE
    names: list[str] = []
    tiles: list[float] = []
    images: list[np.ndarray] = []

    def add(name: str, tile_m: float, img: np.ndarray) -> None:
        names.append(name)
        tiles.append(tile_m)
        images.append(np.ascontiguousarray(img, dtype=np.float32))

    photos = {p: _photo(p, n) for p in PHOTO_NAMES} if use_photos else {}
    have_photos = bool(photos) and all(v is not None for v in photos.values())

    def photo_or(name: str, fallback: np.ndarray) -> np.ndarray:
        img = photos.get(name)
        return _tileable(img) if img is not None else fallback

    # road and ground
    add("asphalt_0", 4.0, _asphalt(rng, n, 0.36))
    add("asphalt_1", 3.0, _asphalt(rng, n, 0.30))
    gravel = photo_or("gravel", _asphalt(rng, n, 0.45))
    add("asphalt_2", 2.5, 0.55 * _asphalt(rng, n, 0.33) + 0.45 * gravel * 0.75)
    add("sidewalk_0", 2.0, _tiles(rng, n, 4, (0.75, 0.72, 0.7), 0.35))
    add("sidewalk_1", 1.2, _bricks(rng, n, 8, 4, (0.62, 0.6, 0.6), 0.4, var=0.1))
    add("sidewalk_2", 3.0, _tiles(rng, n, 2, (0.7, 0.66, 0.6), 0.3))
    add("sidewalk_3", 2.0, 0.5 * gravel + 0.5 * _plaster(rng, n, (0.6, 0.58, 0.55)))
    grass = photo_or("grass", _leaves(rng, n, (0.45, 0.6, 0.3)))
    add("terrain_0", 3.0, grass * np.asarray((0.75, 1.0, 0.55), np.float32))
    add("terrain_1", 2.0, gravel * np.asarray((0.95, 0.85, 0.7), np.float32))
    add("terrain_2", 4.0, _leaves(rng, n, (0.55, 0.62, 0.35)) * 0.8)
    add(
        "terrain_3",
        3.0,
        np.clip(0.6 * grass * np.asarray((0.8, 0.95, 0.5), np.float32) + 0.4 * gravel * 0.7, 0, 1),
    )
    # buildings and walls
    walls = [
        _plaster(rng, n, (0.85, 0.8, 0.7)),
        _plaster(rng, n, (0.7, 0.72, 0.75)),
        _bricks(rng, n, 32, 8, (0.62, 0.32, 0.22), 0.7),
        _plaster(rng, n, (0.9, 0.88, 0.82), 0.2),
        photo_or("brick", _bricks(rng, n, 16, 4, (0.6, 0.55, 0.5), 0.6)),
        _bricks(rng, n, 32, 8, (0.7, 0.65, 0.55), 0.55),
    ]
    for i, wall in enumerate(walls):
        floors, cols = [(2, 2), (2, 3), (3, 3), (2, 2), (2, 2), (3, 2)][i]
        add(f"facade_{i}", [6.0, 7.5, 9.0, 6.0, 6.5, 8.0][i], _facade(rng, n, wall, floors, cols))
    add("facade_glass", 8.0, _glass_front(rng, n))
    add("wall_0", 2.5, photo_or("brick", _bricks(rng, n, 16, 4, (0.6, 0.5, 0.45), 0.6)))
    add("wall_1", 4.0, _bricks(rng, n, 16, 4, (0.6, 0.33, 0.25), 0.75))
    add("wall_2", 5.0, _plaster(rng, n, (0.7, 0.7, 0.68), 0.25))
    add("wall_3", 3.0, _tiles(rng, n, 4, (0.65, 0.65, 0.6), 0.4))
    add("fence_0", 2.0, _fence(rng, n, 0))
    add("fence_1", 1.5, _fence(rng, n, 1))
    add("fence_2", 3.0, _fence(rng, n, 2))
    # street furniture
    add("metal_0", 1.0, _metal(rng, n))
    for k in range(6):
        add(f"sign_{k}", 1.0, _sign(rng, n, k))
    add("light_0", 1.0, _traffic_light(rng, n))
    add("light_1", 1.0, _traffic_light(rng, n))
    # vegetation
    add("leaves_0", 2.0, _leaves(rng, n, (0.35, 0.55, 0.2)))
    add("leaves_1", 2.5, _leaves(rng, n, (0.3, 0.45, 0.18)))
    add("leaves_2", 1.5, _leaves(rng, n, (0.45, 0.55, 0.25)))
    add("bark_0", 1.0, _bark(rng, n))
    # vehicles
    add("paint_0", 4.0, _paint(rng, n, lines=True))
    add("paint_1", 3.0, _paint(rng, n, lines=True))
    add("glass_0", 3.0, _car_glass(rng, n))
    add("rubber_0", 1.0, _rubber(rng, n))
    add("cargo_0", 3.0, _corrugated(rng, n))
    add("bus_0", 10.0, _bus_side(rng, n, photos.get("coffee")))
    add("bus_1", 10.0, _bus_side(rng, n, photos.get("rocket")))
    add("bus_2", 10.0, _bus_side(rng, n, photos.get("astronaut")))
    # people
    for k in range(4):
        add(f"cloth_{k}", 0.8, _fabric(rng, n, k))
    add("skin_0", 0.7, _skin(rng, n))
    # photographs (posters, graffiti, printed clothes); procedural stand-ins without scikit-image
    posters = (
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "immunohistochemistry",
        "hubble_deep_field",
        "camera",
        "coins",
        "clock",
        "text",
        "page",
        "moon",
    )
    for i, p in enumerate(posters):
        img = photos.get(p)
        add(f"photo_{i}", 3.0, img if img is not None else _fabric(rng, n, i % 4))
    add("clouds_0", 1.0, _clouds(rng, n))
    return names, tiles, images, have_photos


@functools.lru_cache(maxsize=2)
def build_texture_bank(use_photos: bool = True) -> TextureBank:
    """Build (once per process) the texture bank; ``use_photos=False`` is fully procedural."""
    names, tiles, images, have_photos = _make_textures(use_photos)
    levels = int(np.log2(TEXTURE_SIZE)) + 1
    chunks: list[np.ndarray] = []
    offsets = np.zeros((len(images), levels), np.int64)
    pos = 0
    for i, img in enumerate(images):
        for lev, mip in enumerate(_mip_chain(img)):
            offsets[i, lev] = pos
            flat = mip.reshape(-1, 3)
            chunks.append(flat)
            pos += flat.shape[0]
    rgb = np.clip(np.rint(np.concatenate(chunks) * 255.0), 0, 255).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return TextureBank(
        names=tuple(names),
        tile_m=np.asarray(tiles, np.float32),
        flat=np.ascontiguousarray(rgba).view(np.uint32).reshape(-1),
        offsets=offsets,
        size=TEXTURE_SIZE,
        levels=levels,
        photos=have_photos,
    )
