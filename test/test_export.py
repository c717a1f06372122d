"""stereo-semantic-export: every registered architecture to ONNX, checked against PyTorch.

The export itself runs onnxruntime on a textured pair and compares; these tests also re-run
the written file independently, read its metadata back, and check the errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from stereo_semantic_ros.backends.onnx import (
    ONNX_FORMAT,
    OnnxModelError,
    OnnxNetwork,
    read_onnx_metadata,
)
from stereo_semantic_ros.checkpoint import Checkpoint, load_checkpoint
from stereo_semantic_ros.export import TOLERANCE, check_pair, export_onnx, main, padded_size
from stereo_semantic_ros.networks import get_model_builder, list_models

MODELS = Path(__file__).resolve().parents[1] / "models"
# the shipped checkpoint of each architecture that has one; the others export untrained
SHIPPED = {
    "esp_joint": "esp_joint_mixed.pt",
    "corr_mtl": "corr_mtl_mixed.pt",
    "hybridnet": "hybridnet_synthetic.pt",
    "pseudo_mtl": "pseudo_mtl_synthetic.pt",
    "synchronized": "synchronized_synthetic.pt",
}
UNSHIPPED = sorted(set(list_models()) - set(SHIPPED))


def test_the_shipped_checkpoints_are_of_their_architecture():
    assert set(SHIPPED) <= set(list_models())
    for arch, name in SHIPPED.items():
        assert load_checkpoint(MODELS / name).architecture == arch


@pytest.mark.parametrize("arch", UNSHIPPED)
def test_an_architecture_without_shipped_weights_exports_too(arch, tmp_path):
    """Every registered architecture exports, trained or not: random weights (seeded) through
    the builder's defaults, at a fixed small size to keep it quick."""
    torch.manual_seed(0)
    model = get_model_builder(arch)(num_classes=19)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    ckpt = Checkpoint(arch, {"num_classes": 19}, state)
    report = export_onnx(ckpt, tmp_path / f"{arch}.onnx", size=(192, 64))
    assert report.architecture == arch and (tmp_path / f"{arch}.onnx").stat().st_size > 0
    diffs = report.max_abs_diff["192x64"]
    assert set(diffs) == set(report.outputs) and diffs
    assert all(diffs[name] <= TOLERANCE[name] for name in diffs), diffs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each architecture's shipped weights exported once: dynamic for all, plus esp_joint at a
    fixed size with labels in the graph."""
    out = tmp_path_factory.mktemp("onnx")
    files = {}
    for arch, name in SHIPPED.items():
        report = export_onnx(MODELS / name, out / f"{arch}.onnx", size=(384, 128), dynamic=True)
        files[arch] = (out / f"{arch}.onnx", report)
    report = export_onnx(
        MODELS / SHIPPED["esp_joint"], out / "esp_fixed.onnx", size=(380, 120), labels=True
    )
    files["esp_fixed"] = (out / "esp_fixed.onnx", report)
    return files


@pytest.mark.parametrize("arch", sorted(SHIPPED))
def test_export_matches_pytorch_within_the_stated_tolerance(exported, arch):
    path, report = exported[arch]
    assert path.is_file() and report.file_bytes == path.stat().st_size > 100_000
    # the dynamic graph was checked at the export size and at a second, narrower one
    assert set(report.max_abs_diff) == {"384x128", "192x64"}
    for diffs in report.max_abs_diff.values():
        assert set(diffs) == set(report.outputs)
        for name, diff in diffs.items():
            assert 0.0 <= diff <= TOLERANCE[name], (arch, name, diff)
    # and independently of the export's own check: a third size, straight from the file
    ckpt = load_checkpoint(MODELS / SHIPPED[arch])
    model = ckpt.build_model()
    network = OnnxNetwork(path)
    left, right = check_pair(ckpt, (320, 96), seed=3)
    with torch.inference_mode():
        want = model(left, right)
        got = network(left, right)
    assert list(got) == report.outputs
    for name, value in got.items():
        assert value.shape == want[name].shape
        assert float((value - want[name]).abs().max()) <= TOLERANCE[name], name


def test_outputs_follow_the_architecture_geometry(exported):
    assert exported["esp_joint"][1].outputs == ["disparity", "confidence", "seg_logits"]
    assert exported["corr_mtl"][1].outputs == ["disparity", "confidence", "seg_logits"]
    # a single-image network: depth from the left image, no right input
    assert exported["hybridnet"][1].outputs == ["depth", "seg_logits"]
    graph = onnx.load(str(exported["hybridnet"][0]))
    assert [i.name for i in graph.graph.input] == ["left"]
    graph = onnx.load(str(exported["esp_joint"][0]))
    assert [i.name for i in graph.graph.input] == ["left", "right"]


def test_metadata_carries_the_checkpoint_description(exported):
    path, _ = exported["corr_mtl"]
    ckpt = load_checkpoint(MODELS / SHIPPED["corr_mtl"])
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["format"] == ONNX_FORMAT
    assert props["architecture"] == "corr_mtl"
    assert json.loads(props["label_set"]) == ckpt.label_set.to_dict()
    assert json.loads(props["mean"]) == list(ckpt.mean)
    assert json.loads(props["std"]) == list(ckpt.std)
    assert int(props["max_disparity"]) == ckpt.hyper_parameters["max_disparity"] == 96
    assert json.loads(props["hyper_parameters"]) == ckpt.hyper_parameters
    assert props["input_size"] == "dynamic" and props["source"] == "corr_mtl_mixed.pt"
    meta = read_onnx_metadata(path)
    assert meta.checkpoint.label_set == ckpt.label_set
    assert meta.checkpoint.architecture == "corr_mtl" and meta.max_disparity == 96
    assert meta.stride == 32 and meta.geometry == "disparity" and meta.input_size is None


def test_fixed_size_export_is_padded_to_the_stride_and_can_output_labels(exported):
    path, report = exported["esp_fixed"]
    assert padded_size((380, 120), 8) == (384, 120)
    assert report.input_size == "384x120" and report.outputs[-1] == "labels"
    assert report.max_abs_diff["384x120"]["labels"] <= TOLERANCE["labels"]
    graph = onnx.load(str(path))
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 120, 384]
    network = OnnxNetwork(path)
    assert network.metadata.input_size == (384, 120)
    ckpt = load_checkpoint(MODELS / SHIPPED["esp_joint"])
    left, right = check_pair(ckpt, (384, 120))
    labels = network(left, right)["labels"]
    assert labels.dtype == torch.uint8 and labels.shape == (1, 1, 120, 384)
    with pytest.raises(ValueError, match="fixed 384x120 network input, this frame needs 384x128"):
        network(*check_pair(ckpt, (384, 128)))


def test_export_refuses_a_graph_beyond_the_tolerance(tmp_path, monkeypatch):
    """A graph that computes something else must not be written: here PyTorch's reference is
    shifted by 0.1 m after the export."""
    import stereo_semantic_ros.export as export

    real = export.compare

    def off_by_a_tenth(model, network, checkpoint, size):
        diffs = real(model, network, checkpoint, size)
        diffs["depth"] += 0.1
        return diffs

    monkeypatch.setattr(export, "compare", off_by_a_tenth)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match=r"depth 0\.1\d* > 0\.001; nothing was written"):
        export_onnx(MODELS / "hybridnet_synthetic.pt", out, size=(128, 64))
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_the_differences_and_writes_json(tmp_path, capsys):
    out = tmp_path / "h.onnx"
    rc = main(
        [str(MODELS / "hybridnet_synthetic.pt"), "-o", str(out), "--size", "128x64"]
        + ["--json", str(tmp_path / "r.json")]
    )
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    assert "input 128x64" in text and "depth" in text and "max |onnxruntime - torch|" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["max_abs_diff"]["128x64"]["depth"] <= TOLERANCE["depth"]


def test_cli_names_a_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not a torch checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_a_foreign_onnx_file_is_refused_with_the_reason(tmp_path):
    class Plain(torch.nn.Module):
        def forward(self, x):
            return x * 2

    path = tmp_path / "foreign.onnx"
    torch.onnx.export(Plain(), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(OnnxModelError, match="not written by stereo-semantic-export"):
        OnnxNetwork(path)
    with pytest.raises(OnnxModelError, match="does not exist"):
        OnnxNetwork(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    with pytest.raises(OnnxModelError, match="cannot load ONNX file"):
        OnnxNetwork(tmp_path / "junk.onnx")
