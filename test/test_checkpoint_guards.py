"""Every unusable weights file is one ``CheckpointError`` naming the file and what is wrong.

Bad files are real files on disk (a system text file, a truncated checkpoint, a directory, a
device); non-finite checkpoints are real checkpoints with one tensor or statistic spoilt, and
must be refused at load time, before a network with them could publish anything.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from stereo_semantic_ros.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from stereo_semantic_ros.networks import get_model
from stereo_semantic_ros.pipeline import StereoPipeline

HYPER = {"max_disparity": 16, "num_classes": 19}


def _checkpoint() -> Checkpoint:
    torch.manual_seed(2)
    return Checkpoint(
        architecture="esp_joint",
        hyper_parameters=dict(HYPER),
        state_dict=get_model("esp_joint", **HYPER).state_dict(),
    )


def _saved(tmp_path: Path, ckpt: Checkpoint, name: str = "w.pt") -> Path:
    return save_checkpoint(ckpt, tmp_path / name)


def _refused(path: Path | str, *words: str) -> str:
    """Loading ``path`` (and building its network) raises CheckpointError naming the path."""
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path).build_model()
    text = str(info.value)
    assert str(path) in text, text
    for word in words:
        assert word in text, f"{word!r} missing from: {text}"
    return text


# --------------------------------------------------------------------------- bad files


def test_a_system_text_file_is_refused() -> None:
    # /etc/passwd made the weights-only unpickler raise IndexError
    _refused("/etc/passwd", "not a torch checkpoint")


def test_a_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")  # KeyError in torch's legacy loader before
    _refused(path, "not a torch checkpoint")


def test_an_unknown_hyper_parameter_is_refused(tmp_path: Path) -> None:
    ckpt = _checkpoint()
    ckpt.hyper_parameters["wings"] = 2  # the builder raised TypeError before
    path = _saved(tmp_path, ckpt)
    _refused(path, "hyper-parameter", "wings", "esp_joint")


def test_dev_null_exists_but_is_no_weights_file() -> None:
    text = _refused("/dev/null", "not a regular file")
    assert "does not exist" not in text


def test_a_directory_is_refused(tmp_path: Path) -> None:
    text = _refused(tmp_path, "is a directory")
    assert "does not exist" not in text


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.touch()
    _refused(path, "empty")


def test_a_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path, _checkpoint())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _refused(path, "cannot read")


def test_a_missing_file_is_still_reported_missing(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.pt", "does not exist")


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = _saved(tmp_path, _checkpoint())
    path.chmod(0)
    _refused(path, "cannot read")


def test_non_tensor_state_dict_entries_are_refused(tmp_path: Path) -> None:
    ckpt = _checkpoint()
    ckpt.state_dict = dict(ckpt.state_dict)
    key = next(iter(ckpt.state_dict))
    ckpt.state_dict[key] = [1.0, 2.0]  # type: ignore[assignment]
    _refused(_saved(tmp_path, ckpt), key, "not a tensor")


# --------------------------------------------------------------------------- non-finite values


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_one_non_finite_tensor_is_refused_and_named(tmp_path: Path, bad: float) -> None:
    ckpt = _checkpoint()
    ckpt.state_dict = {k: v.clone() for k, v in ckpt.state_dict.items()}
    key = [k for k, v in ckpt.state_dict.items() if v.is_floating_point() and v.numel() > 4][3]
    ckpt.state_dict[key].view(-1)[2] = bad
    _refused(_saved(tmp_path, ckpt), key, "non-finite", "1 of")


def test_a_non_finite_buffer_is_refused(tmp_path: Path) -> None:
    ckpt = _checkpoint()
    ckpt.state_dict = {k: v.clone() for k, v in ckpt.state_dict.items()}
    key = next(k for k in ckpt.state_dict if k.endswith("running_var"))
    ckpt.state_dict[key][0] = math.nan
    _refused(_saved(tmp_path, ckpt), key, "non-finite")


def test_a_nan_mean_is_refused(tmp_path: Path) -> None:
    ckpt = _checkpoint()
    ckpt.mean = (127.0, math.nan, 127.0)
    _refused(_saved(tmp_path, ckpt), "mean", "nan")


@pytest.mark.parametrize("std", [0.0, -1.0, math.inf], ids=["zero", "negative", "inf"])
def test_an_invalid_std_is_refused(tmp_path: Path, std: float) -> None:
    ckpt = _checkpoint()
    ckpt.std = (64.0, std, 64.0)
    _refused(_saved(tmp_path, ckpt), "std", "> 0")


def test_a_statistic_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    ckpt = _checkpoint()
    ckpt.mean = (127.0, 127.0)  # type: ignore[assignment]
    _refused(_saved(tmp_path, ckpt), "mean", "3 values")


def test_the_pipeline_refuses_nan_weights_too(tmp_path: Path) -> None:
    ckpt = _checkpoint()
    ckpt.state_dict = {k: v.clone() for k, v in ckpt.state_dict.items()}
    key = next(k for k, v in ckpt.state_dict.items() if v.is_floating_point())
    ckpt.state_dict[key].view(-1)[0] = math.nan
    path = _saved(tmp_path, ckpt)
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        StereoPipeline.from_checkpoint(path, device="cpu")


def test_a_good_checkpoint_still_loads(tmp_path: Path) -> None:
    path = _saved(tmp_path, _checkpoint())
    model = load_checkpoint(path).build_model()
    assert not model.training
