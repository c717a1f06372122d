"""Label sets: class names, train ids and colour palettes that travel with the weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IGNORE_LABEL = 255
"""Train id of pixels with no label (ground truth) or no confident prediction (output)."""


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of classes; the index of a class is its train id."""

    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_LABEL
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ValueError(
                f"label set {self.name!r}: {len(self.names)} names but {len(self.colors)} colours"
            )
        if not 0 < len(self.names) < self.ignore_index:
            raise ValueError(f"label set {self.name!r}: needs 1..{self.ignore_index - 1} classes")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 lookup table: train id -> RGB; ids without a class are black."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8)
        return lut

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "names": list(self.names),
            "colors": [list(c) for c in self.colors],
            "ignore_index": self.ignore_index,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSet:
        return cls(
            name=str(data["name"]),
            names=tuple(str(n) for n in data["names"]),
            colors=tuple(tuple(int(v) for v in c) for c in data["colors"]),  # type: ignore[misc]
            ignore_index=int(data.get("ignore_index", IGNORE_LABEL)),
        )


# The 19 Cityscapes training classes with their official colours (cityscapesScripts labels.py);
# KITTI 2015 semantics uses the same ids.
CITYSCAPES_19 = LabelSet(
    name="cityscapes19",
    names=(
        "road",
        "sidewalk",
        "building",
        "wall",
        "fence",
        "pole",
        "traffic light",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    ),
    colors=(
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    ),
)

# Cityscapes / KITTI "labelIds" (0..33) -> train ids, from cityscapesScripts' labels table.
CITYSCAPES_ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}

LABEL_SETS: dict[str, LabelSet] = {CITYSCAPES_19.name: CITYSCAPES_19}


def get_label_set(name: str) -> LabelSet:
    """Look up a built-in label set by name."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown label set {name!r}; built-in sets: {', '.join(sorted(LABEL_SETS))}"
        ) from None


def id_lut(mapping: dict[int, int], ignore: int = IGNORE_LABEL) -> np.ndarray:
    """(256,) uint8 lookup table raw id -> train id; unmapped ids become ``ignore``."""
    lut = np.full(256, ignore, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut
