"""The node's main() treats a Ctrl-C that lands while rclpy is waiting or publishing as a normal
stop: the signal handler shuts the context down and the call under way fails with rclpy's
RCLError ("context is not valid"); that must exit 0, and the same error while the context is
still valid must not be swallowed."""

from __future__ import annotations

import os

import pytest
import rclpy

from stereo_semantic_ros.ros import node as node_module

ARGS = ["--ros-args", "-p", "weights:=''", "-p", "max_disparity:=16", "-p", "device:=cpu"]


@pytest.fixture(autouse=True)
def _local_dds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", "116")
    assert os.environ["ROS_DOMAIN_ID"] == "116"


def test_ctrl_c_during_spin_is_a_clean_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    def spin_then_signal(self) -> None:
        rclpy.shutdown()  # what rclpy's SIGINT handler does
        raise node_module.RCLError("failed to create guard condition: context is not valid")

    monkeypatch.setattr(node_module.SingleThreadedExecutor, "spin", spin_then_signal)
    assert node_module.main(ARGS) == 0


def test_an_rcl_error_while_running_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_spin(self) -> None:
        raise node_module.RCLError("something else went wrong")

    monkeypatch.setattr(node_module.SingleThreadedExecutor, "spin", broken_spin)
    with pytest.raises(node_module.RCLError, match="something else"):
        node_module.main(ARGS)
    assert not rclpy.ok()  # main still shut rclpy down
