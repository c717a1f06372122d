"""``stereo-semantic-bench``: latency of every architecture x backend x precision, next to SGBM.

One row per (weights, backend, device, precision): the network's forward pass (normalised
tensors in, outputs on the device) and the whole pipeline (host uint8 arrays in -> every
output on the host, point cloud included), median / p90 / p99 of ``--runs`` runs after
``--warmup``, peak memory, and OpenCV StereoSGBM (``stereo_image_proc``'s settings, the
network's disparity range rounded up to 16) on the same frames **in the same loop**, so the
``x SGBM`` ratio column holds on a loaded machine too: each iteration runs the network, the
pipeline and SGBM one after the other.

    stereo-semantic-bench                              # shipped weights of config/*.yaml, CPU
    stereo-semantic-bench --configs esp_joint --backends torch,onnxruntime --runs 15
    stereo-semantic-bench --device cuda --size 1242x375 --untrained esp_joint:192 \\
        --precisions fp32,fp16,bf16 --json out/bench.json

Backend ``onnxruntime`` rows run a graph exported from the same weights at the bench size
(``stereo-semantic-export``'s code, written to a temporary folder). Half precisions run on
CUDA only (a CPU row would be fp32 again and is skipped). ``--profile`` prints the top operators
of the first row's network from torch.profiler. Speed targets live here, not in timed tests.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.checkpoint import Checkpoint, load_checkpoint
from stereo_semantic_ros.evaluation.baselines import SgbmBaseline, disparity_range_for
from stereo_semantic_ros.networks import get_model, list_models
from stereo_semantic_ros.networks.blocks import count_parameters
from stereo_semantic_ros.pipeline import BACKENDS, OUTPUTS, PRECISIONS, StereoPipeline
from stereo_semantic_ros.resources import resolve_weights

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config"


@dataclass
class BenchRow:
    model: str
    architecture: str
    backend: str
    device: str
    precision: str
    size: str
    max_disparity: int
    parameters: int
    network_ms_median: float
    network_ms_p90: float
    network_ms_p99: float
    pipeline_ms_median: float
    pipeline_ms_p90: float
    pipeline_ms_p99: float
    sgbm_ms_median: float
    ratio_to_sgbm: float
    peak_memory_mb: float
    memory_kind: str
    runs: int
    options: str = ""


@dataclass(frozen=True)
class Candidate:
    """What one row benchmarks: weights (a file or an untrained network) and how to run it."""

    label: str
    checkpoint: Checkpoint
    backend: str
    precision: str


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1242x375, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, got {text!r}")
    return w, h


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def machine_description() -> str:
    """CPU model, cores, threads, load (a shared machine is said so), torch, GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f} at start"
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores{load}; torch {torch.__version__} on "
        f"{torch.get_num_threads()} threads, OpenCV {cv2.__version__} on {cv2.getNumThreads()} "
        f"threads{gpu}"
    )


class RssPeak:
    """Peak resident memory of this process over a block, above its level at the start,
    sampled every 2 ms (CPU rows: torch's CPU allocator returns memory to the OS, so a
    process-lifetime maximum would carry earlier rows' peaks)."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * self.page
        except (OSError, IndexError, ValueError):
            return 0

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def megabytes(self) -> float:
        return (self.peak - self.start) / 2**20


def bench_pair(size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and its copy shifted by 8 px: a pair both matchers can solve."""
    w, h = size
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 4 + 2, (w + 8) // 4 + 2, 3), dtype=np.uint8)
    wide = cv2.resize(coarse, (w + 8, h), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(wide[:, :w]), np.ascontiguousarray(wide[:, 8:])


def bench_one(
    pipe: StereoPipeline,
    size: tuple[int, int],
    runs: int,
    warmup: int,
    *,
    label: str = "",
    architecture: str = "",
    parameters: int | None = None,
    sgbm: bool = True,
) -> BenchRow:
    """Time ``pipe`` and SGBM, interleaved, on a textured pair of ``size`` = (width, height)."""
    w, h = size
    left, right = bench_pair(size)
    calib = StereoCalibration(fx=0.58 * w, fy=0.58 * w, cx=w / 2, cy=h / 2, baseline=0.54)
    matcher = SgbmBaseline(disparity_range=disparity_range_for(pipe.max_disparity))
    dev = pipe.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    net_ms: list[float] = []
    total_ms: list[float] = []
    sgbm_ms: list[float] = []
    with RssPeak() as rss:
        pair = pipe._upload(left, right)
        for i in range(warmup + runs):
            _sync(dev)
            t0 = time.perf_counter()
            pipe.infer(pair)
            _sync(dev)
            t1 = time.perf_counter()
            pipe.run(left, right, calib, outputs=OUTPUTS)
            t2 = time.perf_counter()
            if sgbm:
                matcher.compute(left, right)
            t3 = time.perf_counter()
            if i >= warmup:
                net_ms.append((t1 - t0) * 1e3)
                total_ms.append((t2 - t1) * 1e3)
                sgbm_ms.append((t3 - t2) * 1e3)
    if dev.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(dev) / 2**20, "CUDA max allocated"
    else:
        peak, kind = rss.megabytes, "RSS peak over start"
    pipeline_median = statistics.median(total_ms)
    sgbm_median = statistics.median(sgbm_ms) if sgbm else float("nan")
    return BenchRow(
        model=label or "untrained",
        architecture=architecture,
        backend=pipe.backend,
        device=str(dev),
        precision=pipe.precision,
        size=f"{w}x{h}",
        max_disparity=pipe.max_disparity,
        parameters=count_parameters(pipe.model) if parameters is None else parameters,
        network_ms_median=statistics.median(net_ms),
        network_ms_p90=percentile(net_ms, 90),
        network_ms_p99=percentile(net_ms, 99),
        pipeline_ms_median=pipeline_median,
        pipeline_ms_p90=percentile(total_ms, 90),
        pipeline_ms_p99=percentile(total_ms, 99),
        sgbm_ms_median=sgbm_median,
        ratio_to_sgbm=pipeline_median / sgbm_median if sgbm else float("nan"),
        peak_memory_mb=peak,
        memory_kind=kind,
        runs=runs,
    )


def format_table(rows: list[BenchRow]) -> str:
    head = (
        "| model | backend | device | precision | options | size | D | params | network ms "
        "(median / p90 / p99) | pipeline ms (median / p90 / p99) | SGBM ms | x SGBM "
        "| peak memory MB |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.backend} | {r.device} | {r.precision} | {r.options or '-'} "
            f"| {r.size} "
            f"| {r.max_disparity} | {r.parameters:,} "
            f"| {r.network_ms_median:.1f} / {r.network_ms_p90:.1f} / {r.network_ms_p99:.1f} "
            f"| {r.pipeline_ms_median:.1f} / {r.pipeline_ms_p90:.1f} / {r.pipeline_ms_p99:.1f} "
            f"| {r.sgbm_ms_median:.1f} | {r.ratio_to_sgbm:.1f} "
            f"| {r.peak_memory_mb:.0f} ({r.memory_kind}) |"
        )
    return "\n".join(lines)


def config_weights(architecture: str) -> Path | None:
    """The weights file config/<architecture>.yaml names (resolved against models/)."""
    import yaml

    path = REPO_CONFIG / f"{architecture}.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text())
    for section in data.values():
        params = (section or {}).get("ros__parameters", {})
        if params.get("weights"):
            return resolve_weights(str(params["weights"]))
    return None


def untrained_checkpoint(spec: str) -> Checkpoint:
    """``ARCH`` or ``ARCH:D`` -> a seeded untrained network as a checkpoint (paper defaults)."""
    arch, _, d = spec.partition(":")
    hyper = {"max_disparity": int(d)} if d else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = get_model(arch, **hyper)
    return Checkpoint(
        architecture=arch,
        hyper_parameters=hyper,
        state_dict=model.state_dict(),
        source=f"untrained {arch}" + (f" D={d}" if d else ""),
    )


def build_candidates(args: argparse.Namespace) -> list[Candidate]:
    checkpoints: list[tuple[str, Checkpoint]] = []
    for spec in filter(None, args.weights.split(",")):
        checkpoints.append((Path(spec).name, load_checkpoint(spec)))
    for arch in filter(None, args.configs.split(",")):
        path = config_weights(arch)
        if path is None:
            raise SystemExit(f"config/{arch}.yaml names no weights; use --untrained {arch}")
        checkpoints.append((path.name, load_checkpoint(path)))
    for spec in filter(None, args.untrained.split(",")):
        ckpt = untrained_checkpoint(spec)
        checkpoints.append((ckpt.source, ckpt))
    return [
        Candidate(label, ckpt, backend, precision)
        for label, ckpt in checkpoints
        for backend in args.backends.split(",")
        for precision in args.precisions.split(",")
    ]


def make_pipeline(
    candidate: Candidate,
    device: str,
    size: tuple[int, int],
    workdir: Path,
    channels_last: bool = False,
    cuda_graphs: bool = False,
) -> StereoPipeline:
    ckpt = candidate.checkpoint
    options = {"device": device, "precision": candidate.precision}
    if candidate.backend == "onnxruntime":
        from stereo_semantic_ros.export import export_onnx

        name = f"{Path(candidate.label).stem.replace(' ', '_')}_{size[0]}x{size[1]}.onnx"
        onnx_path = workdir / name
        if not onnx_path.exists():
            export_onnx(ckpt, onnx_path, size=size, check=False)
        return StereoPipeline.from_checkpoint(onnx_path, backend="onnxruntime", **options)
    with tempfile.TemporaryDirectory() as tmp:
        # through a file, so the row measures exactly what from_checkpoint gives the node
        from stereo_semantic_ros.checkpoint import save_checkpoint

        path = save_checkpoint(ckpt, Path(tmp) / "weights.pt")
        return StereoPipeline.from_checkpoint(
            path, channels_last=channels_last, cuda_graphs=cuda_graphs, **options
        )


def profile_network(pipe: StereoPipeline, size: tuple[int, int], top: int = 12) -> str:
    """torch.profiler's top operators (self CPU / CUDA time) of a few forward passes."""
    from torch.profiler import ProfilerActivity, profile

    left, right = bench_pair(size)
    pair = pipe._upload(left, right)
    for _ in range(2):
        pipe.infer(pair)
    activities = [ProfilerActivity.CPU]
    if pipe.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(3):
            pipe.infer(pair)
        _sync(pipe.device)
    key = "self_cuda_time_total" if pipe.device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stereo-semantic-bench", description=__doc__.split("\n")[0])
    p.add_argument(
        "--configs",
        default=",".join(list_models()),
        help="architectures whose config/<arch>.yaml weights are benchmarked (comma list; "
        "default: all; '' for none)",
    )
    p.add_argument("--weights", default="", help="comma list of further checkpoints")
    p.add_argument(
        "--untrained",
        default="",
        help="comma list of untrained networks ARCH or ARCH:D (e.g. esp_joint:192, the paper)",
    )
    p.add_argument("--backends", default="torch,onnxruntime", help=f"of {', '.join(BACKENDS)}")
    p.add_argument(
        "--precisions",
        default="fp32",
        help=f"comma list of {', '.join(PRECISIONS)}; half precisions run on CUDA only",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--size", type=_parse_size, default=(384, 128), help="WIDTHxHEIGHT (default 384x128)"
    )
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch, onnxruntime and OpenCV threads (default: torch's default)",
    )
    p.add_argument("--channels-last", action="store_true", help="torch rows in channels-last")
    p.add_argument(
        "--cuda-graphs", action="store_true", help="torch rows on CUDA replay a captured graph"
    )
    p.add_argument("--no-sgbm", action="store_true", help="leave SGBM out (ratio column NaN)")
    p.add_argument("--profile", action="store_true", help="top operators of the first row")
    p.add_argument("--json", type=Path, help="also write the rows (and the machine) here")
    p.add_argument("--quiet", action="store_true", help="no per-row progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cv2.setNumThreads(torch.get_num_threads())
    for backend in args.backends.split(","):
        if backend not in BACKENDS:
            raise SystemExit(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    started = datetime.datetime.now(datetime.UTC)
    machine = machine_description()
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory() as workdir:
        for candidate in build_candidates(args):
            what = f"{candidate.label} {candidate.backend} {device} {candidate.precision}"
            try:
                pipe = make_pipeline(
                    candidate,
                    device,
                    args.size,
                    Path(workdir),
                    args.channels_last,
                    args.cuda_graphs,
                )
            except (ValueError, RuntimeError) as exc:
                print(f"skipping {what}: {exc}", file=sys.stderr)
                continue
            if pipe.precision != candidate.precision:
                print(f"skipping {what}: runs as {pipe.precision} here", file=sys.stderr)
                continue
            if args.profile and not rows:
                print(f"top operators, {what}, {args.size[0]}x{args.size[1]}:")
                print(profile_network(pipe, args.size))
            row = bench_one(
                pipe,
                args.size,
                args.runs,
                args.warmup,
                label=candidate.label,
                architecture=candidate.checkpoint.architecture,
                parameters=count_parameters(get_model_like(candidate)),
                sgbm=not args.no_sgbm,
            )
            row.options = ",".join(
                name
                for name, on in (
                    ("channels_last", pipe.channels_last),
                    ("cuda_graphs", pipe.cuda_graphs),
                )
                if on
            )
            rows.append(row)
            if not args.quiet:
                print(
                    f"{what}: pipeline {row.pipeline_ms_median:.1f} ms, SGBM "
                    f"{row.sgbm_ms_median:.1f} ms",
                    file=sys.stderr,
                )
            del pipe
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    print()
    print(f"{started:%Y-%m-%d %H:%M} UTC; {machine}")
    print(format_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "date": started.isoformat(),
                    "machine": machine,
                    "rows": [asdict(r) for r in rows],
                },
                indent=2,
            )
        )
    return 0 if rows else 1


def get_model_like(candidate: Candidate) -> torch.nn.Module:
    """The architecture as trained (the pipeline's copy has its batch norms folded)."""
    ckpt = candidate.checkpoint
    return get_model(ckpt.architecture, **ckpt.hyper_parameters)


if __name__ == "__main__":
    sys.exit(main())
