"""stereo-semantic-pseudo-label and pseudo_mtl's training on its output: a tiny bag made by
make-bag is labelled by a stereo teacher (the shipped esp_joint weights, or SGBM with its
left-right check), the labels are read back by the pseudo_labels loader, a few training steps
run on them with the bag's ground truth out of reach, and the result is scored on that ground
truth; the two-stage schedule joins two stage-1 networks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stereo_semantic_ros.augment import Augmentor
from stereo_semantic_ros.checkpoint import load_checkpoint
from stereo_semantic_ros.datasets.base import (
    CONFIDENCE_KEY,
    RIGHT_CONFIDENCE_KEY,
    RIGHT_LABELS_KEY,
    collate,
)
from stereo_semantic_ros.datasets.kitti import Kitti2015
from stereo_semantic_ros.datasets.pseudo_labels import MANIFEST, PseudoLabels
from stereo_semantic_ros.evaluation import cli as eval_cli
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.pseudo_label import lr_consistency, main, mirrored
from stereo_semantic_ros.train import main as train_main
from stereo_semantic_ros.training.config import ConfigError, config_from_dict

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "train" / "pseudo_mtl_tiny_test.yaml"
TEACHER = REPO / "config" / "esp_joint.yaml"
N = 6


@pytest.fixture(scope="module")
def bag(data_bag: Path) -> Path:
    """The six 96x48 synthetic scenes as a rosbag2 with their ground-truth topics."""
    return data_bag


@pytest.fixture(scope="module")
def labelled(bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labels") / "esp"
    argv = [str(bag), "--teacher", str(TEACHER), "--device", "cpu", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    return out


def test_a_bag_is_labelled_by_the_stereo_network_with_provenance(labelled, bag, capsys):
    manifest = json.loads((labelled / MANIFEST).read_text())
    assert manifest["tool"] == "stereo-semantic-pseudo-label"
    assert manifest["source"]["kind"] == "bag" and manifest["source"]["path"] == str(bag)
    assert manifest["source"]["ground_truth_topics"] == [
        "/ground_truth/disparity",
        "/ground_truth/labels",
    ]
    teacher = manifest["teacher"]
    assert teacher["architecture"] == "esp_joint" and teacher["weights"].endswith(".pt")
    assert len(teacher["weights_sha256"]) == 64 and teacher["segmentation"] is True
    assert [f["name"] for f in manifest["frames"]] == [f"{i:06d}" for i in range(N)]
    stamps = [f["stamp_ns"] for f in manifest["frames"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == N
    summary = manifest["summary"]
    assert summary["frames"] == N and summary["skipped"] == {}
    # the teacher is good on these scenes, and the summary says how good against the bag's truth
    assert summary["vs_ground_truth"]["epe"] < 3.0 and summary["density"] > 0.9
    assert 0.0 < summary["mean_confidence"] <= 1.0


def test_the_labels_are_the_teachers_not_the_ground_truth(labelled, data_root):
    """Frame 0's pseudo disparity, confidence and labels are the pipeline's output on the pair
    (the right view's from the mirrored pair); the bag's ground truth sits apart."""
    pseudo = PseudoLabels(labelled, "pseudo").load(0)
    truth = PseudoLabels(labelled, "ground_truth").load(0)
    scene = Kitti2015(data_root, "training").load(0)
    np.testing.assert_array_equal(pseudo.left, scene.left)
    assert pseudo.calib.fx == pytest.approx(scene.calib.fx)
    pipe = StereoPipeline.from_checkpoint(REPO / "models" / "esp_joint_mixed.pt", device="cpu")
    result = pipe.run(scene.left, scene.right, scene.calib, min_confidence=0.0)
    np.testing.assert_allclose(pseudo.disparity, result.disparity, atol=1 / 256 + 1e-6)
    np.testing.assert_allclose(pseudo.meta[CONFIDENCE_KEY], result.confidence, atol=1 / 255)
    np.testing.assert_array_equal(pseudo.labels, result.labels)
    flipped = pipe.run(
        scene.right[:, ::-1].copy(), scene.left[:, ::-1].copy(), mirrored(scene.calib)
    )
    np.testing.assert_allclose(
        pseudo.right_disparity, flipped.disparity[:, ::-1], atol=1 / 256 + 1e-6
    )
    np.testing.assert_array_equal(pseudo.meta[RIGHT_LABELS_KEY], flipped.labels[:, ::-1])
    assert RIGHT_CONFIDENCE_KEY in pseudo.meta
    # the ground-truth split is the bag's truth (= the scene's), and differs from the teacher's
    np.testing.assert_allclose(
        truth.disparity[scene.valid], scene.disparity[scene.valid], atol=0.01
    )
    np.testing.assert_array_equal(truth.labels, scene.labels)
    assert CONFIDENCE_KEY not in truth.meta
    assert not np.array_equal(pseudo.labels, truth.labels)


def test_augmented_pseudo_samples_keep_confidence_aligned(labelled):
    """Mirroring swaps the views with their confidences; every crop keeps them per pixel."""
    plain = PseudoLabels(labelled, "pseudo")
    mirror = Augmentor(rng=np.random.default_rng(0), mirror_prob=1.0, crop_size=None)
    s, m = plain.load(1), mirror(plain.load(1))
    np.testing.assert_array_equal(m.meta[CONFIDENCE_KEY], s.meta[RIGHT_CONFIDENCE_KEY][:, ::-1])
    np.testing.assert_array_equal(m.meta[RIGHT_CONFIDENCE_KEY], s.meta[CONFIDENCE_KEY][:, ::-1])
    np.testing.assert_array_equal(m.disparity, s.right_disparity[:, ::-1])
    augmented = PseudoLabels(
        labelled, "pseudo", augment=Augmentor.for_training((32, 64), np.random.default_rng(1))
    )
    batch = collate([augmented[i] for i in range(4)])
    for key in ("confidence", "right_confidence", "right_disparity"):
        assert batch[key].shape == (4, 1, 32, 64), key
    assert batch["right_labels"].shape == (4, 32, 64)


def test_sgbm_teacher_confidence_is_its_left_right_check(bag, tmp_path):
    out = tmp_path / "sgbm"
    argv = [str(bag), "--teacher", "sgbm", "--sgbm-range", "32", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["teacher"]["kind"] == "sgbm" and not (out / "labels").exists()
    sample = PseudoLabels(out, "pseudo").load(0)
    assert sample.labels is None
    expected, _ = lr_consistency(sample.disparity, sample.right_disparity, 2.0)
    np.testing.assert_allclose(sample.meta[CONFIDENCE_KEY], expected, atol=1 / 255 + 1e-6)
    # unmatched pixels (SGBM's left border, its holes) carry no pseudo label and no confidence
    assert (sample.meta[CONFIDENCE_KEY][sample.disparity == 0] == 0).all()
    assert (sample.disparity[:, :16] == 0).all()


def test_lr_consistency_and_the_mirrored_calibration():
    d = np.full((2, 10), 2.0, np.float32)
    c_l, c_r = lr_consistency(d, d, 2.0)
    assert (c_l[:, 2:] == 1).all() and (c_l[:, :2] == 0).all()  # partners off the image
    assert (c_r[:, :8] == 1).all() and (c_r[:, 8:] == 0).all()
    off = d.copy()
    off[:, 5] = 3.0  # the right view disagrees by 1 px at one column
    c_l, _ = lr_consistency(d, off, 2.0)
    assert c_l[0, 7] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="tolerance"):
        lr_consistency(d, d, 0.0)
    from stereo_semantic_ros.calibration import StereoCalibration

    calib = StereoCalibration(100.0, 100.0, 40.0, 20.0, 0.5, width=96, height=48, doffs=3.0)
    flipped = mirrored(calib)
    assert flipped.cx == pytest.approx(95 - 43.0) and flipped.doffs == 3.0
    assert mirrored(flipped).cx == pytest.approx(calib.cx)


def test_bad_input_is_refused_with_the_reason(bag, labelled, tmp_path, capsys):
    assert main([str(tmp_path), "--teacher", "sgbm", "--out", str(tmp_path / "o")]) == 2
    assert "not a rosbag2" in capsys.readouterr().err
    assert main([str(bag), "--teacher", "nope.yaml", "--out", str(tmp_path / "o")]) == 2
    assert "no such parameter file" in capsys.readouterr().err
    assert main([str(bag), "--teacher", "sgbm", "--out", str(labelled)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([str(bag), "--teacher", "sgbm", "--out", str(bag / "inside")]) == 2
    capsys.readouterr()
    with pytest.raises(Exception, match="pseudo_labels.json"):
        PseudoLabels(tmp_path, "pseudo")


# --- training on the labels, evaluation on the bag's ground truth -----------------------------


def _recipe(root: Path, **train: object) -> dict:
    raw = yaml.safe_load(TINY.read_text())
    raw["data"] = {"type": "pseudo_labels", "root": str(root), "split": "pseudo", "crop": [32, 64]}
    raw["train"].update(train)
    return raw


def test_round_trip_bag_labels_training_evaluation(labelled, tmp_path):
    """Training never reads the bag's ground truth (it is moved away meanwhile); the evaluation
    scores the trained network on it."""
    hidden = tmp_path / "ground_truth_elsewhere"
    shutil.move(labelled / "ground_truth", hidden)
    try:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(_recipe(labelled)))
        out = tmp_path / "run"
        argv = ["--config", str(recipe), "--out", str(out), "--max-steps", "4", "--no-progress"]
        assert train_main(argv) == 0
    finally:
        shutil.move(hidden, labelled / "ground_truth")
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["loss_d_lr"] >= 0 and 0 < r["cross_view_trusted"] <= 1 for r in rows)
    final = load_checkpoint(out / "final.pt")
    assert final.architecture == "pseudo_mtl"
    assert final.provenance["config"]["data"]["type"] == "pseudo_labels"

    eval_out = tmp_path / "eval"
    argv = ["--weights", str(out / "final.pt"), "--dataset", "pseudo_labels"]
    argv += ["--data", str(labelled), "--out", str(eval_out), "--device", "cpu", "--no-progress"]
    assert eval_cli.main(argv) == 0
    metrics = json.loads((eval_out / "metrics.json").read_text())
    ours = metrics["methods"]["ours"]
    assert ours["disparity"]["all"]["epe"] > 0 and 0 <= ours["segmentation"]["miou"] <= 1
    assert metrics["dataset"]["split"] == "ground_truth"


def test_two_stages_join_the_depth_and_the_segmentation_networks(labelled, tmp_path):
    """Stage 1 trains E + D_d and E + D_s apart; stage 2 starts from the depth network's
    encoder and depth decoder and the segmentation network's decoder (paper Sec. 4.2)."""
    runs = {}
    for task in ("disparity", "segmentation"):
        recipe = tmp_path / f"{task}.yaml"
        recipe.write_text(yaml.safe_dump(_recipe(labelled, tasks=[task])))
        runs[task] = tmp_path / task
        argv = ["--config", str(recipe), "--out", str(runs[task]), "--max-steps", "2"]
        assert train_main([*argv, "--no-progress"]) == 0
    depth = load_checkpoint(runs["disparity"] / "final.pt").state_dict
    seg = load_checkpoint(runs["segmentation"] / "final.pt").state_dict
    starts = [str(runs["disparity"] / "final.pt"), str(runs["segmentation"] / "final.pt")]
    # a learning rate too small to move a weight: step 1 ends where it started
    recipe = tmp_path / "joint.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(labelled, init_weights=starts, lr=1.0e-30)))
    argv = ["--config", str(recipe), "--out", str(tmp_path / "joint"), "--max-steps", "1"]
    assert train_main([*argv, "--no-progress"]) == 0
    joint = load_checkpoint(tmp_path / "joint" / "final.pt")
    for key, value in joint.state_dict.items():
        if not value.is_floating_point() or "running_" in key:
            continue
        source = seg if key.startswith("seg_") else depth
        torch.testing.assert_close(value, source[key], msg=key)
    assert not torch.equal(depth["encoder.stages.0.0.0.weight"], seg["encoder.stages.0.0.0.weight"])
    assert [s["path"] for s in joint.provenance["init_weights"]] == starts

    # one segmentation network cannot start the joint one: no depth decoder anywhere
    recipe.write_text(yaml.safe_dump(_recipe(labelled, init_weights=starts[1:])))
    assert train_main(["--config", str(recipe), "--out", str(tmp_path / "bad")]) == 2


def test_cross_view_recipes_are_checked():
    raw = _recipe(Path("x"))
    raw["loss"]["cross_view"]["d_lr"] = -1
    with pytest.raises(ConfigError, match="cross_view weights must be >= 0"):
        config_from_dict(raw)
    raw = _recipe(Path("x"), init_weights=[])
    with pytest.raises(ConfigError, match="init_weights"):
        config_from_dict(raw)
    raw = yaml.safe_load((REPO / "config" / "train" / "tiny_test.yaml").read_text())
    raw["loss"]["cross_view"] = {"confidence": True}
    cfg = config_from_dict(raw)  # valid as a recipe; the stereo network is refused when built
    from stereo_semantic_ros.training.optimisation import build_optimisation

    with pytest.raises(ConfigError, match="single-image network"):
        build_optimisation(cfg, 19, torch.device("cpu"))
