"""The shared pipeline: shapes, padding, invalid handling and the geometry of depth and points."""

import numpy as np
import pytest
import torch

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.networks import get_model
from stereo_semantic_ros.networks.contract import StereoNetwork
from stereo_semantic_ros.pipeline import INVALID_DISPARITY, InputError, StereoPipeline
from stereo_semantic_ros.pointcloud import PointCloudOptions, unpack_rgb


class KnownOutputs(StereoNetwork):
    """Stands in for a trained network so the post-processing can be checked against hand values.

    Disparity is 2 + u/10 (pixels), confidence 0.9 except column 0 (0.1), labels = row % 3.
    """

    stride = 8
    max_disparity = 64

    def __init__(self) -> None:
        super().__init__()
        self.seen_shape: tuple[int, ...] = ()

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen_shape = tuple(left.shape)
        b, _, h, w = left.shape
        u = torch.arange(w, dtype=torch.float32).expand(b, 1, h, w)
        v = torch.arange(h).view(1, 1, h, 1).expand(b, 1, h, w)
        conf = torch.full((b, 1, h, w), 0.9)
        conf[..., 0] = 0.1
        seg = torch.nn.functional.one_hot(v[:, 0] % 3, 19).permute(0, 3, 1, 2).float()
        return {"disparity": 2 + u / 10, "confidence": conf, "seg_logits": seg}


CALIB = StereoCalibration(fx=100.0, fy=110.0, cx=5.0, cy=3.0, baseline=0.5, width=13, height=7)


def images(h=7, w=13, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), np.uint8), rng.integers(0, 256, (h, w, 3), np.uint8)


def test_depth_points_and_masks_match_hand_computed_values():
    model = KnownOutputs()
    pipe = StereoPipeline(model, device="cpu")
    left, right = images()
    res = pipe.run(
        left,
        right,
        CALIB,
        min_confidence=0.5,
        cloud=PointCloudOptions(organized=True, with_confidence=True),
    )
    assert model.seen_shape == (1, 3, 8, 16)  # padded to the stride, cropped back
    assert res.disparity.shape == (7, 13) and res.disparity.dtype == np.float32
    v, u = 4, 7
    d = 2 + u / 10
    z = 100.0 * 0.5 / d
    assert res.disparity[v, u] == pytest.approx(d)
    assert res.depth[v, u] == pytest.approx(z, rel=1e-6)
    assert (res.disparity[:, 0] == INVALID_DISPARITY).all()  # confidence 0.1 < 0.5
    assert np.isnan(res.depth[:, 0]).all()
    assert (res.labels == (np.arange(7)[:, None] % 3)).all()
    pts = res.points
    assert pts.shape == (7, 13)
    assert pts["x"][v, u] == pytest.approx((u - 5.0) * z / 100.0, rel=1e-5)
    assert pts["y"][v, u] == pytest.approx((v - 3.0) * z / 110.0, rel=1e-5)
    assert pts["z"][v, u] == pytest.approx(z, rel=1e-6)
    assert (unpack_rgb(pts["rgb"][v, u]) == left[v, u]).all()
    assert pts["label"][v, u] == v % 3
    assert pts["confidence"][v, u] == pytest.approx(0.9)
    assert np.isnan(pts["z"][:, 0]).all() and (pts["label"][:, 0] == 255).all()


def test_stride_max_depth_and_dense_cloud():
    pipe = StereoPipeline(KnownOutputs(), device="cpu")
    left, right = images()
    res = pipe.run(
        left,
        right,
        CALIB,
        outputs=["points"],
        cloud=PointCloudOptions(organized=False, stride=2, max_depth=20.0),
    )
    # stride 2 keeps u, v in {0, 2, ...}; z = 50 / (2 + u/10) <= 20 needs u >= 5 -> u in {6..12}
    assert res.disparity is None and res.depth is None
    expected_u = [u for u in range(0, 13, 2) if 50 / (2 + u / 10) <= 20]
    assert len(res.points) == 4 * len(expected_u)
    assert np.isfinite(res.points["z"]).all() and (res.points["z"] <= 20).all()


def test_input_scale_returns_full_resolution_disparity_in_full_resolution_pixels():
    model = KnownOutputs()
    pipe = StereoPipeline(model, device="cpu", input_scale=0.5)
    left, right = images(16, 32)
    calib = StereoCalibration(fx=100.0, fy=100.0, cx=16, cy=8, baseline=0.5)
    res = pipe.run(left, right, calib, outputs=["disparity"])
    assert model.seen_shape == (1, 3, 8, 16)
    assert res.disparity.shape == (16, 32)
    # the network saw half-size images: its disparity doubles at full resolution
    assert res.disparity[5, 16] == pytest.approx(2 * (2 + 8 / 10), rel=0.05)


def test_real_network_any_size_and_nothing_requested():
    pipe = StereoPipeline.untrained(max_disparity=16, device="cpu")
    left, right = images(21, 45)
    res = pipe.run(left, right, StereoCalibration(fx=50, fy=50, cx=22, cy=10, baseline=0.1))
    assert res.disparity.shape == res.labels.shape == res.confidence.shape == (21, 45)
    assert res.points.shape == (21, 45)
    assert res.timings_ms["total"] >= res.timings_ms["network"] > 0
    empty = pipe.run(
        left, right, StereoCalibration(fx=50, fy=50, cx=22, cy=10, baseline=0.1), outputs=[]
    )
    assert empty.disparity is None and empty.points is None


def test_bad_inputs_are_refused_with_reasons():
    pipe = StereoPipeline(KnownOutputs(), device="cpu")
    left, right = images()
    with pytest.raises(InputError, match="differ in size"):
        pipe.run(left, right[:, :-1], CALIB)
    with pytest.raises(InputError, match="uint8"):
        pipe.run(left.astype(np.float32), right, CALIB)
    with pytest.raises(InputError, match="calibration is for 13x7"):
        pipe.run(*images(8, 13), CALIB)
    with pytest.raises(ValueError, match="unknown outputs"):
        pipe.run(left, right, CALIB, outputs=["normals"])
    with pytest.raises(ValueError, match="precision"):
        StereoPipeline(KnownOutputs(), device="cpu", precision="fp8")


def test_half_precision_falls_back_to_fp32_on_cpu():
    pipe = StereoPipeline(KnownOutputs(), device="cpu", precision="fp16")
    assert pipe.precision == "fp32" and pipe.requested_precision == "fp16"


def test_single_task_weights():
    left, right = images(16, 32)
    calib = StereoCalibration(fx=50, fy=50, cx=16, cy=8, baseline=0.1)
    seg_only = StereoPipeline(get_model("esp_joint", tasks=["segmentation"]), device="cpu")
    res = seg_only.run(left, right, calib, outputs=["labels"])
    assert res.labels.shape == (16, 32) and res.labels.max() < 19
    with pytest.raises(ValueError, match=r"need disparity.*\['segmentation'\] only"):
        seg_only.run(left, right, calib, outputs=["depth", "labels"])
    model = get_model("esp_joint", max_disparity=16, tasks=["disparity"])
    disp_only = StereoPipeline(model, device="cpu")
    res = disp_only.run(left, right, calib, outputs=["disparity", "labels", "points"])
    assert (res.labels == 255).all() and (res.points["label"] == 255).all()
    assert res.disparity.shape == (16, 32)
