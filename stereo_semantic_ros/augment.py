"""Training augmentation that keeps a stereo pair a stereo pair.

The operations of the paper (random scale, mirror, additive Gaussian noise, brightness,
contrast, gamma and colour) plus random crops for training; evaluation uses no augmentation
and sees full images. Geometry changes are applied to everything a sample carries (images,
disparities, masks, labels, depth, calibration) so the ground truth stays exact:

* **scale**: images resized with area (down) / linear (up) interpolation; disparity, masks,
  labels and depth with nearest neighbour on the same pixel centres, disparity multiplied by
  the horizontal factor; calibration through :meth:`StereoCalibration.scaled`.
* **mirror**: a horizontal flip alone would turn a left view into a "right" view (matches
  would move right, disparity would become negative). The flipped pair stays valid when the
  views are also swapped: ``left' = flip(right)``, ``right' = flip(left)``, and the new left
  disparity is the flipped RIGHT-view disparity. So mirror needs ``right_disparity`` and is
  skipped for samples without it (real KITTI, Cityscapes). The right view's NOC mask comes
  from a left-right consistency check, its labels from ``meta["right_labels"]`` when the
  source has them, else from the left labels carried along the right disparity. The new left
  camera is the old right one: its principal point is the mirrored ``cx_right``, and
  ``doffs = cx_right - cx_left`` keeps its value (as it does under a crop).
* **crop**: a random window of a fixed size (multiples of 8 for the networks' strides); the
  image is first scaled up just enough when it is smaller than the crop.
* **photometric**: one per-channel gain (colour), brightness shift, contrast about the
  pair's mean grey and gamma, identical for both views, so matching pixels stay equal. An
  optional small extra per-channel gain on the right view (``asymmetric``) imitates two
  cameras' different exposure. Gaussian noise is drawn independently per view, as sensor
  noise is -- the same noise pattern on both views would be a fake zero-disparity texture.

For transfer from synthetic to real pairs (the ``transfer`` preset, :meth:`Augmentor.for_transfer`;
every one of these is off in ``default``, which draws exactly as before they existed):

* **stretch**: the scale factor is multiplied by independent x and y factors, so the aspect
  ratio changes; disparity (and ``fx``, ``doffs``) scale by the x factor only, ``fy`` and ``cy``
  by the y factor. With a wide ``min_scale..max_scale`` one scene shows many disparity ranges.
* **per-view photometric**: with ``per_view_photometric_prob`` the right view gets its own
  colour / brightness / contrast / gamma draw (two real cameras never respond alike), and with
  ``per_view_noise_prob`` its own noise level.
* **blur**: a Gaussian blur of random sigma, decided and drawn independently per view (focus,
  motion and lens softness differ between two real cameras; renderers are sharp).
* **vertical shift**: the right image alone moves by a sub-pixel amount (bilinear); the ground
  truth is unchanged because the shift imitates an imperfect real rectification, which leaves
  matches a fraction of a pixel off the row. The default limit of 0.5 px is the order of a good
  calibration's reprojection error; a pair more than a pixel off is a broken calibration the
  node should not be trained to hide, and a row-only search would still find it (1D).
* **eraser** (CREStereo, RAFT-Stereo): 1..N rectangles of the right image are filled with the
  right image's mean colour. The left ground truth is unchanged: a left pixel whose match falls
  in a patch has no photometric evidence, exactly as if an object occluded it in the right view.

Order: mirror -> scale/stretch -> crop -> vertical shift -> eraser -> blur -> photometric + noise
(an occluder is in the scene; optics blur before the sensor's response and noise).

Disparity follows :mod:`stereo_semantic_ros.calibration` (left ``u`` matches right ``u - d``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.base import (
    CONFIDENCE_KEY,
    DENSE_META_KEYS,
    RIGHT_CONFIDENCE_KEY,
    RIGHT_LABELS_KEY,
    consistent_disparity_mask,
)
from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.labels import IGNORE_LABEL

_DENSE_FIELDS = ("disparity", "valid", "noc", "labels", "depth", "right_disparity")
PRESETS = ("default", "transfer")
"""Named augmentations a recipe's ``data.augment:`` may give (besides ``none`` and a mapping)."""


def _map_dense(
    sample: StereoSample,
    image_fn: Callable[[np.ndarray], np.ndarray],
    dense_fn: Callable[[np.ndarray], np.ndarray],
    calib_fn: Callable[[StereoCalibration], StereoCalibration],
    disparity_factor: float = 1.0,
) -> StereoSample:
    """Apply one geometric change to every per-pixel field of a sample."""
    values = {}
    for key in _DENSE_FIELDS:
        value = getattr(sample, key)
        if value is not None:
            value = dense_fn(value)
            if key in ("disparity", "right_disparity") and disparity_factor != 1.0:
                value = value * np.float32(disparity_factor)
        values[key] = value
    meta = dict(sample.meta)
    for key in DENSE_META_KEYS:
        if meta.get(key) is not None:
            meta[key] = dense_fn(meta[key])
    return StereoSample(
        left=image_fn(sample.left),
        right=image_fn(sample.right),
        calib=calib_fn(sample.calib),
        name=sample.name,
        meta=meta,
        **values,
    )


def resize_sample(sample: StereoSample, height: int, width: int) -> StereoSample:
    """Resize a sample to (height, width); disparity scales with the horizontal factor."""
    if height < 1 or width < 1:
        raise ValueError(f"resize target must be positive, got {height}x{width}")
    h, w = sample.size
    sx, sy = width / w, height / h
    image_interp = cv2.INTER_AREA if sx * sy < 1.0 else cv2.INTER_LINEAR

    def image_fn(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (width, height), interpolation=image_interp)

    def dense_fn(array: np.ndarray) -> np.ndarray:
        # Nearest on pixel centres (INTER_NEAREST_EXACT) keeps labels/disparities unmixed
        # and aligned with the area/linear-resized images; bools go through uint8.
        src = array.view(np.uint8) if array.dtype == np.bool_ else array
        out = cv2.resize(src, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
        return out.astype(np.bool_) if array.dtype == np.bool_ else out

    def calib_fn(calib: StereoCalibration) -> StereoCalibration:
        return replace(calib.scaled(sx, sy), width=width, height=height)

    return _map_dense(sample, image_fn, dense_fn, calib_fn, disparity_factor=sx)


def scale_sample(sample: StereoSample, factor: float) -> StereoSample:
    """Resize by ``factor`` in both directions (rounded to whole pixels)."""
    if factor <= 0:
        raise ValueError(f"scale factor must be positive, got {factor}")
    h, w = sample.size
    return resize_sample(sample, max(1, round(h * factor)), max(1, round(w * factor)))


def crop_sample(sample: StereoSample, top: int, left: int, height: int, width: int) -> StereoSample:
    """The window ``[top:top+height, left:left+width]``; the principal point moves with it."""
    h, w = sample.size
    if not (0 <= top and top + height <= h and 0 <= left and left + width <= w):
        raise ValueError(
            f"crop {height}x{width} at ({top}, {left}) does not fit in a {h}x{w} sample"
        )
    window = (slice(top, top + height), slice(left, left + width))

    def cut(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array[window])

    def calib_fn(calib: StereoCalibration) -> StereoCalibration:
        return replace(calib, cx=calib.cx - left, cy=calib.cy - top, width=width, height=height)

    return _map_dense(sample, cut, cut, calib_fn)


def right_view_labels(
    labels: np.ndarray, disparity: np.ndarray, right_disparity: np.ndarray, right_noc: np.ndarray
) -> np.ndarray:
    """Right-view train ids from the left labels, for sources without right labels.

    A right pixel ``x`` seen by the left camera (``right_noc``) takes the label of left pixel
    ``x + d_right``. Pixels without disparity in both views at the same column are at
    infinity (sky) and keep the same column's label. Everything else -- right pixels hidden
    from the left camera -- is 255.
    """
    h, w = labels.shape
    partner = np.clip(np.rint(np.arange(w)[None, :] + right_disparity), 0, w - 1).astype(np.int64)
    carried = labels[np.arange(h)[:, None], partner]
    out = np.full_like(labels, IGNORE_LABEL)
    out[right_noc] = carried[right_noc]
    far = (right_disparity <= 0) & (disparity <= 0)
    out[far] = labels[far]
    return out


def mirror_sample(sample: StereoSample) -> StereoSample:
    """Mirror a pair so it stays a valid stereo pair (see the module docstring).

    Raises:
        ValueError: the sample has no ``right_disparity`` (or no left disparity).
    """
    if sample.right_disparity is None or sample.disparity is None:
        raise ValueError(
            f"sample {sample.name!r}: mirroring needs both views' disparity; "
            "this sample has no right_disparity"
        )
    h, w = sample.size
    d_left = sample.disparity
    d_right = np.where(sample.right_disparity > 0, sample.right_disparity, np.float32(0.0))
    right_valid = d_right > 0
    right_noc = consistent_disparity_mask(d_right, d_left, partner_sign=+1)

    def flip(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array[:, ::-1])

    meta = dict(sample.meta)
    labels = None
    if sample.labels is not None:
        right_labels = meta.get(RIGHT_LABELS_KEY)
        if right_labels is None:
            right_labels = right_view_labels(sample.labels, d_left, d_right, right_noc)
        labels = flip(right_labels)
        meta[RIGHT_LABELS_KEY] = flip(sample.labels)
    depth = None
    if sample.depth is not None:
        depth = flip(sample.calib.depth_from_disparity(d_right))
    # a teacher's confidences belong to their views: the new left view is the old right one
    confidences = (meta.get(CONFIDENCE_KEY), meta.get(RIGHT_CONFIDENCE_KEY))
    for key, value in zip((RIGHT_CONFIDENCE_KEY, CONFIDENCE_KEY), confidences):
        if value is not None:
            meta[key] = flip(value)
        else:
            meta.pop(key, None)
    meta["mirrored"] = not meta.get("mirrored", False)
    return StereoSample(
        left=flip(sample.right),
        right=flip(sample.left),
        # the new left camera is the old right one, flipped: its principal point is the old
        # right camera's, mirrored; doffs = cx_right - cx_left stays as it was
        calib=replace(sample.calib, cx=(w - 1) - sample.calib.cx_right),
        disparity=flip(d_right).astype(np.float32),
        valid=flip(right_valid),
        noc=flip(right_noc),
        labels=labels,
        depth=depth,
        right_disparity=flip(d_left).astype(np.float32),
        name=sample.name,
        meta=meta,
    )


def shift_right_vertically(sample: StereoSample, dy: float) -> StereoSample:
    """Move the right image's content down by ``dy`` pixels (bilinear, border replicated).

    Right pixel ``(x, y)`` afterwards shows what ``(x, y - dy)`` showed. Everything else --
    the left image, every ground truth array and the calibration -- is unchanged: the shift
    imitates a rectification error the ground truth does not know about.
    """
    if dy == 0:
        return sample
    h, w = sample.size
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, float(dy)]], dtype=np.float64)
    right = cv2.warpAffine(
        sample.right, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return replace(sample, right=right)


def erase_patches(
    image: np.ndarray, boxes: list[tuple[int, int, int, int]], colour: np.ndarray | None = None
) -> np.ndarray:
    """A copy of ``image`` with each ``(top, left, height, width)`` box filled with ``colour``
    (default: the image's mean colour, rounded), the eraser of CREStereo / RAFT-Stereo."""
    if colour is None:
        colour = np.rint(image.reshape(-1, image.shape[-1]).mean(axis=0))
    out = image.copy()
    fill = np.asarray(colour).astype(image.dtype)
    for top, left, height, width in boxes:
        out[top : top + height, left : left + width] = fill
    return out


def blur_image(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of std ``sigma`` pixels (kernel from sigma, reflected border); 0 = copy."""
    if sigma <= 0:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT_101)


@dataclass(frozen=True)
class Photometric:
    """One draw of the photometric parameters for a pair.

    ``gain``: (3,) per-channel factors (colour); ``brightness``: added grey levels;
    ``contrast``: factor about ``pivot`` (the pair's mean grey); ``gamma``: exponent on
    [0, 1]-scaled intensities; ``right_gain``: (3,) extra factors for the right view only
    (1 = identical views); ``noise_std``: std of the Gaussian noise in grey levels.
    ``right_view``: the right view's own draw (its gain, brightness, contrast and gamma are
    used for the right image, ``right_gain`` still multiplies), None = the left view's.
    ``right_noise_std``: the right view's own noise std, None = ``noise_std``.
    """

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    right_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise_std: float = 0.0
    right_view: Photometric | None = None
    right_noise_std: float | None = None


def adjust_image(
    image: np.ndarray,
    gain: tuple[float, float, float] | np.ndarray,
    brightness: float,
    contrast: float,
    pivot: float,
    gamma: float,
) -> np.ndarray:
    """Colour gain, brightness, contrast and gamma on (H, W, 3) uint8 -> float32 in [0, 255]."""
    x = image.astype(np.float32) * np.asarray(gain, dtype=np.float32) + np.float32(brightness)
    x = (x - np.float32(pivot)) * np.float32(contrast) + np.float32(pivot)
    x = np.clip(x, 0.0, 255.0)
    if gamma != 1.0:
        x = np.float32(255.0) * np.power(x / np.float32(255.0), np.float32(gamma))
    return x


def photometric_pair(
    left: np.ndarray, right: np.ndarray, params: Photometric, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one :class:`Photometric` draw to both views; returns (H, W, 3) uint8 images.

    The contrast pivot of a view is the pair's mean grey after that view's gain and brightness.
    """
    gain = np.asarray(params.gain, dtype=np.float32)
    grey = np.float32(0.5) * (left.mean(axis=(0, 1)) + right.mean(axis=(0, 1)))
    pivot = float(np.mean(grey * gain) + params.brightness)
    rp, right_gain, right_pivot = params, gain, pivot
    if params.right_view is not None:
        rp = params.right_view
        right_gain = np.asarray(rp.gain, dtype=np.float32)
        right_pivot = float(np.mean(grey * right_gain) + rp.brightness)
    right_noise = params.noise_std if params.right_noise_std is None else params.right_noise_std
    views = (
        (left, gain, params, pivot, params.noise_std),
        (right, right_gain * np.asarray(params.right_gain), rp, right_pivot, right_noise),
    )
    out = []
    for image, view_gain, p, view_pivot, noise_std in views:
        x = adjust_image(image, view_gain, p.brightness, p.contrast, view_pivot, p.gamma)
        if noise_std > 0:
            x = x + rng.normal(0.0, noise_std, size=x.shape).astype(np.float32)
        out.append(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    return out[0], out[1]


@dataclass(kw_only=True)
class Augmentor:
    """Random training augmentation of :class:`StereoSample` s, in the order
    mirror -> scale (stretch) -> crop -> vertical shift -> eraser -> blur -> photometric.

    Every field is a key of a recipe's ``data.augment:`` mapping. The fields after
    ``photometric_prob`` are the synthetic-to-real ones (module docstring); each is off (its
    probability 0) unless set, and draws nothing from ``rng`` while off.

    Attributes:
        rng: the random stream; seed it for reproducible runs (``np.random.default_rng(0)``).
            DataLoader workers reseed their copy through :func:`~.datasets.base.seed_worker`.
        crop_size: (height, width) of training crops, multiples of 8; None = full images.
        min_scale, max_scale: scale factor range, drawn log-uniformly.
        scale_prob: probability of scaling at all.
        mirror_prob: probability of mirroring (samples without right disparity never are).
        noise_std: largest std of the additive Gaussian noise, grey levels (0..255).
        brightness: largest brightness shift, grey levels.
        contrast: contrast factor drawn from [1 - contrast, 1 + contrast].
        gamma: gamma drawn log-uniformly from [1 / (1 + gamma), 1 + gamma].
        color: per-channel gain drawn from [1 - color, 1 + color].
        asymmetric: extra per-channel right-view gain from [1 - a, 1 + a]; 0 = identical views.
        photometric_prob: probability of the photometric changes (noise included).
        per_view_photometric_prob: probability (within a photometric draw) that the right view
            gets its own colour, brightness, contrast and gamma draw from the same ranges.
        per_view_noise_prob: probability (within a photometric draw) that the right view's
            noise std is drawn on its own from [0, noise_std] (else both views share one std;
            the noise samples are independent per view either way).
        stretch_prob: probability of stretching: the x and y scale factors are each multiplied
            by a factor drawn log-uniformly from [1 / (1 + max_stretch), 1 + max_stretch].
        max_stretch: the stretch range (>= 0).
        blur_prob: probability, decided per view, of a Gaussian blur.
        blur_min_sigma, blur_max_sigma: the blur std range in pixels, drawn uniformly per view.
        vshift_prob: probability of shifting the right image vertically.
        max_vshift: the shift is drawn uniformly from [-max_vshift, max_vshift] pixels.
        eraser_prob: probability of erasing patches of the right image.
        eraser_max_count: 1..eraser_max_count patches (uniform).
        eraser_min_size, eraser_max_size: a patch's height and width, each a fraction of the
            image's height and width drawn uniformly from this range, in (0, 1].
    """

    rng: np.random.Generator = field(repr=False)
    crop_size: tuple[int, int] | None = None
    min_scale: float = 1.0
    max_scale: float = 1.0
    scale_prob: float = 1.0
    mirror_prob: float = 0.0
    noise_std: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0
    color: float = 0.0
    asymmetric: float = 0.0
    photometric_prob: float = 1.0
    per_view_photometric_prob: float = 0.0
    per_view_noise_prob: float = 0.0
    stretch_prob: float = 0.0
    max_stretch: float = 0.15
    blur_prob: float = 0.0
    blur_min_sigma: float = 0.4
    blur_max_sigma: float = 1.5
    vshift_prob: float = 0.0
    max_vshift: float = 0.5
    eraser_prob: float = 0.0
    eraser_max_count: int = 3
    eraser_min_size: float = 0.08
    eraser_max_size: float = 0.25

    def __post_init__(self) -> None:
        if not isinstance(self.rng, np.random.Generator):
            raise ValueError(
                f"Augmentor.rng must be a numpy Generator (np.random.default_rng(seed)), "
                f"got {type(self.rng).__name__}"
            )
        if self.crop_size is not None:
            ch, cw = (int(v) for v in self.crop_size)
            if ch <= 0 or cw <= 0 or ch % 8 or cw % 8:
                raise ValueError(
                    f"crop_size must be positive multiples of 8 (the networks' strides), "
                    f"got {tuple(self.crop_size)}"
                )
            self.crop_size = (ch, cw)
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(
                f"need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}"
            )
        for name in (f.name for f in fields(self) if f.name.endswith("_prob")):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("noise_std", "brightness", "gamma", "max_stretch", "max_vshift"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("contrast", "color", "asymmetric"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.blur_min_sigma <= self.blur_max_sigma:
            raise ValueError(
                f"need 0 <= blur_min_sigma <= blur_max_sigma, got "
                f"{self.blur_min_sigma}, {self.blur_max_sigma}"
            )
        if not 0.0 < self.eraser_min_size <= self.eraser_max_size <= 1.0:
            raise ValueError(
                f"need 0 < eraser_min_size <= eraser_max_size <= 1, got "
                f"{self.eraser_min_size}, {self.eraser_max_size}"
            )
        if int(self.eraser_max_count) != self.eraser_max_count or self.eraser_max_count < 1:
            raise ValueError(
                f"eraser_max_count must be an integer >= 1, got {self.eraser_max_count}"
            )
        self.eraser_max_count = int(self.eraser_max_count)

    @classmethod
    def for_training(cls, crop_size: tuple[int, int] | None, rng: np.random.Generator) -> Augmentor:
        """The package's training defaults: every operation of the paper, moderately."""
        return cls(
            rng=rng,
            crop_size=crop_size,
            min_scale=0.8,
            max_scale=1.25,
            scale_prob=0.8,
            mirror_prob=0.5,
            noise_std=4.0,
            brightness=20.0,
            contrast=0.2,
            gamma=0.2,
            color=0.1,
            asymmetric=0.02,
            photometric_prob=0.9,
        )

    @classmethod
    def for_transfer(cls, crop_size: tuple[int, int] | None, rng: np.random.Generator) -> Augmentor:
        """The ``transfer`` preset: the training defaults plus everything that helps a network
        trained on synthetic pairs work on real cameras (module docstring): a wider scale range
        (0.6..1.6) with stretching, per-view photometric draws and noise levels, per-view blur,
        a sub-pixel vertical shift of the right view and the right-view eraser."""
        return replace(
            cls.for_training(crop_size, rng),
            min_scale=0.6,
            max_scale=1.6,
            per_view_photometric_prob=0.5,
            per_view_noise_prob=0.5,
            stretch_prob=0.5,
            max_stretch=0.15,
            blur_prob=0.3,
            blur_min_sigma=0.4,
            blur_max_sigma=1.5,
            vshift_prob=0.5,
            max_vshift=0.5,
            eraser_prob=0.5,
            eraser_max_count=3,
            eraser_min_size=0.08,
            eraser_max_size=0.25,
        )

    @classmethod
    def preset(
        cls, name: str, crop_size: tuple[int, int] | None, rng: np.random.Generator
    ) -> Augmentor:
        """The named preset (``PRESETS``): ``default`` = :meth:`for_training`, ``transfer`` =
        :meth:`for_transfer`."""
        if name == "default":
            return cls.for_training(crop_size, rng)
        if name == "transfer":
            return cls.for_transfer(crop_size, rng)
        raise ValueError(
            f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}"
        )

    def reseed(self, seed: int) -> None:
        """Restart the random stream (used per DataLoader worker)."""
        self.rng = np.random.default_rng(seed)

    def draw_photometric(self) -> Photometric:
        """One random :class:`Photometric` draw from this augmentor's ranges."""
        u = self.rng.uniform
        log_gamma = np.log1p(self.gamma)
        return Photometric(
            gain=tuple(float(g) for g in 1.0 + u(-self.color, self.color, size=3)),
            brightness=float(u(-self.brightness, self.brightness)),
            contrast=float(1.0 + u(-self.contrast, self.contrast)),
            gamma=float(np.exp(u(-log_gamma, log_gamma))),
            right_gain=tuple(float(g) for g in 1.0 + u(-self.asymmetric, self.asymmetric, size=3)),
            noise_std=float(u(0.0, self.noise_std)),
            **self._draw_right_view(),
        )

    def _draw_right_view(self) -> dict[str, object]:
        """The right view's own draws (nothing is drawn while their probabilities are 0)."""
        u = self.rng.uniform
        extra: dict[str, object] = {}
        p_view = self.per_view_photometric_prob
        if p_view > 0 and self.rng.random() < p_view:
            log_gamma = np.log1p(self.gamma)
            extra["right_view"] = Photometric(
                gain=tuple(float(g) for g in 1.0 + u(-self.color, self.color, size=3)),
                brightness=float(u(-self.brightness, self.brightness)),
                contrast=float(1.0 + u(-self.contrast, self.contrast)),
                gamma=float(np.exp(u(-log_gamma, log_gamma))),
            )
        if self.per_view_noise_prob > 0 and self.rng.random() < self.per_view_noise_prob:
            extra["right_noise_std"] = float(u(0.0, self.noise_std))
        return extra

    def draw_eraser_boxes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """1..eraser_max_count (top, left, height, width) boxes inside a height x width image."""
        rng = self.rng
        boxes = []
        for _ in range(int(rng.integers(1, self.eraser_max_count + 1))):
            bh = max(1, round(rng.uniform(self.eraser_min_size, self.eraser_max_size) * height))
            bw = max(1, round(rng.uniform(self.eraser_min_size, self.eraser_max_size) * width))
            top = int(rng.integers(0, height - bh + 1))
            left = int(rng.integers(0, width - bw + 1))
            boxes.append((top, left, bh, bw))
        return boxes

    def __call__(self, sample: StereoSample) -> StereoSample:
        rng = self.rng
        if (
            self.mirror_prob > 0
            and sample.right_disparity is not None
            and sample.disparity is not None
            and rng.random() < self.mirror_prob
        ):
            sample = mirror_sample(sample)

        h, w = sample.size
        factor = 1.0
        if self.max_scale != 1.0 or self.min_scale != 1.0:
            if rng.random() < self.scale_prob:
                factor = float(np.exp(rng.uniform(np.log(self.min_scale), np.log(self.max_scale))))
        stretch = None
        if self.stretch_prob > 0 and self.max_stretch > 0 and rng.random() < self.stretch_prob:
            log_stretch = np.log1p(self.max_stretch)
            stretch = np.exp(rng.uniform(-log_stretch, log_stretch, size=2))
        if stretch is None:
            if self.crop_size is not None:
                # Scale up just enough when the image would be smaller than the crop.
                factor = max(factor, self.crop_size[0] / h, self.crop_size[1] / w)
            if factor != 1.0:
                sample = scale_sample(sample, factor)
        else:
            fx, fy = factor * float(stretch[0]), factor * float(stretch[1])
            if self.crop_size is not None:  # per axis: at least the crop
                fy, fx = max(fy, self.crop_size[0] / h), max(fx, self.crop_size[1] / w)
            sample = resize_sample(sample, max(1, round(h * fy)), max(1, round(w * fx)))

        if self.crop_size is not None:
            ch, cw = self.crop_size
            h, w = sample.size
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            sample = crop_sample(sample, top, left, ch, cw)

        if self.vshift_prob > 0 and self.max_vshift > 0 and rng.random() < self.vshift_prob:
            sample = shift_right_vertically(
                sample, float(rng.uniform(-self.max_vshift, self.max_vshift))
            )
        if self.eraser_prob > 0 and rng.random() < self.eraser_prob:
            h, w = sample.size
            boxes = self.draw_eraser_boxes(h, w)
            sample = replace(sample, right=erase_patches(sample.right, boxes))
        if self.blur_prob > 0 and self.blur_max_sigma > 0:
            views = []
            for image in (sample.left, sample.right):
                if rng.random() < self.blur_prob:
                    sigma = float(rng.uniform(self.blur_min_sigma, self.blur_max_sigma))
                    image = blur_image(image, sigma)
                views.append(image)
            sample = replace(sample, left=views[0], right=views[1])

        if rng.random() < self.photometric_prob and self._has_photometric():
            left_img, right_img = photometric_pair(
                sample.left, sample.right, self.draw_photometric(), rng
            )
            sample = replace(sample, left=left_img, right=right_img)
        return sample

    def _has_photometric(self) -> bool:
        return any(
            getattr(self, n) > 0
            for n in ("noise_std", "brightness", "contrast", "gamma", "color", "asymmetric")
        )
