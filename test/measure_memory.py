"""Peak memory per input pixel of the pipeline on the CPU, per architecture (not a test).

Each measurement runs in a fresh interpreter: the shipped weights of ``config/<arch>.yaml`` are
loaded, a small warm-up frame pulls in the kernels, the kernel's high-water mark is reset
(``/proc/self/clear_refs``), then one full ``StereoPipeline.run`` (every output) at
``input_scale`` 1 on a W x H random pair. The figure is (peak RSS - RSS before) / (W * H).

Usage: ``.venv/bin/python test/measure_memory.py [ARCH ...] [--sizes 512x256,1024x512]``
(Linux only). The results feed ``BYTES_PER_PIXEL`` in stereo_semantic_ros/pipeline.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys
import numpy as np, torch
from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.ros.settings import NodeSettings
torch.set_num_threads(1)
arch, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settings = NodeSettings.from_yaml(f"config/{arch}.yaml").updated(device="cpu")
if hasattr(settings, "max_input_pixels"):  # the bound itself must not refuse the frame
    settings = settings.updated(max_input_pixels=1_000_000_000)
pipe = settings.build_pipeline()

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

def run(w, h):
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    calib = StereoCalibration(500.0, 500.0, w / 2, h / 2, 0.1, width=w, height=h)
    pipe.run(left, np.roll(left, -4, axis=1), calib)

run(64, 32)
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
run(w, h)
peak = status("VmHWM")
print(json.dumps({"arch": arch, "w": w, "h": h, "peak_delta_bytes": peak - before,
                  "bytes_per_pixel": (peak - before) / (w * h)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=["esp_joint", "corr_mtl", "hybridnet"])
    parser.add_argument("--sizes", default="512x256,1024x512")
    args = parser.parse_args()
    for arch in args.archs:
        for size in args.sizes.split(","):
            w, h = size.split("x")
            out = subprocess.run(
                [sys.executable, "-c", CHILD, arch, w, h],
                capture_output=True,
                text=True,
                check=True,
            )
            print(json.dumps(json.loads(out.stdout.strip().splitlines()[-1])), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
