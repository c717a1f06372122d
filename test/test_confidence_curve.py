"""The confidence-vs-error curve behind the parameter files' ``min_confidence``: counts against a
brute-force count with the pipeline's own float32 test, files, pooling, the threshold rule, and
``stereo-semantic-eval --confidence-curve`` end to end."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_evaluate import SAMPLES, _write_kitti

from stereo_semantic_ros.checkpoint import Checkpoint, save_checkpoint
from stereo_semantic_ros.evaluation import confidence as confidence_module
from stereo_semantic_ros.evaluation.cli import main
from stereo_semantic_ros.evaluation.confidence import (
    THRESHOLDS,
    ConfidenceCurve,
    choose_threshold,
)
from stereo_semantic_ros.networks import get_model


def _frame(seed: int, h: int = 24, w: int = 40):
    """Ground truth, a prediction whose error shrinks with its confidence, and holes."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1.0, 60.0, (h, w)).astype(np.float32)
    conf = rng.uniform(0.0, 1.0, (h, w)).astype(np.float32)
    conf[0, :5] = np.float32(0.29)  # exactly on thresholds, as float32 holds them
    conf[0, 5] = 1.0
    conf[0, 6] = 0.0
    disparity = truth + (1.0 - conf) * rng.uniform(-6.0, 6.0, (h, w)).astype(np.float32)
    disparity[1, :3] = np.nan  # no prediction
    disparity[1, 3] = -1.0  # the pipeline's invalid value
    valid = np.ones((h, w), bool)
    valid[2] = False  # no ground truth
    return disparity, conf, truth, valid


def _brute_force(frames, t: float) -> dict:
    kept = err = bad2 = pixels = 0
    for disparity, conf, truth, valid in frames:
        # the pipeline's test: float32 confidence >= min_confidence on a float32 tensor
        keep_conf = (torch.from_numpy(conf) >= t).numpy()
        keep = valid & np.isfinite(disparity) & (disparity > 0) & keep_conf
        e = np.abs(disparity[keep].astype(np.float64) - truth[keep])
        kept += int(keep.sum())
        err += float(e.sum())
        bad2 += int((e > 2.0).sum())
        pixels += int(valid.sum())
    return {"kept": kept, "err": err, "bad2": bad2, "pixels": pixels}


def test_curve_counts_what_min_confidence_keeps_at_every_threshold():
    frames = [_frame(0), _frame(1)]
    curve = ConfidenceCurve()
    for f in frames:
        curve.update(*f)
    rows = curve.rows()
    assert [r["threshold"] for r in rows] == list(THRESHOLDS) and len(rows) == 101
    for row in rows:
        want = _brute_force(frames, row["threshold"])
        assert row["kept"] == want["kept"], row["threshold"]
        assert row["pixels"] == want["pixels"]
        assert row["bad2"] == want["bad2"]
        assert row["sum_abs_error"] == pytest.approx(want["err"], rel=1e-9)
        assert row["density"] == pytest.approx(100.0 * want["kept"] / want["pixels"])
        if want["kept"]:
            assert row["epe"] == pytest.approx(want["err"] / want["kept"], rel=1e-9)
    # holes (and negative predictions) are never kept, the 1.0 pixel always is; errors shrink
    # with confidence here
    assert rows[0]["pixels"] == 2 * 23 * 40 and rows[0]["kept"] <= 2 * (23 * 40 - 4)
    assert rows[-1]["kept"] >= 2
    assert rows[80]["epe"] < rows[40]["epe"] < rows[0]["epe"]


def test_csv_round_trip_and_pooling_are_pixel_weighted(tmp_path):
    a, b = ConfidenceCurve(), ConfidenceCurve()
    a.update(*_frame(0))
    b.update(*_frame(1, h=10, w=16))
    both = ConfidenceCurve()
    both.update(*_frame(0))
    both.update(*_frame(1, h=10, w=16))

    a.to_csv(tmp_path / "a.csv")
    b.to_csv(tmp_path / "b.csv")
    with open(tmp_path / "a.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:3] == ["threshold", "pixels", "kept"] and "bad2_pct" in header
    pooled = ConfidenceCurve.from_csv(tmp_path / "a.csv").merge(
        ConfidenceCurve.from_csv(tmp_path / "b.csv")
    )
    for got, want in zip(pooled.rows(), both.rows(), strict=True):
        for key in ("pixels", "kept", "bad1", "bad2", "bad3"):
            assert got[key] == want[key], (got["threshold"], key)
        assert got["sum_abs_error"] == pytest.approx(want["sum_abs_error"], rel=1e-9)

    (tmp_path / "bad.csv").write_text("threshold,pixels\n0,1\n")
    with pytest.raises(ValueError, match="not a confidence_curve.csv"):
        ConfidenceCurve.from_csv(tmp_path / "bad.csv")


def test_choose_threshold_keeps_the_asked_density():
    curve = ConfidenceCurve()
    curve.update(*_frame(3))
    for min_density in (50.0, 80.0, 90.0, 95.0):
        t = choose_threshold(curve, min_density)
        assert curve.at(t)["density"] >= min_density
        if t < 1.0:  # the next threshold would keep too few
            assert curve.at(round(t + 0.01, 2))["density"] < min_density
    assert choose_threshold(curve, 100.0) == 0.0  # holes: 100 % is never reached
    with pytest.raises(ValueError, match="percentage"):
        choose_threshold(curve, 0.0)
    with pytest.raises(ValueError, match="not one of"):
        curve.at(0.505)


def test_curve_refuses_mismatched_arrays():
    disparity, conf, truth, valid = _frame(0)
    with pytest.raises(ValueError, match="one shape"):
        ConfidenceCurve().update(disparity, conf[:, :3], truth, valid)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    hyper = {"max_disparity": 16, "num_classes": 19}
    ckpt = Checkpoint(
        architecture="esp_joint",
        hyper_parameters=hyper,
        state_dict=get_model("esp_joint", **hyper).state_dict(),
        provenance={"command": "test fixture", "data": "none (untrained)"},
    )
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("weights") / "w.pt")


def test_eval_cli_writes_the_curve_consistent_with_the_dense_scores(tmp_path, weights, capsys):
    data = tmp_path / "data"
    _write_kitti(data, SAMPLES)
    out = tmp_path / "eval"
    argv = ["--weights", str(weights), "--data", str(data), "--device", "cpu"]
    argv += ["--baseline", "none", "--num-pictures", "0", "--no-progress"]
    assert main([*argv, "--out", str(out), "--confidence-curve"]) == 0
    printed = capsys.readouterr().out
    assert "| min_confidence |" in printed and "confidence_curve.csv" in printed
    assert (out / "confidence_curve.png").stat().st_size > 10_000
    curve = ConfidenceCurve.from_csv(out / "confidence_curve.csv")
    report = json.loads((out / "metrics.json").read_text())
    ours = report["methods"]["ours"]
    at0 = curve.at(0.0)
    # threshold 0 is the dense evaluation: same pixels, density and (dropped = wrong) bad-2
    assert at0["pixels"] == 3 * SAMPLES[0].disparity.size
    assert at0["density"] == pytest.approx(ours["density"], abs=1e-9)
    dense_bad2 = 100.0 * (at0["bad2"] + at0["pixels"] - at0["kept"]) / at0["pixels"]
    assert dense_bad2 == pytest.approx(ours["disparity"]["all"]["bad2"], abs=1e-6)
    summary = ours["confidence_curve"]
    assert summary["csv"].endswith("confidence_curve.csv")
    t = summary["largest_threshold_with_density_90"]
    assert summary["rows"][f"{t:.2f}"]["density"] >= 90.0
    # without the flag: no curve, no key, and the network's figures are the same
    assert main([*argv, "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())["methods"]["ours"]
    assert (
        "confidence_curve" not in plain
        and not (tmp_path / "plain" / "confidence_curve.csv").exists()
    )
    assert plain["disparity"] == ours["disparity"]


def test_pooling_command_prints_the_rule_and_refuses_a_foreign_file(tmp_path, capsys):
    a, b = ConfidenceCurve(), ConfidenceCurve()
    a.update(*_frame(0))
    b.update(*_frame(1))
    a.to_csv(tmp_path / "street" / "confidence_curve.csv")
    b.to_csv(tmp_path / "objects" / "confidence_curve.csv")
    held_out = ConfidenceCurve()
    held_out.update(*_frame(9))
    held_out.to_csv(tmp_path / "moto" / "confidence_curve.csv")
    files = [str(tmp_path / d / "confidence_curve.csv") for d in ("street", "objects")]
    argv = [*files, "--extra", str(tmp_path / "moto" / "confidence_curve.csv")]
    rc = confidence_module.main([*argv, "--min-density", "80", "--out", str(tmp_path / "pool")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| street density % |" in printed and "| moto density % |" in printed
    chosen = choose_threshold(a.merge(b), 80.0)
    assert f"min_confidence {chosen:.2f}: the largest threshold keeping >= 80 %" in printed
    assert (tmp_path / "pool" / "confidence_curve_pooled.png").is_file()
    pooled = ConfidenceCurve.from_csv(tmp_path / "pool" / "confidence_curve_pooled.csv")
    # street and objects pooled; the --extra curve only shown
    assert pooled.at(chosen)["kept"] == a.at(chosen)["kept"] + b.at(chosen)["kept"]
    (tmp_path / "x.csv").write_text("nothing\n")
    assert confidence_module.main([str(tmp_path / "x.csv")]) == 2
    assert "not a confidence_curve.csv" in capsys.readouterr().err


@pytest.mark.parametrize("config", ["esp_joint.yaml", "corr_mtl.yaml"])
def test_parameter_files_threshold_is_the_one_their_weights_card_measured(config):
    """min_confidence in a stereo parameter file is the value the model card of its weights
    chose (section "Confidence threshold"), and the card says by which rule."""
    repo = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((repo / "config" / config).read_text())
    params = params["stereo_semantic_node"]["ros__parameters"]
    card = (repo / "models" / Path(params["weights"]).with_suffix(".md").name).read_text()
    section = card[card.index("## Confidence threshold (`min_confidence`)") :]
    (stated,) = re.findall(r"sets \*\*`min_confidence: ([0-9.]+)`\*\*", section)
    assert float(stated) == params["min_confidence"] > 0.0
    assert "at least 90 % of the ground-truth pixels" in section
    assert "--confidence-curve" in section and "not used for the" in section
    assert (repo / "models" / f"{Path(params['weights']).stem}_confidence.png").is_file()
