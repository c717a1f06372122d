"""The live node's depth and confidence outputs over real DDS, as their consumers find them.

* ``depth/image_rect`` with ``depth/camera_info`` beside it: the camera_info topic that
  image_transport derives from the image topic (depth_image_proc, RViz's DepthCloud subscribe
  that pair), both stamped with the left image's header.
* ``confidence``: 32FC1 in [0, 1], the disparity's header, and what ``min_confidence`` compares:
  a pixel is invalid in disparity and depth exactly where its confidence is below the threshold.
* ``publish_confidence: false`` stops the topic while the others go on.

The node runs the installed ``stereo_semantic_node`` with the shipped ``config/esp_joint.yaml``
and a tiny untrained network on the CPU (``node_harness``), on its own ROS domain.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from node_harness import (
    BASELINE,
    FX,
    LEFT_FRAME,
    OUTPUT_TYPES,
    Driver,
    NodeProcess,
    image_array,
    make_frame,
)

DOMAIN_ID = 105
NODE_FQN = "/stereo_semantic_node"


def camera_info_topic(image_topic: str) -> str:
    """image_transport's ``getCameraInfoTopic``: the image topic's namespace + ``camera_info``
    (``image_transport/src/camera_common.cpp``), the topic a CameraSubscriber pairs it with."""
    namespace = image_topic.rstrip("/").rpartition("/")[0]
    return f"{namespace}/camera_info"


@pytest.fixture(scope="module")
def live(colcon_build: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    prefix = colcon_build.require_success()
    log = tmp_path_factory.mktemp("node_outputs") / "node.log"
    node = NodeProcess(prefix, colcon_build.site_packages(), DOMAIN_ID, log)
    driver = None
    try:
        driver = Driver(DOMAIN_ID, node.text)
        driver.wait_for(driver.latest_diagnostics, 90, "the node's first /diagnostics")
        driver.subscribe_outputs(best_effort=())
        driver.wait_for(
            lambda: driver.input_subscriptions() == [1, 1, 1, 1],
            30,
            "the node to subscribe to its inputs",
        )
        driver.warm_up()
        yield driver
    finally:
        if driver is not None:
            driver.close()
        assert node.stop() == 0, node.text()[-4000:]
        assert "Traceback" not in node.text(), node.text()[-4000:]


def test_image_transport_finds_the_depth_camera_info_beside_the_depth_image(live: Driver):
    topics = dict(live.node.get_publisher_names_and_types_by_node("stereo_semantic_node", "/"))
    assert topics["/depth/image_rect"] == ["sensor_msgs/msg/Image"]
    info_topic = camera_info_topic("/depth/image_rect")
    assert info_topic == "/depth/camera_info"
    assert topics[info_topic] == ["sensor_msgs/msg/CameraInfo"]
    assert "/depth" not in topics  # the old name is gone, not published twice
    assert (
        camera_info_topic("/left/image_rect") == "/left/camera_info"
    )  # the rule, as inputs use it

    frame = make_frame(live.next_stamp(), seed=21)
    live.publish(frame)
    out = live.wait_outputs(frame.stamp_ns, ("depth/image_rect", "depth/camera_info", "disparity"))
    depth, info = out["depth/image_rect"], out["depth/camera_info"]
    for msg in (depth, info):
        assert msg.header.stamp == frame.left.header.stamp and msg.header.frame_id == LEFT_FRAME
    assert (info.width, info.height) == (depth.width, depth.height) == (frame.width, frame.height)
    # the info describes the depth image's camera: depth_image_proc's x = (u - cx) * z / fx
    assert info.k[0] == pytest.approx(FX) and list(info.p) == list(frame.left_info.p)
    assert depth.encoding == "32FC1"


def test_confidence_is_32fc1_in_0_1_with_the_disparity_header(live: Driver):
    frame = make_frame(live.next_stamp(), seed=22)
    live.publish(frame)
    out = live.wait_outputs(frame.stamp_ns, ("confidence", "disparity"))
    conf_msg, disp_msg = out["confidence"], out["disparity"]
    assert conf_msg.header == disp_msg.header
    assert conf_msg.header.stamp == frame.left.header.stamp
    assert (conf_msg.height, conf_msg.width) == (frame.height, frame.width)
    assert conf_msg.encoding == "32FC1" and conf_msg.step == 4 * frame.width
    confidence = image_array(conf_msg)
    assert np.isfinite(confidence).all()
    assert 0.0 <= confidence.min() and confidence.max() <= 1.0


def test_min_confidence_masks_exactly_the_pixels_the_confidence_image_shows_below_it(
    live: Driver,
):
    """The confidence image is unmasked; disparity and depth are invalid where it is below
    min_confidence (the same image content gives the same confidence, frame after frame)."""
    frame = make_frame(live.next_stamp(), seed=23)
    live.publish(frame)
    base = image_array(live.wait_outputs(frame.stamp_ns, ("confidence",))["confidence"])
    threshold = float(np.median(base))
    try:
        assert all(r.successful for r in live.set_parameters(min_confidence=threshold))
        again = make_frame(live.next_stamp(), seed=23)
        live.publish(again)
        out = live.wait_outputs(again.stamp_ns, ("confidence", "disparity", "depth/image_rect"))
        confidence = image_array(out["confidence"])
        np.testing.assert_array_equal(confidence, base)  # not masked itself
        low = confidence < np.float32(threshold)
        assert low.any() and (~low).any()
        disparity = image_array(out["disparity"].image)
        depth = image_array(out["depth/image_rect"])
        assert (disparity[low] < out["disparity"].min_disparity).all()
        assert np.isnan(depth[low]).all()
        # the others keep what the network found (none is masked for another reason here)
        kept = ~low & (disparity > 0)
        assert kept.sum() > 0.4 * low.size
        np.testing.assert_allclose(depth[kept], FX * BASELINE / disparity[kept], rtol=1e-5)
    finally:
        live.set_parameters(min_confidence=0.0)


def test_publish_confidence_false_stops_only_the_confidence_topic(live: Driver):
    others = [t for t in OUTPUT_TYPES if t != "confidence"]
    try:
        assert all(r.successful for r in live.set_parameters(publish_confidence=False))
        stamps = []
        for seed in (24, 25):
            frame = make_frame(live.next_stamp(), seed=seed)
            live.publish(frame)
            live.wait_outputs(frame.stamp_ns, others)
            stamps.append(frame.stamp_ns)
        time.sleep(1.0)  # the confidence of those frames would have come with the others
        assert all("confidence" not in live.outputs_at(s) for s in stamps)
    finally:
        assert all(r.successful for r in live.set_parameters(publish_confidence=True))
    frame = make_frame(live.next_stamp(), seed=26)
    live.publish(frame)
    assert "confidence" in live.wait_outputs(frame.stamp_ns, ("confidence",))
