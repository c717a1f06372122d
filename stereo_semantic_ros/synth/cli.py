"""``stereo-semantic-synth``: render synthetic street scenes into the KITTI 2015 layout.

Examples::

    # 300 training scenes and 100 held-out scenes, all under data/synth/training/
    stereo-semantic-synth --out data/synth --count 300 --val-count 100
    # scenes for another folder of the same root
    stereo-semantic-synth --out data/synth --count 50 --split testing --seed 7

Samples are numbered on from 0 in ``<out>/<split>/``; ``--val-count`` samples follow the
``--count`` ones in the same folder (KITTI train/val splits are index ranges of ``training/``,
and the KITTI loader's ``file_list`` selects them). The root gets one file list per subset
(``train.txt`` and ``val.txt`` for ``training/``; ``<split>.txt`` and ``<split>_val.txt``
otherwise) naming its scenes, and ``synthetic_meta.json`` with the settings, per-sample seeds
and class statistics.

``--family`` chooses the scenes: ``street`` (the default: procedural street scenes with all 19
classes), ``objects`` (textured planar shapes at random depths whose disparities cover
``[1, --objects-max-disparity)`` roughly uniformly, every label ignored: see
:mod:`stereo_semantic_ros.synth.objects`) or ``mixed`` (each sample is an objects scene with
probability ``--objects-fraction``, decided by its seed).

Every sample has its own seed, derived from ``--seed``, the subset name and the index within
the subset (:func:`sample_seed`), so subsets never share scenes and any sample can be
re-rendered in memory with :func:`stereo_semantic_ros.synth.generate_sample`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stereo_semantic_ros.labels import CITYSCAPES_19
from stereo_semantic_ros.synth.generator import (
    DEFAULT_BASELINE,
    DEFAULT_CAMERA_HEIGHT,
    GENERATOR_VERSION,
    SynthConfigError,
    generate_sample,
    make_calibration,
)
from stereo_semantic_ros.synth.kitti_writer import (
    DEPTH_SCALE,
    KittiWriteError,
    read_meta,
    write_kitti_sample,
    write_meta,
)
from stereo_semantic_ros.synth.objects import DEFAULT_OBJECTS_MAX_DISPARITY, generate_objects_sample
from stereo_semantic_ros.synth.textures import build_texture_bank

NUM_CLASSES = CITYSCAPES_19.num_classes
_SETTINGS_KEYS = (
    "width",
    "height",
    "focal",
    "baseline",
    "camera_height",
    "noise",
    "photos",
    "generator_version",
    "family",
    "objects_fraction",
    "objects_max_disparity",
)
FAMILIES = ("street", "objects", "mixed")
# what roots written before the objects family existed hold
_SETTING_DEFAULTS = {"family": "street", "objects_fraction": 0.0, "objects_max_disparity": None}


def is_objects_scene(seed: int, family: str, objects_fraction: float) -> bool:
    """Whether the sample of ``seed`` is an objects scene (``mixed``: by a draw from the seed)."""
    if family != "mixed":
        return family == "objects"
    return bool(np.random.default_rng([int(seed), 0xFA31]).random() < objects_fraction)


def sample_seed(base_seed: int, subset: str, index: int) -> int:
    """Seed of sample ``index`` of ``subset``: distinct across subsets, indices and base seeds."""
    seq = np.random.SeedSequence([int(base_seed), zlib.crc32(subset.encode()), int(index)])
    return int(seq.generate_state(1, np.uint32)[0])


def subset_names(split: str) -> tuple[str, str]:
    """Names (and file-list stems) of the main and the held-out subset of a split folder."""
    return ("train", "val") if split == "training" else (split, f"{split}_val")


def _render_job(
    job: tuple[str, str, str, int, int, dict[str, Any]],
) -> tuple[str, int, int, np.ndarray]:
    """Render and write one sample; returns (subset, index, seed, stats) with stats =
    [pixels per train id 0..18, ignore pixels, valid pixels, noc pixels, total pixels]."""
    root, split, subset, index, seed, opts = job
    common = {
        "focal": opts["focal"],
        "baseline": opts["baseline"],
        "noise": opts["noise"],
        "use_photos": opts["photos"],
        "name": f"{index:06d}_10",
    }
    if is_objects_scene(seed, opts["family"], opts["objects_fraction"]):
        sample = generate_objects_sample(
            seed,
            opts["width"],
            opts["height"],
            max_disparity=opts["objects_max_disparity"],
            **common,
        )
    else:
        sample = generate_sample(
            seed, opts["width"], opts["height"], camera_height=opts["camera_height"], **common
        )
    write_kitti_sample(root, index, sample, split)
    counts = np.bincount(np.minimum(sample.labels.ravel(), NUM_CLASSES), minlength=NUM_CLASSES + 1)
    extra = [int(sample.valid.sum()), int(sample.noc.sum()), sample.labels.size]
    return subset, index, seed, np.concatenate([counts, extra]).astype(np.int64)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stereo-semantic-synth",
        description="Render procedural stereo street scenes (left/right images, disparity of both "
        "views, NOC mask, 19-class labels, depth, calibration) in the KITTI 2015 "
        "on-disk layout.",
    )
    p.add_argument("--out", required=True, type=Path, help="dataset root (created if missing)")
    p.add_argument("--count", type=int, default=300, help="samples to write (default 300)")
    p.add_argument(
        "--val-count",
        type=int,
        default=0,
        help="held-out samples written after them, with their own seeds and file list (default 0)",
    )
    p.add_argument(
        "--split", default="training", help="folder under --out (default training, as KITTI)"
    )
    p.add_argument("--width", type=int, default=512, help="image width in pixels (default 512)")
    p.add_argument("--height", type=int, default=160, help="image height in pixels (default 160)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument(
        "--focal",
        type=float,
        default=None,
        help="focal length in pixels (default 720 * width / 1242, KITTI's view)",
    )
    p.add_argument(
        "--baseline",
        type=float,
        default=DEFAULT_BASELINE,
        help=f"stereo baseline in metres (default {DEFAULT_BASELINE})",
    )
    p.add_argument(
        "--camera-height",
        type=float,
        default=DEFAULT_CAMERA_HEIGHT,
        help=f"camera height above the road in metres (default {DEFAULT_CAMERA_HEIGHT})",
    )
    p.add_argument(
        "--family",
        choices=FAMILIES,
        default="street",
        help="scenes: street (default), objects (random textured shapes at random depths, for "
        "matching; labels ignored) or mixed",
    )
    p.add_argument(
        "--objects-fraction",
        type=float,
        default=0.5,
        help="mixed only: share of objects scenes (default 0.5)",
    )
    p.add_argument(
        "--objects-max-disparity",
        type=float,
        default=DEFAULT_OBJECTS_MAX_DISPARITY,
        help="objects scenes: disparities cover [1, this) px "
        f"(default {DEFAULT_OBJECTS_MAX_DISPARITY:g})",
    )
    p.add_argument("--no-noise", action="store_true", help="render without sensor noise")
    p.add_argument(
        "--no-photos",
        action="store_true",
        help="procedural textures only (no scikit-image photographs)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes (default: number of CPUs, at most 8; 1 = no pool)",
    )
    return p


def _check_settings(root: Path, settings: dict[str, Any]) -> dict[str, Any]:
    meta = read_meta(root) or {}
    old = meta.get("settings")
    if old is not None:
        diff = {
            k: (old.get(k, _SETTING_DEFAULTS.get(k)), settings[k])
            for k in _SETTINGS_KEYS
            if old.get(k, _SETTING_DEFAULTS.get(k)) != settings[k]
        }
        if diff:
            details = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise SynthConfigError(
                f"{root} already holds synthetic data made with other settings ({details}); "
                "use another --out or the same settings"
            )
    return meta


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.count < 0 or args.val_count < 0:
            raise SynthConfigError("--count and --val-count must be >= 0")
        if args.seed < 0:
            raise SynthConfigError(f"--seed must be >= 0, got {args.seed}")
        if not args.split or "/" in args.split or args.split in (".", ".."):
            raise SynthConfigError(f"--split must be a plain folder name, got {args.split!r}")
        calib = make_calibration(args.width, args.height, args.focal, args.baseline)
        if args.camera_height <= 0.2:
            raise SynthConfigError(f"--camera-height must be > 0.2 m, got {args.camera_height}")
        if not 0.0 <= args.objects_fraction <= 1.0:
            raise SynthConfigError(
                f"--objects-fraction must be in [0, 1], got {args.objects_fraction}"
            )
        objects = args.family != "street"
        if objects and not 2.0 <= args.objects_max_disparity <= args.width / 2:
            raise SynthConfigError(
                f"--objects-max-disparity must be in [2, width / 2 = {args.width / 2:g}] px, "
                f"got {args.objects_max_disparity}"
            )
        bank = build_texture_bank(not args.no_photos)  # before forking: workers share it
        settings = {
            "width": args.width,
            "height": args.height,
            "focal": calib.fx,
            "baseline": calib.baseline,
            "camera_height": args.camera_height,
            "noise": not args.no_noise,
            "photos": bank.photos,
            "generator_version": GENERATOR_VERSION,
            "family": args.family,
            "objects_fraction": (
                {"street": 0.0, "objects": 1.0}.get(args.family, args.objects_fraction)
            ),
            "objects_max_disparity": args.objects_max_disparity if objects else None,
        }
        meta = _check_settings(args.out, settings)
    except (SynthConfigError, KittiWriteError) as exc:
        print(f"stereo-semantic-synth: error: {exc}", file=sys.stderr)
        return 2

    opts = {
        "width": args.width,
        "height": args.height,
        "focal": calib.fx,
        "baseline": calib.baseline,
        "camera_height": args.camera_height,
        "noise": not args.no_noise,
        "photos": not args.no_photos,
        "family": args.family,
        "objects_fraction": args.objects_fraction,
        "objects_max_disparity": args.objects_max_disparity,
    }
    main_name, val_name = subset_names(args.split)
    plan = [(main_name, 0, args.count)]
    if args.val_count:
        plan.append((val_name, args.count, args.val_count))
    jobs = [
        (str(args.out), args.split, name, first + i, sample_seed(args.seed, name, i), opts)
        for name, first, count in plan
        for i in range(count)
    ]
    workers = args.workers or min(os.cpu_count() or 1, 8)
    workers = max(1, min(workers, len(jobs) or 1))

    stats = {name: np.zeros(NUM_CLASSES + 4, np.int64) for name, _, _ in plan}
    seeds = {name: [0] * count for name, _, count in plan}
    firsts = {name: first for name, first, _ in plan}
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), unit="sample", desc="synth", file=sys.stderr)
    pool = None
    try:
        if workers == 1:
            results = map(_render_job, jobs)
        else:
            pool = multiprocessing.get_context("fork").Pool(workers)
            results = pool.imap(_render_job, jobs, chunksize=1)
        for name, index, seed, st in results:
            stats[name] += st
            seeds[name][index - firsts[name]] = seed
            bar.update(1)
    except (SynthConfigError, KittiWriteError, OSError) as exc:
        print(f"stereo-semantic-synth: error: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    elapsed = time.perf_counter() - start

    subsets = meta.get("subsets", {})
    for name, first, count in plan:
        st = stats[name]
        total = max(int(st[-1]), 1)
        list_path = args.out / f"{name}.txt"
        list_path.write_text("".join(f"{first + i:06d}\n" for i in range(count)))
        subsets[name] = {
            "folder": args.split,
            "first_index": first,
            "count": count,
            "file_list": list_path.name,
            "base_seed": args.seed,
            "seeds": seeds[name],
            "class_pixel_fraction": {
                n: round(float(st[i]) / total, 6) for i, n in enumerate(CITYSCAPES_19.names)
            },
            "valid_fraction": round(float(st[-3]) / total, 6),
            "noc_fraction": round(float(st[-2]) / total, 6),
        }
    meta.update(
        {
            "generator": "stereo_semantic_ros.synth",
            "settings": settings,
            "calibration": calib.to_dict(),
            "subsets": subsets,
            "encoding": {
                "disparity": "uint16 PNG, value = round(disparity_px * 256), 0 = no ground truth "
                "(sky); disp_occ_0 = all pixels, disp_noc_0 = visible in the right view",
                "semantic": "uint8 PNG of Cityscapes/KITTI labelIds (0 = unlabelled)",
                "depth_0": f"uint16 PNG, value = round(depth_m * {DEPTH_SCALE:g}) (cm), 0 = none",
                "disp_occ_right": "right-view disparity, same encoding as disp_occ_0",
                "semantic_right": "right-view labelIds",
                "calib_cam_to_cam": (
                    "KITTI format; P_rect_02[0,3] = 0, P_rect_03[0,3] = -fx * baseline"
                ),
            },
        }
    )
    write_meta(args.out, meta)

    n = len(jobs)
    total_st = sum(stats.values())
    pixels = max(int(total_st[-1]), 1)
    per = ", ".join(f"{name}: {count} ({args.out / (name + '.txt')})" for name, _, count in plan)
    print(
        f"wrote {n} samples of {args.width}x{args.height} to {args.out / args.split} in "
        f"{elapsed:.1f} s ({elapsed / max(n, 1):.3f} s/sample, {workers} worker(s)); {per}"
    )
    print(
        f"disparity ground truth on {100 * total_st[-3] / pixels:.1f}% of pixels "
        f"(non-occluded {100 * total_st[-2] / pixels:.1f}%); focal {calib.fx:.2f} px, "
        f"baseline {calib.baseline} m"
    )
    print("class pixel frequencies (% of all pixels):")
    for i, name in enumerate(CITYSCAPES_19.names):
        print(f"  {i:2d} {name:<14s} {100 * total_st[i] / pixels:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
