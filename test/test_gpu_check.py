"""tools/gpu_check.sh: its CPU rehearsal (--dry-run) runs every step end to end, so the script
that will run on a GPU machine cannot rot unnoticed; the install step's decisions are checked
without installing anything."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOMAIN_ID = 127  # this file's own ROS domain: the rehearsal starts a live node


def load_helper():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_dry_run_runs_tests_bench_and_the_live_node_and_prints_one_table(tmp_path):
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env["PYTHON"] = sys.executable
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    assert "## DRY RUN on the CPU" in out and "FAILED" not in out
    assert "tests: 2 passed" in out
    table = [line for line in out.splitlines() if line.startswith("| bench |")]
    backends = {line.split("|")[3].strip() for line in table}
    assert backends == {"torch", "onnxruntime"} and len(table) == 5
    assert any("channels_last" in line for line in table)
    node = [line for line in out.splitlines() if line.startswith("| node |")]
    assert len(node) == 1 and "/diagnostics end_to_end mean" in node[0]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] and len(report["bench_rows"]) == 5
    assert report["soak"]["totals"]["published"] >= 1
    assert float(report["soak"]["node_status_end"]["end_to_end_ms_mean"]) > 0
    for row in report["bench_rows"]:
        assert row["sgbm_ms_median"] > 0 and row["ratio_to_sgbm"] > 0


def test_install_step_names_what_is_missing_and_where_to_get_it(tmp_path, monkeypatch):
    helper = load_helper()
    real = importlib.util.find_spec

    def without_onnx(name, *args):
        return None if name in ("onnx", "rclpy") else real(name, *args)

    monkeypatch.setattr(helper.importlib.util, "find_spec", without_onnx)
    assert helper.missing_modules() == ["onnx", "rclpy"]
    step = helper.install(tmp_path, dry_run=True)  # a rehearsal only reports
    assert step == {"missing": ["onnx", "ros-rclpy"], "installed": []}
    with pytest.raises(SystemExit, match="run 'tools/gpu_check.sh --fetch-wheels'"):
        helper.install(tmp_path, dry_run=False)  # no wheels in tmp_path: nothing is fetched


def test_every_requirement_the_package_imports_is_checked():
    """The wheels the GPU machine may lack include everything requirements.txt pins (but
    torch, which is the machine's own)."""
    helper = load_helper()
    pinned = {
        line.split("==")[0].lower()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    wheels = {w.lower() for w in helper.MODULES.values()} | {"onnxruntime"}
    assert pinned - {"torch"} <= wheels
    fetched = {w.split("==")[0].lower() for w in helper.FETCH}
    # numpy comes with the machine's torch; onnxruntime is fetched as onnxruntime-gpu
    assert {w for w in wheels if not w.startswith("ros-")} - {"numpy", "onnxruntime"} <= fetched
