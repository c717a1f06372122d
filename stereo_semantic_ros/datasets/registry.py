"""The one table of datasets: training recipes (``data.type``), ``stereo-semantic-eval
--dataset``, ``stereo-semantic-make-bag --source`` and ``stereo-semantic-ablation`` all take
their names, their defaults and what each offers from :data:`DATASETS`, and open them with
:func:`open_dataset`.

To add a dataset: write its reader (a :class:`~stereo_semantic_ros.datasets.base.StereoDataset`
subclass) in this package, add one :class:`DatasetSpec` row below, and a test.

``builtin:NAME`` roots (:data:`~stereo_semantic_ros.datasets.middlebury.BUILTIN_PAIRS`, e.g.
``builtin:motorcycle``) are real pairs that ship with a dependency: test data only, opened by
the two-view rows for evaluation and refused for training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stereo_semantic_ros.datasets.base import DatasetError, StereoDataset
from stereo_semantic_ros.datasets.cityscapes import Cityscapes
from stereo_semantic_ros.datasets.kitti import Kitti2015
from stereo_semantic_ros.datasets.middlebury import TwoViewBenchmark, is_builtin, open_builtin
from stereo_semantic_ros.datasets.pseudo_labels import PseudoLabels
from stereo_semantic_ros.datasets.vkitti2 import VirtualKitti2

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DatasetUseError",
    "Purpose",
    "dataset_names",
    "get_dataset_spec",
    "open_dataset",
]

Purpose = Literal["train", "eval"]
Split = str | Sequence[str] | None


class DatasetUseError(DatasetError):
    """A dataset asked for what it cannot do: an unknown name, a test-only pair for training,
    an option the layout has no use for."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset layout.

    Attributes:
        name: the key (recipe ``data.type``, eval ``--dataset``, make-bag ``--source``).
        layout: what the root holds, in a few words.
        reader: ``reader(root, split, augment, file_list, variations)`` -> the dataset.
        labels: has semantic ground truth.
        right_truth: has the right view's ground truth too (training can mirror the pair).
        two_view: a Middlebury / ETH3D-style benchmark (scenes, PFM disparity, builtin pairs).
        evaluated: offered to ``stereo-semantic-eval`` and make-bag (``synthetic`` is read
            there as ``kitti2015``, its layout).
        train_split, eval_split: the default ``split`` (None: every scene).
        split_help: what ``split`` means.
        file_list: accepts a ``file_list`` of sample names.
        variations: accepts rendering variations (Virtual KITTI 2).
    """

    name: str
    layout: str
    reader: Callable[..., StereoDataset]
    labels: bool
    right_truth: bool = False
    two_view: bool = False
    evaluated: bool = True
    train_split: str | None = None
    eval_split: str | None = None
    split_help: str = "comma-separated scenes"
    file_list: bool = False
    variations: bool = False

    def default_split(self, purpose: Purpose) -> str | None:
        return self.train_split if purpose == "train" else self.eval_split


def _scenes(split: Split) -> list[str] | None:
    if split is None:
        return None
    if isinstance(split, str):
        return [s for s in split.split(",") if s] or None
    return list(split)


def _kitti(right_truth: bool) -> Callable[..., StereoDataset]:
    def read(root: Path, split: Split, augment: Any, file_list: str | None, _: Any) -> Kitti2015:
        extra: dict[str, Any] = {}
        if right_truth:  # our generator also writes the right view's ground truth
            extra = {
                "right_disparity_dir": "disp_occ_right",
                "right_semantic_dir": "semantic_right",
            }
        if file_list is not None:
            extra["file_list"] = Path(root) / file_list
        return Kitti2015(root, str(split), augment=augment, **extra)

    return read


def _cityscapes(root: Path, split: Split, augment: Any, *_: Any) -> Cityscapes:
    return Cityscapes(root, str(split), augment=augment)


def _vkitti2(
    root: Path, split: Split, augment: Any, _: Any, variations: Sequence[str] | None
) -> VirtualKitti2:
    return VirtualKitti2(
        root, scenes=_scenes(split), variations=tuple(variations or ("clone",)), augment=augment
    )


def _pseudo_labels(root: Path, split: Split, augment: Any, *_: Any) -> PseudoLabels:
    return PseudoLabels(root, str(split), augment=augment)


def _two_view(variant: str) -> Callable[..., StereoDataset]:
    def read(root: Path, split: Split, augment: Any, *_: Any) -> TwoViewBenchmark:
        return TwoViewBenchmark(root, variant, scenes=_scenes(split), augment=augment)

    return read


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "synthetic",
            "KITTI 2015 layout as stereo-semantic-synth writes it, with right-view truth",
            _kitti(right_truth=True),
            labels=True,
            right_truth=True,
            evaluated=False,
            train_split="training",
            eval_split="training",
            split_help="training|testing",
            file_list=True,
        ),
        DatasetSpec(
            "kitti2015",
            "KITTI 2015 (image_2/3, disp_occ_0/disp_noc_0, semantic)",
            _kitti(right_truth=False),
            labels=True,
            train_split="training",
            eval_split="training",
            split_help="training|testing",
            file_list=True,
        ),
        DatasetSpec(
            "cityscapes",
            "Cityscapes (leftImg8bit, rightImg8bit, disparity, gtFine, camera)",
            _cityscapes,
            labels=True,
            train_split="train",
            eval_split="val",
            split_help="train|val|test",
        ),
        DatasetSpec(
            "vkitti2",
            "Virtual KITTI 2 (SceneNN/<variation>/frames/...)",
            _vkitti2,
            labels=True,
            variations=True,
        ),
        DatasetSpec(
            "pseudo_labels",
            "stereo-semantic-pseudo-label output (a teacher's disparity, confidence, labels)",
            _pseudo_labels,
            labels=True,
            right_truth=True,
            train_split="pseudo",
            eval_split="ground_truth",
            split_help="pseudo (the teacher's labels) | ground_truth (the source's own)",
        ),
        DatasetSpec(
            "middlebury",
            "Middlebury 2014/2021 two-view scenes (im0/im1.png, disp0.pfm, calib.txt)",
            _two_view("middlebury"),
            labels=False,
            two_view=True,
        ),
        DatasetSpec(
            "eth3d",
            "ETH3D two-view scenes (im0/im1.png, disp0GT.pfm, calib.txt)",
            _two_view("eth3d"),
            labels=False,
            two_view=True,
        ),
    )
}


def dataset_names(
    *, evaluated: bool | None = None, two_view: bool | None = None
) -> tuple[str, ...]:
    """The table's names, in its order, optionally only those with the given properties."""
    return tuple(
        name
        for name, spec in DATASETS.items()
        if (evaluated is None or spec.evaluated == evaluated)
        and (two_view is None or spec.two_view == two_view)
    )


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetUseError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}"
        ) from None


def open_dataset(
    name: str,
    root: str | Path,
    split: Split = None,
    *,
    purpose: Purpose = "eval",
    augment: Any = None,
    file_list: str | None = None,
    variations: Sequence[str] | None = None,
) -> StereoDataset:
    """The dataset ``name`` under ``root``.

    Args:
        name: a key of :data:`DATASETS`.
        root: its directory, or a ``builtin:`` pair (two-view rows, evaluation only).
        split: as the row's ``split_help`` says; None: the row's default for ``purpose``.
        purpose: ``train`` or ``eval`` (default splits; builtin pairs are refused for training).
        augment: the training augmentor, or None.
        file_list: a list of sample names under ``root`` (rows with ``file_list``).
        variations: rendering variations (rows with ``variations``; default ``clone``).

    Raises:
        DatasetUseError: an unknown name, a builtin pair for training or with a layout that is
            not two-view, an option the row does not take.
        DatasetError: (its reader) a root that is not the documented layout.
    """
    spec = get_dataset_spec(name)
    if file_list is not None and not spec.file_list:
        takes = ", ".join(n for n, s in DATASETS.items() if s.file_list)
        raise DatasetUseError(f"a file_list only applies to {takes} data, not {name}")
    if variations is not None and not spec.variations:
        raise DatasetUseError(f"rendering variations only apply to vkitti2 data, not {name}")
    if is_builtin(root):
        if purpose == "train":
            # the pairs that ship with a dependency are real test data, never training data
            raise DatasetUseError(f"{root} is an evaluation pair; it cannot be used for training")
        if not spec.two_view:
            raise DatasetUseError(f"{root} is a two-view pair: use --dataset middlebury (or none)")
        return open_builtin(str(root))
    if split is None:
        split = spec.default_split(purpose)
    return spec.reader(Path(root), split, augment, file_list, variations)
