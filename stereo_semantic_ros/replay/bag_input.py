"""The input bag of a replay: its topics checked and given roles, its messages read in order.

:func:`resolve_image_topics` picks the image topics to read (raw Images or image_transport's
``<topic>/compressed`` CompressedImages, see
:data:`~stereo_semantic_ros.replay.options.IMAGE_TRANSPORTS`). :func:`check_input_topics`
refuses a bag that lacks one of the four inputs (or holds them with another type) before
anything is written, listing the topics the bag does have. The roles map each topic to what
replay does with it: an input of the synchroniser (index
:class:`~stereo_semantic_ros.frames.inputs.Input`), ground truth, or a copy only
(:data:`COPIED_EXTRA_TOPICS`). :func:`messages_until_damage` reads the bag in receive-time order
and ends at damage in the file instead of raising, so everything before it is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stereo_semantic_ros.bagtools import messages
from stereo_semantic_ros.bagtools.bagio import BagError, topics_of
from stereo_semantic_ros.bagtools.make_bag import COMPRESSED_SUFFIX
from stereo_semantic_ros.frames.inputs import Input
from stereo_semantic_ros.replay.options import ReplayTopics

COPIED_EXTRA_TOPICS = ("/tf", "/tf_static")
"""Copied into the output bag as they are, so RViz or Foxglove can place the frames."""


IMAGE_TYPES = {
    "raw": (messages.IMAGE,),
    "compressed": (messages.COMPRESSED_IMAGE,),
    "auto": (messages.IMAGE, messages.COMPRESSED_IMAGE),
}
"""Message types an image topic may hold, per image transport."""


def _compressed_topic(topic: str) -> str:
    return topic if topic.endswith(COMPRESSED_SUFFIX) else topic + COMPRESSED_SUFFIX


def resolve_image_topics(reader: Any, topics: ReplayTopics) -> ReplayTopics:
    """``topics`` with the image topics replay reads from this bag.

    ``raw``: as named. ``compressed``: ``<topic>/compressed`` (a name already ending in
    ``/compressed`` is kept). ``auto``: the named topic when the bag has it (raw first, so a bag
    with both is read losslessly), else ``<topic>/compressed`` when the bag has that as a
    CompressedImage, else as named (and :func:`check_input_topics` reports it missing).
    """
    if topics.image_transport == "raw":
        return topics
    if topics.image_transport == "compressed":
        return replace(
            topics,
            left_image=_compressed_topic(topics.left_image),
            right_image=_compressed_topic(topics.right_image),
        )
    available = topics_of(reader)

    def pick(topic: str) -> str:
        compressed = _compressed_topic(topic)
        if topic not in available and available.get(compressed, ("",))[0] == (
            messages.COMPRESSED_IMAGE
        ):
            return compressed
        return topic

    return replace(topics, left_image=pick(topics.left_image), right_image=pick(topics.right_image))


def check_input_topics(reader: Any, topics: ReplayTopics, bag: Path) -> dict[str, tuple[str, int]]:
    """The bag's ``{topic: (type, message count)}``, once the inputs are there with their types.

    ``topics`` are the ones read (from :func:`resolve_image_topics`): an image topic may hold
    sensor_msgs/Image or CompressedImage as ``topics.image_transport`` allows.

    Raises:
        BagError: two inputs name one topic, an input topic is missing, or an input or
            ground-truth topic has another type.
    """
    inputs = topics.inputs()
    if len(set(inputs)) != len(inputs):
        raise BagError(
            f"the four inputs must be four topics, got left image {inputs[0]}, right image "
            f"{inputs[1]}, left info {inputs[2]}, right info {inputs[3]}: check --left-image/"
            "--right-image/--left-info/--right-info"
        )
    available = topics_of(reader)
    image_types = IMAGE_TYPES[topics.image_transport]
    expected = {
        topics.left_image: image_types,
        topics.right_image: image_types,
        topics.left_info: (messages.CAMERA_INFO,),
        topics.right_info: (messages.CAMERA_INFO,),
    }
    missing = [t for t in expected if t not in available]
    if missing:
        listing = "\n  ".join(f"{t} [{typ}] {n} msgs" for t, (typ, n) in available.items())
        raise BagError(
            f"bag {bag} lacks the input topic(s) {', '.join(missing)}"
            + (
                " (nor their /compressed CompressedImage topics)"
                if topics.image_transport == "auto"
                and any(t in (topics.left_image, topics.right_image) for t in missing)
                else ""
            )
            + f". Topics in the bag:\n  {listing}\nName the bag's topics with --left-image/"
            "--right-image/--left-info/--right-info (and --image-transport raw|compressed)"
        )
    for topic, types in expected.items():
        if available[topic][0] not in types:
            raise BagError(
                f"bag {bag}: {topic} holds {available[topic][0]}, expected {' or '.join(types)}"
                + (f" (--image-transport {topics.image_transport})" if types is image_types else "")
            )
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
