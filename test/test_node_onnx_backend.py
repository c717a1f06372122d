"""The node's ``backend`` parameter: onnxruntime on an exported graph, the settings' checks of
the graph against the parameters, and the live node over DDS with ``backend:=onnxruntime``
publishing what the torch backend computes for the same frame."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from node_harness import BASELINE, FX, Driver, NodeProcess, image_array

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.checkpoint import load_checkpoint
from stereo_semantic_ros.export import export_onnx
from stereo_semantic_ros.labels import CITYSCAPES_19
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.ros.settings import NodeSettings, SettingsError

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
LIVE_DOMAIN, FAIL_DOMAIN = 128, 129  # this file's own ROS domains


@pytest.fixture(scope="module")
def esp_graph(tmp_path_factory) -> Path:
    """The default weights as a fixed 64x32 graph: the harness's frames (make_frame)."""
    path = tmp_path_factory.mktemp("node_onnx") / "esp_joint_64x32.onnx"
    export_onnx(MODELS / "esp_joint_mixed.pt", path, size=(64, 32))
    return path


def test_settings_build_an_onnxruntime_pipeline_from_the_graph(esp_graph):
    settings = NodeSettings.from_yaml(REPO / "config" / "esp_joint.yaml").updated(
        backend="onnxruntime", weights=str(esp_graph), device="cpu"
    )
    pipeline = settings.build_pipeline()
    assert pipeline.backend == "onnxruntime" and pipeline.max_disparity == 96
    assert pipeline.checkpoint.architecture == "esp_joint"
    assert NodeSettings.from_yaml(REPO / "config" / "esp_joint.yaml").backend == "torch"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"architecture": "corr_mtl"},
            r"hold a 'esp_joint' network but architecture is 'corr_mtl'",
        ),
        ({"max_disparity": 64}, r"trained with max_disparity 96 but the parameter says 64"),
    ],
    ids=["architecture", "max_disparity"],
)
def test_a_graph_that_does_not_match_the_parameters_is_refused(esp_graph, changes, expected):
    settings = NodeSettings(backend="onnxruntime", weights=str(esp_graph), device="cpu")
    with pytest.raises(SettingsError, match=expected):
        settings.updated(**changes).build_pipeline()


def test_the_label_set_in_the_graphs_metadata_is_checked_against_label_set(tmp_path):
    """Weights of another label set (same classes, another name) exported to ONNX: the node's
    label_set must name the set the graph carries."""
    ckpt = load_checkpoint(MODELS / "esp_joint_mixed.pt")
    ckpt.label_set = dataclasses.replace(CITYSCAPES_19, name="my_street_set")
    path = tmp_path / "custom.onnx"
    export_onnx(ckpt, path, size=(64, 32), check=False)
    settings = NodeSettings(backend="onnxruntime", weights=str(path), device="cpu")
    assert settings.build_pipeline().label_set.name == "my_street_set"  # '' = the graph's own
    with pytest.raises(SettingsError, match="predict label set 'my_street_set' but label_set"):
        settings.updated(label_set="cityscapes19").build_pipeline()


@pytest.mark.parametrize("weights", ["", "esp_joint_mixed.pt"])
def test_onnxruntime_needs_an_exported_graph_as_weights(weights):
    with pytest.raises(SettingsError, match="export one with 'stereo-semantic-export"):
        NodeSettings(backend="onnxruntime", weights=weights)
    with pytest.raises(SettingsError, match="backend must be one of torch, onnxruntime"):
        NodeSettings(backend="tensorrt")


def test_live_node_on_onnxruntime_publishes_what_the_torch_backend_computes(
    colcon_build: Any, esp_graph: Path, tmp_path: Path
) -> None:
    prefix = colcon_build.require_success()
    args = ["-p", "backend:=onnxruntime", "-p", f"weights:={esp_graph}"]
    args += ["-p", "min_confidence:=0.0"]
    node = NodeProcess(
        prefix,
        colcon_build.site_packages(),
        LIVE_DOMAIN,
        tmp_path / "node.log",
        extra_args=args,
        untrained=False,
    )
    driver = None
    try:
        driver = Driver(LIVE_DOMAIN, node.text)
        diagnostics = driver.wait_for(driver.latest_diagnostics, 90, "the node's /diagnostics")
        assert diagnostics["weights"] == str(esp_graph)
        driver.subscribe_outputs()
        frame = driver.warm_up()
        out = driver.wait_outputs(frame.stamp_ns)
    finally:
        if driver is not None:
            driver.close()
        node.stop()
    assert "UNTRAINED" not in node.text()
    right = np.frombuffer(bytes(frame.right.data), np.uint8).reshape(frame.height, frame.width, 3)
    calib = StereoCalibration(
        fx=FX, fy=FX, cx=(frame.width - 1) / 2, cy=(frame.height - 1) / 2, baseline=BASELINE
    )
    torch_pipe = StereoPipeline.from_checkpoint(MODELS / "esp_joint_mixed.pt", device="cpu")
    want = torch_pipe.run(frame.rgb, right, calib)
    disparity = image_array(out["disparity"].image)
    both = (disparity >= 0) & (want.disparity >= 0)
    assert both.mean() > 0.5
    assert np.abs(disparity[both] - want.disparity[both]).max() <= 1e-2
    labels = image_array(out["semantic/labels"])
    assert (labels != want.labels).mean() <= 1e-3


def test_live_node_refuses_a_graph_of_another_architecture(
    colcon_build: Any, esp_graph: Path, tmp_path: Path
) -> None:
    prefix = colcon_build.require_success()
    node = NodeProcess(
        prefix,
        colcon_build.site_packages(),
        FAIL_DOMAIN,
        tmp_path / "node.log",
        params_file="corr_mtl.yaml",
        extra_args=["-p", "backend:=onnxruntime", "-p", f"weights:={esp_graph}"],
        untrained=False,
    )
    try:
        code = node.wait_exit(timeout=90)
    finally:
        node.stop()
    log = node.text()
    assert code == 1, log
    fatal = [ln for ln in log.splitlines() if ln.startswith("[FATAL]")]
    assert len(fatal) == 1, log
    assert "hold a 'esp_joint' network but architecture is 'corr_mtl'" in fatal[0], log
    assert "Traceback" not in log, log
