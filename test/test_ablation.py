"""stereo-semantic-ablation: three variants of one recipe, trained alike, evaluated alike.

Runs the tiny recipe (config/train/tiny_test.yaml) for a few steps per variant on six 96x48
synthetic scenes, so the whole ablation takes seconds on a CPU.
"""

import json
from pathlib import Path

from stereo_semantic_ros.ablation import VARIANTS, main, markdown_table, running_mean
from stereo_semantic_ros.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "config" / "train" / "tiny_test.yaml"


def _argv(data_root: Path, out: Path, steps: int) -> list[str]:
    return [
        "--config",
        str(TINY),
        "--test-data",
        str(data_root),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--set",
        f"data.root={data_root}",
        "--device",
        "cpu",
        "--no-progress",
    ]


def test_ablation_trains_each_variant_on_one_budget_and_tabulates(data_root, tmp_path, capsys):
    out = tmp_path / "ablation"
    assert main(_argv(data_root, out, steps=3)) == 0

    report = json.loads((out / "ablation.json").read_text())
    rows = {r["name"]: r for r in report["variants"]}
    assert list(rows) == list(VARIANTS)
    hyper = {}
    for name, tasks in VARIANTS.items():
        hp = dict(load_checkpoint(out / name / "final.pt").hyper_parameters)
        assert hp.pop("tasks") == list(tasks)
        hyper[name] = hp
        assert rows[name]["steps"] == 3
        assert (out / name / "eval" / "metrics.json").is_file()
    # only train.tasks differs between the variants
    assert hyper["joint"] == hyper["disparity-only"] == hyper["segmentation-only"]
    joint, disp, seg = rows["joint"], rows["disparity-only"], rows["segmentation-only"]
    # each single-task network is a strict part of the joint one
    assert joint["parameters"] > disp["parameters"] > 0
    assert joint["parameters"] > seg["parameters"] > 0
    assert seg["epe_all"] is None and seg["bad3_all"] is None and seg["miou"] is not None
    assert disp["miou"] is None and disp["epe_all"] is not None
    assert joint["epe_all"] is not None and 0.0 <= joint["miou"] <= 100.0

    table = (out / "ablation.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == list(VARIANTS)
    assert (out / "ablation.png").stat().st_size > 10_000
    assert "| joint |" in capsys.readouterr().out


def test_a_finished_ablation_is_only_re_evaluated(data_root, tmp_path):
    out = tmp_path / "ablation"
    assert main(_argv(data_root, out, steps=2)) == 0
    logs = {name: (out / name / "log.jsonl").read_text() for name in VARIANTS}
    assert main(_argv(data_root, out, steps=2)) == 0
    assert {name: (out / name / "log.jsonl").read_text() for name in VARIANTS} == logs


def test_missing_test_data_is_a_clear_error(data_root, tmp_path, capsys):
    argv = _argv(data_root, tmp_path / "a", steps=1)
    argv[argv.index("--test-data") + 1] = str(tmp_path / "nowhere")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "does not exist" in err
    assert not (tmp_path / "a" / "joint").exists()


def test_running_mean_and_table_cells():
    assert running_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    row = dict.fromkeys(
        ("steps", "train_minutes", "epe_noc", "bad3_noc", "epe_all", "bad3_all"), None
    )
    row.update(name="segmentation-only", parameters=1234, miou=12.345, ms_per_image=5.0)
    row.update(global_accuracy=50.0, class_accuracy=None, steps=7, train_minutes=0.25)
    line = markdown_table([row]).splitlines()[-1]
    assert line == "| segmentation-only | 1,234 | 7 | 0.2 | - | - | - | - | 12.35 | 50.00 | - | 5 |"


def test_a_bad_override_is_a_clear_error_before_any_training(data_root, tmp_path, capsys):
    argv = [*_argv(data_root, tmp_path / "a", steps=1), "--set", "loss.no_such_key=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("stereo-semantic-ablation: error:") and "no_such_key" in err
    assert not (tmp_path / "a" / "joint").exists()


def test_a_failed_evaluation_stops_the_ablation_and_says_which(data_root, tmp_path, capsys):
    empty = tmp_path / "not_a_dataset"
    empty.mkdir()
    argv = _argv(data_root, tmp_path / "a", steps=1)
    argv[argv.index("--test-data") + 1] = str(empty)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "evaluating" in err and str(tmp_path / "a" / "joint" / "final.pt") in err
    # the joint run it trained is kept; nothing after it ran
    assert (tmp_path / "a" / "joint" / "final.pt").is_file()
    assert not (tmp_path / "a" / "disparity-only").exists()


def test_vary_one_setting_with_a_real_pair_column(data_root, tmp_path):
    """--vary trains one variant per value (only that setting differs) and --real-data adds
    each variant's dense EPE / bad-2 on a two-view folder."""
    out = tmp_path / "vary"
    argv = _argv(data_root, out, steps=2)
    argv += ["--vary", "model.matching_cost=concat,census"]
    argv += ["--real-data", str(REPO / "test" / "fixtures" / "two_view" / "middlebury")]
    assert main(argv) == 0
    report = json.loads((out / "ablation.json").read_text())
    names = [r["name"] for r in report["variants"]]
    assert names == ["matching_cost=concat", "matching_cost=census"]
    hyper = {}
    for row in report["variants"]:
        hp = dict(load_checkpoint(out / row["name"] / "final.pt").hyper_parameters)
        hyper[row["name"]] = hp
        assert row["tasks"] == ["disparity", "segmentation"]
        assert row["real_epe"] is not None and 0.0 <= row["real_bad2"] <= 100.0
        assert (out / row["name"] / "eval_real" / "metrics.json").is_file()
    concat, census = hyper["matching_cost=concat"], hyper["matching_cost=census"]
    assert concat.pop("matching_cost") == "concat" and census.pop("matching_cost") == "census"
    assert concat == census
    assert "real bad-2" in (out / "ablation.md").read_text().splitlines()[0]


def test_a_bad_vary_is_a_clear_error(data_root, tmp_path, capsys):
    argv = [*_argv(data_root, tmp_path / "v", steps=1), "--vary", "model.matching_cost=census"]
    assert main(argv) == 2
    assert "--vary needs SECTION.KEY=VALUE1,VALUE2" in capsys.readouterr().err


def test_named_variants_each_apply_all_their_settings(data_root, tmp_path):
    """--variant NAME:K=V;K=V trains one run per name with exactly its settings (a paper's
    ablation switches several losses at once); 'NAME:' alone is the recipe unchanged."""
    import yaml

    out = tmp_path / "named"
    argv = _argv(data_root, out, steps=2)
    argv += [
        "--variant",
        "recipe:",
        "--variant",
        "both:model.matching_cost=concat; loss.w_seg=0.25",
    ]
    assert main(argv) == 0
    report = json.loads((out / "ablation.json").read_text())
    assert [(r["name"], r["overrides"]) for r in report["variants"]] == [
        ("recipe", []),
        ("both", ["model.matching_cost=concat", "loss.w_seg=0.25"]),
    ]
    configs = {n: yaml.safe_load((out / n / "config.yaml").read_text()) for n in ("recipe", "both")}
    assert "matching_cost" not in configs["recipe"]["model"]  # the network's default: census
    assert configs["recipe"]["loss"]["w_seg"] == 1.0
    assert configs["both"]["model"]["matching_cost"] == "concat"
    assert configs["both"]["loss"]["w_seg"] == 0.25
    hyper = {n: load_checkpoint(out / n / "final.pt").hyper_parameters for n in configs}
    assert "matching_cost" not in hyper["recipe"] and hyper["both"]["matching_cost"] == "concat"


def test_a_bad_named_variant_is_a_clear_error(data_root, tmp_path, capsys):
    base = _argv(data_root, tmp_path / "v", steps=1)
    assert main([*base, "--variant", "loss.w_seg=0.5"]) == 2
    assert "--variant needs NAME:SECTION.KEY=VALUE" in capsys.readouterr().err
    assert main([*base, "--variant", "a:", "--variant", "a:loss.w_seg=1"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main([*base, "--variant", "a:", "--vary", "loss.w_seg=1,2"]) == 2
    assert "either --vary or --variant" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()
