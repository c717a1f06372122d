"""``make demo`` at a tiny size: it runs end to end, and what it prints is what it reports.

This is how the demo runs in CI (``.ci/run`` runs ``make test`` only): the same ``main`` that
``make demo`` calls, with the shipped weights when they are present (else its untrained
fallback, with the warning it prints), on a 3-frame 64x32 synthetic bag.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from stereo_semantic_ros.demo import main
from stereo_semantic_ros.replay.report import ACCURACY_ROWS, LATENCY_ROWS, lookup


def test_demo_prints_the_figures_of_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "demo"
    code = main(
        [
            "--out",
            str(out),
            "--count",
            "3",
            "--width",
            "64",
            "--height",
            "32",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "replay" / "report.json").read_text())

    # where everything is
    assert f"output bag: {out / 'replay' / 'bag'}" in printed
    assert f"report:     {out / 'replay' / 'report.json'}" in printed
    assert (out / "replay" / "bag" / "metadata.yaml").is_file()
    assert report["previews"] and all(Path(p).is_file() for p in report["previews"])
    assert str(Path(report["previews"][0]).parent) in printed
    assert report["frames"]["processed"] == 3 and report["accuracy"]["frames"] == 3

    # every accuracy figure on screen equals report.json's to the printed precision
    compared = 0
    for path, label, _unit, scale, decimals in ACCURACY_ROWS:
        value = lookup(report["accuracy"], path)
        match = re.search(rf"^  {re.escape(label)} +(\S+)", printed, flags=re.M)
        assert match, f"{label!r} not printed:\n{printed}"
        if value is None or math.isnan(value):
            assert match.group(1) == "-"
            continue
        assert float(match.group(1)) == pytest.approx(value * scale, abs=0.5 * 10**-decimals)
        compared += 1
    assert compared >= 8  # disparity, depth and segmentation rows all have numbers

    # latency percentiles and throughput too
    for key, label in LATENCY_ROWS:
        match = re.search(rf"^  {re.escape(label)} +(\S+) +(\S+) +(\S+) +(\S+)$", printed, re.M)
        assert match, f"latency row {label!r} not printed"
        stats = report["latency_ms"][key]
        for cell, name in zip(match.groups(), ("p50", "p90", "p99", "mean")):
            assert float(cell) == pytest.approx(stats[name], abs=0.005)
    tp = re.search(r"throughput: (\S+) frames/s processing, (\S+) frames/s overall", printed)
    assert tp and float(tp.group(1)) == pytest.approx(
        report["throughput"]["processing_fps"], abs=0.005
    )

    # the demo overwrites its own previous output on a second run
    assert (
        main(
            [
                "--out",
                str(out),
                "--count",
                "1",
                "--width",
                "64",
                "--height",
                "32",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    again = json.loads((out / "replay" / "report.json").read_text())
    assert again["frames"]["processed"] == 1


def test_demo_bag_size_comes_from_the_weights_provenance(tmp_path: Path) -> None:
    """The demo renders its bag at the size the weights were trained on, as
    stereo-semantic-train records it (``provenance.data.image_size_hw``, ``[H, W]``)."""
    from stereo_semantic_ros.checkpoint import Checkpoint, save_checkpoint
    from stereo_semantic_ros.demo import FALLBACK_SIZE, training_size
    from stereo_semantic_ros.pipeline import StereoPipeline

    model = StereoPipeline.untrained(max_disparity=16, device="cpu").model
    path = save_checkpoint(
        Checkpoint(
            architecture="esp_joint",
            hyper_parameters={"max_disparity": 16},
            state_dict=model.state_dict(),
            provenance={"data": {"image_size_hw": [40, 96], "crop_hw": [32, 64]}},
        ),
        tmp_path / "w.pt",
    )
    assert training_size(path) == (96, 40)
    assert training_size(tmp_path / "missing.pt") == FALLBACK_SIZE


def test_demo_runs_the_architecture_of_its_parameter_file(tmp_path: Path) -> None:
    """``--params config/corr_mtl.yaml`` alone runs corr_mtl with the weights that file names."""
    params = Path(__file__).parents[1] / "config" / "corr_mtl.yaml"
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--count", "2", "--width", "64", "--height", "32"]
    assert main([*argv, "--params", str(params), "--device", "cpu", "--no-progress"]) == 0
    report = json.loads((out / "replay" / "report.json").read_text())
    assert report["settings"]["architecture"] == "corr_mtl"
    assert report["settings"]["weights"] == "corr_mtl_mixed.pt"
    assert report["model"]["architecture"] == "corr_mtl"
    assert report["model"]["weights"].endswith("models/corr_mtl_mixed.pt")
    assert not report["warnings"] and report["frames"]["processed"] == 2
