"""backend onnxruntime: the exported graph through the shared pipeline gives the torch
backend's outputs, for every architecture, within the stated tolerance.

Tolerance (CPU, float32; what the pipeline publishes): disparity 1e-2 px and confidence 1e-4
where both backends call a pixel valid, depth 1e-3 relative, at most 0.1 % of pixels whose
validity or class differs (pixels on a threshold or a tie of near-equal class scores).
Measured: disparity <= 3e-5 px, confidence <= 1e-5, no differing pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stereo_semantic_ros.backends.onnx import OnnxModelError
from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.export import export_onnx
from stereo_semantic_ros.pipeline import InputError, StereoPipeline

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = {
    "esp_joint": "esp_joint_mixed.pt",
    "corr_mtl": "corr_mtl_mixed.pt",
    "hybridnet": "hybridnet_synthetic.pt",
}
DISPARITY_ATOL, CONFIDENCE_ATOL, DEPTH_RTOL, DIFFERING_PIXELS = 1e-2, 1e-4, 1e-3, 1e-3


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx_backend")
    files = {}
    for arch, name in SHIPPED.items():
        files[arch] = out / f"{arch}.onnx"
        export_onnx(MODELS / name, files[arch], dynamic=True, check=False)
    files["esp_labels"] = out / "esp_labels.onnx"
    export_onnx(
        MODELS / SHIPPED["esp_joint"],
        files["esp_labels"],
        size=(380, 120),
        labels=True,
        check=False,
    )
    return files


def textured_pair(h: int = 120, w: int = 380, shift: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and its copy shifted by ``shift`` px (right(u - d) = left(u))."""
    import cv2

    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (h // 6 + 2, (w + shift) // 6 + 2, 3), dtype=np.uint8)
    wide = cv2.resize(coarse, (w + shift, h), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(wide[:, :w]), np.ascontiguousarray(wide[:, shift:])


CALIB = StereoCalibration(fx=300.0, fy=300.0, cx=190.0, cy=60.0, baseline=0.3)


def assert_same_outputs(a, b):
    valid_a, valid_b = a.disparity > 0, b.disparity > 0
    assert (valid_a != valid_b).mean() <= DIFFERING_PIXELS
    both = valid_a & valid_b
    assert both.mean() > 0.5  # the comparison covers most of the frame
    assert np.abs(a.disparity[both] - b.disparity[both]).max() <= DISPARITY_ATOL
    assert np.abs(a.confidence - b.confidence).max() <= CONFIDENCE_ATOL
    rel = np.abs(a.depth[both] - b.depth[both]) / a.depth[both]
    assert rel.max() <= DEPTH_RTOL
    assert (a.labels != b.labels).mean() <= DIFFERING_PIXELS
    assert a.points.shape == b.points.shape


@pytest.mark.parametrize("arch", sorted(SHIPPED))
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_onnxruntime_backend_matches_torch_backend(graphs, arch, scale):
    """120x380 is no multiple of any stride, so padding and cropping are exercised; scale 0.5
    the resize on the way in and out."""
    torch_pipe = StereoPipeline.from_checkpoint(
        MODELS / SHIPPED[arch], device="cpu", input_scale=scale
    )
    onnx_pipe = StereoPipeline.from_checkpoint(
        graphs[arch], backend="onnxruntime", device="cpu", input_scale=scale
    )
    assert (torch_pipe.backend, onnx_pipe.backend) == ("torch", "onnxruntime")
    # the graph's metadata gives the pipeline what the checkpoint gives it
    assert onnx_pipe.max_disparity == torch_pipe.max_disparity
    assert onnx_pipe.label_set == torch_pipe.label_set
    assert (onnx_pipe.mean, onnx_pipe.std) == (torch_pipe.mean, torch_pipe.std)
    assert onnx_pipe.checkpoint.architecture == arch and onnx_pipe.geometry == torch_pipe.geometry
    left, right = textured_pair()
    assert_same_outputs(torch_pipe.run(left, right, CALIB), onnx_pipe.run(left, right, CALIB))


def test_a_graph_with_labels_inside_gives_the_same_labels(graphs):
    torch_pipe = StereoPipeline.from_checkpoint(MODELS / SHIPPED["esp_joint"], device="cpu")
    onnx_pipe = StereoPipeline.from_checkpoint(
        graphs["esp_labels"], backend="onnxruntime", device="cpu"
    )
    left, right = textured_pair()
    a, b = torch_pipe.run(left, right, CALIB), onnx_pipe.run(left, right, CALIB)
    assert b.labels.dtype == np.uint8 and len(np.unique(b.labels)) > 1
    assert_same_outputs(a, b)


def test_a_fixed_size_graph_refuses_another_frame_size(graphs):
    pipe = StereoPipeline.from_checkpoint(graphs["esp_labels"], backend="onnxruntime", device="cpu")
    left, right = textured_pair(h=128, w=384)
    with pytest.raises(InputError, match="fixed 384x120 network input, this frame needs 384x128"):
        pipe.run(left, right, CALIB)


def test_backend_errors_say_what_to_do(graphs, tmp_path):
    with pytest.raises(OnnxModelError, match="export it with 'stereo-semantic-export"):
        StereoPipeline.from_checkpoint(
            MODELS / SHIPPED["esp_joint"], backend="onnxruntime", device="cpu"
        )
    with pytest.raises(ValueError, match="backend must be one of torch, onnxruntime"):
        StereoPipeline.from_checkpoint(graphs["esp_joint"], backend="tensorflow")
    with pytest.raises(OnnxModelError, match="does not exist"):
        StereoPipeline.from_checkpoint(tmp_path / "no.onnx", backend="onnxruntime", device="cpu")


def test_half_precision_falls_back_to_the_graphs_float32(graphs):
    pipe = StereoPipeline.from_checkpoint(
        graphs["hybridnet"], backend="onnxruntime", device="cpu", precision="fp16"
    )
    assert (pipe.requested_precision, pipe.precision) == ("fp16", "fp32")
