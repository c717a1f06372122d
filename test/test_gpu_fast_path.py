"""The GPU fast path's options: what runs on a CPU is tested here on the CPU; the CUDA-only
parts (CUDA graphs, pinned asynchronous copy, half precision per architecture) skip with the
reason when no CUDA device is present (tools/gpu_check.sh runs them on a GPU machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_semantic_ros.bench import bench_pair
from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.networks.contract import StereoNetwork
from stereo_semantic_ros.pipeline import NonFiniteOutputError, StereoPipeline

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = ("esp_joint_mixed.pt", "corr_mtl_mixed.pt", "hybridnet_synthetic.pt")
CALIB = StereoCalibration(fx=220.0, fy=220.0, cx=190.0, cy=60.0, baseline=0.5)
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device here (tools/gpu_check.sh runs these)"
)


def run(pipe: StereoPipeline, size=(380, 120)):
    left, right = bench_pair(size)
    return pipe.run(left, right, CALIB)


def close(a, b, disparity_atol: float, label_fraction: float) -> None:
    valid = (a.disparity > 0) & (b.disparity > 0)
    assert ((a.disparity > 0) != (b.disparity > 0)).mean() <= label_fraction
    assert np.abs(a.disparity[valid] - b.disparity[valid]).max() <= disparity_atol
    assert (a.labels != b.labels).mean() <= label_fraction


@pytest.mark.parametrize("name", SHIPPED)
def test_channels_last_gives_the_same_outputs_on_the_cpu(name):
    plain = StereoPipeline.from_checkpoint(MODELS / name, device="cpu")
    nhwc = StereoPipeline.from_checkpoint(MODELS / name, device="cpu", channels_last=True)
    assert nhwc.channels_last and not plain.channels_last
    close(run(plain), run(nhwc), disparity_atol=1e-3, label_fraction=1e-3)


def test_fast_path_options_are_off_by_default_and_inert_on_a_cpu():
    pipe = StereoPipeline.from_checkpoint(MODELS / SHIPPED[2], device="cpu", cuda_graphs=True)
    assert not pipe.cuda_graphs and not StereoPipeline.untrained(device="cpu").channels_last
    result = run(pipe)
    assert result.timings_ms["network"] > 0 and result.depth.dtype == np.float32


class Huge(StereoNetwork):
    """Finite outputs whose sum overflows float32: the one false alarm of the summed check."""

    stride = 8
    max_disparity = 64

    def forward(self, left, right):
        b, _, h, w = left.shape
        logits = torch.full((b, 19, h, w), 3e38)
        return {
            "disparity": torch.full((b, 1, h, w), 4.0),
            "confidence": torch.ones(b, 1, h, w),
            "seg_logits": logits,
        }


class OneNan(Huge):
    def forward(self, left, right):
        out = super().forward(left, right)
        out["seg_logits"] = torch.zeros_like(out["seg_logits"])
        out["seg_logits"][0, 3, 5, 7] = torch.nan
        return out


def test_the_finite_check_in_the_frames_copy_refuses_nan_but_not_a_large_sum():
    result = run(StereoPipeline(Huge(), device="cpu"))
    assert np.all(result.disparity == 4.0)
    with pytest.raises(NonFiniteOutputError, match="seg_logits 1 of"):
        run(StereoPipeline(OneNan(), device="cpu"))


@needs_cuda
@pytest.mark.parametrize("name", SHIPPED)
def test_cuda_graph_replay_equals_eager_and_recaptures_on_a_new_size(name):
    eager = StereoPipeline.from_checkpoint(MODELS / name, device="cuda")
    graphed = StereoPipeline.from_checkpoint(MODELS / name, device="cuda", cuda_graphs=True)
    close(run(eager), run(graphed), disparity_atol=1e-3, label_fraction=1e-3)
    first = graphed._graph
    close(run(eager), run(graphed), disparity_atol=1e-3, label_fraction=1e-3)
    assert graphed._graph is first  # same size: replayed, not captured again
    close(run(eager, (256, 96)), run(graphed, (256, 96)), 1e-3, 1e-3)
    assert graphed._graph is not first and graphed._graph.shape[-2:] == (96, 256)


@needs_cuda
def test_cuda_results_come_through_one_pinned_buffer_and_stay_valid():
    pipe = StereoPipeline.from_checkpoint(MODELS / SHIPPED[0], device="cuda")
    a = run(pipe)
    kept = a.disparity.copy()
    assert pipe._pinned is not None and pipe._pinned.is_pinned()
    run(pipe, (256, 96))  # the next frame reuses the buffer
    assert np.array_equal(a.disparity, kept)
    cpu = run(StereoPipeline.from_checkpoint(MODELS / SHIPPED[0], device="cpu"))
    close(cpu, a, disparity_atol=5e-2, label_fraction=1e-2)


@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", SHIPPED)
def test_half_precision_stays_close_to_fp32(name, precision):
    """Stated tolerance for half precision: median disparity error <= 0.25 px where both are
    valid, at most 2 % of pixels with another class."""
    fp32 = run(StereoPipeline.from_checkpoint(MODELS / name, device="cuda"))
    half = run(StereoPipeline.from_checkpoint(MODELS / name, device="cuda", precision=precision))
    valid = (fp32.disparity > 0) & (half.disparity > 0)
    assert np.median(np.abs(fp32.disparity[valid] - half.disparity[valid])) <= 0.25
    assert (fp32.labels != half.labels).mean() <= 0.02
