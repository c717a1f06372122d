"""stereo-semantic-play feeds the live node from a rosbag2 and stereo-semantic-echo reads its
outputs: three real processes talking over localhost DDS, no ROS install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stereo_semantic_ros.bagtools.bagio import open_bag
from stereo_semantic_ros.bagtools.make_bag import main as make_bag
from stereo_semantic_ros.ros.play import PlayError, message_class, parse_remaps
from stereo_semantic_ros.soak import NodeProcess

REPO = Path(__file__).resolve().parents[1]
DOMAIN = 81
INPUTS = ["/left/image_rect", "/right/image_rect", "/left/camera_info", "/right/camera_info"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(DOMAIN),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        PYTHONUNBUFFERED="1",
    )
    return env


def test_remaps_and_message_types_are_checked():
    assert parse_remaps(["left/image_rect:=/cam/left"]) == {"/left/image_rect": "/cam/left"}
    with pytest.raises(PlayError, match="FROM:=TO"):
        parse_remaps(["/a=/b"])
    assert message_class("sensor_msgs/msg/Image").__name__ == "Image"
    with pytest.raises(PlayError, match="not importable"):
        message_class("no_such_pkg/msg/Thing")


def test_play_feeds_the_live_node_and_echo_reads_its_outputs(tmp_path):
    bag = tmp_path / "bag"
    assert (
        make_bag(
            ["--out", str(bag), "--count", "4", "--width", "128", "--height", "64"]
            + ["--rate", "2", "--no-progress"]
        )
        == 0
    )
    reader = open_bag(bag)
    stamps = sorted(
        {
            t
            for c, t, _ in reader.messages(
                connections=[c for c in reader.connections if c.topic == "/left/image_rect"]
            )
        }
    )
    reader.close()
    assert len(stamps) == 4

    node = NodeProcess(
        REPO / "config" / "esp_joint.yaml", DOMAIN, tmp_path / "node.log", ["device:=cpu"]
    )
    echo_json = tmp_path / "echo.json"
    echo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stereo_semantic_ros.ros.echo",
            "--topics",
            "disparity",
            "depth/image_rect",
        ]
        + ["--count", "4", "--duration", "150", "--quiet", "--json", str(echo_json)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # slow enough for a busy 2-core CPU to run the network on every frame
        played = subprocess.run(
            [sys.executable, "-m", "stereo_semantic_ros.ros.play", str(bag), "--rate", "0.25"]
            + ["--topics", *INPUTS, "--wait", "90", "--no-progress"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert played.returncode == 0, played.stderr
        assert "published 16 messages" in played.stdout
        for topic in INPUTS:
            assert f"{topic} " in played.stdout
        out, _ = echo.communicate(timeout=170)
    finally:
        if echo.poll() is None:
            echo.kill()
        node.stop()
    summary = json.loads(echo_json.read_text())
    assert summary["disparity"]["messages"] >= 1, (out, node.tail())
    assert summary["depth/image_rect"]["messages"] >= 1
    last = summary["disparity"]["last"]
    assert round(last["stamp"] * 1e9) in stamps  # stamped with a bag frame's header
    assert last["size"] == "128x64" and last["valid_pct"] > 50
