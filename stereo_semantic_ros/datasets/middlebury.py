"""Middlebury 2014/2021 and ETH3D two-view stereo benchmarks in their official on-disk layout.

Expected under ``root``, one directory per scene::

    <root>/<scene>/im0.png         left image, 8-bit RGB (rectified)
    <root>/<scene>/im1.png         right image
    <root>/<scene>/calib.txt       cam0=[f 0 cx; 0 f cy; 0 0 1], cam1=[...], doffs=, baseline=,
                                   width=, height=, ndisp=, vmin=, vmax=, ... (one per line)
    <root>/<scene>/disp0.pfm       left disparity, float32 PFM, inf = unknown (Middlebury 2014
                                   / 2021); ``disp0GT.pfm`` (ETH3D, MiddEval3) is read as well
    <root>/<scene>/mask0nocc.png   optional: 255 = non-occluded, 128 = occluded, 0 = invalid

The ETH3D download keeps the ground truth in a sibling directory
(``two_view_training_gt/<scene>/disp0GT.pfm`` beside ``two_view_training/<scene>/``); the loader
looks there too, so either the merged layout above or the official two directories work. Scenes
without a disparity file (test splits) have no ground truth.

Calibration: ``fx = fy = cam0[0,0]``, ``cx, cy`` from ``cam0``, ``doffs = cx1 - cx0`` (the
principal-point offset of the rectified pair, :attr:`StereoCalibration.doffs`), so the depth
of a disparity ``d`` is ``fx * B / (d + doffs)``. ``baseline`` is in millimetres in Middlebury's
format; ETH3D's two-view ``calib.txt`` follows that format (its baselines, about 60, with its
``ndisp`` of about 64 at f = 540 px, only make sense in millimetres); ``baseline_unit`` changes it.
``ndisp`` (and ``vmin``/``vmax`` where given) are kept in ``sample.meta``. Samples have no labels.

The Middlebury 2014 Motorcycle pair that scikit-image ships (quarter size, 741x500) is available
without any download through :func:`open_builtin` (``builtin:motorcycle`` on the command lines).
Real pairs are test data: do not train, tune or pick textures on them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stereo_semantic_ros.calibration import CalibrationError, StereoCalibration
from stereo_semantic_ros.datasets.base import (
    DatasetError,
    Disparity,
    SampleRecord,
    StereoDataset,
    Transform,
    _imread,
)
from stereo_semantic_ros.datasets.sample import StereoSample

__all__ = [
    "BUILTIN_PAIRS",
    "BUILTIN_PREFIX",
    "MOTORCYCLE_CALIB_FULL",
    "MOTORCYCLE_NDISP_FULL",
    "BuiltinPair",
    "TwoViewBenchmark",
    "is_builtin",
    "motorcycle_calibration",
    "open_builtin",
    "parse_calib_txt",
    "read_pfm",
    "write_pfm",
]

VARIANTS = ("middlebury", "eth3d")
_DISPARITY_NAMES = {
    "middlebury": ("disp0.pfm", "disp0GT.pfm"),
    "eth3d": ("disp0GT.pfm", "disp0.pfm"),
}
_MASK_NAME = "mask0nocc.png"
_LAYOUT = "<root>/<scene>/im0.png with im1.png, calib.txt and disp0.pfm / disp0GT.pfm beside it"
MM = 0.001
"""Metres per calib.txt baseline unit (millimetres) for both Middlebury and ETH3D."""


# --------------------------------------------------------------------------------------------
# PFM
# --------------------------------------------------------------------------------------------


def read_pfm(path: str | Path) -> np.ndarray:
    """A PFM image as float32, top row first: (H, W) for ``Pf`` (grey), (H, W, 3) for ``PF``.

    The header is the type, ``width height`` and a scale whose sign gives the byte order
    (negative: little-endian); rows are stored bottom-to-top. Raises :class:`DatasetError`
    naming the file for anything that is not a complete PFM.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read PFM file {path}: {exc}") from exc
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        start = pos
        while pos < len(data) and not data[pos : pos + 1].isspace():
            pos += 1
        if start == pos or pos >= len(data):
            raise DatasetError(f"{path}: truncated PFM header (need type, width, height, scale)")
        tokens.append(data[start:pos])
    pos += 1  # exactly one whitespace character separates the header from the data
    kind = tokens[0]
    if kind not in (b"PF", b"Pf"):
        raise DatasetError(f"{path}: not a PFM file (starts with {kind[:8]!r}, expected PF or Pf)")
    try:
        width, height, scale = int(tokens[1]), int(tokens[2]), float(tokens[3])
    except ValueError as exc:
        raise DatasetError(f"{path}: bad PFM header {b' '.join(tokens)!r}") from exc
    if width <= 0 or height <= 0 or scale == 0 or not math.isfinite(scale):
        raise DatasetError(f"{path}: bad PFM size {width}x{height} or scale {scale}")
    channels = 3 if kind == b"PF" else 1
    count = width * height * channels
    if len(data) - pos < 4 * count:
        raise DatasetError(
            f"{path}: PFM data truncated ({len(data) - pos} bytes for a {width}x{height}x"
            f"{channels} float image, need {4 * count})"
        )
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos).astype(np.float32)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(np.flipud(arr.reshape(shape)))


def write_pfm(path: str | Path, image: np.ndarray, *, little_endian: bool = True) -> Path:
    """Write (H, W) or (H, W, 3) floats as PFM (rows bottom-to-top, scale -1 or +1)."""
    path = Path(path)
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        kind = b"Pf"
    elif arr.ndim == 3 and arr.shape[2] == 3:
        kind = b"PF"
    else:
        raise ValueError(f"PFM needs (H, W) or (H, W, 3), got {arr.shape}")
    dtype = np.dtype("<f4" if little_endian else ">f4")
    header = b"%s\n%d %d\n%s\n" % (
        kind,
        arr.shape[1],
        arr.shape[0],
        b"-1.0" if little_endian else b"1.0",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + np.flipud(arr).astype(dtype).tobytes())
    return path


# --------------------------------------------------------------------------------------------
# calib.txt
# --------------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _matrix(path: Path, key: str, text: str) -> np.ndarray:
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise DatasetError(f"{path}: {key} must look like [f 0 cx; 0 f cy; 0 0 1], got {text!r}")
    rows = [r.split() for r in body[1:-1].split(";")]
    try:
        m = np.array([[float(v) for v in r] for r in rows], dtype=np.float64)
    except ValueError:
        m = np.zeros(0)
    if m.shape != (3, 3):
        raise DatasetError(
            f"{path}: {key} must be a 3x3 matrix [f 0 cx; 0 f cy; 0 0 1], got {text!r}"
        )
    return m


def parse_calib_txt(path: str | Path) -> dict[str, Any]:
    """The ``key=value`` lines of a Middlebury / ETH3D ``calib.txt``.

    Returns ``cam0`` and ``cam1`` as 3x3 float arrays and every other value as a float (an int
    where it is integral, e.g. ``width``, ``ndisp``). Requires ``cam0``, ``cam1`` and
    ``baseline``; raises :class:`DatasetError` naming the file otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing calibration file {path} (expected {_LAYOUT})")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read calibration file {path}: {exc}") from exc
    values: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DatasetError(f"{path}:{number}: expected key=value, got {line!r}")
        if key in ("cam0", "cam1"):
            values[key] = _matrix(path, key, value)
        elif re.fullmatch(_NUMBER, value.strip()):
            v = float(value)
            values[key] = int(v) if v.is_integer() and "." not in value else v
        else:
            values[key] = value.strip()
    missing = [k for k in ("cam0", "cam1", "baseline") if k not in values]
    if missing:
        raise DatasetError(
            f"{path}: no {', '.join(missing)} line(s); is this a Middlebury/ETH3D calib.txt?"
        )
    if not isinstance(values["baseline"], (int, float)):
        raise DatasetError(f"{path}: baseline must be a number, got {values['baseline']!r}")
    return values


def calibration_from_calib_txt(
    values: dict[str, Any],
    width: int,
    height: int,
    *,
    baseline_unit: float = MM,
    source: str | Path = "calib.txt",
) -> StereoCalibration:
    """StereoCalibration of a parsed ``calib.txt`` (see :func:`parse_calib_txt`).

    ``doffs = cam1[0,2] - cam0[0,2]``; a ``doffs=`` line that disagrees (by more than 0.01 px)
    is an error, as is a ``width``/``height`` other than the images'.
    """
    cam0, cam1 = values["cam0"], values["cam1"]
    doffs = float(cam1[0, 2] - cam0[0, 2])
    stated = values.get("doffs")
    if isinstance(stated, (int, float)) and abs(float(stated) - doffs) > 0.01:
        raise DatasetError(
            f"{source}: doffs={stated} but cam1 cx - cam0 cx = {doffs:g}; the file is inconsistent"
        )
    for key, actual in (("width", width), ("height", height)):
        stated_size = values.get(key)
        if isinstance(stated_size, (int, float)) and actual and int(stated_size) != actual:
            raise DatasetError(
                f"{source}: {key}={stated_size} but the images are {width}x{height}; "
                "the calibration belongs to another resolution"
            )
    try:
        return StereoCalibration(
            fx=float(cam0[0, 0]),
            fy=float(cam0[1, 1]),
            cx=float(cam0[0, 2]),
            cy=float(cam0[1, 2]),
            baseline=float(values["baseline"]) * baseline_unit,
            width=int(width),
            height=int(height),
            doffs=doffs,
        )
    except CalibrationError as exc:
        raise DatasetError(f"{source}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The benchmark folders
# --------------------------------------------------------------------------------------------


class TwoViewBenchmark(StereoDataset):
    """Middlebury 2014/2021 (``variant="middlebury"``) or ETH3D two-view (``"eth3d"``) scenes.

    Args:
        root: directory holding one directory per scene (see the module docstring).
        variant: ``middlebury`` or ``eth3d``: the name in reports and which disparity file
            name is tried first (both ``disp0.pfm`` and ``disp0GT.pfm`` are read).
        scenes: keep only these scene directory names (all scenes with an ``im0.png`` else).
        require_gt: True (default) makes a scene without a disparity file an error; False
            serves it without ground truth (test splits).
        baseline_unit: metres per ``baseline`` unit of ``calib.txt`` (millimetres: 0.001).
        augment: optional transform for training (see :class:`StereoDataset`).

    ``disparity`` is 0 and ``valid`` False where the PFM holds inf (unknown), NaN or <= 0, or
    the mask says 0 (invalid). ``noc`` is ``valid & (mask0nocc == 255)`` where the scene has
    ``mask0nocc.png``, None otherwise. ``meta`` holds ``ndisp`` (and ``vmin``/``vmax`` where
    given), ``scene`` and the parsed ``calib_txt`` values.
    """

    def __init__(
        self,
        root: str | Path,
        variant: str = "middlebury",
        *,
        scenes: Sequence[str] | None = None,
        require_gt: bool = True,
        baseline_unit: float = MM,
        augment: Transform | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise DatasetError(
                f"two-view benchmark variant must be one of {VARIANTS}, got {variant!r}"
            )
        self.dataset_name = variant
        self.baseline_unit = float(baseline_unit)
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{variant}: root {root} is not a directory; expected {_LAYOUT}")
        found = sorted(p.parent.name for p in root.glob("*/im0.png"))
        if scenes is not None:
            unknown = sorted(set(scenes) - set(found))
            if unknown:
                raise DatasetError(
                    f"{variant}: requested scenes not under {root}: {', '.join(unknown[:5])}"
                )
            found = [s for s in found if s in set(scenes)]
        gt_root = root.with_name(root.name + "_gt")  # ETH3D's two_view_training_gt
        records = []
        for scene in found:
            folder = root / scene
            calib_path = folder / "calib.txt"
            values = parse_calib_txt(calib_path)
            files: dict[str, Path] = {
                "left": folder / "im0.png",
                "right": folder / "im1.png",
                "calib": calib_path,
            }
            for role, names in (("disparity", _DISPARITY_NAMES[variant]), ("noc", (_MASK_NAME,))):
                for directory in (folder, gt_root / scene):
                    hit = next((directory / n for n in names if (directory / n).is_file()), None)
                    if hit is not None:
                        files[role] = hit
                        break
            if require_gt and "disparity" not in files:
                raise DatasetError(
                    f"{variant}: scene {scene} has no {' or '.join(_DISPARITY_NAMES[variant])} "
                    f"in {folder} (or {gt_root / scene}); pass require_gt=False for test scenes"
                )
            extra: dict[str, Any] = {"scene": scene, "calib_txt": _plain_calib(values)}
            for key in ("ndisp", "vmin", "vmax"):
                if key in values:
                    extra[key] = values[key]
            records.append(SampleRecord(name=scene, files=files, extra=extra))
        super().__init__(records, root=root, augment=augment, layout=_LAYOUT)

    def read_calib(self, record: SampleRecord, width: int, height: int) -> StereoCalibration:
        path = record.files["calib"]
        return calibration_from_calib_txt(
            parse_calib_txt(path), width, height, baseline_unit=self.baseline_unit, source=path
        )

    def read_disparity(self, record: SampleRecord, calib: StereoCalibration) -> Disparity | None:
        path = record.path("disparity")
        if path is None:
            return None
        raw = read_pfm(path)
        if raw.ndim != 2:
            raise DatasetError(f"{path}: disparity must be a one-channel (Pf) PFM, got {raw.shape}")
        mask_path = record.path("noc")
        mask = None
        if mask_path is not None:
            mask = _imread(mask_path, 0)  # cv2.IMREAD_GRAYSCALE
            if mask.shape != raw.shape:
                raise DatasetError(
                    f"{mask_path} is {mask.shape[::-1]} but {path} is {raw.shape[::-1]}"
                )
        return disparity_from_pfm(raw, mask)


def disparity_from_pfm(raw: np.ndarray, mask: np.ndarray | None = None) -> Disparity:
    """Package-convention ground truth from a benchmark disparity (inf = unknown) and nocc mask."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(raw) & (raw > 0)
    if mask is not None:
        valid &= mask != 0
        noc = valid & (mask == 255)
    else:
        noc = None
    disparity = np.where(valid, raw, np.float32(0.0)).astype(np.float32)
    return Disparity(disparity, valid, noc)  # type: ignore[arg-type]


def _plain_calib(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in values.items()}


# --------------------------------------------------------------------------------------------
# Builtin pairs (no download)
# --------------------------------------------------------------------------------------------

BUILTIN_PREFIX = "builtin:"
MOTORCYCLE_CALIB_FULL = StereoCalibration(
    fx=3979.911,
    fy=3979.911,
    cx=1244.772,
    cy=1019.507,
    baseline=0.193001,
    width=2964,
    height=2000,
    doffs=1369.115 - 1244.772,
)
"""Middlebury 2014 ``Motorcycle`` calib.txt (cam0/cam1, doffs 124.343, baseline 193.001 mm) at
its full 2964x2000."""
MOTORCYCLE_NDISP_FULL = 270
"""``ndisp`` of the full-size Motorcycle calib.txt (vmin 23, vmax 245)."""


def motorcycle_calibration(width: int = 741, height: int = 500) -> StereoCalibration:
    """The Motorcycle calibration at the size scikit-image ships (a quarter: 741x500).

    scikit-image block-averages 4x4 pixels (``downscale_local_mean``), so f, doffs scale by
    1/4 and a principal point moves to ``(c + 0.5) / 4 - 0.5`` (pixel centres; scikit-image's
    docstring lists the plain ``c / 4``, 0.375 px off, which changes no depth).
    """
    return MOTORCYCLE_CALIB_FULL.scaled(
        width / MOTORCYCLE_CALIB_FULL.width, height / MOTORCYCLE_CALIB_FULL.height
    )


def _motorcycle() -> StereoSample:
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - scikit-image is in requirements.txt
        raise DatasetError(
            "builtin:motorcycle needs scikit-image (pip install scikit-image)"
        ) from exc
    left, right, disp = data.stereo_motorcycle()
    disp = np.asarray(disp, dtype=np.float32)
    if disp.ndim == 3:  # documented as (H, W, 3) in some releases; the channels are equal
        disp = disp[..., 0]
    h, w = disp.shape
    calib = motorcycle_calibration(w, h)
    gt = disparity_from_pfm(disp)
    scale = w / MOTORCYCLE_CALIB_FULL.width
    return StereoSample(
        left=np.ascontiguousarray(left[..., :3], dtype=np.uint8),
        right=np.ascontiguousarray(right[..., :3], dtype=np.uint8),
        calib=calib,
        disparity=gt.disparity,
        valid=gt.valid,
        noc=None,
        depth=np.where(gt.valid, calib.depth_from_disparity(gt.disparity), np.float32(np.nan)),
        name="motorcycle",
        meta={
            "dataset": "middlebury",
            "scene": "Motorcycle (Middlebury 2014, scikit-image quarter size)",
            "ndisp": math.ceil(MOTORCYCLE_NDISP_FULL * scale),
            "source": "skimage.data.stereo_motorcycle()",
        },
    )


BUILTIN_PAIRS = {"motorcycle": _motorcycle}


def is_builtin(data: str | Path | None) -> bool:
    """True for ``builtin:NAME`` data arguments."""
    return data is not None and str(data).startswith(BUILTIN_PREFIX)


class BuiltinPair(StereoDataset):
    """A real pair that ships with a dependency: a one-sample data set, no files, no download."""

    dataset_name = "middlebury"

    def __init__(self, name: str, augment: Transform | None = None) -> None:
        if name not in BUILTIN_PAIRS:
            raise DatasetError(
                f"unknown builtin pair {name!r}; choose one of "
                + ", ".join(BUILTIN_PREFIX + k for k in BUILTIN_PAIRS)
            )
        self.pair = name
        super().__init__(
            [SampleRecord(name=name, files={})], root=BUILTIN_PREFIX + name, augment=augment
        )

    def load(self, index: int) -> StereoSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"builtin pair: index {index} out of range 0..{len(self) - 1}")
        return BUILTIN_PAIRS[self.pair]()


def open_builtin(data: str | Path, augment: Transform | None = None) -> BuiltinPair:
    """``builtin:motorcycle`` -> its :class:`BuiltinPair`."""
    return BuiltinPair(str(data)[len(BUILTIN_PREFIX) :], augment=augment)
