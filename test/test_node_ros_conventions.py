"""What a ROS 2 user porting from stereo_image_proc meets first, over real DDS.

Two installed nodes run in two namespaces (two cameras), one of them with a parameter file
written for stereo_image_proc. The test process checks, through the nodes' own parameter
services and the graph:

* start-up parameters are declared ``read_only`` (rqt shows them as fixed) and a change at
  run time is refused with a reason, live ones are not;
* stereo_image_proc's ``approximate_sync_tolerance_seconds`` and ``use_system_default_qos`` set
  ``sync_slop`` and ``qos_reliability`` (reliable input subscriptions), and a file that gives
  both names different values is refused at start-up naming both;
* each node's /diagnostics status carries its fully qualified name, so the two cameras'
  statuses are told apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_harness import NODE, Driver, NodeProcess, _parameter_msg, _parameter_value
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from stereo_semantic_ros.frames.diagnostics import status_name
from stereo_semantic_ros.ros.settings import LIVE_PARAMETERS, SPECS

DOMAIN_ID = 112
PORTED = """\
# as written for stereo_image_proc's disparity_node
/**:
  ros__parameters:
    approximate_sync: true
    approximate_sync_tolerance_seconds: 0.05
    use_system_default_qos: true
    queue_size: 7
    image_transport: raw
"""


class ParameterClient:
    """SetParameters / GetParameters / DescribeParameters of one node, on the driver's node."""

    def __init__(self, driver: Driver, node: str) -> None:
        self.driver = driver
        make = driver.node.create_client
        self._set = make(SetParameters, f"{node}/set_parameters")
        self._get = make(GetParameters, f"{node}/get_parameters")
        self._describe = make(DescribeParameters, f"{node}/describe_parameters")

    def _call(self, client: Any, request: Any) -> Any:
        self.driver.wait_for(client.service_is_ready, 60, f"service {client.srv_name}")
        future = client.call_async(request)
        self.driver.wait_for(future.done, 20, f"reply of {client.srv_name}")
        return future.result()

    def set(self, name: str, value: Any) -> Any:
        request = SetParameters.Request(parameters=[_parameter_msg(name, value)])
        (result,) = self._call(self._set, request).results
        return result

    def get(self, *names: str) -> dict[str, Any]:
        response = self._call(self._get, GetParameters.Request(names=list(names)))
        return {n: _parameter_value(v) for n, v in zip(names, response.values, strict=True)}

    def read_only(self, *names: str) -> dict[str, bool]:
        response = self._call(self._describe, DescribeParameters.Request(names=list(names)))
        return {d.name: d.read_only for d in response.descriptors}


@pytest.fixture(scope="module")
def cameras(
    colcon_build: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, NodeProcess], Driver]]:
    prefix = colcon_build.require_success()
    tmp = tmp_path_factory.mktemp("ros_conventions")
    ported = tmp / "ported.yaml"
    ported.write_text(PORTED)
    site = colcon_build.site_packages()
    nodes: dict[str, NodeProcess] = {}
    driver = None
    try:
        nodes["/cam_a"] = NodeProcess(
            prefix,
            site,
            DOMAIN_ID,
            tmp / "a.log",
            ("-r", "__ns:=/cam_a", "--params-file", str(ported)),
        )
        nodes["/cam_b"] = NodeProcess(
            prefix, site, DOMAIN_ID, tmp / "b.log", ("-r", "__ns:=/cam_b")
        )
        driver = Driver(DOMAIN_ID, lambda: nodes["/cam_a"].text() + nodes["/cam_b"].text())
        yield nodes, driver
    finally:
        if driver is not None:
            driver.close()
        for node in nodes.values():
            node.stop()


def test_diagnostics_name_each_node_by_its_fully_qualified_name(cameras: tuple) -> None:
    _, driver = cameras

    def names() -> set[str] | None:
        seen = {status.name for array in list(driver.diagnostics) for status in array.status}
        return seen if len(seen) >= 2 else None

    seen = driver.wait_for(names, 90, "both nodes' /diagnostics")
    assert seen == {
        status_name(f"/cam_a/{NODE}"),
        status_name(f"/cam_b/{NODE}"),
    }
    assert status_name(f"/cam_a/{NODE}") == f"/cam_a/{NODE}: stereo pipeline"


def test_start_up_parameters_are_read_only_and_refused_with_a_reason(cameras: tuple) -> None:
    _, driver = cameras
    params = ParameterClient(driver, f"/cam_b/{NODE}")
    flags = params.read_only(*SPECS)
    assert flags == {name: name not in LIVE_PARAMETERS for name in SPECS}
    before = params.get("device", "max_disparity", "image_transport")
    for name, value in (("device", "cuda"), ("max_disparity", 32), ("image_transport", "raw")):
        result = params.set(name, value)
        assert not result.successful, name
        assert result.reason == f"Trying to set a read-only parameter: {name}.", result.reason
    assert params.get("device", "max_disparity", "image_transport") == before
    # a live one still changes, and a bad live value is refused with a reason (rclpy's, from
    # the declared range)
    assert params.set("points_stride", 2).successful
    assert params.get("points_stride") == {"points_stride": 2}
    refused = params.set("min_confidence", 1.5)
    assert not refused.successful
    assert refused.reason == "Parameter min_confidence out of range Min: 0.0, Max: 1.0, value: 1.5"


def test_stereo_image_proc_names_set_our_parameters(cameras: tuple) -> None:
    nodes, driver = cameras
    params = ParameterClient(driver, f"/cam_a/{NODE}")
    values = params.get("sync_slop", "approximate_sync", "qos_reliability", "queue_size")
    assert values == {
        "sync_slop": 0.05,
        "approximate_sync": True,
        "qos_reliability": "reliable",
        "queue_size": 7,
    }
    # the aliases stay visible, read only, with the file's values
    assert params.get("approximate_sync_tolerance_seconds", "use_system_default_qos") == {
        "approximate_sync_tolerance_seconds": 0.05,
        "use_system_default_qos": True,
    }
    assert params.read_only("approximate_sync_tolerance_seconds", "use_system_default_qos") == {
        "approximate_sync_tolerance_seconds": True,
        "use_system_default_qos": True,
    }
    assert "approximate_sync_tolerance_seconds: 0.05 (stereo_image_proc's name) sets sync_slop" in (
        nodes["/cam_a"].text()
    )
    # use_system_default_qos: true -> reliable input subscriptions (once an output is wanted)
    listener = driver.node.create_subscription(
        Image, "/cam_a/semantic/labels", lambda _msg: None, QoSProfile(depth=10)
    )

    def input_qos() -> list[Any] | None:
        infos = [
            i
            for topic in ("/cam_a/left/image_rect", "/cam_a/right/camera_info")
            for i in driver.node.get_subscriptions_info_by_topic(topic)
        ]
        return infos if len(infos) == 2 else None

    try:
        infos = driver.wait_for(input_qos, 30, "cam_a's input subscriptions")
    finally:
        driver.node.destroy_subscription(listener)
    assert {i.qos_profile.reliability for i in infos} == {ReliabilityPolicy.RELIABLE}


def test_an_alias_and_its_target_with_different_values_are_refused(
    colcon_build: Any, tmp_path: Path
) -> None:
    prefix = colcon_build.require_success()
    ported = tmp_path / "both.yaml"
    ported.write_text(PORTED + "    sync_slop: 0.2\n")
    node = NodeProcess(
        prefix,
        colcon_build.site_packages(),
        DOMAIN_ID + 1,
        tmp_path / "node.log",
        ("--params-file", str(ported)),
    )
    try:
        assert node.wait_exit(90) == 1, node.text()[-3000:]
    finally:
        node.stop()
    (line,) = node.lines("FATAL")
    assert "cannot start" in line
    assert "approximate_sync_tolerance_seconds (stereo_image_proc's name for sync_slop)" in line
    assert "sync_slop is set to 0.2 as well; keep only sync_slop" in line
