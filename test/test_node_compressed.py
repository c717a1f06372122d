"""The node with ``image_transport: compressed`` over real DDS: CompressedImage in, every output.

The installed node runs with ``image_transport: compressed`` and ``mono16_bit_depth: 12``. The
test process publishes the pair as image_transport's ``compressed`` plugin does
(sensor_msgs/CompressedImage on ``left|right/image_rect/compressed``, JPEG or PNG, made with
:func:`~stereo_semantic_ros.ros.conversions.rgb_to_compressed`) and the camera_infos as usual,
and checks the outputs against pixels decoded independently with OpenCV: the point cloud's
colours are the decoded left image. A 16-bit PNG of a 12-bit camera is reduced by the
configured bit depth (not by its own maximum), and a compressed image that does not decode is a
dropped frame counted as ``malformed_image``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
from node_harness import (
    NODE,
    OUTPUT_TYPES,
    Driver,
    Frame,
    NodeProcess,
    cloud_array,
    make_frame,
)
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage

from stereo_semantic_ros.ros.conversions import rgb_to_compressed

DOMAIN_ID = 113
PARAMS = ("-p", "image_transport:=compressed", "-p", "mono16_bit_depth:=12")
TOPICS = {"left": "left/image_rect/compressed", "right": "right/image_rect/compressed"}


class CompressedPair:
    """Publishers of the compressed images on the driver's node."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {
            side: driver.node.create_publisher(CompressedImage, topic, reliable)
            for side, topic in TOPICS.items()
        }

    def publish(self, frame: Frame, left: np.ndarray, right: np.ndarray, fmt: str) -> dict:
        """camera_infos, then the two images compressed as ``fmt``; returns the messages."""
        msgs = {
            "left": rgb_to_compressed(left, fmt, frame.left.header),
            "right": rgb_to_compressed(right, fmt, frame.right.header),
        }
        self.driver.publish(frame, parts=("left_info", "right_info"))
        for side, msg in msgs.items():
            self.pubs[side].publish(msg)
        return msgs


def right_rgb(frame: Frame) -> np.ndarray:
    """The right image of a harness frame (rgb8) as an array."""
    return np.frombuffer(bytes(frame.right.data), np.uint8).reshape(frame.height, frame.width, 3)


def cloud_rgb(msg: Any) -> np.ndarray:
    packed = cloud_array(msg)["rgb"].copy().view("<u4")
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def live(colcon_build: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    prefix = colcon_build.require_success()
    log = tmp_path_factory.mktemp("node_compressed") / "node.log"
    node = NodeProcess(prefix, colcon_build.site_packages(), DOMAIN_ID, log, PARAMS)
    driver = None
    try:
        driver = Driver(DOMAIN_ID, node.text)
        pair = CompressedPair(driver)
        driver.subscribe_outputs()
        # warm up: PNG pairs every 0.5 s until one is answered on every output
        deadline, sent = time.monotonic() + 120, []
        while not any(set(driver.outputs_at(f.stamp_ns)) == set(OUTPUT_TYPES) for f in sent):
            assert time.monotonic() < deadline, "no answer to compressed input\n" + node.text()
            frame = make_frame(driver.next_stamp())
            pair.publish(frame, frame.rgb, right_rgb(frame), "png")
            sent.append(frame)
            time.sleep(0.5)
        yield node, driver, pair
    finally:
        if driver is not None:
            driver.close()
        node.stop()


def test_the_node_subscribes_to_the_compressed_topics_only(live: tuple) -> None:
    _, driver, _ = live

    def ours(topic: str) -> list[Any]:
        return [
            i for i in driver.node.get_subscriptions_info_by_topic(topic) if i.node_name == NODE
        ]

    for side in ("left", "right"):
        (info,) = ours(f"/{side}/image_rect/compressed")
        assert info.topic_type == "sensor_msgs/msg/CompressedImage"
        assert ours(f"/{side}/image_rect") == []
        assert len(ours(f"/{side}/camera_info")) == 1


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_a_compressed_pair_gives_every_output(live: tuple, fmt: str) -> None:
    _, driver, pair = live
    frame = make_frame(driver.next_stamp(), seed=21)
    msgs = pair.publish(frame, frame.rgb, right_rgb(frame), fmt)
    out = driver.wait_outputs(frame.stamp_ns)
    assert set(out) == set(OUTPUT_TYPES)
    for msg in out.values():
        assert msg.header.stamp == frame.left.header.stamp
    # the cloud's colours are the left image as OpenCV decodes the bytes sent (JPEG is lossy)
    decoded = cv2.imdecode(np.frombuffer(bytes(msgs["left"].data), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(cloud_rgb(out["points2"]), decoded[..., ::-1])
    if fmt == "png":
        np.testing.assert_array_equal(decoded[..., ::-1], frame.rgb)
    assert (out["disparity"].image.width, out["disparity"].image.height) == (64, 32)


def test_a_16_bit_png_is_reduced_by_mono16_bit_depth(live: tuple) -> None:
    _, driver, pair = live
    frame = make_frame(driver.next_stamp(), seed=22)
    # a 12-bit camera's frame that happens to stay below 1024: the configured depth (12) shifts
    # by 4 bits, where the automatic one would see 10 bits and shift by 2
    rng = np.random.default_rng(5)
    left = rng.integers(0, 1024, (frame.height, frame.width), dtype=np.uint16)
    right = np.ascontiguousarray(np.roll(left, -4, axis=1))
    msgs = pair.publish(frame, left, right, "png")
    assert msgs["left"].format.startswith("mono16; png")
    out = driver.wait_outputs(frame.stamp_ns)
    expected = (left >> 4).astype(np.uint8)
    np.testing.assert_array_equal(cloud_rgb(out["points2"]), np.repeat(expected[..., None], 3, 2))


def test_an_undecodable_compressed_image_is_a_counted_drop(live: tuple) -> None:
    node, driver, pair = live
    before = driver.fresh_diagnostics()
    mark = len(node.text())
    bad = make_frame(driver.next_stamp(), seed=23)
    left = rgb_to_compressed(bad.rgb, "png", bad.left.header)
    left.data = left.data[:40]  # truncated PNG
    driver.publish(bad, parts=("left_info", "right_info"))
    pair.pubs["left"].publish(left)
    pair.pubs["right"].publish(rgb_to_compressed(right_rgb(bad), "png", bad.right.header))
    values = driver.wait_for(
        lambda: (
            (d := driver.fresh_diagnostics())
            and int(d["dropped_malformed_image"]) > int(before["dropped_malformed_image"])
            and d
        ),
        30,
        "the malformed_image drop to be counted",
    )
    assert int(values["dropped_malformed_image"]) == int(before["dropped_malformed_image"]) + 1
    assert int(values["dropped_pipeline_error"]) == int(before["dropped_pipeline_error"])
    assert bad.stamp_ns not in driver.all_stamps()
    (line,) = [ln for ln in node.lines("ERROR", since=mark) if "malformed_image" in ln]
    assert "left/image_rect/compressed" in line and "do not decode" in line, line
    # and the node goes on
    good = make_frame(driver.next_stamp(), seed=24)
    pair.publish(good, good.rgb, right_rgb(good), "png")
    driver.wait_outputs(good.stamp_ns)
