"""The live node's guards: non-finite output, the input bound, OOM, frame ids, totals that add up.

The node runs in this process (its own rclpy context on domain 114) so that a test can put a real
torch module around its network: one that writes a NaN into the disparity for one frame, or
raises torch's out-of-memory error for one frame as a GPU's caching allocator does (CI has no
GPU, so this stands in for one). Everything else is real: the :class:`node_harness.Driver`
publishes frames over DDS and records outputs, /diagnostics and the node's /rosout lines.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from node_harness import Driver, Frame, camera_info, diagnostic_values, make_frame
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from spoilt_networks import OutOfMemoryOnce, Spoiled

from stereo_semantic_ros.ros.node import StereoSemanticNode

DOMAIN_ID = 114
BOUND = 64 * 32  # max_input_pixels: the harness's 64x32 frames fit, 128x64 ones do not


class InProcessNode:
    """``StereoSemanticNode`` in its own context, spun by a background executor."""

    def __init__(self, domain_id: int = DOMAIN_ID, **parameters: Any) -> None:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        values = {"device": "cpu", "weights": "", "max_disparity": 16, **parameters}
        self.node = StereoSemanticNode(
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # the context was shut down under the executor
            if self.context.ok():
                raise

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=10)


class Live:
    """The node, the driver and the node's log lines (its stderr, through pytest's capfd)."""

    def __init__(self, node: InProcessNode, driver: Driver) -> None:
        self.node, self.driver = node, driver
        self.capfd: pytest.CaptureFixture[str] | None = None
        self._text = ""

    def _read(self) -> str:
        if self.capfd is not None:
            self._text += self.capfd.readouterr().err
        return self._text

    def lines(self, level: str, since: int = 0) -> list[str]:
        """Log lines after character offset ``since`` of the given level (ERROR, WARN)."""
        return [ln for ln in self._read()[since:].splitlines() if ln.startswith(f"[{level}]")]

    def mark(self) -> int:
        return len(self._read())


def _live(domain_id: int = DOMAIN_ID, **parameters: Any) -> Iterator[Live]:
    node = InProcessNode(domain_id, **parameters)
    driver = None
    try:
        driver = Driver(domain_id)
        live = Live(node, driver)
        driver.subscribe_outputs()
        driver.wait_for(
            lambda: driver.input_subscriptions() == [1, 1, 1, 1], 60, "the node's subscriptions"
        )
        driver.warm_up()
        yield live
    finally:
        if driver is not None:
            driver.close()
        node.close()


@pytest.fixture(scope="module")
def live_node() -> Iterator[Live]:
    yield from _live(max_input_pixels=BOUND)


@pytest.fixture
def live(live_node: Live, capfd: pytest.CaptureFixture[str]) -> Iterator[Live]:
    live_node.capfd = capfd
    yield live_node
    live_node.capfd = None


def _drop_once(live: Live, bad: Frame, reason: str, *words: str) -> dict[str, str]:
    """Send ``bad``, expect one ERROR naming ``reason`` and no output for it, then a good frame
    answered; returns the first diagnostics that counted the drop."""
    driver = live.driver
    before = driver.fresh_diagnostics()
    seen = len(driver.diagnostics)
    mark = live.mark()
    driver.publish(bad)
    driver.wait_for(lambda: live.lines("ERROR", mark), 30, f"the {reason} error")
    good = make_frame(driver.next_stamp(), seed=5)
    driver.publish(good)
    driver.wait_outputs(good.stamp_ns)
    (line,) = live.lines("ERROR", mark)
    assert f"({reason})" in line and "dropped" in line, line
    for word in words:
        assert word in line, f"{word!r} missing from: {line}"
    assert bad.stamp_ns not in driver.all_stamps()

    def counted() -> dict[str, str] | None:
        for array in driver.diagnostics[seen:]:
            values = diagnostic_values(array)
            if values and int(values[f"dropped_{reason}"]) > int(before[f"dropped_{reason}"]):
                return values
        return None

    values = driver.wait_for(counted, 10, f"diagnostics counting the {reason} drop")
    assert int(values[f"dropped_{reason}"]) == int(before[f"dropped_{reason}"]) + 1
    assert int(values["dropped_pipeline_error"]) == 0, values
    return values


def test_non_finite_network_output_is_never_published(live: Live) -> None:
    pipeline = live.node.node.runtime.pipeline
    network = pipeline.model
    pipeline.model = Spoiled(network, "disparity", math.nan)  # NaN in one pixel, one frame
    try:
        bad = make_frame(live.driver.next_stamp(), seed=1)
        values = _drop_once(live, bad, "non_finite_output", "non-finite", "disparity 1 of")
    finally:
        pipeline.model = network
    # the first status that counts it is an ERROR, with the reason in its message
    assert values["_level"] == str(int.from_bytes(DiagnosticStatus.ERROR, "little")), values
    assert "non-finite" in values["_message"], values


def test_out_of_memory_drops_the_frame_and_the_node_goes_on(live: Live) -> None:
    pipeline = live.node.node.runtime.pipeline
    network = pipeline.model
    # stands in for a GPU running out of memory (CI has none): torch's own OOM error
    pipeline.model = OutOfMemoryOnce(network)
    try:
        bad = make_frame(live.driver.next_stamp(), seed=2)
        values = _drop_once(live, bad, "out_of_memory", "Tried to allocate 8.20 GiB", "64x32")
    finally:
        pipeline.model = network
    assert values["_level"] == str(int.from_bytes(DiagnosticStatus.ERROR, "little")), values


def test_a_frame_above_max_input_pixels_is_dropped_with_the_memory_figure(live: Live) -> None:
    bad = make_frame(live.driver.next_stamp(), width=128, height=64)
    values = _drop_once(
        live, bad, "too_large", "128x64", f"max_input_pixels {BOUND}", "B/pixel", "downscale"
    )
    assert values["max_input_pixels"] == str(BOUND) and values["oversize_policy"] == "drop"


def test_an_image_with_another_cameras_info_is_dropped(live: Live) -> None:
    bad = make_frame(live.driver.next_stamp())
    bad.left_info = camera_info(bad.stamp_ns, "some_other_camera", bad.width, bad.height, 0.0)
    _drop_once(live, bad, "frame_id_mismatch", "left/image_rect", "some_other_camera")


def test_left_and_right_optical_frames_may_differ(live: Live) -> None:
    """Each camera of a stereo pair has its own optical frame (the harness's frames do)."""
    frame = make_frame(live.driver.next_stamp(), seed=7)
    assert frame.left.header.frame_id != frame.right.header.frame_id
    live.driver.publish(frame)
    live.driver.wait_outputs(frame.stamp_ns)


def _settled(live: Live) -> dict[str, str]:
    """Diagnostics once nothing is in flight."""
    return live.driver.wait_for(
        lambda: (d := live.driver.fresh_diagnostics()) and d["frames_in_flight"] == "0" and d,
        20,
        "no frame in flight",
    )


def test_received_equals_published_plus_dropped(live: Live) -> None:
    driver = live.driver
    before = _settled(live)
    sent: list[int] = []

    def send(frame: Frame, parts: tuple[str, ...] = ("left_info", "right_info", "left", "right")):
        driver.publish(frame, parts=parts)
        sent.append(frame.stamp_ns)
        return frame

    good = send(make_frame(driver.next_stamp(), seed=8))
    driver.wait_outputs(good.stamp_ns)
    send(make_frame(driver.next_stamp()), parts=("left",))  # no right image: no_partner
    send(make_frame(driver.next_stamp()), parts=("right",))  # no left image: no_partner
    mismatch = make_frame(driver.next_stamp())
    mismatch.right_info = camera_info(mismatch.stamp_ns, "x", 64, 32, -5.0)
    send(mismatch)
    # one set at a time: a set still pending when the next arrives is replaced by it (busy)
    driver.wait_for(
        lambda: (
            int(driver.fresh_diagnostics()["dropped_frame_id_mismatch"])
            > int(before["dropped_frame_id_mismatch"])
        ),
        20,
        "the frame_id mismatch to be processed",
    )
    send(make_frame(driver.next_stamp(), encoding="nv21"))  # bad_encoding
    driver.wait_for(
        lambda: (
            int(driver.fresh_diagnostics()["dropped_bad_encoding"])
            > int(before["dropped_bad_encoding"])
        ),
        20,
        "the bad frames to be processed",
    )
    last = send(make_frame(driver.next_stamp(), seed=9))  # pushes the lonely images out
    driver.wait_outputs(last.stamp_ns)
    after = _settled(live)

    def delta(key: str) -> int:
        return int(after[key]) - int(before[key])

    drops = {k[len("dropped_") :]: delta(k) for k in after if k.startswith("dropped_")}
    assert delta("frames_received") == len(sent), (after, drops)
    assert delta("frames_published") == 2
    assert drops["no_partner"] == 2 and drops["frame_id_mismatch"] == 1, drops
    assert drops["bad_encoding"] == 1, drops
    assert delta("dropped_total") == len(sent) - 2
    # and the absolute totals of the whole session add up too
    total = (
        int(after["frames_published"])
        + int(after["dropped_total"])
        + int(after["skipped_no_subscribers"])
    )
    assert int(after["frames_received"]) == total, after
    reasons = sum(
        int(v) for k, v in after.items() if k.startswith("dropped_") and k != "dropped_total"
    )
    assert reasons == int(after["dropped_total"]), after


def test_downscale_policy_publishes_the_large_frame_at_full_size(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # a domain of its own: the module's live node may still be up on DOMAIN_ID, and its
    # subscriptions would count twice (and it would answer the big frame too)
    for live in _live(DOMAIN_ID + 1, max_input_pixels=BOUND, oversize_policy="downscale"):
        live.capfd = capfd
        driver = live.driver
        mark = live.mark()
        big = make_frame(driver.next_stamp(), width=128, height=64, seed=3)
        driver.publish(big)
        got = driver.wait_outputs(big.stamp_ns)
        assert (got["disparity"].image.width, got["disparity"].image.height) == (128, 64)
        assert (got["points2"].width, got["points2"].height) == (128, 64)
        warnings = [ln for ln in live.lines("WARN", mark) if "max_input_pixels" in ln]
        assert len(warnings) == 1 and "128x64" in warnings[0] and "0.500" in warnings[0]
        assert live.lines("ERROR", mark) == []
        # DisparityImage range follows the scale the frame ran at: 16 px at scale 0.5
        assert got["disparity"].max_disparity == pytest.approx(32.0)
