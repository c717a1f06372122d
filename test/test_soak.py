"""The soak benchmark as a tool: a short run through the live node must report totals that add
up and a JSON with every documented field. Speeds are not asserted (a benchmark, not a timed
test); the 10,000-frame figures live in the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="the soak drives the live node over DDS")

REPO = Path(__file__).resolve().parents[1]
DOMAIN_ID = 74  # other live-node tests use 53..61; the soak's own default is 73
FRAMES = 20


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("soak")
    command = [
        sys.executable,
        "-m",
        "stereo_semantic_ros.soak",
        "--frames",
        str(FRAMES),
        "--rate",
        "4",
        "--domain-id",
        str(DOMAIN_ID),
        "--out",
        str(out),
        "--sample-period",
        "0.5",
        "--no-progress",
        # the tiny untrained network keeps the node fast enough that most frames are published
        "-p",
        "device:=cpu",
        "-p",
        "weights:=''",
        "-p",
        "max_disparity:=16",
        "--torch-threads",
        "1",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    report = json.loads((out / "soak.json").read_text()) if (out / "soak.json").is_file() else {}
    return done, report


def test_soak_run_completes_and_its_totals_add_up(soak) -> None:
    done, report = soak
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{report.get('node_log_tail')}"
    totals = report["totals"]
    assert totals["sent"] == FRAMES
    assert totals["received"] == FRAMES  # localhost DDS, 4 Hz: nothing lost on the way
    dropped = sum(totals["dropped"].values())
    assert totals["dropped_total"] == dropped
    assert totals["in_flight"] == 0  # drained: every frame has had its outcome
    assert (
        totals["published"] + totals["dropped_total"] + totals["skipped_no_subscribers"]
        == totals["received"]
    )
    assert totals["balanced"] and totals["unaccounted"] == 0
    assert totals["published"] >= 1
    # every published frame reached this process on every output it subscribed to
    assert totals["outputs_complete_here"] == totals["published"]
    assert "adds up" in done.stdout and "DOES NOT" not in done.stdout


def test_soak_json_has_the_documented_fields(soak) -> None:
    _, report = soak
    assert report["error"] is None
    assert report["config"]["frames"] == FRAMES and report["config"]["domain_id"] == DOMAIN_ID
    # stopped by its Ctrl-C, not killed; not "== 0": the node sometimes exits 1 with rclpy's
    # "context is not valid" RCLError from a spin racing the SIGINT shutdown (node.py's main)
    assert report["node_exit_code"] is not None and report["node_exit_code"] >= 0
    latency = report["latency_ms"]
    assert latency["frames"] == report["totals"]["published"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    resources = report["resources"]
    for name in ("rss_mb", "fds", "threads"):
        assert set(resources[name]) >= {"start", "end", "max"}
        assert 0 < resources[name]["start"] <= resources[name]["max"]
        assert 0 < resources[name]["end"] <= resources[name]["max"]
    assert report["samples"] and set(report["samples"][0]) == {
        "t_s",
        "frames_sent",
        "rss_mb",
        "fds",
        "threads",
    }
    assert Path(report["node_log"]).is_file()
    assert report["node_status_end"]["device"] == "cpu"


def test_soak_refuses_bad_arguments() -> None:
    for args in (["--frames", "0"], ["--domain-id", "300"], ["--param", "device=cpu"]):
        done = subprocess.run(
            [sys.executable, "-m", "stereo_semantic_ros.soak", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            timeout=60,
        )
        assert done.returncode == 2, (args, done.stderr)
        assert "error:" in done.stderr


def test_totals_say_when_the_node_lost_track_of_a_frame() -> None:
    from stereo_semantic_ros.soak import totals_since

    base = {"frames_received": 5, "frames_published": 3, "dropped_total": 2, "dropped_busy": 2}
    end = {"frames_received": 15, "frames_published": 10, "dropped_total": 4, "dropped_busy": 4}
    totals = totals_since(base, end, sent=12)
    assert (totals["received"], totals["published"], totals["dropped_total"]) == (10, 7, 2)
    assert totals["dropped"] == {"busy": 2} and totals["not_received"] == 2
    assert totals["unaccounted"] == 1 and not totals["balanced"]
    # a frame still in flight after the drain has had no outcome: it is not accounted for
    totals = totals_since(base, {**end, "frames_in_flight": 1}, sent=12)
    assert totals["in_flight"] == 1 and totals["unaccounted"] == 1 and not totals["balanced"]
