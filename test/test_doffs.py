"""doffs = cx_right - cx_left (Middlebury's doffs; stereo_image_proc's cx_l - cx_r with the sign
flipped) through every path: the calibration and its P matrices, the pipeline's depth and
points, depth networks' disparity, camera_info messages, bags, the KITTI writer/loader and the
training batch / depth loss. Every check here fails when doffs is ignored or dropped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.datasets.base import collate, to_tensors
from stereo_semantic_ros.datasets.kitti import Kitti2015
from stereo_semantic_ros.datasets.sample import StereoSample
from stereo_semantic_ros.losses import depth_from_disparity, task_losses
from stereo_semantic_ros.networks.contract import StereoNetwork
from stereo_semantic_ros.pipeline import INVALID_DISPARITY, StereoPipeline
from stereo_semantic_ros.pointcloud import PointCloudOptions
from stereo_semantic_ros.training.data import batch_on_device

H, W = 7, 13
CALIB = StereoCalibration(
    fx=100.0, fy=110.0, cx=5.0, cy=3.0, baseline=0.5, width=W, height=H, doffs=10.0
)


def images(h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), np.uint8), rng.integers(0, 256, (h, w, 3), np.uint8)


# ------------------------------------------------------------------------------ calibration


def test_projection_matrices_round_trip_and_scale_keep_doffs():
    p_left, p_right = CALIB.projection_matrices()
    assert p_left[0, 2] == 5.0 and p_right[0, 2] == 15.0 == CALIB.cx_right
    assert p_right[0, 3] == pytest.approx(-100.0 * 0.5)
    back = StereoCalibration.from_projection_matrices(p_left, p_right, W, H)
    assert back == CALIB
    assert StereoCalibration.from_dict(CALIB.to_dict()) == CALIB

    half = CALIB.scaled(0.5, 0.5)
    assert half.doffs == 5.0
    # the right camera's principal point scales like the left one's (pixel-centre convention)
    assert half.cx_right == pytest.approx((CALIB.cx_right + 0.5) * 0.5 - 0.5)
    assert StereoCalibration.from_projection_matrices(*half.projection_matrices()).doffs == 5.0

    d = np.array([5.0, 1.0, -10.0, 0.0], np.float32)
    z = CALIB.depth_from_disparity(d)
    assert z[0] == pytest.approx(50.0 / 15.0) and z[1] == pytest.approx(50.0 / 11.0)
    assert np.isnan(z[2:]).all()
    np.testing.assert_allclose(CALIB.disparity_from_depth(z[:2]), d[:2], rtol=1e-6)


# ------------------------------------------------------------------------------ pipeline


class ConstantDisparity(StereoNetwork):
    """A stereo network whose disparity is ``value`` everywhere (confidence 0.9)."""

    stride = 8
    max_disparity = 64

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, h, w = left.shape
        return {
            "disparity": torch.full((b, 1, h, w), self.value),
            "confidence": torch.full((b, 1, h, w), 0.9),
            "seg_logits": torch.zeros(b, 19, h, w),
        }


def test_pipeline_depth_and_points_use_doffs():
    left, right = images()
    res = StereoPipeline(ConstantDisparity(5.0), device="cpu").run(
        left, right, CALIB, cloud=PointCloudOptions(organized=True)
    )
    assert (res.disparity == 5.0).all()  # published as the raw shift u_left - u_right
    z = 100.0 * 0.5 / (5.0 + 10.0)
    np.testing.assert_allclose(res.depth, z, rtol=1e-6)
    u = np.arange(W, dtype=np.float64)[None, :]
    v = np.arange(H, dtype=np.float64)[:, None]
    np.testing.assert_allclose(res.points["z"], z, rtol=1e-6)
    np.testing.assert_allclose(
        res.points["x"], np.broadcast_to((u - 5.0) * z / 100.0, (H, W)), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        res.points["y"], np.broadcast_to((v - 3.0) * z / 110.0, (H, W)), rtol=1e-5, atol=1e-7
    )


def test_pipeline_invalidates_disparities_with_no_positive_depth():
    left, right = images()
    calib = replace(CALIB, doffs=-5.0)  # d + doffs = 0: no finite depth
    res = StereoPipeline(ConstantDisparity(5.0), device="cpu").run(left, right, calib)
    assert (res.disparity == INVALID_DISPARITY).all()
    assert np.isnan(res.depth).all() and np.isnan(res.points["z"]).all()
    res = StereoPipeline(ConstantDisparity(6.0), device="cpu").run(left, right, calib)
    np.testing.assert_allclose(res.depth, 50.0, rtol=1e-6)  # d + doffs = 1


def test_pipeline_doffs_zero_is_the_plain_formula_bit_for_bit():
    left, right = images()
    calib = replace(CALIB, doffs=0.0)
    res = StereoPipeline(ConstantDisparity(3.7), device="cpu").run(left, right, calib)
    expected = (calib.fx * calib.baseline) / torch.full((H, W), 3.7).clamp_min(1e-6)
    np.testing.assert_array_equal(res.depth, expected.numpy())


class DepthRamp(StereoNetwork):
    """A depth network: Z = 1 + u/4 metres."""

    stride = 8
    max_disparity = 64
    geometry = "depth"

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None) -> dict:
        b, _, h, w = left.shape
        u = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
        return {"depth": (1 + u / 4).expand(b, 1, h, w), "seg_logits": torch.zeros(b, 19, h, w)}


def test_depth_network_disparity_is_fx_b_over_z_minus_doffs():
    left, right = images()
    calib = replace(CALIB, doffs=20.0)
    res = StereoPipeline(DepthRamp(), device="cpu").run(left, right, calib)
    z = np.broadcast_to(1 + np.arange(W, dtype=np.float32) / 4, (H, W))
    d = np.float32(50.0) / z - np.float32(20.0)
    ok = d > 0  # 50 / Z > 20: Z < 2.5 m, u < 6
    assert ok.any() and (~ok).any()
    np.testing.assert_allclose(res.disparity[ok], d[ok], rtol=1e-6)
    np.testing.assert_array_equal(res.depth[ok], z[ok])  # the network's depth
    # fx * B / Z <= doffs has no positive disparity: invalid, as for a stereo network
    assert (res.disparity[~ok] == INVALID_DISPARITY).all() and np.isnan(res.depth[~ok]).all()
    # and the depth a stereo network would get from that disparity is the network's depth
    np.testing.assert_allclose(calib.depth_from_disparity(res.disparity[ok]), z[ok], rtol=1e-5)


# ------------------------------------------------------------------------------ ROS messages


def test_camera_info_to_calibration_keeps_doffs():
    from sensor_msgs.msg import CameraInfo

    from stereo_semantic_ros.ros.conversions import calibration_from_camera_info

    infos = []
    for p in CALIB.projection_matrices():
        info = CameraInfo()
        info.width, info.height = W, H
        info.p = p.reshape(12).astype(np.float64)
        infos.append(info)
    assert infos[1].p[2] == 15.0  # right camera's cx
    calib = calibration_from_camera_info(*infos)
    assert calib.doffs == 10.0 and calib == CALIB
    infos[1].p[2] = 2.5  # cx_right < cx_left
    assert calibration_from_camera_info(*infos).doffs == -2.5


def _sample(calib: StereoCalibration, disparity: float = 4.0) -> StereoSample:
    left, right = images(calib.height, calib.width)
    h, w = calib.height, calib.width
    valid = np.ones((h, w), bool)
    valid[0] = False
    return StereoSample(
        left=left,
        right=right,
        calib=calib,
        disparity=np.where(valid, np.float32(disparity), np.float32(0.0)),
        valid=valid,
        noc=valid.copy(),
        labels=np.zeros((h, w), np.uint8),
        name="doffs",
    )


def test_bag_camera_info_keeps_doffs(tmp_path: Path):
    from stereo_semantic_ros.bagtools.bagio import BagWriter, open_bag, storage_plugin
    from stereo_semantic_ros.bagtools.make_bag import TOPICS, frame_messages
    from stereo_semantic_ros.ros.stereo_inputs import decode_stereo_inputs

    calib = replace(CALIB, doffs=7.25)
    with BagWriter(tmp_path / "bag", storage_plugin("mcap")) as writer:
        for role, msg in frame_messages(_sample(calib), 1_000_000_000).items():
            writer.write(TOPICS[role], msg, 1_000_000_000)
    reader = open_bag(tmp_path / "bag")
    try:
        msgs = {
            conn.topic: reader.deserialize(raw, conn.msgtype) for conn, _, raw in reader.messages()
        }
    finally:
        reader.close()
    right_info = msgs[TOPICS["right_info"]]
    assert right_info.p[2] == right_info.k[2] == 5.0 + 7.25
    assert msgs[TOPICS["left_info"]].k[2] == 5.0
    roles = ("left_image", "right_image", "left_info", "right_info")
    _, _, back = decode_stereo_inputs(*(msgs[TOPICS[r]] for r in roles))
    assert back.doffs == 7.25 and back == calib


# ------------------------------------------------------------------------------ datasets


def test_kitti_writer_and_loader_round_trip_doffs(tmp_path: Path):
    from stereo_semantic_ros.synth.kitti_writer import calib_text, write_kitti_sample

    calib = replace(CALIB, doffs=9.25)
    assert "P_rect_03: 1.000000000000e+02 0.000000000000e+00 1.425000000000e+01" in calib_text(
        calib
    )
    write_kitti_sample(tmp_path, 0, _sample(calib))
    loaded = Kitti2015(tmp_path)[0]
    assert loaded.calib.doffs == pytest.approx(9.25, abs=1e-9)
    assert loaded.calib.cx == pytest.approx(5.0) and loaded.calib.baseline == pytest.approx(0.5)
    # depth on valid pixels is fx * B / (d + doffs)
    np.testing.assert_allclose(loaded.depth[1:], 50.0 / (4.0 + 9.25), rtol=1e-5)
    assert np.isnan(loaded.depth[0]).all()


# ------------------------------------------------------------------------------ training


def test_batch_and_depth_loss_use_doffs():
    calib = replace(CALIB, doffs=6.0)
    sample = _sample(calib, disparity=4.0)
    t = to_tensors(sample)
    assert float(t["doffs"]) == 6.0
    left, right, target = batch_on_device(
        collate([sample, sample]), torch.device("cpu"), (0.0,) * 3, (1.0,) * 3
    )
    assert target["doffs"].tolist() == [6.0, 6.0]
    depth, ok = depth_from_disparity(
        target["disparity"], target["valid"], target["fx"], target["baseline"], target["doffs"]
    )
    assert torch.allclose(depth[ok], torch.tensor(50.0 / 10.0))
    assert ok.sum() == 2 * (H - 1) * W
    # a depth network that predicts the true depth fx * B / (d + doffs) has (almost) zero loss
    rng = np.random.default_rng(1)
    target["disparity"] = (
        target["disparity"]
        + torch.from_numpy(rng.uniform(0, 3, target["disparity"].shape).astype(np.float32))
        * target["valid"]
    )
    true_depth = torch.where(
        target["valid"], 50.0 / (target["disparity"] + 6.0), torch.ones_like(target["disparity"])
    )
    loss = task_losses({"depth": true_depth}, target)["disparity"]
    assert float(loss) < 1e-8
    # ... and ignoring doffs would give another target
    no_doffs = {k: v for k, v in target.items() if k != "doffs"}
    assert float(task_losses({"depth": true_depth}, no_doffs)["disparity"]) > 1e-3


def test_depth_from_disparity_zero_doffs_is_bit_identical():
    rng = np.random.default_rng(2)
    d = torch.from_numpy(rng.uniform(-1, 40, (2, 1, 5, 6)).astype(np.float32))
    valid = d > 0.5
    fx, b = torch.tensor([700.3, 351.1]), torch.tensor([0.54, 0.12])
    plain = depth_from_disparity(d, valid, fx, b)
    zero = depth_from_disparity(d, valid, fx, b, torch.zeros(2))
    assert torch.equal(plain[0], zero[0]) and torch.equal(plain[1], zero[1])
