"""stereo-semantic-train with corr_mtl's own options: the recipe's seg_warp settings are
validated, the warp runs with either disparity or not at all, the ablation and GradNorm know the
network (the tiny run and recipes of every architecture are in test_train.py)."""

import json
from pathlib import Path

import pytest

from stereo_semantic_ros.ablation import main as ablation_main
from stereo_semantic_ros.checkpoint import load_checkpoint
from stereo_semantic_ros.train import main
from stereo_semantic_ros.training.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "config" / "train" / "corr_mtl_tiny_test.yaml"


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("loss.seg_warp=-1", "loss.seg_warp must be >= 0"),
        ("loss.seg_warp_disparity=stereo", "seg_warp_disparity must be one of ground_truth"),
        ("loss.seg_warp_dilation=0", "seg_warp_dilation >= 1"),
        ("train.tasks=[disparity]", "loss.seg_warp needs the segmentation task"),
        ("model.depth=3", "unknown key(s) model.depth for architecture 'corr_mtl'"),
    ],
)
def test_bad_seg_warp_settings_are_refused(change, message):
    with pytest.raises(ConfigError) as info:
        load_config(TINY, [change])
    assert message in str(info.value)
    with pytest.raises(ConfigError, match="predicted needs the disparity task"):
        load_config(TINY, ["loss.seg_warp_disparity=predicted", "train.tasks=[segmentation]"])


def test_warp_with_the_predicted_disparity_and_without_it(data_root, tmp_path):
    base = ["--config", str(TINY), "--set", f"data.root={data_root}", "--no-progress"]
    predicted = tmp_path / "predicted"
    assert (
        main(
            [*base, "--out", str(predicted), "--max-steps", "2"]
            + ["--set", "loss.seg_warp_disparity=predicted"]
        )
        == 0
    )
    assert all("loss_seg_warp" in r for r in _rows(predicted))
    off = tmp_path / "off"
    assert main([*base, "--out", str(off), "--max-steps", "2", "--set", "loss.seg_warp=0"]) == 0
    rows = _rows(off)
    assert all("loss_seg_warp" not in r for r in rows)
    assert "loss_seg_warp" not in (off / "log.csv").read_text().splitlines()[0]


def test_ablation_of_the_corr_mtl_recipe(data_root, tmp_path):
    """The disparity-only variant drops the warp loss (a segmentation loss), the others keep it."""
    out = tmp_path / "ablation"
    argv = ["--config", str(TINY), "--test-data", str(data_root), "--out", str(out)]
    argv += ["--steps", "2", "--set", f"data.root={data_root}", "--device", "cpu", "--no-progress"]
    assert ablation_main(argv) == 0
    report = json.loads((out / "ablation.json").read_text())
    names = ["joint", "disparity-only", "segmentation-only"]
    assert [r["name"] for r in report["variants"]] == names
    for name in names:
        assert load_checkpoint(out / name / "final.pt").architecture == "corr_mtl"
        warped = all("loss_seg_warp" in r for r in _rows(out / name))
        assert warped == (name != "disparity-only"), name


def test_gradnorm_names_the_corr_mtl_shared_layer(data_root, tmp_path, capsys):
    base = ["--config", str(TINY), "--set", f"data.root={data_root}", "--no-progress"]
    base += ["--max-steps", "2", "--set", "loss.weighting=gradnorm"]
    assert main([*base, "--out", str(tmp_path / "default")]) == 2
    assert "set loss.gradnorm_parameter: conv5_1.1.weight" in capsys.readouterr().err
    out = tmp_path / "named"
    assert (
        main([*base, "--out", str(out), "--set", "loss.gradnorm_parameter=conv5_1.1.weight"]) == 0
    )
    assert all("gradnorm_disparity" in r and "loss_seg_warp" in r for r in _rows(out))
