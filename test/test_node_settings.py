"""The node's parameters and book-keeping without a ROS graph: settings.py and frames/stats.py."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.checkpoint import Checkpoint, save_checkpoint
from stereo_semantic_ros.frames.reasons import DROP_REASONS
from stereo_semantic_ros.frames.stats import DropCounter, LatencyWindow, RateMeter, Throttle
from stereo_semantic_ros.networks import get_model, list_models
from stereo_semantic_ros.outputs import OUTPUT_TOPICS, OUTPUTS
from stereo_semantic_ros.pointcloud import PointCloudOptions
from stereo_semantic_ros.resources import ResourceError, models_dir, resolve_weights
from stereo_semantic_ros.ros.settings import (
    ARCHITECTURES,
    LIVE_PARAMETERS,
    PLANNED_ARCHITECTURES,
    SPECS,
    NodeSettings,
    SettingsError,
    check_value,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "esp_joint.yaml"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- the YAML file


def test_shipped_config_sets_every_parameter_with_a_comment() -> None:
    data = yaml.safe_load(CONFIG.read_text())
    params = data["stereo_semantic_node"]["ros__parameters"]
    assert set(params) == set(SPECS)
    lines = CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"\s+(\w+):", line)
        if match and match.group(1) in SPECS:
            commented = "#" in line or lines[i - 1].lstrip().startswith("#")
            assert commented, f"no comment for {match.group(1)}: {line!r}"
    settings = NodeSettings.from_yaml(CONFIG)
    assert settings.architecture == "esp_joint" and settings.precision == "fp16"
    assert settings.device == "auto" and settings.weights == "esp_joint_mixed.pt"
    # the default weights ship with the package and load into the configured architecture
    shipped = Path(__file__).parents[1] / "models" / "esp_joint_mixed.pt"
    assert settings.weights_path() == shipped
    assert settings.build_pipeline().tasks == ("disparity", "segmentation")


def test_from_yaml_merges_wildcard_and_node_sections(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    points_stride: 4\n    publish_depth: false\n"
        "stereo_semantic_node:\n  ros__parameters:\n    points_stride: 2\n"
        "    qos_overrides:\n      /points2:\n        publisher:\n          depth: 3\n"
    )
    settings = NodeSettings.from_yaml(path)
    assert settings.points_stride == 2 and settings.publish_depth is False
    topics = settings.enabled_topics()
    assert "depth/image_rect" not in topics and "depth/camera_info" not in topics
    assert "points2" in topics and "confidence" in topics
    path.write_text("other_node:\n  ros__parameters:\n    points_stride: 2\n")
    with pytest.raises(SettingsError, match="no 'stereo_semantic_node: ros__parameters:'"):
        NodeSettings.from_yaml(path)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("device", "gpu", "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("precision", "int8", "precision must be one of fp32, fp16, bf16"),
        ("max_disparity", 18, "multiple of 4"),
        ("max_disparity", -4, "within [0, 1024]"),
        ("input_scale", 0.01, "within [0.05, 4]"),
        ("input_scale", math.nan, "finite"),
        ("points_stride", True, "must be a finite int"),
        ("min_confidence", 1.5, "within [0, 1]"),
        ("qos_reliability", "system_default", "best_effort, reliable"),
        ("image_transport", "theora", "image_transport must be one of raw, compressed"),
        ("mono16_bit_depth", 17, "within [0, 16]"),
        ("label_set", "ade20k", "unknown label set 'ade20k'"),
        ("weights", "no_such_file.pt", "not found: neither"),
        ("architecture", "resnet", "architecture must be one of corr_mtl, esp_joint, hybridnet,"),
        ("nonsense", 1, "unknown parameter 'nonsense'"),
    ],
)
def test_bad_values_are_refused_with_a_reason(name: str, value: object, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        check_value(name, value)
    assert words in str(info.value)


@pytest.mark.parametrize("architecture", PLANNED_ARCHITECTURES)
def test_designed_but_unregistered_architectures_are_not_implemented(architecture: str) -> None:
    with pytest.raises(
        SettingsError,
        match=f"not implemented in this release; available: {', '.join(ARCHITECTURES)}",
    ):
        check_value("architecture", architecture)


def test_an_unknown_architecture_lists_only_what_runs() -> None:
    with pytest.raises(SettingsError) as info:
        check_value("architecture", "psmnet")
    assert "corr_mtl, esp_joint, hybridnet" in str(info.value)
    assert not any(name in str(info.value) for name in PLANNED_ARCHITECTURES)


def test_implemented_architectures_are_accepted() -> None:
    assert set(ARCHITECTURES) == set(list_models()) >= {"esp_joint", "corr_mtl", "hybridnet"}
    for architecture in ("esp_joint", "corr_mtl", "hybridnet"):
        assert check_value("architecture", architecture) == architecture


def test_stereo_image_procs_names_set_our_parameters(tmp_path: Path) -> None:
    """A params file ported from stereo_image_proc keeps its meaning (replay reads it too)."""
    path = tmp_path / "ported.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    approximate_sync: true\n"
        "    approximate_sync_tolerance_seconds: 0.05\n    use_system_default_qos: true\n"
        "    image_transport: compressed\n    queue_size: 10\n"
    )
    settings = NodeSettings.from_yaml(path)
    assert settings.sync_slop == 0.05 and settings.qos_reliability == "reliable"
    assert settings.image_transport == "compressed" and settings.queue_size == 10
    assert NodeSettings.from_parameters({"use_system_default_qos": False}).qos_reliability == (
        "best_effort"
    )
    # both names with the same meaning is fine; with different ones, refused naming both
    same = {"approximate_sync_tolerance_seconds": 0.05, "sync_slop": 0.05}
    assert NodeSettings.from_parameters(same).sync_slop == 0.05
    with pytest.raises(SettingsError) as info:
        NodeSettings.from_parameters({"approximate_sync_tolerance_seconds": 0.05, "sync_slop": 0.2})
    assert "approximate_sync_tolerance_seconds (stereo_image_proc's name for sync_slop)" in str(
        info.value
    )
    assert "keep only sync_slop" in str(info.value)
    with pytest.raises(SettingsError, match="use_system_default_qos must be true or false"):
        NodeSettings.from_parameters({"use_system_default_qos": "yes"})
    with pytest.raises(SettingsError, match="sync_slop must be within"):
        NodeSettings.from_parameters({"approximate_sync_tolerance_seconds": 11.0})


def test_approximate_sync_needs_a_slop() -> None:
    with pytest.raises(SettingsError, match="approximate_sync needs sync_slop > 0"):
        NodeSettings(approximate_sync=True, sync_slop=0.0)
    assert (
        NodeSettings(approximate_sync=False, sync_slop=0.0).sync_description().startswith("exact")
    )


def test_integers_widen_to_float_but_not_the_other_way() -> None:
    assert NodeSettings(points_max_depth=5).points_max_depth == 5.0
    with pytest.raises(SettingsError, match="points_stride must be a finite int"):
        NodeSettings(points_stride=2.0)


def test_live_parameters_are_the_switches_and_output_options() -> None:
    assert LIVE_PARAMETERS == {
        "publish_disparity",
        "publish_depth",
        "publish_confidence",
        "publish_points",
        "publish_labels",
        "publish_semantic_color",
        "publish_disparity_color",
        "points_organized",
        "points_stride",
        "points_max_depth",
        "points_confidence",
        "min_confidence",
        "semantic_blend",
    }


def test_settings_build_the_point_cloud_options_and_topics() -> None:
    settings = NodeSettings(
        points_organized=False,
        points_stride=3,
        points_max_depth=7.5,
        points_confidence=True,
        publish_disparity_color=False,
    )
    assert settings.cloud_options() == PointCloudOptions(False, 3, 7.5, True)
    assert settings.enabled_topics() == tuple(t for t in OUTPUT_TOPICS if t != "disparity/color")


# --------------------------------------------------------------------------- weights


def test_corr_mtl_config_loads_its_shipped_weights_and_runs() -> None:
    """config/corr_mtl.yaml: every parameter, commented, esp_joint's values except the network
    and its confidence threshold."""
    path = REPO / "config" / "corr_mtl.yaml"
    params = yaml.safe_load(path.read_text())["stereo_semantic_node"]["ros__parameters"]
    assert set(params) == set(SPECS)
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"\s+(\w+):", line)
        if match and match.group(1) in SPECS:
            assert "#" in line or lines[i - 1].lstrip().startswith("#"), line
    esp = yaml.safe_load(CONFIG.read_text())["stereo_semantic_node"]["ros__parameters"]
    differ = {k for k in SPECS if params[k] != esp[k]}
    # min_confidence belongs to the weights (measured for each in its model card)
    assert differ == {"architecture", "weights", "min_confidence"}
    assert params["min_confidence"] == 0.30 and esp["min_confidence"] == 0.51
    settings = NodeSettings.from_yaml(path)
    assert settings.architecture == "corr_mtl" and settings.weights == "corr_mtl_mixed.pt"
    assert settings.weights_path() == REPO / "models" / "corr_mtl_mixed.pt"
    pipeline = settings.updated(device="cpu").build_pipeline()
    assert type(pipeline.model).__name__ == "CorrMTLNet" and pipeline.checkpoint is not None
    assert pipeline.stride == 32 and pipeline.max_disparity == 96  # from the shipped weights
    assert pipeline.tasks == ("disparity", "segmentation")
    calib = StereoCalibration(fx=40.0, fy=40.0, cx=20.0, cy=12.0, baseline=0.2)
    image = np.zeros((24, 40, 3), np.uint8)
    result = pipeline.run(image, image, calib, outputs=["disparity", "labels"])
    assert result.disparity.shape == result.labels.shape == (24, 40)


def test_hybridnet_config_runs_its_shipped_single_image_network() -> None:
    """config/hybridnet.yaml: every parameter, commented, esp_joint's values except the network
    and the weights (the shipped models/hybridnet_synthetic.pt), min_confidence 0."""
    path = REPO / "config" / "hybridnet.yaml"
    text = path.read_text()
    params = yaml.safe_load(text)["stereo_semantic_node"]["ros__parameters"]
    assert set(params) == set(SPECS)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"\s+(\w+):", line)
        if match and match.group(1) in SPECS:
            assert "#" in line or lines[i - 1].lstrip().startswith("#"), line
    esp = yaml.safe_load(CONFIG.read_text())["stereo_semantic_node"]["ros__parameters"]
    differ = {k for k in SPECS if params[k] != esp[k]}
    assert differ == {"architecture", "weights", "min_confidence"}
    assert params["min_confidence"] == 0.0  # its confidence is 1.0 everywhere
    settings = NodeSettings.from_yaml(path)
    assert settings.architecture == "hybridnet"
    assert settings.weights_path() == REPO / "models" / "hybridnet_synthetic.pt"
    pipeline = settings.updated(device="cpu").build_pipeline()
    assert type(pipeline.model).__name__ == "HybridNet" and pipeline.checkpoint is not None
    assert pipeline.stride == 32 and pipeline.max_disparity == 64  # from the shipped weights
    assert pipeline.geometry == "depth"
    calib = StereoCalibration(fx=40.0, fy=40.0, cx=20.0, cy=12.0, baseline=0.2)
    image = np.zeros((24, 40, 3), np.uint8)
    result = pipeline.run(image, image, calib, outputs=["disparity", "depth", "labels"])
    assert result.disparity.shape == result.labels.shape == (24, 40)
    # depth in [0.5, 100] m: disparity 8 px m / depth in (0, 16] px, inside the 64 px range
    assert (result.disparity > 0).all()
    np.testing.assert_array_equal(result.disparity, np.float32(8.0) / result.depth)


def test_relative_weights_resolve_in_the_cwd_then_the_models_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert models_dir() == REPO / "models"  # not installed: the source tree's models/
    shipped = resolve_weights("esp_joint_mixed.pt")
    assert shipped == REPO / "models" / "esp_joint_mixed.pt"
    (tmp_path / "esp_joint_mixed.pt").write_bytes(b"x")  # a run's file of the same name wins
    assert resolve_weights("esp_joint_mixed.pt") == tmp_path / "esp_joint_mixed.pt"
    assert resolve_weights(str(tmp_path / "esp_joint_mixed.pt")) == tmp_path / "esp_joint_mixed.pt"
    assert resolve_weights("") is None  # the untrained network only when asked for
    with pytest.raises(ResourceError) as info:
        resolve_weights("runs/x/final.pt")
    assert str(tmp_path / "runs/x/final.pt") in str(info.value)
    assert str(REPO / "models/runs/x/final.pt") in str(info.value)
    with pytest.raises(SettingsError, match="not found: neither"):
        check_value("weights", "runs/x/final.pt")


def test_build_pipeline_untrained_and_from_checkpoint(tmp_path: Path) -> None:
    untrained = NodeSettings(device="cpu", max_disparity=16, input_scale=0.5).build_pipeline()
    assert untrained.max_disparity == 16 and untrained.checkpoint is None
    assert NodeSettings(input_scale=0.5).output_style(untrained).max_disparity == 32.0

    model = get_model("esp_joint", max_disparity=24)
    path = save_checkpoint(
        Checkpoint("esp_joint", {"max_disparity": 24}, model.state_dict()), tmp_path / "w.pt"
    )
    loaded = NodeSettings(weights=str(path), device="cpu").build_pipeline()
    assert loaded.max_disparity == 24 and loaded.checkpoint is not None
    with pytest.raises(SettingsError, match="trained with max_disparity 24 but the parameter"):
        NodeSettings(weights=str(path), device="cpu", max_disparity=32).build_pipeline()


# --------------------------------------------------------------------------- book-keeping


def test_drop_counter_counts_each_stamp_once_and_throttles_per_reason() -> None:
    clock = FakeClock()
    logged: list[tuple[str, str]] = []
    drops = DropCounter(lambda level, text: logged.append((level, text)), 5.0, clock=clock)
    assert drops.drop("no_camera_info", 1_500_000_000, "left missing")
    assert not drops.drop("no_camera_info", 1_500_000_000, "right missing")  # same frame
    assert drops.drop("busy", 2_000_000_000, "replaced", level="warn")  # other reason: logged
    assert drops.drop("no_camera_info", 3_000_000_000, "again")  # throttled
    assert drops.drop("no_camera_info", 4_000_000_000, "again")  # throttled
    clock.now += 5.0
    assert drops.drop("no_camera_info", 5_000_000_000, "later")
    counts = drops.counts
    assert counts["no_camera_info"] == 4 and counts["busy"] == 1
    assert set(counts) == set(DROP_REASONS)
    assert [level for level, _ in logged] == ["error", "warn", "error"]
    assert logged[0][1].startswith("dropped frame at stamp 1.500000000 (no_camera_info): left")
    assert "[2 more 'no_camera_info' drop(s) not logged in the last 5 s]" in logged[2][1]
    with pytest.raises(ValueError, match="unknown drop reason"):
        drops.drop("cosmic_ray", None, "")


def test_throttle_latency_window_and_rate_meter() -> None:
    clock = FakeClock()
    throttle = Throttle(2.0, clock)
    assert throttle.admit("a") == 0 and throttle.admit("a") is None and throttle.admit("b") == 0
    clock.now += 2.0
    assert throttle.admit("a") == 1

    window = LatencyWindow(size=10)
    assert math.isnan(window.summary()["mean"])
    for value in range(1, 21):  # only the last 10 (11..20) count
        window.add(value)
    stats = window.summary()
    mean, p90, n = stats["mean"], stats["p90"], stats["n"]
    assert (mean, n) == (15.5, 10) and p90 == pytest.approx(19.1)

    rate = RateMeter(window_s=5.0, clock=clock)
    clock.now += 10.0
    for _ in range(20):
        rate.tick()
        clock.now += 0.1
    assert rate.rate() == pytest.approx(20 / 5.0)
    clock.now += 10.0
    assert rate.rate() == 0.0


def test_every_setting_is_a_parameter_and_every_output_switch_a_setting() -> None:
    """NodeSettings fields, the ParameterSpecs and the output table's switches agree (they were
    held together by import-time asserts)."""
    fields = set(NodeSettings.__dataclass_fields__)
    assert fields == set(SPECS)
    switches = {output.switch for output in OUTPUTS}
    assert switches <= fields and switches <= LIVE_PARAMETERS
    assert {o.topic for o in OUTPUTS} == set(OUTPUT_TOPICS)


def test_frame_library_and_output_table_import_no_ros() -> None:
    """frames/ and outputs.py are what the node and replay share: neither rclpy nor rosbags."""
    code = (
        "import sys\n"
        "import stereo_semantic_ros.outputs\n"
        "from stereo_semantic_ros.frames import "
        "diagnostics, inputs, reasons, stamps, stats, step, sync_drops\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rclpy', 'rosbags', 'sensor_msgs', 'stereo_msgs', 'std_msgs'))\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
