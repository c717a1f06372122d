"""stereo-semantic-train with hybridnet: the tiny recipe trains a single-image network on depth
(fx * B / d from the batch) and segmentation, and its checkpoint serves through the pipeline."""

import json
from pathlib import Path

import numpy as np
import pytest

from stereo_semantic_ros.checkpoint import load_checkpoint
from stereo_semantic_ros.datasets.kitti import Kitti2015
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.train import main
from stereo_semantic_ros.training.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "config" / "train" / "hybridnet_tiny_test.yaml"
RECIPE = REPO / "config" / "train" / "hybridnet_synthetic.yaml"


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_recipes_are_valid():
    tiny, recipe = load_config(TINY), load_config(RECIPE)
    assert tiny.model.architecture == recipe.model.architecture == "hybridnet"
    # the paper's L_H = alpha * L_S + (L_DL + L_DN), alpha = 1000, labels equally weighted
    assert recipe.loss.w_seg == 1000.0 and recipe.loss.w_disp == 1.0
    assert not recipe.loss.class_weights
    assert all(v % 32 == 0 for v in (*tiny.data.crop, *recipe.data.crop))  # the stride
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(TINY, ["model.patch_size=1"])


def test_tiny_hybridnet_run_trains_on_depth_and_serves(data_root, tmp_path):
    out = tmp_path / "run"
    argv = ["--config", str(TINY), "--out", str(out), "--set", f"data.root={data_root}"]
    assert main([*argv, "--no-progress", "--max-steps", "4"]) == 0
    rows = _rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        # the disparity task is served by the depth output: its loss is L_DL + L_DN in m^2
        assert r["loss"] == pytest.approx(
            1.0 * r["loss_disparity"] + 1000.0 * r["loss_segmentation"], rel=1e-4
        )
        assert np.isfinite(r["grad_norm"]) and r["loss_disparity"] > 0

    final = load_checkpoint(out / "final.pt")
    assert final.architecture == "hybridnet"
    assert final.hyper_parameters["width"] == 4 and final.hyper_parameters["max_disparity"] == 32
    pipe = StereoPipeline.from_checkpoint(out / "final.pt", device="cpu")
    assert pipe.geometry == "depth"
    sample = Kitti2015(data_root, "training")[0]
    result = pipe.run(sample.left, sample.right, sample.calib)
    assert result.disparity.shape == result.labels.shape == result.depth.shape == (48, 96)
    assert result.labels.max() < 19
    ok = result.disparity > 0
    fb = np.float32(sample.calib.fx * sample.calib.baseline)
    np.testing.assert_array_equal(result.disparity[ok], fb / result.depth[ok])
    assert (result.disparity[ok] <= 32).all()  # max_disparity is the kept range


def test_single_task_runs(data_root, tmp_path):
    base = ["--config", str(TINY), "--set", f"data.root={data_root}", "--no-progress"]
    for task in ("disparity", "segmentation"):
        out = tmp_path / task
        assert (
            main([*base, "--out", str(out), "--max-steps", "2", "--set", f"train.tasks=[{task}]"])
            == 0
        )
        assert all(
            f"loss_{task}" in r and len([k for k in r if k.startswith("loss_")]) == 1
            for r in _rows(out)
        )
        model = load_checkpoint(out / "final.pt").build_model()
        assert model.tasks == (task,)
