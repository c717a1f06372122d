"""The GPU check behind ``tools/gpu_check.sh``: install what is missing, CUDA tests, bench, live
node, one table. Standard library only until the installs are done (it runs on a bare Python).

Steps, each with its own time limit so the whole stays under 8 minutes on a GPU machine:

1. ``install``: modules the package needs that this Python lacks are installed from the wheels
   copied beside the tree (``.whl/``, made by ``--fetch-wheels`` on a machine with a package
   index: the ROS wheels via ``../shared/tools/gpu-ros-wheels.sh``, the rest by ``pip
   download`` for CPython 3.12). Nothing is fetched from the network here.
2. ``tests``: test_gpu_fast_path.py (CUDA graphs, pinned copy, fp16/bf16 per architecture) and
   the onnxruntime equality tests; a skip says why.
3. ``bench``: ``stereo-semantic-bench`` at 1242x375: the paper-size untrained esp_joint (D=192)
   and the shipped weights of every config, fp32 / fp16 / bf16, then the default network
   with channels-last and CUDA graphs; onnxruntime rows when its CUDA provider is installed.
4. ``node``: the live node on CUDA (paper-size esp_joint, fp16) fed 1242x375 frames over
   localhost DDS by ``stereo-semantic-soak``; latency read from the node's /diagnostics
   (``end_to_end_ms``, ``inference_ms``) and from frame stamp to the last output here.

``--dry-run`` runs the same steps on the CPU at toy sizes (no installs, only the report of what
would be installed): CI runs it through test/test_gpu_check.py so the script cannot rot.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_MS = 10.0
"""The issue's goal: esp_joint, 1242x375, D=192, fp16, whole-pipeline median on an H200."""
# import name -> wheel to install when it is missing (requirements.txt's pins where it has them)
MODULES = {
    "numpy": "numpy",
    "cv2": "opencv-python-headless",
    "yaml": "PyYAML",
    "tqdm": "tqdm",
    "scipy": "scipy",
    "skimage": "scikit-image",
    "matplotlib": "matplotlib",
    "rosbags": "rosbags",
    "mcap": "mcap",
    "mcap_ros2": "mcap-ros2-support",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime-gpu",
    "pytest": "pytest",
    "hypothesis": "hypothesis",
    "rclpy": "ros-rclpy",
    "sensor_msgs": "ros-sensor-msgs",
    "stereo_msgs": "ros-stereo-msgs",
    "diagnostic_msgs": "ros-diagnostic-msgs",
    "geometry_msgs": "ros-geometry-msgs",
    "std_msgs": "ros-std-msgs",
    "lifecycle_msgs": "ros-lifecycle-msgs",
    "rmw_fastrtps_cpp": "ros-rmw-fastrtps-cpp",
}
# CPython 3.12 manylinux wheels for --fetch-wheels (the ROS ones come from the shared script)
FETCH = [
    "opencv-python-headless==5.0.0.93",
    "PyYAML==6.0.3",
    "tqdm==4.70.1",
    "scipy==1.17.1",
    "scikit-image==0.26.0",
    "matplotlib==3.11.2",
    "rosbags==0.11.9",
    "mcap==1.6.0",
    "mcap-ros2-support==0.6.0",
    "onnx==1.23.2",
    "onnxruntime-gpu==1.32.0",
    "pytest==9.2.0",
    "hypothesis==6.170.17",
]
LIMITS_S = {"install": 120, "tests": 150, "bench": 200, "bench_fast": 60, "node": 150}


def log(text: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {text}", flush=True)


def missing_modules() -> list[str]:
    return [name for name in MODULES if importlib.util.find_spec(name) is None]


def fetch_wheels(wheels: Path) -> int:
    """On a machine with a package index: every wheel the GPU machine may lack into ``wheels``."""
    wheels.mkdir(parents=True, exist_ok=True)
    ros = REPO.parent / "shared" / "tools" / "gpu-ros-wheels.sh"
    if ros.is_file():
        log(f"ROS wheels: {ros}")
        subprocess.run(["bash", str(ros)], cwd=REPO, check=True)
    else:
        log(f"no {ros}: the ROS wheels must be added to {wheels} by hand")
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", "-d", str(wheels)]
    for platform in platforms:
        cmd += ["--platform", platform]
    return subprocess.run(cmd + FETCH, check=False).returncode


def install(wheels: Path, dry_run: bool) -> dict[str, object]:
    missing = missing_modules()
    step: dict[str, object] = {"missing": [MODULES[m] for m in missing], "installed": []}
    if not missing:
        log("every module is importable; nothing to install")
        return step
    packages = sorted({MODULES[m] for m in missing})
    if dry_run:
        log(f"dry run: would install {', '.join(packages)} from {wheels}")
        return step
    if not any(wheels.glob("*.whl")):
        raise SystemExit(
            f"missing {', '.join(packages)} and no wheels in {wheels}: run "
            "'tools/gpu_check.sh --fetch-wheels' on a machine with a package index and copy "
            f"{wheels.name}/ here with the tree"
        )
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-compile"]
    cmd += ["--find-links", str(wheels), *packages]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True, timeout=LIMITS_S["install"])
    still = missing_modules()
    if still:
        raise SystemExit(f"still missing after the install: {', '.join(still)}")
    step["installed"] = packages
    return step


def run_step(name: str, cmd: list[str], env: dict[str, str], out: Path) -> dict[str, object]:
    """Run ``cmd`` with the step's time limit; its output goes to ``out/<name>.log``."""
    log(f"{name}: {' '.join(cmd)}")
    start = time.monotonic()
    path = out / f"{name}.log"
    with path.open("w") as f:
        try:
            rc = subprocess.run(
                cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=LIMITS_S[name]
            ).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    text = path.read_text()
    seconds = time.monotonic() - start
    log(f"{name}: exit {rc} after {seconds:.0f} s ({path})")
    return {"rc": rc, "seconds": seconds, "log": str(path), "tail": text[-1500:]}


def pytest_counts(tail: str) -> str:
    for line in reversed(tail.splitlines()):
        if " passed" in line or " failed" in line or " skipped" in line or "error" in line:
            return line.strip("= ").strip()
    return "no summary"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/gpu_check.sh", description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, toy sizes, no installs (CI)")
    p.add_argument("--fetch-wheels", action="store_true", help="download wheels, then stop")
    p.add_argument("--wheels", type=Path, default=REPO / ".whl")
    p.add_argument("--out", type=Path, default=REPO / "out" / "gpu_check")
    p.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "88")))
    args = p.parse_args(argv)
    if args.fetch_wheels:
        return fetch_wheels(args.wheels)
    dry = args.dry_run
    args.out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC)
    report: dict[str, object] = {"date": started.isoformat(), "dry_run": dry}
    report["install"] = install(args.wheels, dry)

    import torch  # after the installs: torch itself is the machine's own

    cuda = torch.cuda.is_available()
    if not cuda and not dry:
        raise SystemExit("no CUDA device visible to torch; use --dry-run for the CPU rehearsal")
    device = "cuda" if not dry else "cpu"
    gpu = torch.cuda.get_device_name() if cuda else "none"
    report["machine"] = f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU {gpu}"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(args.domain_id)
    py = sys.executable

    tests = [py, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    if dry:  # the rehearsal: the fast-path file's CPU tests; the CUDA ones skip with the reason
        tests += ["test/test_gpu_fast_path.py", "-k", "finite_check or inert"]
    else:
        tests += ["test/test_gpu_fast_path.py", "test/test_onnx_backend.py"]
    report["tests"] = run_step("tests", tests, env, args.out)

    import onnxruntime

    backends = "torch"
    if dry or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        backends += ",onnxruntime"
    bench_json, fast_json = args.out / "bench.json", args.out / "bench_fast.json"
    bench = [py, "-m", "stereo_semantic_ros.bench", "--device", device, "--quiet"]
    if dry:
        bench += ["--size", "128x64", "--untrained", "esp_joint:16", "--configs", "hybridnet"]
        bench += ["--precisions", "fp32", "--runs", "2", "--warmup", "1", "--threads", "1"]
        fast = ["--configs", "", "--untrained", "esp_joint:16", "--precisions", "fp32"]
        fast += ["--size", "128x64", "--runs", "2", "--warmup", "1", "--channels-last"]
        fast += ["--threads", "1"]
    else:
        bench += ["--size", "1242x375", "--untrained", "esp_joint:192"]
        bench += ["--precisions", "fp32,fp16,bf16", "--runs", "50", "--warmup", "10"]
        fast = ["--configs", "esp_joint", "--untrained", "esp_joint:192", "--precisions", "fp16"]
        fast += ["--size", "1242x375", "--runs", "50", "--warmup", "10"]
        fast += ["--channels-last", "--cuda-graphs"]
    report["bench"] = run_step(
        "bench", bench + ["--backends", backends, "--json", str(bench_json)], env, args.out
    )
    fast_cmd = [py, "-m", "stereo_semantic_ros.bench", "--device", device, "--quiet"]
    fast_cmd += fast + ["--backends", "torch", "--json", str(fast_json)]
    report["bench_fast"] = run_step("bench_fast", fast_cmd, env, args.out)

    soak_out = args.out / "soak"
    node = [py, "-m", "stereo_semantic_ros.soak", "--no-progress", "--out", str(soak_out)]
    node += ["--domain-id", str(args.domain_id), "-p", f"device:={device}", "-p", "weights:=''"]
    node += ["-p", "architecture:=esp_joint"]
    if dry:
        # one torch thread: on a CPU shared with other work two can be many times slower
        node += ["--frames", "6", "--rate", "2", "--width", "128", "--height", "64"]
        node += ["-p", "max_disparity:=16", "--startup-timeout", "120", "--torch-threads", "1"]
    else:
        node += ["--frames", "300", "--rate", "10", "--width", "1242", "--height", "375"]
        node += ["-p", "max_disparity:=192", "-p", "precision:=fp16"]
    report["node"] = run_step("node", node, env, args.out)
    soak = {}
    if (soak_out / "soak.json").is_file():
        soak = json.loads((soak_out / "soak.json").read_text())

    rows = []
    for path in (bench_json, fast_json):
        if path.is_file():
            rows += json.loads(path.read_text())["rows"]
    (args.out / "gpu_check.json").write_text(
        json.dumps({**report, "bench_rows": rows, "soak": soak}, indent=2, default=str)
    )
    print(format_table(report, rows, soak, started, dry))
    failed = [k for k in ("tests", "bench", "bench_fast", "node") if report[k]["rc"] != 0]  # type: ignore[index]
    if failed:
        print(f"FAILED steps: {', '.join(failed)} (logs in {args.out})")
    return 1 if failed else 0


def format_table(
    report: dict[str, object],
    rows: list[dict[str, object]],
    soak: dict[str, object],
    started: datetime.datetime,
    dry: bool,
) -> str:
    what = "DRY RUN on the CPU (toy sizes; no GPU figure)" if dry else "GPU check"
    lines = [
        "",
        f"## {what}: {started:%Y-%m-%d %H:%M} UTC, {report['machine']}",
        "",
        f"tests: {pytest_counts(str(report['tests']['tail']))}",  # type: ignore[index]
        "",
        "| step | what | backend | precision | options | size | D | pipeline ms median / p90 "
        "/ p99 | network ms median | x SGBM | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| bench | {r['model']} | {r['backend']} | {r['precision']} | {r['options'] or '-'} "
            f"| {r['size']} | {r['max_disparity']} | {r['pipeline_ms_median']:.1f} / "
            f"{r['pipeline_ms_p90']:.1f} / {r['pipeline_ms_p99']:.1f} "
            f"| {r['network_ms_median']:.1f} | {r['ratio_to_sgbm']:.2f} "
            f"| {r['peak_memory_mb']:.0f} |"
        )
    status = soak.get("node_status_end") or {}
    latency = soak.get("latency_ms") or {}
    config = soak.get("config") or {}
    if status or latency:
        lines.append(
            f"| node | live esp_joint, {status.get('device', '?')} | torch "
            f"| {'fp16' if not dry else 'fp32'} | - | {config.get('width', '?')}x"
            f"{config.get('height', '?')} | {'192' if not dry else '16'} "
            f"| /diagnostics end_to_end mean {status.get('end_to_end_ms_mean', '?')} / p90 "
            f"{status.get('end_to_end_ms_p90', '?')} (stamp -> last output here: p50 "
            f"{_fmt(latency.get('p50'))}, p99 {_fmt(latency.get('p99'))}) "
            f"| {status.get('inference_ms_mean', '?')} | - | - |"
        )
    else:
        lines.append(f"| node | no report: {str(soak.get('error', 'soak failed'))[:120]} |")
    goal = [
        r for r in rows if r["model"] == "untrained esp_joint D=192" and r["precision"] == "fp16"
    ]
    if goal and not dry:
        best = min(float(r["pipeline_ms_median"]) for r in goal)  # type: ignore[arg-type]
        verdict = "met" if best <= GOAL_MS else "NOT met"
        lines.append(
            f"\ngoal (esp_joint 1242x375 D=192 fp16 pipeline median <= {GOAL_MS:g} ms): {verdict}, "
            f"best {best:.1f} ms"
        )
    return "\n".join(lines)


def _fmt(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "?"


if __name__ == "__main__":
    sys.exit(main())
