"""``stereo-semantic-pseudo-label``: a stereo teacher labels a user's own recordings.

Seed 003's answer to "I have a stereo rig and bags but no labels": a stereo teacher computes
both views' disparity, its confidence in them and (if it segments) both views' semantic labels;
a single-image network (``pseudo_mtl``) then learns from them (``data.type: pseudo_labels``).

Example::

    stereo-semantic-pseudo-label my_drive/ --teacher config/esp_joint.yaml --out data/my_labels
    stereo-semantic-pseudo-label my_drive/ --teacher sgbm --sgbm-range 128 --out data/sgbm_labels
    stereo-semantic-train --config config/train/pseudo_mtl_bag.yaml \\
        --set data.root=data/my_labels --out runs/my_pseudo_mtl

The source is a rosbag2 (a directory with metadata.yaml, or a .mcap / .db3 file), read as replay
reads it -- the same topics and options (``--left-image`` ..., ``--image-transport``), exact or
approximate synchronisation, the node's input decoding and checks -- or a dataset of the package's
table (``--dataset kitti2015 --split training``). The teacher is

* a node parameter file (``--teacher config/esp_joint.yaml``, any registered weights; ``--weights``
  overrides the file's): the shared pipeline, as the node runs it. Its confidence output is the
  pseudo labels' confidence;
* ``sgbm``: OpenCV StereoSGBM with ``stereo_image_proc``'s settings
  (:class:`~stereo_semantic_ros.evaluation.baselines.SgbmBaseline`); its confidence is the
  left-right consistency of the two views' disparities,
  ``max(0, 1 - |d_l(u) - d_r(u - d_l(u))| / tolerance)``; it has no segmentation.

The right view's labels come from the same teacher on the mirrored pair (``flip(right)`` as the
left image, ``flip(left)`` as the right one), flipped back. What is written is described in
:mod:`stereo_semantic_ros.datasets.pseudo_labels`; the source's own ground truth (a bag's
``/ground_truth/*`` topics, a dataset's files) is kept apart, under ``ground_truth/``, for the
evaluation only. ``pseudo_labels.json`` records the provenance (command, source, teacher with the
weights' checksum, time, git revision) and a summary; with ground truth, how good the pseudo
labels are (EPE, bad-3, and the same for confident pixels).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from stereo_semantic_ros.bagtools.bagio import (
    BagError,
    check_output_path,
    create_output_dir,
    now_iso,
    open_bag,
    write_json_atomic,
)
from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.base import DatasetError
from stereo_semantic_ros.datasets.pseudo_labels import (
    LAYOUT_VERSION,
    MANIFEST,
    encode_confidence,
    encode_disparity,
)
from stereo_semantic_ros.datasets.registry import dataset_names, open_dataset
from stereo_semantic_ros.evaluation.baselines import SgbmBaseline
from stereo_semantic_ros.frames.inputs import Input
from stereo_semantic_ros.labels import IGNORE_LABEL
from stereo_semantic_ros.replay.bag_input import (
    TopicRoles,
    check_input_topics,
    messages_until_damage,
    resolve_image_topics,
)
from stereo_semantic_ros.replay.ground_truth import decode_ground_truth
from stereo_semantic_ros.replay.options import (
    GT_ROLES,
    IMAGE_TRANSPORTS,
    INPUT_ROLES,
    ReplayTopics,
    load_settings,
)
from stereo_semantic_ros.ros.conversions import stamp_to_ns
from stereo_semantic_ros.ros.stereo_inputs import RejectedFrameError, decode_stereo_inputs
from stereo_semantic_ros.sync import Synchronizer
from stereo_semantic_ros.training.provenance import git_revision

PROG = "stereo-semantic-pseudo-label"
SGBM = "sgbm"
GT_WAIT_NS = 1_000_000_000
"""A synchronised set waits at most this much bag time for its ground-truth messages (replay's
rule)."""
BAD_PX = 3.0
CONFIDENT = 0.5


class PseudoLabelError(ValueError):
    """Bad arguments or a source that cannot be labelled; the message says what to do."""


# --- frames -----------------------------------------------------------------------------------


@dataclass
class Frame:
    """One rectified pair to label, with the source's own ground truth if it has some."""

    left: np.ndarray
    right: np.ndarray
    calib: StereoCalibration
    stamp_ns: int | None = None
    gt_disparity: np.ndarray | None = None
    gt_valid: np.ndarray | None = None
    gt_labels: np.ndarray | None = None


@dataclass
class FrameSource:
    """Frames of a bag or a dataset, and what became of the ones that were not frames."""

    frames: Iterator[Frame]
    total: int | None
    description: dict[str, Any]
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def bag_source(
    bag: Path,
    topics: ReplayTopics,
    *,
    approximate: bool = False,
    slop: float = 0.01,
    queue_size: int = 5,
) -> FrameSource:
    """The synchronised frames of a bag, read as replay reads them.

    Raises:
        BagError: not a bag, or it lacks the input topics (with the topics it has).
    """
    reader = open_bag(bag)
    try:
        topics = resolve_image_topics(reader, topics)
        available = check_input_topics(reader, topics, bag)
    except BagError:
        reader.close()
        raise
    roles = TopicRoles.of(topics)
    gt_topics = {t: r for t, r in roles.ground_truth.items() if t in available}
    source = FrameSource(
        frames=iter(()),
        total=available[topics.left_image][1],
        description={
            "kind": "bag",
            "path": str(bag),
            "topics": {role: getattr(topics, role) for role in INPUT_ROLES + GT_ROLES},
            "ground_truth_topics": sorted(gt_topics),
            "approximate_sync": approximate,
            "sync_slop": slop if approximate else None,
        },
    )

    def frames() -> Iterator[Frame]:
        sets: deque[tuple[tuple[Any, ...], int]] = deque()
        gt: dict[str, dict[int, Any]] = {role: {} for role in GT_ROLES}
        now = 0

        def on_set(*msgs: Any) -> None:
            sets.append((msgs, now))

        def on_drop(index: int, msg: Any, reason: str) -> None:
            if index == Input.LEFT_IMAGE:
                source.skipped[f"sync_{reason}"] = source.skipped.get(f"sync_{reason}", 0) + 1

        sync = Synchronizer(
            4, on_set, queue_size=queue_size, slop=slop, approximate=approximate, on_drop=on_drop
        )

        def ready(flush: bool) -> Iterator[Frame]:
            while sets:
                msgs, arrived = sets[0]
                stamp = stamp_to_ns(msgs[0].header.stamp)
                waiting = [r for r in gt_topics.values() if stamp not in gt[r]]
                if waiting and not flush and now - arrived < GT_WAIT_NS:
                    return
                sets.popleft()
                frame = decode(msgs, stamp, {r: gt[r].pop(stamp, None) for r in GT_ROLES})
                if frame is not None:
                    yield frame
                for role in GT_ROLES:  # ground truth older than this set will never be used
                    for old in [s for s in gt[role] if s < stamp]:
                        del gt[role][old]

        def decode(msgs: tuple[Any, ...], stamp: int, truth: dict[str, Any]) -> Frame | None:
            try:
                left, right, calib = decode_stereo_inputs(*msgs)
            except RejectedFrameError as exc:
                source.skipped[exc.reason] = source.skipped.get(exc.reason, 0) + 1
                if len(source.errors) < 5:
                    source.errors.append(f"frame at {stamp} ns: {exc}")
                return None
            frame = Frame(left, right, calib, stamp_ns=stamp)
            if any(v is not None for v in truth.values()):
                arrays, problem = decode_ground_truth(truth["gt_disparity"], truth["gt_labels"])
                if problem and len(source.errors) < 5:
                    source.errors.append(f"ground truth at {stamp} ns: {problem}")
                frame.gt_disparity, frame.gt_valid = arrays.disparity, arrays.valid
                frame.gt_labels = arrays.labels
            return frame

        def damaged(exc: Exception) -> None:
            source.errors.append(f"reading the bag stopped early: {type(exc).__name__}: {exc}")

        wanted = set(roles.inputs) | set(gt_topics)
        connections = [c for c in reader.connections if c.topic in wanted]
        try:
            for conn, log_ns, raw in messages_until_damage(reader, connections, damaged):
                now = log_ns
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except Exception as exc:  # noqa: BLE001 - one undecodable message is skipped
                    source.skipped["undecodable"] = source.skipped.get("undecodable", 0) + 1
                    if len(source.errors) < 5:
                        source.errors.append(f"{conn.topic}: cannot decode: {exc}")
                    continue
                if conn.topic in roles.inputs:
                    sync.add(roles.inputs[conn.topic], msg, stamp_to_ns(msg.header.stamp))
                else:
                    gt[gt_topics[conn.topic]][stamp_to_ns(msg.header.stamp)] = msg
                yield from ready(flush=False)
            yield from ready(flush=True)
        finally:
            reader.close()

    source.frames = frames()
    return source


def dataset_source(name: str, root: Path, split: str | None) -> FrameSource:
    """The samples of a dataset of the package's table, unaugmented, with their ground truth."""
    dataset = open_dataset(name, root, split, purpose="eval")

    def frames() -> Iterator[Frame]:
        for i in range(len(dataset)):
            s = dataset.load(i)
            yield Frame(s.left, s.right, s.calib, None, s.disparity, s.valid, s.labels)

    return FrameSource(
        frames=frames(),
        total=len(dataset),
        description={"kind": "dataset", "dataset": name, "path": str(root), "split": split},
    )


# --- teachers ---------------------------------------------------------------------------------


@dataclass
class TeacherLabels:
    """A teacher's output for one pair: (H, W) float32 disparity (pixels, 0 = none) and
    confidence in [0, 1] of each view, and (H, W) uint8 train ids of each view or None."""

    disparity: np.ndarray
    right_disparity: np.ndarray
    confidence: np.ndarray
    right_confidence: np.ndarray
    labels: np.ndarray | None = None
    right_labels: np.ndarray | None = None


def mirrored(calib: StereoCalibration) -> StereoCalibration:
    """The calibration of the mirrored pair (``flip(right)``, ``flip(left)``): the new left camera
    is the old right one, flipped; ``doffs`` keeps its value (as the mirror augmentation)."""
    return replace(calib, cx=(calib.width - 1) - calib.cx_right)


def lr_consistency(
    disparity: np.ndarray, right_disparity: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Left-right consistency of two views' disparities as a confidence in [0, 1] per view:
    ``max(0, 1 - |d(u) - d_other(partner(u))| / tolerance)`` with the partner column ``u - d``
    (left) or ``u + d`` (right), rounded; 0 where either disparity is missing or the partner is
    outside the image."""
    if tolerance <= 0:
        raise ValueError(f"the left-right tolerance must be > 0 px, got {tolerance}")
    out = []
    h, w = disparity.shape
    rows = np.arange(h)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    for d, other, sign in ((disparity, right_disparity, -1), (right_disparity, disparity, 1)):
        partner = np.rint(cols + sign * d).astype(np.int64)
        inside = (partner >= 0) & (partner < w) & (d > 0)
        seen = other[rows, np.clip(partner, 0, w - 1)]
        diff = np.abs(seen - d)
        c = np.clip(1.0 - diff / tolerance, 0.0, 1.0)
        out.append(np.where(inside & (seen > 0), c, 0.0).astype(np.float32))
    return out[0], out[1]


def _flip(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[:, ::-1])


class SgbmTeacher:
    """OpenCV StereoSGBM (``stereo_image_proc``'s settings) on both views; confidence is the
    left-right consistency (:func:`lr_consistency`). No segmentation."""

    segments = False

    def __init__(self, disparity_range: int = 128, tolerance: float = 2.0) -> None:
        self.sgbm = SgbmBaseline(disparity_range=disparity_range)
        self.tolerance = float(tolerance)
        lr_consistency(np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32), tolerance)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": SGBM,
            **self.sgbm.info,
            "confidence": f"left-right consistency, tolerance {self.tolerance:g} px",
        }

    def label(self, frame: Frame) -> TeacherLabels:
        d_l = np.maximum(self.sgbm.compute(frame.left, frame.right), 0.0)
        d_r = _flip(np.maximum(self.sgbm.compute(_flip(frame.right), _flip(frame.left)), 0.0))
        c_l, c_r = lr_consistency(d_l, d_r, self.tolerance)
        return TeacherLabels(d_l, d_r, c_l, c_r)


class PipelineTeacher:
    """The node's pipeline from a parameter file (any registered weights): its disparity, its
    confidence output and, if the weights segment, its labels, for both views."""

    def __init__(
        self, params: Path, *, weights: str | None, device: str | None, segmentation: bool
    ) -> None:
        settings, warnings = load_settings(params, weights=weights, device=device)
        if warnings:
            raise PseudoLabelError(
                f"the teacher {params} has no weights (weights: ''); an untrained network makes "
                "meaningless labels: set weights in the file or pass --weights"
            )
        self.settings = settings
        self.params = params
        self.pipeline = settings.build_pipeline()
        if "disparity" not in self.pipeline.tasks:
            raise PseudoLabelError(
                f"the teacher's weights {settings.weights_path()} were trained for "
                f"{list(self.pipeline.tasks)} only; a teacher must estimate disparity"
            )
        self.segments = segmentation and "segmentation" in self.pipeline.tasks
        self.outputs = {"disparity", "confidence"} | ({"labels"} if self.segments else set())

    def describe(self) -> dict[str, Any]:
        path = self.settings.weights_path()
        return {
            "kind": "pipeline",
            "params_file": str(self.params),
            "architecture": self.settings.architecture,
            "weights": str(path),
            "weights_sha256": _sha256(path) if path is not None else None,
            "device": str(self.pipeline.device),
            "precision": self.pipeline.precision,
            "max_disparity": int(self.pipeline.max_disparity),
            "label_set": self.pipeline.label_set.name,
            "confidence": "the network's confidence output",
            "segmentation": self.segments,
        }

    def _run(
        self, left: np.ndarray, right: np.ndarray, calib: StereoCalibration
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        result = self.pipeline.run(left, right, calib, outputs=self.outputs, min_confidence=0.0)
        assert result.disparity is not None and result.confidence is not None
        disparity = np.where(result.disparity > 0, result.disparity, 0.0).astype(np.float32)
        confidence = np.where(disparity > 0, result.confidence, 0.0).astype(np.float32)
        return disparity, confidence, result.labels

    def label(self, frame: Frame) -> TeacherLabels:
        d_l, c_l, s_l = self._run(frame.left, frame.right, frame.calib)
        d_r, c_r, s_r = self._run(_flip(frame.right), _flip(frame.left), mirrored(frame.calib))
        return TeacherLabels(
            d_l,
            _flip(d_r),
            c_l,
            _flip(c_r),
            s_l if self.segments else None,
            _flip(s_r) if self.segments and s_r is not None else None,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- output -----------------------------------------------------------------------------------


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.write_bytes(data.tobytes())


@dataclass
class Quality:
    """Running sums for the summary: density and confidence of the pseudo labels and, where the
    source has ground truth, their error."""

    pixels: int = 0
    labelled: int = 0
    confidence_sum: float = 0.0
    gt_pixels: int = 0
    abs_error: float = 0.0
    bad: int = 0
    conf_gt_pixels: int = 0
    conf_abs_error: float = 0.0
    conf_bad: int = 0
    labels_agree: int = 0
    labels_known: int = 0

    def add(self, frame: Frame, labels: TeacherLabels) -> None:
        d, c = labels.disparity, labels.confidence
        have = d > 0
        self.pixels += d.size
        self.labelled += int(have.sum())
        self.confidence_sum += float(c[have].sum())
        if frame.gt_disparity is not None and frame.gt_valid is not None:
            both = have & frame.gt_valid & np.isfinite(frame.gt_disparity)
            err = np.abs(d - frame.gt_disparity)[both]
            self.gt_pixels += err.size
            self.abs_error += float(err.sum())
            self.bad += int((err > BAD_PX).sum())
            sure = (c >= CONFIDENT)[both]
            self.conf_gt_pixels += int(sure.sum())
            self.conf_abs_error += float(err[sure].sum())
            self.conf_bad += int((err[sure] > BAD_PX).sum())
        if frame.gt_labels is not None and labels.labels is not None:
            known = frame.gt_labels != IGNORE_LABEL
            self.labels_known += int(known.sum())
            self.labels_agree += int((labels.labels == frame.gt_labels)[known].sum())

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "density": self.labelled / self.pixels if self.pixels else None,
            "mean_confidence": self.confidence_sum / self.labelled if self.labelled else None,
        }
        if self.gt_pixels:
            out["vs_ground_truth"] = {
                "pixels": self.gt_pixels,
                "epe": self.abs_error / self.gt_pixels,
                "bad3": 100.0 * self.bad / self.gt_pixels,
                "confident_fraction": self.conf_gt_pixels / self.gt_pixels,
                "confident_epe": (
                    self.conf_abs_error / self.conf_gt_pixels if self.conf_gt_pixels else None
                ),
                "confident_bad3": (
                    100.0 * self.conf_bad / self.conf_gt_pixels if self.conf_gt_pixels else None
                ),
            }
        if self.labels_known:
            out["label_agreement_with_ground_truth"] = self.labels_agree / self.labels_known
        return out


class LabelWriter:
    """Writes frames in the layout of :mod:`stereo_semantic_ros.datasets.pseudo_labels`."""

    DIRS = ("left", "right", "disparity", "disparity_right", "confidence", "confidence_right")

    def __init__(self, out: Path) -> None:
        self.out = out
        self.frames: list[dict[str, Any]] = []
        self.beyond_range = 0
        for name in self.DIRS:
            (out / name).mkdir()

    def write(self, frame: Frame, labels: TeacherLabels) -> None:
        name = f"{len(self.frames):06d}"
        png = f"{name}.png"
        o = self.out
        _write_png(o / "left" / png, cv2.cvtColor(frame.left, cv2.COLOR_RGB2BGR))
        _write_png(o / "right" / png, cv2.cvtColor(frame.right, cv2.COLOR_RGB2BGR))
        for d, suffix in ((labels.disparity, ""), (labels.right_disparity, "_right")):
            encoded = encode_disparity(d)
            self.beyond_range += int(((d > 0) & (encoded == 0)).sum())
            _write_png(o / f"disparity{suffix}" / png, encoded)
        _write_png(o / "confidence" / png, encode_confidence(labels.confidence))
        _write_png(o / "confidence_right" / png, encode_confidence(labels.right_confidence))
        entry: dict[str, Any] = {
            "name": name,
            "stamp_ns": frame.stamp_ns,
            "calib": {
                "fx": frame.calib.fx,
                "fy": frame.calib.fy,
                "cx": frame.calib.cx,
                "cy": frame.calib.cy,
                "baseline": frame.calib.baseline,
                "doffs": frame.calib.doffs,
                "width": frame.left.shape[1],
                "height": frame.left.shape[0],
            },
            "labels": labels.labels is not None,
        }
        if labels.labels is not None and labels.right_labels is not None:
            for sub, array in (("labels", labels.labels), ("labels_right", labels.right_labels)):
                (o / sub).mkdir(exist_ok=True)
                _write_png(o / sub / png, array.astype(np.uint8))
        if frame.gt_disparity is not None and frame.gt_valid is not None:
            (o / "ground_truth" / "disparity").mkdir(parents=True, exist_ok=True)
            gt = np.where(frame.gt_valid, frame.gt_disparity, 0.0)
            _write_png(o / "ground_truth" / "disparity" / png, encode_disparity(gt))
            entry["ground_truth_disparity"] = True
        if frame.gt_labels is not None:
            (o / "ground_truth" / "labels").mkdir(parents=True, exist_ok=True)
            _write_png(o / "ground_truth" / "labels" / png, frame.gt_labels.astype(np.uint8))
            entry["ground_truth_labels"] = True
        self.frames.append(entry)


# --- the run ----------------------------------------------------------------------------------


def label_frames(
    source: FrameSource,
    teacher: SgbmTeacher | PipelineTeacher,
    out: Path,
    *,
    every: int = 1,
    max_frames: int | None = None,
    command: Sequence[str] = (),
    overwrite: bool = False,
    inputs: Sequence[Path] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Label ``source``'s frames with ``teacher`` into ``out``; returns the manifest (also in
    ``out/pseudo_labels.json``, written even when interrupted, with ``"interrupted": true``).

    Raises:
        BagError: ``out`` exists (without ``overwrite``) or cannot be created.
    """
    if every < 1:
        raise PseudoLabelError(f"--every must be >= 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise PseudoLabelError(f"--max-frames must be >= 1, got {max_frames}")
    out = check_output_path(out, overwrite, tool=PROG, inputs=inputs)
    create_output_dir(out, PROG)
    writer = LabelWriter(out)
    quality = Quality()
    t0 = time.perf_counter()
    total = source.total
    if total is not None:
        total = -(-total // every)
        total = min(total, max_frames) if max_frames else total
    bar = tqdm(
        total=total,
        disable=not progress,
        unit="frame",
        desc="pseudo-label",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )
    interrupted = False
    seen = 0
    manifest: dict[str, Any] = {
        "tool": PROG,
        "layout_version": LAYOUT_VERSION,
        "created": now_iso(),
        "command": " ".join([PROG, *command]),
        "git_revision": git_revision(),
        "source": source.description,
        "teacher": teacher.describe(),
        "every": every,
        "encodings": {
            "disparity": "uint16 PNG, d = value / 256 px, 0 = no pseudo label",
            "confidence": "uint8 PNG, c = value / 255",
            "labels": "uint8 PNG, train ids of the teacher's label set, 255 = none",
        },
    }
    try:
        for frame in source.frames:
            seen += 1
            if (seen - 1) % every:
                continue
            labels = teacher.label(frame)
            writer.write(frame, labels)
            quality.add(frame, labels)
            bar.update(1)
            if max_frames is not None and len(writer.frames) >= max_frames:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        manifest.update(
            {
                "frames": writer.frames,
                "interrupted": interrupted,
                "summary": {
                    "frames": len(writer.frames),
                    "synchronised_sets_read": seen,
                    "skipped": dict(source.skipped),
                    "errors": list(source.errors),
                    "pixels_beyond_encodable_range": writer.beyond_range,
                    "wall_s": time.perf_counter() - t0,
                    **quality.summary(),
                },
            }
        )
        write_json_atomic(out / MANIFEST, manifest)
    return manifest


def summary_lines(manifest: dict[str, Any], out: Path) -> list[str]:
    """The end-of-run summary, for a terminal."""
    s = manifest["summary"]
    lines = [
        f"{PROG}: {s['frames']} frames labelled by {manifest['teacher']['kind']} "
        f"({manifest['teacher'].get('architecture', 'StereoSGBM')}) in {s['wall_s']:.1f} s "
        f"-> {out}",
    ]
    if s.get("density") is not None:
        lines.append(
            f"  pseudo labels: {100 * s['density']:.1f} % of pixels, mean confidence "
            f"{s['mean_confidence']:.3f}"
        )
    if s["skipped"]:
        lines.append("  skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(s["skipped"].items())))
    for error in s["errors"]:
        lines.append(f"  note: {error}")
    gt = s.get("vs_ground_truth")
    if gt:
        conf = (
            f"; confidence >= {CONFIDENT}: {100 * gt['confident_fraction']:.1f} % of them, EPE "
            f"{gt['confident_epe']:.2f} px, bad-3 {gt['confident_bad3']:.1f} %"
            if gt["confident_epe"] is not None
            else ""
        )
        lines.append(
            f"  against the source's ground truth ({gt['pixels']} px): EPE {gt['epe']:.2f} px, "
            f"bad-3 {gt['bad3']:.1f} %{conf}"
        )
    if s.get("label_agreement_with_ground_truth") is not None:
        lines.append(
            f"  teacher labels agree with the ground truth on "
            f"{100 * s['label_agreement_with_ground_truth']:.1f} % of labelled pixels"
        )
    if manifest.get("interrupted"):
        lines.append("  interrupted: the frames written so far are usable")
    lines.append(
        f"  train on them: stereo-semantic-train --config config/train/pseudo_mtl_bag.yaml "
        f"--set data.root={out}"
    )
    return lines


def is_bag(path: Path) -> bool:
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix in (
        ".mcap",
        ".db3",
    )


def build_parser() -> argparse.ArgumentParser:
    d = ReplayTopics()
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Label a rosbag2 (or a dataset) with a stereo teacher: both views' disparity, "
        "its confidence and the teacher's segmentation, in the layout data.type: pseudo_labels "
        "reads (seed 003's pseudo labels)",
    )
    p.add_argument("source", type=Path, help="rosbag2 (directory, .mcap or .db3) or a dataset")
    p.add_argument(
        "--teacher",
        required=True,
        help="a node parameter file (config/esp_joint.yaml: its architecture and weights) or "
        "'sgbm' (OpenCV StereoSGBM, confidence from the left-right check)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier output of this tool"
    )
    p.add_argument("--weights", help="overrides the parameter file's weights")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N, overrides the parameter file")
    p.add_argument(
        "--no-segmentation", action="store_true", help="do not write the teacher's labels"
    )
    p.add_argument(
        "--sgbm-range",
        type=int,
        default=128,
        help="sgbm: disparities searched, a multiple of 16 (default 128); set it to the rig's "
        "nearest expected disparity",
    )
    p.add_argument(
        "--lr-tolerance",
        type=float,
        default=2.0,
        help="sgbm: left-right disagreement (px) at which the confidence reaches 0 (default 2)",
    )
    p.add_argument("--every", type=int, default=1, help="label every n-th frame (default 1)")
    p.add_argument("--max-frames", type=int, help="stop after this many labelled frames")
    p.add_argument(
        "--dataset",
        choices=dataset_names(evaluated=True),
        help="the source is a dataset of this layout (not a bag)",
    )
    p.add_argument("--split", help="the dataset's split (default: its evaluation split)")
    p.add_argument(
        "--approximate-sync", action="store_true", help="bag: approximate-time synchronisation"
    )
    p.add_argument("--sync-slop", type=float, default=0.01, help="bag: seconds (approximate)")
    p.add_argument("--image-transport", choices=IMAGE_TRANSPORTS, default="auto")
    for role in INPUT_ROLES + GT_ROLES:
        flag = "--" + role.replace("_", "-")
        p.add_argument(
            flag, dest=role, default=getattr(d, role), help=f"bag topic ({getattr(d, role)})"
        )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = list(sys.argv[1:] if argv is None else argv)
    try:
        source_path: Path = args.source
        if args.dataset is None and not is_bag(source_path):
            raise PseudoLabelError(
                f"{source_path} is not a rosbag2 (no metadata.yaml, not .mcap/.db3); for a "
                "dataset name its layout with --dataset "
                f"({', '.join(dataset_names(evaluated=True))})"
            )
        if args.teacher.lower() == SGBM:
            teacher: SgbmTeacher | PipelineTeacher = SgbmTeacher(args.sgbm_range, args.lr_tolerance)
        else:
            params = Path(args.teacher)
            if not params.is_file():
                raise PseudoLabelError(
                    f"--teacher {params}: no such parameter file; give a node parameter file "
                    "(e.g. config/esp_joint.yaml) or 'sgbm'"
                )
            teacher = PipelineTeacher(
                params,
                weights=args.weights,
                device=args.device,
                segmentation=not args.no_segmentation,
            )
        if args.dataset is not None:
            source = dataset_source(args.dataset, source_path, args.split)
        else:
            topics = ReplayTopics(
                **{role: getattr(args, role) for role in INPUT_ROLES + GT_ROLES},
                image_transport=args.image_transport,
            )
            source = bag_source(
                source_path,
                topics,
                approximate=args.approximate_sync,
                slop=args.sync_slop,
            )
        manifest = label_frames(
            source,
            teacher,
            args.out,
            every=args.every,
            max_frames=args.max_frames,
            command=command,
            overwrite=args.overwrite,
            inputs=[source_path],
            progress=not args.no_progress,
        )
    except (PseudoLabelError, BagError, DatasetError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    for line in summary_lines(manifest, args.out):
        print(line)
    if not manifest["frames"]:
        print(f"{PROG}: error: no frame was labelled", file=sys.stderr)
        return 3
    return 130 if manifest.get("interrupted") else 0


if __name__ == "__main__":
    raise SystemExit(main())
