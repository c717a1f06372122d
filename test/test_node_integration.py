"""The live node over real DDS: every output's content, diagnostics, live parameters, shutdown.

The node runs as its own process from the colcon-installed console script with the shipped
``config/esp_joint.yaml`` (plus ``max_disparity:=16 device:=cpu weights:=''``: a tiny untrained
network on the CPU). The test process publishes 64x32 frames on the four inputs and checks what
comes back against the inputs and the camera model (fx = 50 px, B = 0.1 m).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from node_harness import (
    BASELINE,
    FX,
    LEFT_FRAME,
    MAX_DISPARITY,
    OUTPUT_TYPES,
    Driver,
    Frame,
    NodeProcess,
    cloud_array,
    image_array,
    make_frame,
)
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from stereo_semantic_ros.frames.reasons import DROP_REASONS
from stereo_semantic_ros.labels import CITYSCAPES_19

DOMAIN_ID = 53
# one input and one output with QoS overridden through rclpy's qos_overrides parameters
QOS_OVERRIDES = (
    "-p",
    "qos_overrides./right/camera_info.subscription.reliability:=reliable",
    "-p",
    "qos_overrides./disparity/color.publisher.reliability:=best_effort",
)
MAX_DEPTH = 100.0  # points_max_depth in config/esp_joint.yaml


@dataclass
class Live:
    node: NodeProcess
    driver: Driver
    idle_input_subscriptions: list[int]
    idle_diagnostics: dict[str, str]
    log_offset: int  # node log length after the warm-up (which may lose a first partial set)


@pytest.fixture(scope="module")
def live(colcon_build: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    prefix = colcon_build.require_success()
    log = tmp_path_factory.mktemp("node_integration") / "node.log"
    node = NodeProcess(prefix, colcon_build.site_packages(), DOMAIN_ID, log, QOS_OVERRIDES)
    driver = None
    try:
        driver = Driver(DOMAIN_ID, node.text)
        # Up once its diagnostics arrive. Nobody listens to an output yet, so the node must not
        # have subscribed to its inputs; give discovery a moment to show a wrong subscription.
        driver.wait_for(driver.latest_diagnostics, 90, "the node's first /diagnostics")
        time.sleep(1.5)
        idle_counts = driver.input_subscriptions()
        idle_diagnostics = driver.latest_diagnostics()
        driver.subscribe_outputs(best_effort=("disparity/color",))
        driver.wait_for(
            lambda: driver.input_subscriptions() == [1, 1, 1, 1],
            30,
            "the node to subscribe to its four inputs once outputs have subscribers",
        )
        driver.warm_up()
        yield Live(node, driver, idle_counts, idle_diagnostics, len(node.text()))
    finally:
        if driver is not None:
            driver.close()
        node.stop()


def check_outputs(frame: Frame, out: dict[str, Any]) -> None:
    """Every output of ``frame`` against the inputs and the camera model."""
    h, w = frame.height, frame.width
    for topic, msg in out.items():
        assert msg.header.stamp == frame.left.header.stamp, topic
        assert msg.header.frame_id == LEFT_FRAME, topic

    # disparity: DisparityImage filled like stereo_image_proc's
    disp_msg = out["disparity"]
    assert disp_msg.image.header.stamp == frame.left.header.stamp
    assert (disp_msg.image.height, disp_msg.image.width) == (h, w)
    assert disp_msg.image.encoding == "32FC1"
    assert disp_msg.f == pytest.approx(FX)
    assert disp_msg.t == pytest.approx(BASELINE)
    assert disp_msg.min_disparity == 0.0
    assert disp_msg.max_disparity == float(MAX_DISPARITY)
    assert 0.0 < disp_msg.delta_d < 1.0
    disparity = image_array(disp_msg.image)
    valid = disparity >= disp_msg.min_disparity
    assert valid.any(), "no valid disparity at all"
    assert disparity[valid].max() <= disp_msg.max_disparity
    roi = disp_msg.valid_window
    rows, cols = np.nonzero(valid)
    assert (roi.x_offset, roi.y_offset) == (cols.min(), rows.min())
    assert (roi.width, roi.height) == (cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
    assert roi.x_offset + roi.width <= w and roi.y_offset + roi.height <= h

    # depth = f * T / d where valid, NaN elsewhere; depth/camera_info = the left camera_info
    depth_msg = out["depth/image_rect"]
    assert (depth_msg.height, depth_msg.width, depth_msg.encoding) == (h, w, "32FC1")
    depth = image_array(depth_msg)
    np.testing.assert_allclose(depth[valid], FX * BASELINE / disparity[valid], rtol=1e-5)
    assert np.isnan(depth[~valid]).all()
    info = out["depth/camera_info"]
    assert (info.width, info.height) == (w, h)
    assert list(info.p) == list(frame.left_info.p) and list(info.k) == list(frame.left_info.k)

    # confidence: the unmasked stereo confidence, 0..1 (test_node_outputs checks its masking)
    conf_msg = out["confidence"]
    assert (conf_msg.height, conf_msg.width, conf_msg.encoding) == (h, w, "32FC1")
    confidence = image_array(conf_msg)
    assert np.isfinite(confidence).all()
    assert confidence.min() >= 0.0 and confidence.max() <= 1.0 and confidence.std() > 0

    # semantic/labels: class ids of the label set; semantic/color: its palette (blend 1.0)
    labels_msg = out["semantic/labels"]
    assert (labels_msg.height, labels_msg.width, labels_msg.encoding) == (h, w, "mono8")
    labels = image_array(labels_msg)
    assert labels.max() < CITYSCAPES_19.num_classes
    color_msg = out["semantic/color"]
    assert (color_msg.height, color_msg.width, color_msg.encoding) == (h, w, "rgb8")
    np.testing.assert_array_equal(image_array(color_msg), CITYSCAPES_19.palette()[labels])
    dcolor_msg = out["disparity/color"]
    assert (dcolor_msg.height, dcolor_msg.width, dcolor_msg.encoding) == (h, w, "rgb8")
    assert image_array(dcolor_msg).std() > 0

    # points2: organized, x/y/z from depth and the left intrinsics, colours, labels
    cloud_msg = out["points2"]
    types = {f.name: f.datatype for f in cloud_msg.fields}
    assert types == {"x": 7, "y": 7, "z": 7, "rgb": 7, "label": 6}  # FLOAT32, UINT32 (PCL's)
    assert (cloud_msg.height, cloud_msg.width) == (h, w)
    cloud = cloud_array(cloud_msg)
    p = np.asarray(frame.left_info.p).reshape(3, 4)
    cx, cy = p[0, 2], p[1, 2]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z = np.where(depth <= MAX_DEPTH, depth, np.nan)
    np.testing.assert_allclose(cloud["z"], z, rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(cloud["x"], (u - cx) * z / FX, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(cloud["y"], (v - cy) * z / FX, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert cloud_msg.is_dense == bool(np.isfinite(z).all())
    packed = cloud["rgb"].copy().view("<u4")
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1)
    np.testing.assert_array_equal(rgb, frame.rgb)
    np.testing.assert_array_equal(cloud["label"], np.where(np.isfinite(z), labels, 255))


def test_inputs_subscribed_only_while_an_output_has_a_subscriber(live: Live) -> None:
    assert live.idle_input_subscriptions == [0, 0, 0, 0]
    assert live.idle_diagnostics["inputs_subscribed"] == "false"
    assert live.driver.input_subscriptions() == [1, 1, 1, 1]


def test_qos_defaults_and_overrides(live: Live) -> None:
    """Sensor-data inputs, reliable volatile outputs; qos_overrides change single topics."""
    node = live.driver.node

    def endpoint(topic: str, publisher: bool) -> Any:
        get = (
            node.get_publishers_info_by_topic
            if publisher
            else (node.get_subscriptions_info_by_topic)
        )
        (info,) = [i for i in get(topic) if i.node_name == "stereo_semantic_node"]
        return info.qos_profile

    for topic in ("/left/image_rect", "/right/image_rect", "/left/camera_info"):
        qos = endpoint(topic, publisher=False)
        assert qos.reliability == ReliabilityPolicy.BEST_EFFORT, topic
        assert qos.durability == DurabilityPolicy.VOLATILE, topic
    assert endpoint("/right/camera_info", False).reliability == ReliabilityPolicy.RELIABLE
    for topic in OUTPUT_TYPES:
        qos = endpoint("/" + topic, publisher=True)
        expected = "BEST_EFFORT" if topic == "disparity/color" else "RELIABLE"
        assert qos.reliability == ReliabilityPolicy[expected], topic
        assert qos.durability == DurabilityPolicy.VOLATILE, topic


@pytest.mark.parametrize(
    "encoding",
    ["rgb8", "bgr8", "mono8", "8UC1", "8UC3", "mono16", "16UC1", "yuv422", "bayer_rggb8"],
)
def test_every_output_matches_the_input_and_camera_model(live: Live, encoding: str) -> None:
    driver = live.driver
    frame = make_frame(driver.next_stamp(), encoding=encoding, seed=7)
    driver.publish(frame)
    check_outputs(frame, driver.wait_outputs(frame.stamp_ns))


def test_diagnostics_report_device_latency_and_counts(live: Live) -> None:
    driver = live.driver
    # the count before the frame: read after it, a diagnostics message that already counted
    # it would leave the wait below for an increment that never comes (a race seen in CI)
    before = driver.latest_diagnostics()
    published = int(before["frames_published"]) if before else 0
    frame = make_frame(driver.next_stamp(), seed=8)
    driver.publish(frame)
    driver.wait_outputs(frame.stamp_ns)
    values = driver.wait_for(
        lambda: (d := driver.latest_diagnostics()) and int(d["frames_published"]) > published and d,
        10,
        "diagnostics counting the new frame",
    )
    assert values["device"] == "cpu" and values["_hardware_id"] == "cpu"
    assert values["precision"] == "fp32" and values["requested_precision"] == "fp16"
    assert values["architecture"] == "esp_joint"
    assert values["weights"].startswith("untrained")
    assert values["label_set"] == CITYSCAPES_19.name
    assert values["max_disparity_px"] == str(MAX_DISPARITY)
    assert values["inputs_subscribed"] == "true"
    # untrained weights keep the status at WARN, and say so
    assert values["_level"] == "1" and "untrained" in values["_message"]
    for reason in DROP_REASONS:
        assert int(values[f"dropped_{reason}"]) >= 0
    assert int(values["sets_synchronised"]) >= int(values["frames_published"]) >= 2
    assert int(values["frames_received"]) >= int(values["sets_synchronised"])
    inference = float(values["inference_ms_mean"])
    end_to_end = float(values["end_to_end_ms_mean"])
    assert 0.0 < inference <= float(values["pipeline_ms_mean"]) <= end_to_end
    assert float(values["inference_ms_p90"]) > 0.0 and math.isfinite(
        float(values["end_to_end_ms_p90"])
    )
    # rates cover the last 5 s only: on a loaded machine that may hold no frame any more
    assert float(values["input_rate_hz"]) >= 0.0 and float(values["output_rate_hz"]) >= 0.0


def test_live_parameter_changes_apply_to_the_next_frame(live: Live) -> None:
    driver = live.driver
    others = [t for t in OUTPUT_TYPES if t != "points2"]
    try:
        assert all(r.successful for r in driver.set_parameters(publish_points=False))
        off = make_frame(driver.next_stamp(), seed=9)
        driver.publish(off)
        depth = image_array(driver.wait_outputs(off.stamp_ns, others)["depth/image_rect"])
        time.sleep(1.0)  # points2 would have come with the other outputs
        assert "points2" not in driver.outputs_at(off.stamp_ns)

        # same image content -> same depth; split it at its median to see the max depth act
        max_depth = float(np.nanmedian(depth))
        results = driver.set_parameters(
            publish_points=True, points_stride=2, points_max_depth=max_depth
        )
        assert all(r.successful for r in results), [r.reason for r in results]
        strided = make_frame(driver.next_stamp(), seed=9)
        driver.publish(strided)
        out = driver.wait_outputs(strided.stamp_ns)
        cloud = cloud_array(out["points2"])
        assert cloud.shape == (strided.height // 2, strided.width // 2)
        depth = image_array(out["depth/image_rect"])
        z = depth[::2, ::2]
        z = np.where(z <= max_depth, z, np.nan)
        assert np.isnan(z).any() and np.isfinite(z).any()
        np.testing.assert_allclose(cloud["z"], z, rtol=1e-5, equal_nan=True)
        cx = np.asarray(strided.left_info.p)[2]
        u = np.arange(0, strided.width, 2, dtype=np.float64)[None, :]
        np.testing.assert_allclose(
            cloud["x"], (u - cx) * z / FX, rtol=1e-5, atol=1e-6, equal_nan=True
        )

        assert all(r.successful for r in driver.set_parameters(points_organized=False))
        dense = make_frame(driver.next_stamp(), seed=9)
        driver.publish(dense)
        cloud_msg = driver.wait_outputs(dense.stamp_ns)["points2"]
        assert cloud_msg.height == 1 and cloud_msg.is_dense
        np.testing.assert_allclose(cloud_array(cloud_msg)["z"][0], z[np.isfinite(z)], rtol=1e-5)
    finally:
        driver.set_parameters(
            publish_points=True, points_stride=1, points_max_depth=MAX_DEPTH, points_organized=True
        )


def test_start_up_parameters_are_refused_at_run_time_with_a_reason(live: Live) -> None:
    driver = live.driver
    names = ("device", "weights", "max_disparity", "approximate_sync", "points_stride")
    before = driver.get_parameters(*names)
    for name, value in (
        ("device", "cuda"),
        ("weights", "esp_joint_synthetic.pt"),
        ("max_disparity", 32),
        ("approximate_sync", True),
    ):
        (result,) = driver.set_parameters(**{name: value})
        assert not result.successful, name
        # declared read_only: rclpy refuses before the node's own check
        assert result.reason == f"Trying to set a read-only parameter: {name}.", result.reason
    (result,) = driver.set_parameters(points_stride=0)  # out of the declared range
    assert not result.successful and "points_stride" in result.reason
    (result,) = driver.set_parameters(min_confidence=1.5)
    assert not result.successful and "min_confidence" in result.reason
    (result,) = driver.set_parameters(device="cpu")  # read only, even at the running value
    assert not result.successful
    assert driver.get_parameters(*names) == before
    frame = make_frame(driver.next_stamp(), seed=10)
    driver.publish(frame)
    driver.wait_outputs(frame.stamp_ns)


def test_ctrl_c_stops_the_node_cleanly(live: Live) -> None:
    """Runs last in this module: it stops the shared node."""
    assert live.node.stop() == 0, live.node.text()[-4000:]
    log = live.node.text()
    assert "Traceback" not in log, log[-4000:]
    assert live.node.lines("ERROR", since=live.log_offset) == [], "errors logged for good input"
