"""``stereo-semantic-export``: a checkpoint as an ONNX graph, checked against PyTorch.

    stereo-semantic-export models/esp_joint_mixed.pt -o out/esp_joint_mixed.onnx
    stereo-semantic-export models/esp_joint_mixed.pt -o out/esp_joint_1248x376.onnx --size 1242x375
    stereo-semantic-export models/corr_mtl_mixed.pt -o out/corr_mtl.onnx --dynamic --labels

The graph's inputs and outputs are those of the network (:mod:`stereo_semantic_ros.backends.onnx`
states them): normalised float32 images in, ``disparity``/``confidence`` (or ``depth`` for
single-image networks) and ``seg_logits`` (or, with ``--labels``, uint8 ``labels``) out, at the
input resolution. ``--size`` is the camera frame; the graph is exported for it padded up to the
network's stride, which is the input the pipeline gives it at ``input_scale`` 1. ``--dynamic``
leaves batch, height and width free.

The checkpoint's description (architecture, hyper-parameters, label set, mean/std,
max_disparity, provenance) goes into the graph's metadata (``metadata_props``). After writing,
onnxruntime runs the file on a textured pair and the largest absolute difference to PyTorch's
outputs on the same input is reported per output (a dynamic graph: at the export size and at a
second, smaller one); above :data:`TOLERANCE` the export fails and the file is removed.

The exporter is PyTorch's TorchScript-based ``torch.onnx.export`` (opset 18): it needs only the
``onnx`` package, folds batch norms into the convolutions and keeps ``max_disparity``'s
unrolled work out of the graph's control flow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stereo_semantic_ros.backends.onnx import ONNX_FORMAT, OnnxNetwork
from stereo_semantic_ros.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from stereo_semantic_ros.networks.contract import network_traits
from stereo_semantic_ros.preprocess import normalize

OPSET = 18
"""ONNX opset: BitwiseXor / BitwiseAnd (the census cost) need 18."""
TOLERANCE: dict[str, float] = {
    "disparity": 1e-2,  # pixels; measured <= 1e-4 on the shipped weights
    "confidence": 1e-4,  # probability; measured <= 2e-5
    "depth": 1e-3,  # metres; measured <= 2e-5
    "seg_logits": 1e-3,  # class scores; measured <= 1e-5
    "labels": 1e-3,  # fraction of pixels whose class differs (ties of near-equal scores)
}
"""Largest accepted |onnxruntime - PyTorch| per output on the check pair (``labels``: the
fraction of differing pixels); the onnxruntime backend's tests hold the pipeline to the same."""


@dataclass
class ExportReport:
    """What was written, and how far onnxruntime's outputs are from PyTorch's."""

    path: str
    architecture: str
    input_size: str
    outputs: list[str]
    file_bytes: int
    seconds: float
    max_abs_diff: dict[str, dict[str, float]] = field(default_factory=dict)

    def format(self) -> str:
        lines = [
            f"wrote {self.path} ({self.file_bytes / 2**20:.2f} MiB, {self.architecture}, "
            f"input {self.input_size}, outputs {', '.join(self.outputs)}) in {self.seconds:.1f} s",
            "max |onnxruntime - torch| on the check pair"
            + " (labels: fraction of pixels that differ)",
        ]
        for size, diffs in self.max_abs_diff.items():
            shown = ", ".join(f"{k} {v:.3g}" for k, v in diffs.items())
            lines.append(f"  {size}: {shown}")
        return "\n".join(lines)


class ExportedNetwork(nn.Module):
    """A network as the graph runs it: positional inputs, a tuple of contract outputs."""

    def __init__(self, model: nn.Module, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None) -> tuple[Any, ...]:
        out = self.model(left, right)
        result = []
        for name in self.outputs:
            if name == "labels":
                result.append(out["seg_logits"].argmax(1, keepdim=True).to(torch.uint8))
            else:
                result.append(out[name])
        return tuple(result)


def output_names(model: nn.Module, labels: bool = False) -> tuple[str, ...]:
    """The graph's outputs for ``model``: geometry first, then the segmentation."""
    traits = network_traits(model)
    names: list[str] = []
    if "disparity" in traits.tasks:
        names += ["disparity", "confidence"] if traits.geometry == "disparity" else ["depth"]
    if "segmentation" in traits.tasks:
        names.append("labels" if labels else "seg_logits")
    return tuple(names)


def padded_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """(width, height) rounded up to multiples of ``stride`` (what the pipeline pads to)."""
    w, h = size
    return (w + -w % stride, h + -h % stride)


def check_pair(
    checkpoint: Checkpoint, size: tuple[int, int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised textured pair (right = left shifted by 8 pixels) of (width, height)."""
    w, h = size
    rng = np.random.default_rng(seed)
    # smooth texture (random values upsampled): matchable, unlike pixel noise
    coarse = rng.integers(0, 256, (3, h // 4 + 2, (w + 16) // 4 + 2)).astype(np.float32)
    wide = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None], size=(h, w + 8), mode="bilinear", align_corners=False
    )
    left, right = wide[..., :w], wide[..., 8:]
    return (
        normalize(left, checkpoint.mean, checkpoint.std),
        normalize(right, checkpoint.mean, checkpoint.std),
    )


def compare(
    model: nn.Module, network: OnnxNetwork, checkpoint: Checkpoint, size: tuple[int, int]
) -> dict[str, float]:
    """Max |onnxruntime - torch| per output at (width, height); labels: differing fraction."""
    left, right = check_pair(checkpoint, size)
    with torch.inference_mode():
        reference = model(left, right)
        got = network(left, right)
    diffs: dict[str, float] = {}
    for name, value in got.items():
        if name == "labels":
            ref = reference["seg_logits"].argmax(1, keepdim=True)
            diffs[name] = float((value.long() != ref).float().mean())
        else:
            diffs[name] = float((value.float() - reference[name].float()).abs().max())
    return diffs


def _register_symbolics() -> None:
    """BitwiseXor for integer tensors (opset 18): the TorchScript exporter only maps XOR of
    booleans, and the census cost XORs packed codes. Registering twice is harmless."""
    from torch.onnx import register_custom_op_symbolic

    def xor(g: Any, a: Any, b: Any) -> Any:
        return g.op("BitwiseXor", a, b)

    for name in ("aten::__xor_", "aten::bitwise_xor"):
        register_custom_op_symbolic(name, xor, OPSET)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metadata(
    checkpoint: Checkpoint,
    model: nn.Module,
    outputs: tuple[str, ...],
    input_size: str,
    min_width: int,
    source: Path | None,
) -> dict[str, str]:
    """The ``metadata_props`` of the graph: everything the checkpoint says but the tensors."""
    traits = network_traits(model)
    props = {
        "format": ONNX_FORMAT,
        "architecture": checkpoint.architecture,
        "hyper_parameters": json.dumps(checkpoint.hyper_parameters),
        "label_set": json.dumps(checkpoint.label_set.to_dict()),
        "mean": json.dumps(list(checkpoint.mean)),
        "std": json.dumps(list(checkpoint.std)),
        "max_disparity": str(traits.max_disparity),
        "stride": str(traits.stride),
        "geometry": traits.geometry,
        "tasks": json.dumps(list(traits.tasks)),
        "outputs": json.dumps(list(outputs)),
        "input_size": input_size,
        "min_width": str(min_width),
        "inputs": "left[, right]: (B, 3, H, W) float32 RGB, (x - mean) / std in 0..255 units",
        "provenance": json.dumps(checkpoint.provenance, default=str),
        "metrics": json.dumps(checkpoint.metrics, default=str),
        "exported_with": f"torch {torch.__version__}, opset {OPSET}",
    }
    if source is not None:
        props["source"] = source.name
        props["source_sha256"] = _sha256(source)
    return props


def export_onnx(
    weights: str | os.PathLike[str] | Checkpoint,
    out: str | os.PathLike[str],
    *,
    size: tuple[int, int] = (384, 128),
    dynamic: bool = False,
    labels: bool = False,
    check: bool = True,
) -> ExportReport:
    """Export a checkpoint to ``out`` and check it against PyTorch (see the module docstring).

    Args:
        weights: checkpoint file, or a loaded :class:`Checkpoint`.
        out: the ``.onnx`` file to write (replaced atomically).
        size: (width, height) of the camera frame; the graph's input is it padded to the stride
            (and the size traced and checked first for a dynamic graph).
        dynamic: free batch, height and width.
        labels: output uint8 ``labels`` (argmax in the graph) instead of ``seg_logits``.
        check: run onnxruntime and compare (raises above :data:`TOLERANCE`).

    Raises:
        CheckpointError: unusable weights; ValueError: a difference above the tolerance (the
            file is removed).
    """
    start = time.perf_counter()
    source = None if isinstance(weights, Checkpoint) else Path(weights)
    checkpoint = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
    model = checkpoint.build_model().eval()
    traits = network_traits(model)
    names = output_names(model, labels)
    if labels and "segmentation" not in traits.tasks:
        raise ValueError("--labels needs weights with a segmentation head")
    w, h = padded_size(size, traits.stride)
    # a dynamic graph is checked at a second, narrower size; it must still see the full range
    min_width = 0
    if dynamic:
        min_width = max(traits.stride, traits.max_disparity)
        min_width += -min_width % traits.stride
    stereo = traits.geometry == "disparity"
    input_names = ["left", "right"] if stereo else ["left"]
    left, right = check_pair(checkpoint, (w, h))
    args = (left, right) if stereo else (left,)
    dynamic_axes = (
        {n: {0: "batch", 2: "height", 3: "width"} for n in [*input_names, *names]}
        if dynamic
        else None
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _register_symbolics()
        with warnings.catch_warnings():
            # TracerWarnings about Python ints from shapes: the size-dependent values are the
            # graph's own shape arithmetic, verified below at a second size for dynamic graphs
            warnings.simplefilter("ignore")
            # eval() on the wrapper too: the exporter restores the wrapper's mode afterwards,
            # recursively, and a training-mode wrapper would leave batch norm in training mode
            torch.onnx.export(
                ExportedNetwork(model, names).eval(),
                args,
                str(tmp),
                input_names=input_names,
                output_names=list(names),
                opset_version=OPSET,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
                dynamo=False,
            )
        import onnx

        graph = onnx.load(str(tmp))
        props = metadata(
            checkpoint, model, names, "dynamic" if dynamic else f"{w}x{h}", min_width, source
        )
        del graph.metadata_props[:]
        for key, value in props.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
        report = ExportReport(
            path=str(out),
            architecture=checkpoint.architecture,
            input_size="dynamic" if dynamic else f"{w}x{h}",
            outputs=list(names),
            file_bytes=tmp.stat().st_size,
            seconds=0.0,
        )
        if check:
            network = OnnxNetwork(tmp)
            sizes = [(w, h)]
            if dynamic:
                small = padded_size((max(min_width, w // 2), max(traits.stride, h // 2)), 1)
                sizes.append(small if small != (w, h) else (w + traits.stride, h))
            for cw, ch in sizes:
                diffs = compare(model, network, checkpoint, (cw, ch))
                report.max_abs_diff[f"{cw}x{ch}"] = diffs
                bad = {k: v for k, v in diffs.items() if not v <= TOLERANCE[k]}  # NaN too
                if bad:
                    raise ValueError(
                        f"exported graph differs from PyTorch at {cw}x{ch} beyond the tolerance: "
                        + ", ".join(f"{k} {v:.3g} > {TOLERANCE[k]:g}" for k, v in bad.items())
                        + f"; nothing was written to {out}"
                    )
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    report.seconds = time.perf_counter() - start
    return report


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1242x375, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, got {text!r}")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stereo-semantic-export",
        description="Export a checkpoint to ONNX (for onnxruntime or TensorRT's trtexec), with "
        "its metadata, and check it against PyTorch.",
    )
    p.add_argument("weights", type=Path, help="checkpoint (.pt) written by stereo-semantic-train")
    p.add_argument("-o", "--out", type=Path, required=True, help="the .onnx file to write")
    p.add_argument(
        "--size",
        type=_parse_size,
        default=(384, 128),
        help="camera frame WIDTHxHEIGHT (x input_scale); the graph's input is it padded to the "
        "stride (default 384x128)",
    )
    p.add_argument("--dynamic", action="store_true", help="free batch, height and width")
    p.add_argument(
        "--labels",
        action="store_true",
        help="output uint8 class ids (argmax in the graph) instead of seg_logits",
    )
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    p.add_argument("--json", type=Path, help="also write the report here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = export_onnx(
            args.weights,
            args.out,
            size=args.size,
            dynamic=args.dynamic,
            labels=args.labels,
            check=not args.no_check,
        )
    except (CheckpointError, ValueError) as exc:
        print(f"stereo-semantic-export: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    if args.json:
        args.json.write_text(json.dumps(report.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
