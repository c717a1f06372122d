"""The parameter files of the two seed-003/004 architectures, config/pseudo_mtl.yaml and
config/synchronized.yaml, with their shipped weights: each differs from esp_joint's only in the
network, and replay with it processes every frame of a make-bag bag, scores it against the bag's
ground truth, and writes disparity and depth that obey d = fx * B / Z (single-image networks: the
pipeline turns their depth into disparity). The live node over DDS: test_node_architectures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from stereo_semantic_ros.bagtools.replay import main as replay_main
from stereo_semantic_ros.ros.settings import SPECS, NodeSettings

REPO = Path(__file__).resolve().parents[1]
N = 6  # the frames of conftest's data_bag
CASES = [("pseudo_mtl", "pseudo_mtl_synthetic.pt"), ("synchronized", "synchronized_synthetic.pt")]


@pytest.fixture(scope="module")
def bag(data_bag: Path) -> Path:
    return data_bag


def _messages(bag: Path, topic: str) -> list:
    (path,) = bag.glob("*.mcap")
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [m for _, ch, _, m in reader.iter_decoded_messages() if ch.topic == topic]


def _image(msg) -> np.ndarray:
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    return np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, msg.width)


@pytest.mark.parametrize(("architecture", "weights"), CASES)
def test_replay_runs_the_parameter_file_and_scores_it(architecture, weights, bag, tmp_path):
    out = tmp_path / architecture
    params = REPO / "config" / f"{architecture}.yaml"
    argv = [str(bag), "--params", str(params), "--device", "cpu", "--out", str(out)]
    assert replay_main([*argv, "--no-progress", "--previews", "0"]) == 0
    report = json.loads((out / "report.json").read_text())
    model = report["model"]
    assert model["architecture"] == architecture
    assert model["weights"] == str(REPO / "models" / weights)
    assert report["frames"]["processed"] == N and report["frames"]["failed_total"] == 0
    accuracy = report["accuracy"]
    assert accuracy["frames"] == N and accuracy["density"] == 100.0
    assert 0 < accuracy["disparity"]["epe"] < 20 and 0 < accuracy["segmentation"]["miou"] <= 1

    disparities = _messages(out / "bag", "/disparity")
    depths = _messages(out / "bag", "/depth/image_rect")
    assert len(disparities) == len(depths) == N
    for disp_msg, depth_msg in zip(disparities, depths):
        d, z = _image(disp_msg.image), _image(depth_msg)
        valid = d > 0
        assert valid.mean() > 0.5 and d[valid].max() <= model["max_disparity_px"]
        np.testing.assert_allclose(d[valid] * z[valid], disp_msg.f * disp_msg.t, rtol=1e-5)
        assert np.isnan(z[~valid]).all()


@pytest.mark.parametrize(("architecture", "weights"), CASES)
def test_parameter_file_names_the_network_and_its_shipped_weights(architecture, weights):
    path = REPO / "config" / f"{architecture}.yaml"
    params = yaml.safe_load(path.read_text())["stereo_semantic_node"]["ros__parameters"]
    esp = yaml.safe_load((REPO / "config" / "esp_joint.yaml").read_text())
    esp = esp["stereo_semantic_node"]["ros__parameters"]
    assert set(params) == set(SPECS)
    assert {k for k in SPECS if params[k] != esp[k]} == {
        "architecture",
        "weights",
        "min_confidence",
    }
    assert params["min_confidence"] == 0.0  # a single-image network's confidence is 1.0
    settings = NodeSettings.from_yaml(path)
    assert settings.architecture == architecture
    assert settings.weights_path() == REPO / "models" / weights
    pipeline = settings.updated(device="cpu").build_pipeline()
    assert pipeline.geometry == "depth" and pipeline.checkpoint is not None
    assert pipeline.tasks == ("disparity", "segmentation") and pipeline.max_disparity == 64
