"""The shared pipeline never returns non-finite results, bounds its input, and survives OOM.

Each guard raises a :class:`FrameDroppedError` whose ``reason`` is the node's drop reason, so the
node, replay and evaluation count it the same way. The networks are real torch modules: the
pipeline's own network wrapped by one that spoils its output (or, for the OOM case, raises
torch's out-of-memory error as a GPU allocator would; CI has no GPU).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spoilt_networks import OutOfMemoryOnce, Spoiled

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.checkpoint import Checkpoint, save_checkpoint
from stereo_semantic_ros.networks import get_model
from stereo_semantic_ros.pipeline import (
    BYTES_PER_PIXEL,
    MEMORY_BUDGET_BYTES,
    FrameDroppedError,
    InputBound,
    InputTooLargeError,
    NonFiniteOutputError,
    OutOfMemoryFrameError,
    StereoPipeline,
)

W, H = 64, 32


def _pair(w: int = W, h: int = H) -> tuple[np.ndarray, np.ndarray, StereoCalibration]:
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    calib = StereoCalibration(50.0, 50.0, w / 2, h / 2, 0.1, width=w, height=h)
    return left, np.roll(left, -4, axis=1), calib


def _pipeline(**kwargs: object) -> StereoPipeline:
    return StereoPipeline.untrained("esp_joint", max_disparity=16, device="cpu", **kwargs)


# --------------------------------------------------------------------------- non-finite output


@pytest.mark.parametrize(
    ("key", "value"),
    [("disparity", math.nan), ("confidence", math.inf), ("seg_logits", math.nan)],
)
def test_non_finite_network_output_is_a_drop(key: str, value: float) -> None:
    pipe = _pipeline()
    pipe.model = Spoiled(pipe.model, key, value)
    left, right, calib = _pair()
    with pytest.raises(NonFiniteOutputError) as info:
        pipe.run(left, right, calib)
    assert info.value.reason == "non_finite_output"
    assert key in str(info.value) and "1 of" in str(info.value)
    assert isinstance(info.value, FrameDroppedError)
    # the next frame is finite again and comes back whole
    result = pipe.run(left, right, calib)
    assert np.isfinite(result.confidence).all()


def test_labels_only_still_refuse_non_finite_logits() -> None:
    pipe = _pipeline()
    pipe.model = Spoiled(pipe.model, "seg_logits", math.nan)
    with pytest.raises(NonFiniteOutputError, match="seg_logits"):
        pipe.run(*_pair(), outputs=("labels",))


def test_overflowing_finite_weights_are_caught_at_run_time(tmp_path: object) -> None:
    """Weights that load (all finite) but overflow float32 on real input: whatever the cause,
    a non-finite output is a drop."""
    torch.manual_seed(0)
    model = get_model("esp_joint", max_disparity=16, num_classes=19)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in state.items():
        if value.is_floating_point() and key.endswith("weight"):
            value.mul_(1e12)
    path = save_checkpoint(
        Checkpoint("esp_joint", {"max_disparity": 16, "num_classes": 19}, state),
        tmp_path / "huge.pt",  # type: ignore[operator]
    )
    pipe = StereoPipeline.from_checkpoint(path, device="cpu")
    with pytest.raises(NonFiniteOutputError, match="non-finite"):
        pipe.run(*_pair())


# --------------------------------------------------------------------------- the size bound


def test_a_frame_above_the_bound_is_dropped_with_the_memory_figure() -> None:
    pipe = _pipeline(input_bound=InputBound(max_pixels=W * H - 1, bytes_per_pixel=2500.0))
    with pytest.raises(InputTooLargeError) as info:
        pipe.run(*_pair())
    text = str(info.value)
    assert info.value.reason == "too_large"
    assert "64x32" in text and f"{W * H}" in text and f"{W * H - 1}" in text
    assert "2500 B/pixel" in text and "oversize_policy" in text


def test_the_bound_counts_network_pixels_after_input_scale() -> None:
    pipe = _pipeline(input_scale=0.5, input_bound=InputBound(max_pixels=W * H // 4))
    result = pipe.run(*_pair())
    assert result.disparity is not None and result.disparity.shape == (H, W)
    assert result.input_scale == 0.5


def test_downscale_policy_shrinks_the_frame_to_fit() -> None:
    bound = InputBound(max_pixels=W * H // 4, policy="downscale")
    pipe = _pipeline(input_bound=bound)
    result = pipe.run(*_pair())
    assert result.disparity is not None and result.disparity.shape == (H, W)
    assert result.labels is not None and result.labels.shape == (H, W)
    assert result.input_scale <= 0.5 + 1e-9
    net_h, net_w = round(H * result.input_scale), round(W * result.input_scale)
    assert net_h * net_w <= bound.max_pixels
    assert pipe.input_scale == 1.0  # the next, smaller frame runs at full scale again
    small = pipe.run(*_pair(32, 16))
    assert small.input_scale == 1.0


def test_a_bad_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="oversize_policy"):
        InputBound(max_pixels=10, policy="crop")
    with pytest.raises(ValueError, match="max_pixels"):
        InputBound(max_pixels=-1)


def test_automatic_bound_comes_from_the_measured_figures() -> None:
    for arch in ("esp_joint", "corr_mtl", "hybridnet"):
        figure = BYTES_PER_PIXEL[arch][0]
        bound = InputBound.automatic(arch, max_disparity=BYTES_PER_PIXEL[arch][1])
        assert bound.max_pixels == int(MEMORY_BUDGET_BYTES // figure)
        assert bound.bytes_per_pixel == figure
    # a larger disparity range than measured scales the figure up (the cost volume grows)
    wide = InputBound.automatic("esp_joint", max_disparity=2 * BYTES_PER_PIXEL["esp_joint"][1])
    assert wide.bytes_per_pixel == 2 * BYTES_PER_PIXEL["esp_joint"][0]
    # 1280 x 720 fits every architecture at input_scale 1
    assert all(InputBound.automatic(a, 0).max_pixels >= 1280 * 720 for a in BYTES_PER_PIXEL)


# --------------------------------------------------------------------------- out of memory


def test_out_of_memory_drops_the_frame_and_the_next_one_runs() -> None:
    pipe = _pipeline()
    pipe.model = OutOfMemoryOnce(pipe.model)
    left, right, calib = _pair()
    with pytest.raises(OutOfMemoryFrameError) as info:
        pipe.run(left, right, calib)
    assert info.value.reason == "out_of_memory"
    assert "64x32" in str(info.value) and "Tried to allocate 8.20 GiB" in str(info.value)
    result = pipe.run(left, right, calib)
    assert result.disparity is not None and result.disparity.shape == (H, W)
