"""stereo-semantic-train: recipes are validated, runs resume after a kill, checkpoints serve.

Every run here uses config/train/tiny_test.yaml (a tiny network on six 96x48 synthetic scenes
rendered once per session by the synth CLI), so each takes seconds on a CPU.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stereo_semantic_ros.checkpoint import load_checkpoint
from stereo_semantic_ros.datasets.kitti import Kitti2015
from stereo_semantic_ros.losses import class_weights_from_frequencies
from stereo_semantic_ros.mono_losses import CROSS_VIEW_TERMS
from stereo_semantic_ros.networks import get_model, list_models
from stereo_semantic_ros.networks.contract import TASKS
from stereo_semantic_ros.pipeline import StereoPipeline
from stereo_semantic_ros.train import main
from stereo_semantic_ros.training.config import ConfigError, config_from_dict, load_config
from stereo_semantic_ros.training.data import build_augmentor, dataset_statistics

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "config" / "train" / "tiny_test.yaml"
SHIPPED = REPO / "config" / "train" / "esp_joint_synthetic.yaml"
#: Per registered architecture: its seconds-long test recipe and its shipped recipe.
TINY_RECIPES = {
    "esp_joint": TINY,
    "corr_mtl": REPO / "config" / "train" / "corr_mtl_tiny_test.yaml",
    "hybridnet": REPO / "config" / "train" / "hybridnet_tiny_test.yaml",
    "pseudo_mtl": REPO / "config" / "train" / "pseudo_mtl_tiny_test.yaml",
    "synchronized": REPO / "config" / "train" / "synchronized_tiny_test.yaml",
}
SHIPPED_RECIPES = {
    "esp_joint": SHIPPED,
    "corr_mtl": REPO / "config" / "train" / "corr_mtl_synthetic.yaml",
    "hybridnet": REPO / "config" / "train" / "hybridnet_synthetic.yaml",
    "pseudo_mtl": REPO / "config" / "train" / "pseudo_mtl_synthetic.yaml",
    "synchronized": REPO / "config" / "train" / "synchronized_synthetic.yaml",
}
ARCHITECTURES = list_models()
DEPTH = ("hybridnet", "pseudo_mtl", "synchronized")
"""The single-image architectures (geometry ``depth``)."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _args(data_root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--config",
        str(TINY),
        "--out",
        str(out),
        "--set",
        f"data.root={data_root}",
        "--no-progress",
        *extra,
    ]


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


# --- configuration ---------------------------------------------------------------------------


def test_the_train_module_keeps_its_public_names():
    """Callers of the training entry point import it from stereo_semantic_ros.train."""
    from stereo_semantic_ros import train as train_module

    assert {"train", "main", "load_config", "ConfigError"} <= set(train_module.__all__)
    assert train_module.ConfigError is ConfigError and train_module.load_config is load_config
    assert all(callable(getattr(train_module, name)) for name in train_module.__all__)


def test_shipped_and_tiny_recipes_are_valid():
    shipped = load_config(SHIPPED)
    assert shipped.model.architecture == "esp_joint"
    assert shipped.train.tasks == ["disparity", "segmentation"]
    # the lr is halved twice, as in the paper (there at 2/3 and 5/6 of training)
    assert shipped.train.steps == 1000 and shipped.milestone_steps() == [700, 833]
    assert shipped.train.betas == [0.9, 0.999] and shipped.train.lr_decay == 0.5
    assert shipped.loss.weighting == "fixed" and (shipped.loss.w_disp, shipped.loss.w_seg) == (5, 1)
    assert load_config(TINY).train.steps == 40


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train": {"stpes": 3}}, "train.stpes"),
        ({"model": {"max_disp": 64}}, "model.max_disp"),
        ({"model": {"tasks": ["disparity"]}}, "train.tasks"),
        ({"data": {"augment": {"mirror": 0.5}}}, None),  # checked when the augmentor is built
        ({"train": {"tasks": ["depth"]}}, "train.tasks"),
        ({"train": {"batch_size": "2"}}, "train.batch_size must be an integer"),
        ({"data": {"crop": [100, 64]}}, "multiples of 8"),
        ({"data": {"type": "middlebury"}}, "data.type"),
        ({"loss": {"weighting": "equal"}}, "loss.weighting"),
        ({"optimizer": {}}, "unknown section"),
    ],
)
def test_bad_recipes_are_refused_with_the_key_named(change, message):
    raw = yaml.safe_load(TINY.read_text())
    for section, values in change.items():
        raw.setdefault(section, {}).update(values)
    if message is None:
        cfg = config_from_dict(raw)  # syntactically fine
        with pytest.raises(ConfigError, match="data.augment.mirror"):
            build_augmentor(cfg.data, 0)
        return
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        config_from_dict(raw)


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {architecture: esp_joint}\ndata: {root: x}\ntrain: {lr: fast}\n")
    assert main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "train.lr must be a number" in err and "Traceback" not in err


# --- every registered architecture: its recipes, a tiny run, single-task runs ------------------


def test_every_registered_architecture_has_a_tiny_and_a_shipped_recipe():
    assert sorted(TINY_RECIPES) == sorted(SHIPPED_RECIPES) == ARCHITECTURES


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_recipes_are_valid(arch):
    tiny, recipe = load_config(TINY_RECIPES[arch]), load_config(SHIPPED_RECIPES[arch])
    assert tiny.model.architecture == recipe.model.architecture == arch
    stride = get_model(arch, **tiny.model.hyper_parameters).stride
    assert all(v % stride == 0 for v in (*tiny.data.crop, *recipe.data.crop))
    if arch == "corr_mtl":
        assert tiny.loss.seg_warp > 0 and recipe.loss.seg_warp > 0
    if arch == "hybridnet":
        # the paper's L_H = alpha * L_S + (L_DL + L_DN), alpha = 1000, labels equally weighted
        assert recipe.loss.w_seg == 1000.0 and recipe.loss.w_disp == 1.0
        assert not recipe.loss.class_weights
        with pytest.raises(ConfigError, match="unknown key"):
            load_config(TINY_RECIPES[arch], ["model.patch_size=1"])
    if arch == "pseudo_mtl":
        # the paper's a_d 850, a_s 2.5 and cross-view weights (Sec. 4.2), with confidence
        for cfg in (tiny, recipe):
            assert (cfg.loss.w_disp, cfg.loss.w_seg) == (850.0, 2.5)
            cv = cfg.loss.cross_view
            assert cv.confidence and (cv.d_lr, cv.d_l, cv.d_r) == (0.5, 1.0, 1.0)
            assert (cv.s_lr, cv.s_l, cv.s_r) == (0.5, 1.5, 1.5)


def _tiny_args(arch: str, data_root: Path, out: Path, *extra: str) -> list[str]:
    recipe = str(TINY_RECIPES[arch])
    return ["--config", recipe, "--out", str(out), "--set", f"data.root={data_root}", *extra]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_tiny_run_trains_and_serves(arch, data_root, tmp_path):
    cfg = load_config(TINY_RECIPES[arch])
    out = tmp_path / "run"
    assert main(_tiny_args(arch, data_root, out, "--no-progress", "--max-steps", "4")) == 0
    rows = _log(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        # the logged total is the weighted task losses plus seg_warp * the warp loss; a depth
        # network's disparity task is served by its depth output (L_DL + L_DN in m^2)
        fixed = cfg.loss.w_disp * r["loss_disparity"] + cfg.loss.w_seg * r["loss_segmentation"]
        warp = cfg.loss.seg_warp * r["loss_seg_warp"] if cfg.loss.seg_warp else 0.0
        # pseudo_mtl's cross-view terms, weighted (logged as their weighted sum)
        cross = r["loss_cross_view"] if cfg.loss.cross_view else 0.0
        if cfg.loss.cross_view:
            weights = {k: getattr(cfg.loss.cross_view, k) for k in CROSS_VIEW_TERMS}
            assert cross == pytest.approx(
                sum(w * r[f"loss_{k}"] for k, w in weights.items()), rel=1e-4
            )
        con = cfg.loss.contrastive * r["loss_contrastive"] if cfg.loss.contrastive else 0.0
        assert r["loss"] == pytest.approx(fixed + warp + cross + con, rel=1e-4)
        assert np.isfinite(r["grad_norm"]) and r["loss_disparity"] > 0
        if cfg.loss.seg_warp:
            assert 0.0 < r["seg_warp_trusted"] <= 1.0
    if cfg.loss.seg_warp:
        header = (out / "log.csv").read_text().splitlines()[0].split(",")
        assert "loss_seg_warp" in header and "seg_warp_trusted" in header

    final = load_checkpoint(out / "final.pt")
    assert final.architecture == arch
    assert final.hyper_parameters["max_disparity"] == 32
    for key, value in cfg.model.hyper_parameters.items():
        assert final.hyper_parameters[key] == value, key
    model = final.build_model()
    if arch == "corr_mtl":
        assert list(model.alpha_layers) == ["0", "1", "2"]
        # the alpha layers are trained: four steps moved them off their initial values
        assert any(
            not torch.allclose(u.alpha.detach(), torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
            for u in model.alpha_layers.values()
        )
    pipe = StereoPipeline.from_checkpoint(out / "final.pt", device="cpu")
    assert pipe.geometry == model.geometry == ("depth" if arch in DEPTH else "disparity")
    sample = Kitti2015(data_root, "training")[0]
    result = pipe.run(sample.left, sample.right, sample.calib)
    assert result.disparity.shape == result.labels.shape == (48, 96)
    assert result.labels.max() < 19
    if pipe.geometry == "depth":
        assert result.depth.shape == (48, 96)
        ok = result.disparity > 0
        fb = np.float32(sample.calib.fx * sample.calib.baseline)
        np.testing.assert_array_equal(result.disparity[ok], fb / result.depth[ok])
        assert (result.disparity[ok] <= 32).all()  # max_disparity is the kept range


@pytest.mark.parametrize("task", ["disparity", "segmentation"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_single_task_modes(arch, task, data_root, tmp_path):
    cfg = load_config(TINY_RECIPES[arch])
    out = tmp_path / task
    extra = ["--no-progress", "--max-steps", "2", "--set", f"train.tasks=[{task}]"]
    if cfg.loss.seg_warp:  # the warp loss is a segmentation loss; off, to see one task alone
        extra += ["--set", "loss.seg_warp=0"]
    if cfg.loss.contrastive:  # it compares the two tasks' maps
        extra += ["--set", "loss.contrastive=0"]
    assert main(_tiny_args(arch, data_root, out, *extra)) == 0
    final = load_checkpoint(out / "final.pt")
    assert final.hyper_parameters["tasks"] == [task]
    model = final.build_model()
    assert model.tasks == (task,)
    if arch == "esp_joint":
        assert hasattr(model, "regulariser") == (task == "disparity")
    rows = _log(out)
    other = "segmentation" if task == "disparity" else "disparity"
    assert f"loss_{task}" in rows[0] and f"loss_{other}" not in rows[0]
    assert all(len([k for k in r if k in (f"loss_{t}" for t in TASKS)]) == 1 for r in rows)
    weighted = task == "segmentation" and cfg.loss.class_weights
    assert (final.class_weights is None) == (not weighted)


# --- a short run in-process: what the checkpoints carry --------------------------------------


@pytest.fixture(scope="module")
def short_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny"
    assert main(_args(data_root, out, "--max-steps", "6", "--set", "train.checkpoint_every=3")) == 0
    return out


def test_final_checkpoint_loads_in_the_pipeline_and_describes_itself(short_run, data_root):
    final = load_checkpoint(short_run / "final.pt")
    assert final.training_state == {}  # shipped-style: no optimiser state
    assert final.architecture == "esp_joint"
    assert final.hyper_parameters["max_disparity"] == 32
    assert final.hyper_parameters["tasks"] == ["disparity", "segmentation"]

    # mean/std and class weights are those of the training images and labels
    dataset = Kitti2015(data_root, "training")
    stats = dataset_statistics(dataset, 19)
    np.testing.assert_allclose(final.mean, stats["mean"], rtol=1e-6)
    np.testing.assert_allclose(final.std, stats["std"], rtol=1e-6)
    assert not np.allclose(final.mean, (127.5, 127.5, 127.5))
    expected = class_weights_from_frequencies(np.asarray(stats["class_pixels"]), 1.02)
    np.testing.assert_allclose(final.class_weights, expected, rtol=1e-6)
    assert 1.0 <= min(final.class_weights) and max(final.class_weights) <= 1 / np.log(1.02) + 1e-3

    prov = final.provenance
    assert prov["command"].startswith("stereo-semantic-train --config")
    assert prov["config"]["model"]["max_disparity"] == 32
    assert prov["data"]["num_samples"] == 6
    synthetic = prov["data"]["synthetic"]
    assert synthetic["settings"]["width"] == 96
    assert [sub["base_seed"] for sub in synthetic["subsets"].values()] == [0]
    assert prov["machine"]["cpu"] and prov["machine"]["cpu_count"] >= 1
    assert prov["step"] == 6 and prov["wall_time_s"] > 0
    assert "git_revision" in prov and prov["torch_version"] == str(torch.__version__)

    pipe = StereoPipeline.from_checkpoint(short_run / "final.pt", device="cpu")
    sample = dataset[0]
    result = pipe.run(sample.left, sample.right, sample.calib)
    assert result.disparity.shape == (48, 96) and result.labels.shape == (48, 96)
    assert pipe.mean == tuple(final.mean)


def test_last_checkpoint_holds_the_training_state(short_run):
    last = load_checkpoint(short_run / "last.pt")
    state = last.training_state
    assert state["step"] == 6
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 6
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert "weighting" in state and state["elapsed_s"] > 0


def test_logs_and_curves_are_written(short_run):
    rows = _log(short_run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and r["weight_disparity"] == 5.0 for r in rows)
    csv_lines = (short_run / "log.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,epoch,session,lr,loss") and len(csv_lines) == 7
    png = (short_run / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    summary = json.loads((short_run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["sessions"] == 1


def test_resume_auto_of_a_finished_run_does_nothing_more(short_run, data_root):
    before = _log(short_run)
    assert main(_args(data_root, short_run, "--max-steps", "6")) == 0
    assert _log(short_run) == before


def test_training_longer_continues_on_the_rescaled_schedule(short_run, data_root, tmp_path, capsys):
    """--max-steps raised after a finished run: the milestones follow the new budget."""
    out = tmp_path / "longer"
    shutil.copytree(short_run, out)
    capsys.readouterr()
    assert main(_args(data_root, out, "--max-steps", "12")) == 0
    assert "learning rate continues on the new schedule" in capsys.readouterr().err
    lr = {r["step"]: r["lr"] for r in _log(out)}
    assert sorted(lr) == list(range(1, 13))
    # 6 steps: milestones 4 and 5; 12 steps: 8 and 10 -- at step 7 nothing has been passed
    assert lr[7] == pytest.approx(1e-3) and lr[8] == pytest.approx(1e-3)
    assert lr[9] == pytest.approx(5e-4) and lr[11] == pytest.approx(2.5e-4)


def test_resume_refuses_shipped_weights(short_run, data_root, tmp_path):
    code = main(_args(data_root, tmp_path / "o", "--resume", str(short_run / "final.pt")))
    assert code == 2


# --- resume after a kill ---------------------------------------------------------------------


def _checkpoint_step(path: Path) -> int | None:
    try:
        return int(load_checkpoint(path).training_state["step"])
    except Exception:  # noqa: BLE001 - not written yet
        return None


def test_training_continues_from_the_saved_step_after_sigkill(data_root, tmp_path):
    out = tmp_path / "killed"
    total = 30
    cmd = [
        sys.executable,
        "-m",
        "stereo_semantic_ros.train",
        *_args(data_root, out, "--max-steps", str(total), "--set", "train.checkpoint_every=5"),
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        saved = None
        while time.time() < deadline and proc.poll() is None:
            saved = _checkpoint_step(out / "last.pt")
            if saved is not None:
                break
            time.sleep(0.05)
        assert saved is not None, f"no checkpoint appeared: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "final.pt").exists()
    saved = _checkpoint_step(out / "last.pt")  # it may have written a later one meanwhile
    assert saved is not None and 5 <= saved < total and saved % 5 == 0
    killed_rows = _log(out)
    assert killed_rows[-1]["step"] >= saved

    done = subprocess.run(
        [*cmd, "--resume", "auto"], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming at step {saved + 1} of {total}" in done.stderr

    rows = _log(out)
    steps = [r["step"] for r in rows]
    assert steps == list(range(1, total + 1))  # every step once: rows after the kill dropped
    resumed = [r["step"] for r in rows if r["session"] == 1]
    assert resumed[0] == saved + 1 and resumed[-1] == total
    # the rows up to the checkpoint are the killed run's, unchanged
    assert rows[:saved] == killed_rows[:saved]
    # the learning rate continues on the schedule: halved at 20 (2/3) and at 25 (5/6)
    lr = {r["step"]: r["lr"] for r in rows}
    assert lr[20] == pytest.approx(1e-3) and lr[21] == pytest.approx(5e-4)
    assert lr[26] == pytest.approx(2.5e-4) and lr[total] == pytest.approx(2.5e-4)
    final = load_checkpoint(out / "final.pt")
    assert final.provenance["step"] == total
    # the provenance tells both sessions apart
    history = final.provenance["history"]
    assert [(h["from_step"], h["to_step"]) for h in history] == [(0, saved), (saved, total)]
    assert history[1]["command"].endswith("--resume auto")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == total and summary["sessions"] == 2


# --- ablation modes and loss weightings --------------------------------------------------------


def test_gradnorm_and_uncertainty_weightings_train_and_resume(data_root, tmp_path):
    out = tmp_path / "gn"
    args = _args(
        data_root,
        out,
        "--set",
        "loss.weighting=gradnorm",
        "--set",
        "loss.gradnorm_lr=0.05",
        "--set",
        "train.checkpoint_every=2",
    )
    assert main([*args, "--max-steps", "4"]) == 0
    rows = _log(out)
    weights = [(r["weight_disparity"], r["weight_segmentation"]) for r in rows]
    assert weights[0] == pytest.approx((2 * 5 / 6, 2 * 1 / 6))
    assert weights[-1] != weights[0]  # adapted
    assert all(sum(w) == pytest.approx(2.0, abs=1e-4) for w in weights)
    state = load_checkpoint(out / "last.pt").training_state["weighting"]
    assert torch.isfinite(state["initial_losses"]).all()

    out = tmp_path / "uw"
    assert (
        main(_args(data_root, out, "--max-steps", "3", "--set", "loss.weighting=uncertainty")) == 0
    )
    rows = _log(out)
    assert rows[0]["log_var_disparity"] == 0.0 and rows[-1]["log_var_disparity"] != 0.0
    state = load_checkpoint(out / "last.pt").training_state
    assert float(state["weighting"]["log_vars.disparity"]) == pytest.approx(
        rows[-1]["log_var_disparity"], abs=0.01
    )
    # the log-variances are trained by the network's optimiser (a second parameter group)
    assert len(state["optimizer"]["param_groups"]) == 2


# --- multi-process (DistributedDataParallel on gloo) -------------------------------------------


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun is not installed",
)
def test_torchrun_two_processes_on_gloo(data_root, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "ddp"
    cmd = [
        torchrun,
        "--nproc_per_node=2",
        "--master_port",
        str(29500 + os.getpid() % 500),
        "-m",
        "stereo_semantic_ros.train",
        *_args(data_root, out, "--max-steps", "3", "--set", "train.checkpoint_every=2"),
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "batch 2 x 2 process(es)" in done.stderr
    rows = _log(out)
    assert [r["step"] for r in rows] == [1, 2, 3]  # only rank 0 logs
    final = load_checkpoint(out / "final.pt")
    assert final.provenance["world_size"] == 2
    # DDP wrappers are not saved: the weights load into the plain architecture
    assert not any(k.startswith("module.") for k in final.state_dict)
    final.build_model()


def test_data_generate_says_what_it_renders_and_renders_only_once(tmp_path, capsys):
    """data.generate renders the missing split (announced before the progress bar, with the
    flag that scales it) and leaves a complete split alone."""
    from stereo_semantic_ros.training.data import ensure_synthetic

    root = tmp_path / "gen"
    cfg = config_from_dict(
        {
            "model": {"architecture": "esp_joint"},
            "data": {
                "type": "synthetic",
                "root": str(root),
                "generate": {"count": 3, "width": 128, "height": 64, "seed": 5},
            },
        }
    )
    ensure_synthetic(cfg.data)
    err = capsys.readouterr().err
    assert "holds 0 of 3 scenes" in err and "--set data.generate.count=" in err
    images = sorted((root / "training" / "image_2").glob("*_10.png"))
    assert len(images) == 3
    stamp = [p.stat().st_mtime_ns for p in images]
    ensure_synthetic(cfg.data)
    assert "rendering" not in capsys.readouterr().err
    assert [p.stat().st_mtime_ns for p in images] == stamp


def test_training_leaves_the_processs_float_mode_as_it_found_it(data_root, tmp_path):
    """Training flushes denormals to zero on the CPU for speed; afterwards the calling process
    (a test session, a notebook) sees IEEE subnormals again."""
    assert float(np.float64(5e-324) * 1.0) > 0.0
    assert main(_args(data_root, tmp_path / "run", "--max-steps", "1")) == 0
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # a float32 subnormal
    assert float(tiny * 1.0) > 0.0


# --- a second stage: train.init_weights ---------------------------------------------------------


def test_init_weights_starts_a_fresh_run_from_a_checkpoint(short_run, data_root, tmp_path):
    """The fine-tuning stage starts from the checkpoint's weights with its normalisation and a
    new optimiser; its provenance names where it started."""
    init = load_checkpoint(short_run / "final.pt")
    out = tmp_path / "stage2"
    extra = ["--max-steps", "1", "--set", f"train.init_weights={short_run / 'final.pt'}"]
    # a learning rate too small to move a weight: what step 1 ends with is what it started from
    assert main(_args(data_root, out, *extra, "--set", "train.lr=1.0e-30")) == 0
    tuned = load_checkpoint(out / "final.pt")
    assert tuned.mean == init.mean and tuned.std == init.std
    for key, value in init.state_dict.items():
        if value.is_floating_point() and "running_" not in key:
            torch.testing.assert_close(tuned.state_dict[key], value, msg=key)
    assert tuned.provenance["init_weights"]["path"] == str(short_run / "final.pt")
    assert tuned.provenance["init_weights"]["provenance"]["steps"] == 6
    # and a fresh run from scratch does not share them
    scratch = tmp_path / "scratch"
    assert main(_args(data_root, scratch, "--max-steps", "1", "--set", "train.seed=5")) == 0
    other = load_checkpoint(scratch / "final.pt").state_dict
    assert any(not torch.equal(other[k], v) for k, v in init.state_dict.items())


def test_init_weights_of_another_network_is_refused(short_run, data_root, tmp_path, capsys):
    extra = ["--set", f"train.init_weights={short_run / 'final.pt'}", "--set", "model.q=2"]
    assert main(_args(data_root, tmp_path / "o", *extra)) == 2
    err = capsys.readouterr().err
    assert "train.init_weights" in err and "keeps the network as it is" in err
    assert main(_args(data_root, tmp_path / "o2", "--set", "train.init_weights=nope.pt")) == 2
    assert "nope.pt" in capsys.readouterr().err
