"""The input bag of a replay: its topics checked and given roles, its messages read in order.

:func:`check_input_topics` refuses a bag that lacks one of the four inputs (or holds them with
another type) before anything is written, listing the topics the bag does have. The roles map
each topic to what replay does with it: an input of the synchroniser (index
:class:`~stereo_semantic_ros.frames.inputs.Input`), ground truth, or a copy only
(:data:`COPIED_EXTRA_TOPICS`). :func:`messages_until_damage` reads the bag in receive-time order
and ends at damage in the file instead of raising, so everything before it is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stereo_semantic_ros.bagtools import messages
from stereo_semantic_ros.bagtools.bagio import BagError, topics_of
from stereo_semantic_ros.frames.inputs import Input
from stereo_semantic_ros.replay.options import ReplayTopics

COPIED_EXTRA_TOPICS = ("/tf", "/tf_static")
"""Copied into the output bag as they are, so RViz or Foxglove can place the frames."""


def check_input_topics(reader: Any, topics: ReplayTopics, bag: Path) -> dict[str, tuple[str, int]]:
    """The bag's ``{topic: (type, message count)}``, once the inputs are there with their types.

    Raises:
        BagError: an input topic is missing, or an input or ground-truth topic has another type.
    """
    available = topics_of(reader)
    expected = {
        topics.left_image: messages.IMAGE,
        topics.right_image: messages.IMAGE,
        topics.left_info: messages.CAMERA_INFO,
        topics.right_info: messages.CAMERA_INFO,
    }
    missing = [t for t in expected if t not in available]
    if missing:
        listing = "\n  ".join(f"{t} [{typ}] {n} msgs" for t, (typ, n) in available.items())
        raise BagError(
            f"bag {bag} lacks the input topic(s) {', '.join(missing)}. Topics in the bag:\n  "
            f"{listing}\nName the bag's topics with --left-image/--right-image/--left-info/"
            "--right-info"
        )
    for topic, typ in expected.items():
        if available[topic][0] != typ:
            raise BagError(f"bag {bag}: {topic} holds {available[topic][0]}, expected {typ}")
    for topic, typ in (
        (topics.gt_disparity, messages.DISPARITY_IMAGE),
        (topics.gt_labels, messages.IMAGE),
    ):
        if topic in available and available[topic][0] != typ:
            raise BagError(
                f"bag {bag}: ground truth {topic} holds {available[topic][0]}, expected {typ}"
            )
    return available


@dataclass(frozen=True)
class TopicRoles:
    """What replay does with each topic of the input bag."""

    inputs: dict[str, int]
    """Topic -> the synchroniser's input index."""
    ground_truth: dict[str, str]
    """Topic -> ``gt_disparity`` or ``gt_labels``."""

    @classmethod
    def of(cls, topics: ReplayTopics) -> TopicRoles:
        t = topics
        return cls(
            inputs={
                t.left_image: Input.LEFT_IMAGE,
                t.right_image: Input.RIGHT_IMAGE,
                t.left_info: Input.LEFT_INFO,
                t.right_info: Input.RIGHT_INFO,
            },
            ground_truth={t.gt_disparity: "gt_disparity", t.gt_labels: "gt_labels"},
        )

    def copied(self) -> set[str]:
        """Topics copied into the output bag (those not in the input bag are simply absent)."""
        return set(self.inputs) | set(self.ground_truth) | set(COPIED_EXTRA_TOPICS)

    def decoded(self, topic: str) -> bool:
        """Whether replay needs the message itself, not only its bytes."""
        return topic in self.inputs or topic in self.ground_truth


def messages_until_damage(
    reader: Any, connections: list[Any], on_damage: Callable[[Exception], None]
) -> Iterator[tuple[Any, int, bytes]]:
    """``(connection, receive time ns, raw bytes)`` in receive-time order.

    Damage in the file (a corrupt or truncated bag) ends the stream after ``on_damage(exc)``
    instead of an exception, so the caller keeps and reports everything before that point.
    """
    stream = reader.messages(connections=connections)
    while True:
        try:
            item = next(stream)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - rosbags raises whatever its parser hit
            on_damage(exc)
            return
        yield item
