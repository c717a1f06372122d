"""The lifecycle node over DDS: transitions driven through its lifecycle services.

``stereo_semantic_lifecycle_node`` runs from the colcon install (tiny untrained network on the
CPU). The test process calls ``/stereo_semantic_node/change_state`` and ``get_state`` as
``ros2 lifecycle set`` or a lifecycle manager would, and checks what each state does on the
graph: publishers after configure only, input subscriptions and outputs only while active,
nothing published after deactivate, publishers gone and the network freed after cleanup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import NODE, OUTPUT_TYPES, Driver, NodeProcess, make_frame
from rclpy.lifecycle import TransitionCallbackReturn

DOMAIN_ID = 110
EXECUTABLE = "stereo_semantic_lifecycle_node"


class Lifecycle:
    """Clients of the node's lifecycle services on the driver's node."""

    def __init__(self, driver: Driver, node: str = f"/{NODE}") -> None:
        self.driver = driver
        self._change = driver.node.create_client(ChangeState, f"{node}/change_state")
        self._get = driver.node.create_client(GetState, f"{node}/get_state")

    def _call(self, client: Any, request: Any, timeout: float = 60.0) -> Any:
        driver = self.driver
        driver.wait_for(client.service_is_ready, 30, f"service {client.srv_name}")
        future = client.call_async(request)
        driver.wait_for(future.done, timeout, f"reply of {client.srv_name}")
        return future.result()

    def state(self) -> str:
        return self._call(self._get, GetState.Request()).current_state.label

    def change(self, transition: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition))
        return self._call(self._change, request).success


def output_publishers(driver: Driver) -> dict[str, int]:
    """Topic -> how many publishers the node has on it (seen by the graph)."""
    return {
        t: len(
            [i for i in driver.node.get_publishers_info_by_topic("/" + t) if i.node_name == NODE]
        )
        for t in OUTPUT_TYPES
    }


def no_outputs_for(driver: Driver, stamp: int, seconds: float) -> bool:
    time.sleep(seconds)
    return not driver.outputs_at(stamp)


@pytest.fixture(scope="module")
def started(colcon_build: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    prefix = colcon_build.require_success()
    log = tmp_path_factory.mktemp("node_lifecycle") / "node.log"
    node = NodeProcess(prefix, colcon_build.site_packages(), DOMAIN_ID, log, executable=EXECUTABLE)
    driver = None
    try:
        driver = Driver(DOMAIN_ID, node.text)
        yield node, driver, Lifecycle(driver)
    finally:
        if driver is not None:
            driver.close()
        node.stop()


def test_transitions_load_process_stop_and_free(started: tuple) -> None:
    node, driver, lifecycle = started
    assert lifecycle.state() == "unconfigured"
    driver.subscribe_outputs()
    time.sleep(1.5)  # discovery: a publisher would show by now
    assert sum(output_publishers(driver).values()) == 0, "publishers before configure"
    assert driver.latest_diagnostics() is None
    assert "architecture" not in node.text(), "the network was loaded before configure"

    # configure: the network is loaded and the publishers made; nothing is subscribed yet
    assert lifecycle.change(Transition.TRANSITION_CONFIGURE)
    assert lifecycle.state() == "inactive"
    assert "architecture esp_joint" in node.text()
    driver.wait_for(
        lambda: set(output_publishers(driver).values()) == {1}, 20, "the node's publishers"
    )
    values = driver.fresh_diagnostics()
    assert "inactive" in values["_message"] and values["inputs_subscribed"] == "false"
    time.sleep(1.0)
    assert driver.input_subscriptions() == [0, 0, 0, 0]

    # activate: inputs subscribed (outputs have subscribers), every output flows
    assert lifecycle.change(Transition.TRANSITION_ACTIVATE)
    assert lifecycle.state() == "active"
    driver.wait_for(
        lambda: driver.input_subscriptions() == [1, 1, 1, 1], 20, "the node's subscriptions"
    )
    driver.warm_up()
    frame = make_frame(driver.next_stamp(), seed=11)
    driver.publish(frame)
    assert set(driver.wait_outputs(frame.stamp_ns)) == set(OUTPUT_TYPES)

    # deactivate: unsubscribed, nothing more comes out; the publishers stay
    assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)
    assert lifecycle.state() == "inactive"
    driver.wait_for(
        lambda: driver.input_subscriptions() == [0, 0, 0, 0], 20, "the node to unsubscribe"
    )
    silent = make_frame(driver.next_stamp(), seed=12)
    driver.publish(silent)
    assert no_outputs_for(driver, silent.stamp_ns, 2.0)
    assert set(output_publishers(driver).values()) == {1}
    values = driver.fresh_diagnostics()
    assert "inactive" in values["_message"] and values["inputs_subscribed"] == "false"

    # activate again: the network is still loaded, outputs flow at once
    mark = len(node.text())
    assert lifecycle.change(Transition.TRANSITION_ACTIVATE)
    driver.wait_for(
        lambda: driver.input_subscriptions() == [1, 1, 1, 1], 20, "the node's subscriptions"
    )
    again = driver.warm_up(timeout=30)
    assert set(driver.outputs_at(again.stamp_ns)) == set(OUTPUT_TYPES)
    assert "architecture" not in node.text()[mark:], "activate reloaded the network"

    # cleanup (from inactive): publishers destroyed, the network freed
    assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)
    assert lifecycle.change(Transition.TRANSITION_CLEANUP)
    assert lifecycle.state() == "unconfigured"
    assert "network released" in node.text()
    driver.wait_for(
        lambda: sum(output_publishers(driver).values()) == 0, 20, "the publishers to go"
    )
    seen = len(driver.diagnostics)
    time.sleep(2.0)
    assert not any(d for d in driver.diagnostics[seen:] if d.status), "diagnostics after cleanup"

    # configure again, then shut down from inactive
    assert lifecycle.change(Transition.TRANSITION_CONFIGURE)
    assert lifecycle.state() == "inactive"
    assert lifecycle.change(Transition.TRANSITION_INACTIVE_SHUTDOWN)
    assert lifecycle.state() == "finalized"
    assert node.text().count("network released") == 2

    assert node.stop() == 0, node.text()[-4000:]
    log = node.text()
    assert "Traceback" not in log, log[-4000:]
    assert node.lines("ERROR") == [], node.lines("ERROR")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_configure_that_cannot_load_fails_with_the_reason_and_stays_unconfigured(
    colcon_build: Any, tmp_path: Any
) -> None:
    """device cuda on a CPU-only machine passes the parameter check (it names a device) but
    cannot load: configure fails, the reason is logged, the node stays unconfigured."""
    prefix = colcon_build.require_success()
    node = NodeProcess(
        prefix,
        colcon_build.site_packages(),
        DOMAIN_ID + 1,
        tmp_path / "node.log",
        ("-p", "device:=cuda"),
        executable=EXECUTABLE,
    )
    driver = None
    try:
        driver = Driver(DOMAIN_ID + 1, node.text)
        lifecycle = Lifecycle(driver)
        assert lifecycle.state() == "unconfigured"
        assert not lifecycle.change(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == "unconfigured"
        (line,) = node.lines("ERROR")
        assert "cannot configure" in line and "no CUDA device is available" in line, line
    finally:
        if driver is not None:
            driver.close()
        assert node.stop() == 0, node.text()[-4000:]


def test_cleanup_lets_go_of_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """After cleanup nothing holds the network any more (on a GPU: its memory can be freed);
    in this process, so that a weak reference can watch the module."""
    import gc
    import weakref

    import rclpy
    from rclpy.parameter import Parameter

    from stereo_semantic_ros.ros.lifecycle_node import StereoSemanticLifecycleNode

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID + 2)
    values = {"device": "cpu", "weights": "", "max_disparity": 16}
    node = StereoSemanticLifecycleNode(
        context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()]
    )
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.runtime is not None and node.runtime.pipeline is not None
        network = weakref.ref(node.runtime.pipeline.model)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.runtime is None
        gc.collect()
        assert network() is None, gc.get_referrers(network())
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
