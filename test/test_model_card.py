"""Each model card's evaluation row is what stereo-semantic-eval measures on its shipped weights.

Regenerates the cards' held-out split (the first 100 scenes of seed 1000, 384x128; each scene
depends only on the seed and its index) and evaluates the shipped weights through the
evaluation CLI, so a change to the generator, the pipeline or the metrics that moves the
card's figures fails here instead of leaving the card stale.
"""

import json
from pathlib import Path

import pytest

from stereo_semantic_ros import evaluate
from stereo_semantic_ros.synth import cli as synth_cli

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
SHIPPED = sorted(p.stem for p in MODELS.glob("*.pt"))
# card column -> (metrics.json path in methods["ours"], scale)
COLUMNS = {
    "EPE NOC": (("disparity", "noc", "epe"), 1.0),
    "bad-3 NOC": (("disparity", "noc", "bad3"), 1.0),
    "EPE All": (("disparity", "all", "epe"), 1.0),
    "bad-1 All": (("disparity", "all", "bad1"), 1.0),
    "bad-3 All": (("disparity", "all", "bad3"), 1.0),
    "D1 All": (("disparity", "all", "d1"), 1.0),
    "mIoU": (("segmentation", "miou"), 100.0),
    "G": (("segmentation", "global_accuracy"), 100.0),
    "C": (("segmentation", "class_accuracy"), 100.0),
}


def card_row(card: Path, method: str, columns: dict = COLUMNS) -> dict[str, float | None]:
    """The card's first table row of ``method``, keyed by the table's header (``columns``);
    ``-`` (nothing to measure, e.g. bad-2 of the predicted pixels when there are none) is None."""
    lines = card.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"| {method} |"):
            sep = next(j for j in range(i - 1, -1, -1) if lines[j].startswith("|---"))
            names = [c.strip() for c in lines[sep - 1].strip("|").split("|")]
            cells = [c.strip() for c in line.strip("|").split("|")]
            return {
                n: None if c == "-" else float(c)
                for n, c in zip(names, cells, strict=True)
                if n in columns
            }
    raise AssertionError(f"no '| {method} |' row in {card}")


@pytest.fixture(scope="module")
def test_split(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("synth") / "test"
    argv = ["--out", str(data), "--count", "100", "--width", "384", "--height", "128"]
    assert synth_cli.main([*argv, "--seed", "1000", "--workers", "2"]) == 0
    return data


def test_every_shipped_weights_file_has_a_model_card():
    assert "esp_joint_synthetic" in SHIPPED
    for stem in SHIPPED:
        assert (MODELS / f"{stem}.md").is_file(), f"models/{stem}.pt has no model card"


@pytest.mark.parametrize("stem", SHIPPED)
def test_eval_reproduces_the_cards_figures(stem, test_split, tmp_path):
    card = card_row(MODELS / f"{stem}.md", "ours")
    assert set(card) == set(COLUMNS), "the card's table lost a column this test checks"

    out = tmp_path / "eval"
    weights = MODELS / f"{stem}.pt"
    argv = ["--weights", str(weights), "--data", str(test_split), "--max-images", "100"]
    argv += ["--baseline", "none", "--num-pictures", "0", "--out", str(out), "--no-progress"]
    assert evaluate.main([*argv, "--device", "cpu"]) == 0

    ours = json.loads((out / "metrics.json").read_text())["methods"]["ours"]
    for name, (path, scale) in COLUMNS.items():
        value = ours
        for key in path:
            value = value[key]
        # the card rounds to 2 decimals; float differences between CPUs are far smaller
        assert abs(value * scale - card[name]) <= 0.0051, (name, value * scale, card[name])


# real-pair card column -> (path in methods[m]["benchmark"]["all"], scale)
REAL_COLUMNS = {
    "EPE": (("dense", "epe"), 1.0),
    "bad-1": (("dense", "bad1"), 1.0),
    "bad-2": (("dense", "bad2"), 1.0),
    "bad-4": (("dense", "bad4"), 1.0),
    "bad-2 pred": (("predicted", "bad2"), 1.0),
    "density": (("density",), 1.0),
}
REAL_METHODS = ("ours", "StereoSGBM", "StereoSGBM+fill")
REAL_CARDS = sorted(
    stem for stem in SHIPPED if "| ours (Motorcycle) |" in (MODELS / f"{stem}.md").read_text()
)


def real_card_rows(card: Path) -> dict[str, dict[str, float]]:
    """The card's Motorcycle rows (``| <method> (Motorcycle) |``), keyed by method."""
    rows = {}
    for method in REAL_METHODS:
        row = card_row(card, f"{method} (Motorcycle)", REAL_COLUMNS)
        rows[method] = row
    return rows


@pytest.mark.parametrize("config", ["esp_joint.yaml", "corr_mtl.yaml"])
def test_the_stereo_parameter_files_weights_carry_a_real_pair_row(config):
    """The weights the stereo parameter files name say how they do on a real pair."""
    import yaml

    params = yaml.safe_load((REPO / "config" / config).read_text())
    weights = Path(params["stereo_semantic_node"]["ros__parameters"]["weights"]).stem
    assert weights in REAL_CARDS


@pytest.mark.parametrize("stem", REAL_CARDS)
def test_eval_reproduces_the_cards_real_pair_rows(stem, tmp_path):
    rows = real_card_rows(MODELS / f"{stem}.md")
    out = tmp_path / "eval"
    argv = ["--weights", str(MODELS / f"{stem}.pt"), "--data", "builtin:motorcycle"]
    argv += ["--num-pictures", "0", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert evaluate.main(argv) == 0
    methods = json.loads((out / "metrics.json").read_text())["methods"]
    for method, row in rows.items():
        assert set(row) == set(REAL_COLUMNS), f"{stem}: {method} row lost a column"
        measured = methods[method]["benchmark"]["all"]
        for name, (path, scale) in REAL_COLUMNS.items():
            value = measured
            for key in path:
                value = value[key]
            if row[name] is None:
                assert value is None, (method, name, value, "card says '-'")
                continue
            assert abs(value * scale - row[name]) <= 0.0051, (method, name, value, row[name])
