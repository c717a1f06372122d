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
  source has them, else from the left labels carried along the right disparity.
* **crop**: a random window of a fixed size (multiples of 8 for the networks' strides); the
  image is first scaled up just enough when it is smaller than the crop.
* **photometric**: one per-channel gain (colour), brightness shift, contrast about the
  pair's mean grey and gamma, identical for both views, so matching pixels stay equal. An
  optional small extra per-channel gain on the right view (``asymmetric``) imitates two
  cameras' different exposure. Gaussian noise is drawn independently per view, as sensor
  noise is -- the same noise pattern on both views would be a fake zero-disparity texture.

Disparity follows :mod:`stereo_semantic_ros.calibration` (left ``u`` matches right ``u - d``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.base import RIGHT_LABELS_KEY, consistent_disparity_mask
from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.labels import IGNORE_LABEL

_DENSE_FIELDS = ("disparity", "valid", "noc", "labels", "depth", "right_disparity")


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
    if meta.get(RIGHT_LABELS_KEY) is not None:
        meta[RIGHT_LABELS_KEY] = dense_fn(meta[RIGHT_LABELS_KEY])
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
    meta["mirrored"] = not meta.get("mirrored", False)
    return StereoSample(
        left=flip(sample.right),
        right=flip(sample.left),
        calib=replace(sample.calib, cx=(w - 1) - sample.calib.cx),
        disparity=flip(d_right).astype(np.float32),
        valid=flip(right_valid),
        noc=flip(right_noc),
        labels=labels,
        depth=depth,
        right_disparity=flip(d_left).astype(np.float32),
        name=sample.name,
        meta=meta,
    )


@dataclass(frozen=True)
class Photometric:
    """One draw of the photometric parameters for a pair.

    ``gain``: (3,) per-channel factors (colour); ``brightness``: added grey levels;
    ``contrast``: factor about ``pivot`` (the pair's mean grey); ``gamma``: exponent on
    [0, 1]-scaled intensities; ``right_gain``: (3,) extra factors for the right view only
    (1 = identical views); ``noise_std``: std of the Gaussian noise in grey levels.
    """

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    right_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise_std: float = 0.0


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
    """Apply one :class:`Photometric` draw to both views; returns (H, W, 3) uint8 images."""
    gain = np.asarray(params.gain, dtype=np.float32)
    grey = np.float32(0.5) * (left.mean(axis=(0, 1)) + right.mean(axis=(0, 1)))
    pivot = float(np.mean(grey * gain) + params.brightness)
    out = []
    for image, view_gain in ((left, gain), (right, gain * np.asarray(params.right_gain))):
        x = adjust_image(image, view_gain, params.brightness, params.contrast, pivot, params.gamma)
        if params.noise_std > 0:
            x = x + rng.normal(0.0, params.noise_std, size=x.shape).astype(np.float32)
        out.append(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    return out[0], out[1]


@dataclass(kw_only=True)
class Augmentor:
    """Random training augmentation of :class:`StereoSample` s, in the order
    mirror -> scale -> crop -> photometric.

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
        for name in ("scale_prob", "mirror_prob", "photometric_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("noise_std", "brightness", "gamma"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("contrast", "color", "asymmetric"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

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
        )

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
        if self.crop_size is not None:
            # Scale up just enough when the image would be smaller than the crop.
            factor = max(factor, self.crop_size[0] / h, self.crop_size[1] / w)
        if factor != 1.0:
            sample = scale_sample(sample, factor)

        if self.crop_size is not None:
            ch, cw = self.crop_size
            h, w = sample.size
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            sample = crop_sample(sample, top, left, ch, cw)

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
