"""Checkpoints describe themselves, load strictly, and never run code."""

import pickle

import pytest
import torch

from stereo_semantic_ros.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_state_dict_checked,
    save_checkpoint,
)
from stereo_semantic_ros.labels import CITYSCAPES_19
from stereo_semantic_ros.networks import get_model

HYPER = {"max_disparity": 16, "num_classes": 19}


def make_checkpoint() -> Checkpoint:
    torch.manual_seed(1)
    model = get_model("esp_joint", **HYPER)
    return Checkpoint(
        architecture="esp_joint",
        hyper_parameters=dict(HYPER, tasks=("disparity", "segmentation")),
        state_dict=model.state_dict(),
        mean=(100.0, 110.0, 120.0),
        std=(50.0, 51.0, 52.0),
        provenance={"command": "stereo-semantic-train --config x.yaml", "data": "synthetic"},
        metrics={"epe": 1.5},
        class_weights=[1.0] * 19,
    )


def test_round_trip_restores_everything(tmp_path):
    ckpt = make_checkpoint()
    path = save_checkpoint(ckpt, tmp_path / "w.pt")
    loaded = load_checkpoint(path)
    assert loaded.architecture == "esp_joint"
    assert loaded.hyper_parameters["tasks"] == ["disparity", "segmentation"]
    assert loaded.label_set == CITYSCAPES_19
    assert loaded.mean == (100.0, 110.0, 120.0) and loaded.std == (50.0, 51.0, 52.0)
    assert loaded.provenance["command"].startswith("stereo-semantic-train")
    assert loaded.metrics == {"epe": 1.5}
    model = loaded.build_model()
    for k, v in ckpt.state_dict.items():
        assert torch.equal(model.state_dict()[k], v)
    assert not model.training


def test_wrong_architecture_names_the_keys(tmp_path):
    ckpt = make_checkpoint()
    ckpt.hyper_parameters["tasks"] = ["segmentation"]  # a model without the 3D regulariser
    save_checkpoint(ckpt, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"unexpected keys: .*regulariser"):
        load_checkpoint(tmp_path / "w.pt").build_model()


def test_missing_keys_and_shapes_are_named():
    model = get_model("esp_joint", **HYPER)
    state = dict(model.state_dict())
    state.pop("features.classifier.bias")
    with pytest.raises(CheckpointError, match=r"missing keys: features\.classifier\.bias"):
        load_state_dict_checked(model, state)
    other = get_model("esp_joint", max_disparity=16, num_classes=7).state_dict()
    with pytest.raises(
        CheckpointError, match=r"shape mismatches: .*features\.classifier\.\* \(2\)"
    ):
        load_state_dict_checked(model, other)


class RunsCode:
    """An object whose unpickling would call os.system."""

    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/stereo_semantic_pwned",))


def test_pickled_code_is_refused(tmp_path):
    data = make_checkpoint().to_dict()
    data["provenance"] = RunsCode()
    path = tmp_path / "evil.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps({"format": "x", "payload": RunsCode()}))
    with pytest.raises(CheckpointError, match="could run code|cannot read"):
        load_checkpoint(plain)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a stereo_semantic_ros checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "garbage.pt")
