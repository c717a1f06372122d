"""Bad input to the live node: one clear error each, no output for the frame, the node goes on.

Same set-up as test_node_integration.py (the installed console script with the shipped
parameter file, real DDS), on its own domain. Each bad frame must give exactly one ERROR line
naming its reason and stamp, no output with its stamp, one count under its reason in
/diagnostics, and the good frame sent after it must be answered. Start-up refusals run the node
with a bad parameter and expect one clear fatal message and exit code 1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from node_harness import Driver, Frame, NodeProcess, camera_info, make_frame

DOMAIN_ID = 54


@dataclass
class Live:
    node: NodeProcess
    driver: Driver


@pytest.fixture(scope="module")
def live(colcon_build: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    prefix = colcon_build.require_success()
    log = tmp_path_factory.mktemp("node_bad_input") / "node.log"
    node = NodeProcess(prefix, colcon_build.site_packages(), DOMAIN_ID, log)
    driver = None
    try:
        driver = Driver(DOMAIN_ID, node.text)
        driver.subscribe_outputs()
        driver.wait_for(
            lambda: driver.input_subscriptions() == [1, 1, 1, 1], 90, "the node's subscriptions"
        )
        driver.warm_up()
        yield Live(node, driver)
    finally:
        if driver is not None:
            driver.close()
        node.stop()


def _zero_baseline(frame: Frame) -> Frame:
    frame.right_info = camera_info(frame.stamp_ns, "right", frame.width, frame.height, tx=0.0)
    return frame


def _no_camera_info(live: Live, frame: Frame) -> None:
    driver = live.driver
    before = driver.fresh_diagnostics()
    driver.publish(frame, parts=("left", "right"))
    # the images must reach the synchroniser before the next set supersedes them (otherwise
    # they would arrive late and count as stale); its counters in /diagnostics show that
    driver.wait_for(
        lambda: (
            (d := driver.latest_diagnostics())
            and all(int(d[k]) > int(before[k]) for k in ("sync_received_0", "sync_received_1"))
        ),
        20,
        "the node to receive the images without camera_info",
    )


def assert_counted_once(live: Live, reason: str) -> None:
    """/diagnostics counts the frame under ``reason`` (each reason is provoked once here)."""
    driver = live.driver
    values = driver.wait_for(
        lambda: (d := driver.latest_diagnostics()) and int(d[f"dropped_{reason}"]) >= 1 and d,
        10,
        f"diagnostics counting the {reason} drop",
    )
    assert int(values[f"dropped_{reason}"]) == 1, values
    assert int(values["dropped_pipeline_error"]) == 0, values
    assert live.node.proc.poll() is None, "the node exited"


# reason -> (how to make the bad frame, words the log line must contain, how to send it)
BAD_INPUTS: dict[str, tuple[Callable[[int], Frame], tuple[str, ...], Any]] = {
    "size_mismatch": (
        lambda stamp: make_frame(stamp, right_width=48),
        ("64x32", "48x32", "same rectification"),
        None,
    ),
    "bad_encoding": (
        lambda stamp: make_frame(stamp, encoding="nv21"),
        ("left/image_rect", "nv21", "supported: rgb8"),
        None,
    ),
    "bad_calibration": (
        lambda stamp: _zero_baseline(make_frame(stamp)),
        ("right camera_info", "zero stereo baseline", "-fx * baseline"),
        None,
    ),
    "no_camera_info": (
        lambda stamp: make_frame(stamp),
        ("no left/camera_info and no right/camera_info", "same stamp", "header stamp"),
        _no_camera_info,
    ),
}


@pytest.mark.parametrize("reason", list(BAD_INPUTS))
def test_bad_frame_is_dropped_and_the_next_good_frame_answered(live: Live, reason: str) -> None:
    make_bad, words, send = BAD_INPUTS[reason]
    driver = live.driver
    start = len(live.node.text())
    bad = make_bad(driver.next_stamp())
    if send is None:
        driver.publish(bad)
        # wait for the drop: a good set sent at once could replace the bad one in the worker's
        # mailbox before the worker took it (then it would be dropped as busy instead)
        driver.wait_for(lambda: live.node.lines("ERROR", since=start), 20, f"the {reason} error")
    else:
        send(live, bad)
    good = make_frame(driver.next_stamp(), seed=3)
    driver.publish(good)
    driver.wait_outputs(good.stamp_ns)
    errors = live.node.lines("ERROR", since=start)
    assert len(errors) == 1, errors
    (line,) = errors
    assert f"({reason})" in line and "dropped" in line
    sec, nsec = divmod(bad.stamp_ns, 1_000_000_000)
    assert f"{sec}.{nsec:09d}" in line
    for word in words:
        assert word in line, f"{word!r} missing from: {line}"
    assert bad.stamp_ns not in driver.all_stamps()
    assert_counted_once(live, reason)


def test_stale_stamp_is_dropped(live: Live) -> None:
    driver = live.driver
    first = make_frame(driver.next_stamp(), seed=4)
    driver.publish(first)
    driver.wait_outputs(first.stamp_ns)
    start = len(live.node.text())
    stale = make_frame(first.stamp_ns - 50_000_000, seed=4)  # 50 ms older: not a time jump
    driver.publish(stale)
    driver.wait_for(lambda: live.node.lines("ERROR", since=start), 20, "the stale_stamp error")
    good = make_frame(driver.next_stamp(), seed=4)
    driver.publish(good)
    driver.wait_outputs(good.stamp_ns)
    errors = live.node.lines("ERROR", since=start)
    assert len(errors) == 1 and "(stale_stamp)" in errors[0] and "must increase" in errors[0]
    assert stale.stamp_ns not in driver.all_stamps()
    assert_counted_once(live, "stale_stamp")


def test_backwards_time_jump_resets_the_synchroniser(live: Live) -> None:
    """A bag that loops: stamps jump back by more than 1 s. Not stale frames, a new start."""
    driver = live.driver
    first = make_frame(driver.next_stamp(), seed=11)
    driver.publish(first)
    driver.wait_outputs(first.stamp_ns)
    start = len(live.node.text())
    jumped = make_frame(first.stamp_ns - 30_000_000_000, seed=11)  # 30 s back
    driver.publish(jumped)
    driver.wait_outputs(jumped.stamp_ns)
    warnings = [ln for ln in live.node.lines("WARN", since=start) if "resetting" in ln]
    assert len(warnings) == 1 and "30.000 s older than the last set" in warnings[0], warnings
    assert live.node.lines("ERROR", since=start) == []
    after = make_frame(driver.next_stamp(), seed=11)
    driver.publish(after)
    driver.wait_outputs(after.stamp_ns)


def test_images_without_camera_info_warn_that_no_set_forms(live: Live) -> None:
    """A stream with no camera_info: the no-set watchdog warns (the only signal that
    message_filters would give), and the frames pushed out of the queue are counted."""
    driver = live.driver
    start = len(live.node.text())
    before = int(driver.fresh_diagnostics()["dropped_no_camera_info"])
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:  # 5 Hz, images only
        driver.publish(make_frame(driver.next_stamp()), parts=("left", "right"))
        time.sleep(0.2)
    warnings = driver.wait_for(
        lambda: [ln for ln in live.node.lines("WARN", since=start) if "no synchronised" in ln],
        10,
        "the no-set warning",
    )
    assert len(warnings) == 1, warnings
    assert "nothing arrives on left/camera_info, right/camera_info" in warnings[0]
    errors = live.node.lines("ERROR", since=start)
    assert errors and all("(no_camera_info)" in line for line in errors), errors
    good = make_frame(driver.next_stamp(), seed=6)
    driver.publish(good)
    driver.wait_outputs(good.stamp_ns)
    values = driver.wait_for(
        lambda: (
            (d := driver.latest_diagnostics())
            and int(d["dropped_no_camera_info"]) >= before + 10
            and d
        ),
        10,
        "diagnostics counting the frames without camera_info",
    )
    assert int(values["dropped_no_partner"]) == 0, values


def _start_up_failure(colcon_build: Any, tmp_path: Path, *args: str) -> tuple[int, str]:
    prefix = colcon_build.require_success()
    node = NodeProcess(
        prefix, colcon_build.site_packages(), DOMAIN_ID, tmp_path / "node.log", extra_args=args
    )
    try:
        code = node.wait_exit(timeout=90)
    finally:
        node.stop()
    return code, node.text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("-p", "architecture:=psmnet"),
            r"architecture must be one of corr_mtl, esp_joint, hybridnet, pseudo_mtl",
        ),
        (
            ("-p", "approximate_sync:=true", "-p", "sync_slop:=0.0"),
            r"approximate_sync needs "
            r"sync_slop > 0",
        ),
        (("-p", "device:=gpu"), r"device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ],
    ids=["unregistered_architecture", "approximate_sync_without_slop", "bad_device"],
)
def test_bad_parameter_stops_the_start_with_a_reason(
    colcon_build: Any, tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    code, log = _start_up_failure(colcon_build, tmp_path, *args)
    assert code == 1, log
    fatal = [ln for ln in log.splitlines() if ln.startswith("[FATAL]")]
    assert len(fatal) == 1 and re.search(expected, fatal[0]), log
    assert "Traceback" not in log, log
