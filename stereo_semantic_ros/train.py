"""``stereo-semantic-train``: train a registered architecture from a YAML recipe.

Example::

    stereo-semantic-train --config config/train/esp_joint_synthetic.yaml --out runs/esp_joint
    # killed? the same command continues from runs/esp_joint/last.pt (--resume auto)
    torchrun --nproc_per_node=2 -m stereo_semantic_ros.train --config ...   # DDP

The recipe (see :class:`~stereo_semantic_ros.training.config.TrainConfig`) has four sections:
``model`` (architecture and its hyper-parameters), ``data`` (dataset, split, crop,
augmentation, validation split), ``train`` (steps, batch, optimiser, schedule, checkpointing,
tasks) and ``loss`` (weighting).

What a run writes under ``--out``:

* ``last.pt``: every ``train.checkpoint_every`` steps and at the end, atomically; it holds the
  ``training_state`` (optimiser, scheduler, AMP scaler, loss weighting, RNG states, step)
  that ``--resume`` continues from;
* ``final.pt``: the trained weights without training state, with class weights, the
  normalisation statistics of the training images and the provenance (command, config,
  data, machine, git revision, wall time) -- load it with ``StereoPipeline.from_checkpoint``;
* ``log.csv`` and ``log.jsonl``: one row per optimiser step (validation columns filled every
  ``train.eval_every`` steps); ``curves.png``: the training curves; ``summary.json``.

Training follows the ESP joint paper (Sec. IV-B): Adam (0.9, 0.999), learning rate 5e-4
halved twice -- at epochs 400 and 500 of 600 there, here at 2/3 and 5/6 of the step budget --
images normalised with the training set's mean and std (through the same
:func:`~stereo_semantic_ros.preprocess.normalize` the pipeline uses), class weights
``1 / ln(1.02 + p_class)``, loss ``5 L_d + 1 L_s`` (or GradNorm / uncertainty weighting).

This module is the command line and the training loop; the pieces the loop is made of are in
:mod:`stereo_semantic_ros.training`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from stereo_semantic_ros.checkpoint import Checkpoint, CheckpointError, save_checkpoint
from stereo_semantic_ros.labels import CITYSCAPES_19
from stereo_semantic_ros.training import FINAL, LAST, PROG
from stereo_semantic_ros.training.config import ConfigError, TrainConfig, load_config
from stereo_semantic_ros.training.data import (
    batch_on_device,
    distributed_sampler,
    ensure_synthetic,
    epoch_loader,
    training_dataset,
    training_statistics,
    validation_dataset,
)
from stereo_semantic_ros.training.distributed import barrier, setup_distributed
from stereo_semantic_ros.training.optimisation import build_optimisation
from stereo_semantic_ros.training.provenance import (
    checkpoint_provenance,
    run_provenance,
    session_history,
)
from stereo_semantic_ros.training.runlog import (
    RunLog,
    log_columns,
    plot_run_curves,
    write_summary,
)
from stereo_semantic_ros.training.state import (
    RunState,
    initial_state_dict,
    make_checkpoint,
    open_init_checkpoints,
    open_resume_checkpoint,
    resume_training,
)
from stereo_semantic_ros.training.validation import VAL_KEYS, update_best, validate

__all__ = ["ConfigError", "TrainConfig", "build_parser", "load_config", "main", "train"]


def train(
    cfg: TrainConfig,
    out: Path,
    *,
    resume: str = "auto",
    command: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or continue) a training; returns the summary also written to ``summary.json``.

    Args:
        resume: ``auto`` (continue from ``out/last.pt`` if it exists), ``none`` (start over)
            or the path of a ``last.pt`` to continue from.
        command: the command line, for the provenance.
    """
    threads = torch.get_num_threads()
    try:
        return _train(cfg, Path(out), resume, command, progress)
    finally:
        # train.threads is this run's setting, not the calling process's
        torch.set_num_threads(threads)
        # nor is flushing denormals to zero (_train turns it on for the CPU; torch's default is
        # off and it has no getter): a caller's later float code must see IEEE subnormals
        torch.set_flush_denormal(False)


def _train(
    cfg: TrainConfig, out: Path, resume: str, command: Sequence[str], progress: bool
) -> dict[str, Any]:
    start_time = time.time()
    tcfg = cfg.train
    info, device = setup_distributed(tcfg.device)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    if device.type == "cpu":
        # Activations and gradients drift into denormal floats as training goes on, and x86
        # CPUs handle those in microcode: measured here, steps went from 2.6 s to 15 s within
        # a few iterations. Flushing them to zero costs no accuracy that matters.
        torch.set_flush_denormal(True)
    out = Path(out)
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        ensure_synthetic(cfg.data)
    barrier(info)
    resume_path, ckpt = open_resume_checkpoint(resume, out)

    # ---- data and its statistics
    seed = tcfg.seed
    dataset = training_dataset(cfg.data, seed + 7919 * info.rank)
    val_set = validation_dataset(cfg.data) if info.main else None
    label_set = CITYSCAPES_19
    tasks = list(tcfg.tasks)
    inits = open_init_checkpoints(cfg) if ckpt is None else []
    stats, class_weights = training_statistics(cfg, dataset, label_set.num_classes, ckpt)
    if inits:
        # the weights learned on inputs normalised with their own statistics (the first
        # checkpoint's); class weights follow the new data
        stats["mean"], stats["std"] = list(inits[0].mean), list(inits[0].std)
        started = [{"path": c.source, "provenance": c.provenance} for c in inits]
        stats["init_weights"] = started[0] if len(started) == 1 else started
    mean, std = tuple(stats["mean"]), tuple(stats["std"])

    # ---- model, loss weighting, optimiser
    torch.manual_seed(seed)  # same initial weights on every rank
    np.random.seed(seed % 2**32)
    random.seed(seed)
    opt = build_optimisation(cfg, label_set.num_classes, device)
    state = RunState()
    if ckpt is not None:
        state = resume_training(opt, ckpt, resume_path, cfg, info)
    elif inits:
        opt.model.load_state_dict(initial_state_dict(opt.model, inits))
    opt.start(info, class_weights)

    # ---- data order: one DistributedSampler (also for a single process), resumable mid-epoch
    sampler, batches_per_epoch = distributed_sampler(
        dataset, info.rank, info.world_size, seed, tcfg.batch_size
    )

    provenance_base = run_provenance(
        cfg, command, dataset, stats, device, info.world_size, opt.use_amp
    )
    if "init_weights" in stats:  # also on resume: last.pt's statistics keep it
        provenance_base["init_weights"] = stats["init_weights"]
    history = session_history(ckpt, provenance_base, cfg, state.step)

    def checkpoint(final: bool) -> Checkpoint:
        elapsed = state.elapsed_s + (time.time() - session_start)
        return make_checkpoint(
            cfg,
            opt,
            state,
            label_set=label_set,
            stats=stats,
            class_weights=class_weights,
            provenance=checkpoint_provenance(provenance_base, history, state.step, elapsed),
            history=history,
            elapsed_s=elapsed,
            world_size=info.world_size,
            final=final,
        )

    columns = log_columns(tasks, opt.weighting, val_set is not None, opt.extra_log_columns)
    log = RunLog(out, columns, state.step if ckpt is not None else None) if info.main else None
    if info.main:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if ckpt is None:
            where = f"starting {tcfg.steps} steps"
        elif state.step >= tcfg.steps:
            where = f"finished run ({state.step} of {tcfg.steps} steps), rewriting its outputs"
        else:
            where = f"resuming at step {state.step + 1} of {tcfg.steps}"
        print(
            f"{PROG}: {where}; {len(dataset)} training samples, batch "
            f"{tcfg.batch_size} x {info.world_size} process(es), {batches_per_epoch} steps per "
            f"epoch, device {device}, tasks {tasks}, weighting {opt.weighting.kind}, "
            f"lr {tcfg.lr} x{tcfg.lr_decay} at steps {cfg.milestone_steps()}",
            file=sys.stderr,
        )

    session_start = time.time()
    bar = tqdm(
        total=tcfg.steps,
        initial=state.step,
        disable=not (progress and info.main),
        unit="step",
        desc="train",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )
    recent: list[float] = []
    try:
        while state.step < tcfg.steps:
            epoch, offset = divmod(state.step, batches_per_epoch)
            loader = epoch_loader(dataset, sampler, epoch, offset, tcfg, info.rank, device)
            for batch in loader:
                t0 = time.time()
                state.step += 1
                left, right, target = batch_on_device(batch, device, mean, std)
                metrics, grad_norm, lr = opt.step(left, right, target, state.step)
                step_s = time.time() - t0
                recent = (recent + [step_s])[-20:]
                row: dict[str, Any] = {
                    "step": state.step,
                    "epoch": epoch,
                    "session": state.sessions,
                    "lr": lr,
                    **metrics,
                    "grad_norm": grad_norm,
                    "step_s": step_s,
                    "images_per_s": tcfg.batch_size * info.world_size / max(np.mean(recent), 1e-9),
                    "elapsed_s": state.elapsed_s + time.time() - session_start,
                }
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{lr:.1e}", refresh=False)
                last = state.step >= tcfg.steps
                if (
                    val_set is not None
                    and info.main
                    and (last or (tcfg.eval_every and state.step % tcfg.eval_every == 0))
                ):
                    state.last_val = validate(
                        opt.network,
                        val_set,
                        mean,
                        std,
                        device,
                        cfg.data.val.max_images,  # type: ignore[union-attr]
                    )
                    row.update(state.last_val)
                    update_best(state.best, state.last_val)
                    bar.write(
                        f"step {state.step}: "
                        + ", ".join(f"{k} {v:.3f}" for k, v in state.last_val.items())
                    )
                if log is not None and (
                    last
                    or tcfg.log_every <= 1
                    or state.step % tcfg.log_every == 0
                    or any(k in row for k in VAL_KEYS)
                ):
                    log.write(row)
                if last or (tcfg.checkpoint_every and state.step % tcfg.checkpoint_every == 0):
                    if info.main:
                        save_checkpoint(checkpoint(final=False), out / LAST)
                        assert log is not None
                        plot_run_curves(out, log.rows, columns)
                    barrier(info)
                if last:
                    break
    finally:
        bar.close()
        if log is not None:
            log.close()

    summary: dict[str, Any] = {}
    if info.main:
        save_checkpoint(checkpoint(final=True), out / FINAL)
        assert log is not None
        plot_run_curves(out, log.rows, columns)
        summary = write_summary(
            out,
            state,
            log.rows,
            elapsed_s=state.elapsed_s + time.time() - session_start,
            session_s=time.time() - start_time,
            device=str(device),
            world_size=info.world_size,
            machine=provenance_base["machine"],
            skipped_nonfinite=opt.skipped_nonfinite,
        )
    barrier(info)
    return summary


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a stereo + semantics network from a YAML recipe; resumable, "
        "DistributedDataParallel when started with torchrun.",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML training recipe")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directory (default runs/<config name>); holds last.pt, final.pt, logs",
    )
    parser.add_argument(
        "--resume",
        default="auto",
        help="auto (continue from <out>/last.pt if present, default), none (start over), "
        "or the path of a last.pt",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="override train.steps (the learning-rate milestones given as fractions follow)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (YAML syntax), e.g. --set train.tasks=[disparity]",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = [PROG, *(sys.argv[1:] if argv is None else argv)]
    try:
        overrides = list(args.set)
        if args.max_steps is not None:
            overrides.append(f"train.steps={int(args.max_steps)}")
        cfg = load_config(args.config, overrides)
        out = args.out or Path("runs") / (cfg.name or args.config.stem)
        train(cfg, out, resume=args.resume, command=command, progress=not args.no_progress)
    except (ConfigError, CheckpointError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # dataset errors (DatasetError) and other bad input
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
