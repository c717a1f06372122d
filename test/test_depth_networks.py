"""Single-image depth networks (``geometry = "depth"``, hybridnet) in the pipeline: the depth ->
disparity conversion (exactly fx * B / Z), their confidence and their disparity range."""

import numpy as np
import pytest
import torch

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.networks import get_model
from stereo_semantic_ros.networks.contract import StereoNetwork
from stereo_semantic_ros.pipeline import INVALID_DISPARITY, StereoPipeline

TINY = {"width": 4, "aspp_rates": (1, 2)}


def test_hybridnet_runs_through_the_pipeline_at_any_size():
    pipe = StereoPipeline.untrained("hybridnet", max_disparity=16, device="cpu")
    assert pipe.stride == 32 and pipe.max_disparity == 16 and pipe.geometry == "depth"
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (21, 45, 3), np.uint8) for _ in range(2))
    calib = StereoCalibration(fx=50, fy=50, cx=22, cy=10, baseline=0.1)
    res = pipe.run(left, right, calib)
    assert res.disparity.shape == res.labels.shape == res.confidence.shape == (21, 45)
    assert res.points.shape == (21, 45) and res.labels.max() < 19
    assert (res.confidence == 1.0).all()
    seg_only = StereoPipeline(get_model("hybridnet", tasks=["segmentation"], **TINY), device="cpu")
    assert seg_only.run(left, right, calib, outputs=["labels"]).labels.shape == (21, 45)


# --- the pipeline's depth -> disparity conversion --------------------------------------------


class KnownDepth(StereoNetwork):
    """A depth network with known outputs: Z = 1 + u/4 + v/8 metres, labels = column % 4."""

    stride = 8
    max_disparity = 64
    geometry = "depth"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], bool]] = []

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None) -> dict:
        self.calls.append((tuple(left.shape), right is not None))
        b, _, h, w = left.shape
        u = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
        v = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
        depth = (1 + u / 4 + v / 8).expand(b, 1, h, w)
        seg = torch.nn.functional.one_hot(torch.arange(w) % 4, 19).T.float()
        return {"depth": depth, "seg_logits": seg.view(1, 19, 1, w).expand(b, 19, h, w)}


def test_depth_becomes_disparity_exactly_fx_b_over_z():
    model = KnownDepth()
    pipe = StereoPipeline(model, device="cpu")
    calib = StereoCalibration(fx=100.3, fy=99.0, cx=6.0, cy=3.0, baseline=0.537, width=13, height=7)
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (7, 13, 3), np.uint8) for _ in range(2))
    res = pipe.run(left, right, calib)
    assert model.calls == [((1, 3, 8, 16), False)]  # the left image only, padded to the stride
    u = np.arange(13, dtype=np.float32)[None, :]
    v = np.arange(7, dtype=np.float32)[:, None]
    z = (1 + u / np.float32(4) + v / np.float32(8)).astype(np.float32)
    np.testing.assert_array_equal(res.depth, z)  # the network's depth, unchanged
    np.testing.assert_array_equal(res.disparity, np.float32(100.3 * 0.537) / z)  # exact
    assert (res.confidence == 1.0).all()
    assert (res.labels == np.arange(13) % 4).all()
    assert res.points["z"][3, 5] == z[3, 5]
    assert res.points["x"][3, 5] == pytest.approx((5 - 6.0) * z[3, 5] / 100.3, rel=1e-6)
    # min_confidence masks nothing (confidence 1.0)
    np.testing.assert_array_equal(pipe.run(left, right, calib, min_confidence=1.0).depth, z)


def test_depth_network_keeps_its_disparity_range_and_input_scale():
    calib = StereoCalibration(fx=100.0, fy=100.0, cx=6.0, cy=3.0, baseline=0.5, width=13, height=7)
    left = np.zeros((7, 13, 3), np.uint8)
    model = KnownDepth()
    model.max_disparity = 20  # fx * B / Z = 50 / Z > 20 where Z < 2.5
    res = StereoPipeline(model, device="cpu").run(left, left, calib)
    u = np.arange(13, dtype=np.float32)[None, :]
    v = np.arange(7, dtype=np.float32)[:, None]
    z = 1 + u / 4 + v / 8
    near = np.float32(50.0) / z > 20
    assert near.any() and (~near).any()
    assert (res.disparity[near] == INVALID_DISPARITY).all() and np.isnan(res.depth[near]).all()
    assert (res.disparity[~near] > 0).all()
    # at input_scale 2 the range in camera pixels halves (max_disparity / input_scale) and the
    # depth is not rescaled (metres do not change with the image size)
    scaled = StereoPipeline(KnownDepth(), device="cpu", input_scale=2.0).run(left, left, calib)
    ok = scaled.disparity > 0
    assert ok.any() and (scaled.disparity[ok] <= 64 / 2.0).all()
    np.testing.assert_array_equal(scaled.disparity[ok], np.float32(50.0) / scaled.depth[ok])
