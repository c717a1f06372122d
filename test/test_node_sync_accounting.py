"""The installed node counts every lost input frame, with its reason, on either synchroniser.

The node synchronises with ``message_filters`` where it is importable (a vehicle with ROS) and
with its own synchroniser elsewhere; both must give the same drop reasons, the same ``sync_*``
counters and a frame ledger that balances (nothing left in flight once the inputs are quiet).
One scripted sequence checks that on whichever back end this machine has: without a ROS install
(CI) the built-in one; run with the ros2/message_filters sources on PYTHONPATH (the recipe is
in test_message_filters_path.py) the node takes the message_filters path, and the test insists
on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from node_harness import Driver, NodeProcess, make_frame

from stereo_semantic_ros.ros.input_sync import message_filters_usable

DOMAIN_ID = 121
MS = 1_000_000


@pytest.fixture(scope="module")
def live(colcon_build: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    prefix = colcon_build.require_success()
    log = tmp_path_factory.mktemp("node_sync_accounting") / "node.log"
    node = NodeProcess(prefix, colcon_build.site_packages(), DOMAIN_ID, log)
    driver = None
    try:
        driver = Driver(DOMAIN_ID, node.text)
        driver.subscribe_outputs()
        driver.wait_for(
            lambda: driver.input_subscriptions() == [1, 1, 1, 1], 90, "the node's subscriptions"
        )
        driver.warm_up()
        yield node, driver
    finally:
        if driver is not None:
            driver.close()
        node.stop()


def _wait_counter(driver: Driver, key: str, at_least: int, what: str) -> dict[str, str]:
    return driver.wait_for(
        lambda: (d := driver.latest_diagnostics()) and int(d[key]) >= at_least and d, 20, what
    )


def test_drop_reasons_counters_and_ledger_on_this_back_end(live: tuple) -> None:
    node, driver = live
    expected_backend = "message_filters" if not message_filters_usable() else "stereo_semantic_ros"
    before = driver.fresh_diagnostics()
    assert f"({expected_backend}" in before["sync"], before["sync"]

    def delta(values: dict[str, str], key: str) -> int:
        return int(values[key]) - int(before[key])

    # 1. both images, no camera_info; 2. a left image alone
    no_info = make_frame(driver.next_stamp())
    driver.publish(no_info, parts=("left", "right"))
    _wait_counter(driver, "sync_received_1", int(before["sync_received_1"]) + 1, "the images")
    lone = make_frame(driver.next_stamp())
    driver.publish(lone, parts=("left",))
    _wait_counter(driver, "sync_received_0", int(before["sync_received_0"]) + 2, "the lone left")
    # 3. a good frame: the set supersedes both, which are reported at once
    good = make_frame(driver.next_stamp(), seed=5)
    driver.publish(good)
    driver.wait_outputs(good.stamp_ns)
    # 4. a left image 50 ms older than the last set (not a time jump): stale on arrival
    stale = make_frame(good.stamp_ns - 50 * MS)
    driver.publish(stale, parts=("left",))
    _wait_counter(driver, "sync_dropped_stale", int(before["sync_dropped_stale"]) + 1, "stale")
    last = make_frame(driver.next_stamp(), seed=6)
    driver.publish(last)
    driver.wait_outputs(last.stamp_ns)

    values = driver.wait_for(
        lambda: (
            (d := driver.fresh_diagnostics())
            and int(d["frames_in_flight"]) == 0
            and int(d["frames_published"]) >= int(before["frames_published"]) + 2
            and d
        ),
        20,
        "diagnostics with every frame accounted for",
    )
    assert {
        reason: delta(values, f"dropped_{reason}")
        for reason in ("no_camera_info", "no_partner", "stale_stamp", "busy", "input_reset")
    } == {"no_camera_info": 1, "no_partner": 1, "stale_stamp": 1, "busy": 0, "input_reset": 0}
    assert delta(values, "sync_dropped_superseded") == 3  # two images of 1., the left of 2.
    assert delta(values, "sync_dropped_stale") == 1
    assert delta(values, "sync_emitted") == 2
    assert delta(values, "frames_received") == 5  # no_info, lone, good, stale, last
    assert int(values["frames_received"]) == (
        int(values["frames_published"])
        + int(values["dropped_total"])
        + int(values["skipped_no_subscribers"])
        + int(values["frames_in_flight"])
    )
    if expected_backend == "message_filters":
        assert int(values["sync_mirror_misses"]) == 0
    errors = [ln for ln in node.lines("ERROR") if "Frame dropped" in ln]
    for reason in ("no_camera_info", "no_partner", "stale_stamp"):
        assert any(f"({reason})" in ln for ln in errors), (reason, errors)
    print(f"back end: {values['sync']}")
    print({k: v for k, v in values.items() if k.startswith(("sync_", "dropped_", "frames_"))})
