"""Latency benchmark of the network and of the whole pipeline, per device and precision.

``stereo-semantic-bench`` prints one row per (device, precision): the network's forward pass
and the whole pipeline (host uint8 arrays in -> host arrays out, point cloud included), the
median of ``--runs`` runs after ``--warmup`` runs, the parameter count and the peak memory.
Speed targets live here, not in timed tests.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.networks.blocks import count_parameters
from stereo_semantic_ros.pipeline import OUTPUTS, StereoPipeline


@dataclass
class BenchRow:
    device: str
    precision: str
    size: str
    max_disparity: int
    parameters: int
    network_ms_median: float
    network_ms_p90: float
    pipeline_ms_median: float
    pipeline_ms_p90: float
    peak_memory_mb: float
    memory_kind: str


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


def bench_one(
    pipe: StereoPipeline, size: tuple[int, int], runs: int, warmup: int, progress: bool = True
) -> BenchRow:
    """Time ``pipe`` on a random textured pair of ``size`` = (width, height)."""
    w, h = size
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    right = np.roll(left, -8, axis=1)  # a plausible pair: constant 8 px disparity
    calib = StereoCalibration(fx=0.58 * w, fy=0.58 * w, cx=w / 2, cy=h / 2, baseline=0.54)
    dev = pipe.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    pair = pipe._upload(left, right)
    net_ms: list[float] = []
    total_ms: list[float] = []
    bar = tqdm(range(warmup + runs), desc=f"{dev.type}/{pipe.precision}", disable=not progress)
    for i in bar:
        _sync(dev)
        t0 = time.perf_counter()
        pipe.infer(pair)
        _sync(dev)
        t1 = time.perf_counter()
        pipe.run(left, right, calib, outputs=OUTPUTS)
        t2 = time.perf_counter()
        if i >= warmup:
            net_ms.append((t1 - t0) * 1e3)
            total_ms.append((t2 - t1) * 1e3)
    if dev.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(dev) / 2**20, "cuda max allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"

    def p90(values: list[float]) -> float:
        return float(np.percentile(values, 90))

    return BenchRow(
        device=str(dev),
        precision=pipe.precision,
        size=f"{w}x{h}",
        max_disparity=pipe.max_disparity,
        parameters=count_parameters(pipe.model),
        network_ms_median=statistics.median(net_ms),
        network_ms_p90=p90(net_ms),
        pipeline_ms_median=statistics.median(total_ms),
        pipeline_ms_p90=p90(total_ms),
        peak_memory_mb=peak,
        memory_kind=kind,
    )


def format_table(rows: list[BenchRow]) -> str:
    head = (
        "| device | precision | size | D | params | network ms (median / p90) "
        "| pipeline ms (median / p90) | peak memory MB |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r.device} | {r.precision} | {r.size} | {r.max_disparity} | {r.parameters:,} "
            f"| {r.network_ms_median:.1f} / {r.network_ms_p90:.1f} "
            f"| {r.pipeline_ms_median:.1f} / {r.pipeline_ms_p90:.1f} "
            f"| {r.peak_memory_mb:.0f} ({r.memory_kind}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stereo-semantic-bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--weights", default="", help="checkpoint; default: untrained esp_joint")
    parser.add_argument(
        "--devices",
        default="auto",
        help="comma list of cpu, cuda, cuda:N; auto = cuda (if any) and cpu",
    )
    parser.add_argument(
        "--precisions",
        default="fp32,fp16,bf16",
        help="comma list; half precisions are benchmarked on CUDA only",
    )
    parser.add_argument(
        "--size",
        type=_parse_size,
        default=(1242, 375),
        help="WIDTHxHEIGHT on CUDA (default KITTI 1242x375)",
    )
    parser.add_argument(
        "--cpu-size",
        type=_parse_size,
        default=(384, 128),
        help="WIDTHxHEIGHT on the CPU (default: the demo's input size)",
    )
    parser.add_argument(
        "--max-disparity",
        type=int,
        default=192,
        help="for the untrained network on CUDA (the CPU uses --cpu-max-disparity)",
    )
    parser.add_argument("--cpu-max-disparity", type=int, default=64)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cpu-runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    devices = args.devices.split(",")
    if devices == ["auto"]:
        devices = (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]
    rows: list[BenchRow] = []
    for device in devices:
        on_cpu = device == "cpu"
        precisions = ["fp32"] if on_cpu else args.precisions.split(",")
        for precision in precisions:
            kwargs = {"device": device, "precision": precision}
            try:
                if args.weights:
                    pipe = StereoPipeline.from_checkpoint(args.weights, **kwargs)
                else:
                    d = args.cpu_max_disparity if on_cpu else args.max_disparity
                    pipe = StereoPipeline.untrained(max_disparity=d, **kwargs)
            except ValueError as exc:
                print(f"skipping {device}/{precision}: {exc}", file=sys.stderr)
                continue
            size = args.cpu_size if on_cpu else args.size
            runs = args.cpu_runs if on_cpu else args.runs
            rows.append(bench_one(pipe, size, runs, args.warmup))
            del pipe
            if not on_cpu:
                torch.cuda.empty_cache()
    print()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
