"""onnxruntime backend: an ONNX graph written by ``stereo-semantic-export`` as a network.

The graph takes what a registered network's forward takes, (B, 3, H, W) float32 images
normalised with the weights' mean/std (``left``, and ``right`` for stereo networks), and returns
the contract's outputs at the input resolution: ``disparity`` and ``confidence`` (stereo) or
``depth`` (single-image networks), and ``seg_logits`` or ``labels`` (uint8 train ids, B x 1 x H
x W) when the weights have a segmentation head. Its metadata (``metadata_props``) carries
everything a checkpoint says about itself but the tensors; :func:`read_onnx_metadata` rebuilds
a tensor-less :class:`~stereo_semantic_ros.checkpoint.Checkpoint` from it, so the node compares
``architecture``, ``max_disparity`` and ``label_set`` with the file exactly as for a ``.pt``.

Execution providers: ``CPUExecutionProvider`` on a CPU device; on ``cuda`` the TensorRT and CUDA
providers where the installed onnxruntime has them (then the CPU one as fallback). Inputs and
outputs pass through host memory (numpy), so a CUDA provider costs one upload and one download
per frame more than the torch backend; the graph runs in the precision it was exported in
(float32).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo_semantic_ros.checkpoint import Checkpoint, CheckpointError, weights_file_problem
from stereo_semantic_ros.labels import LabelSet
from stereo_semantic_ros.networks.contract import StereoNetwork

ONNX_FORMAT = "stereo_semantic_ros.onnx/1"
"""``format`` entry of the metadata of every graph ``stereo-semantic-export`` writes."""
BACKENDS = ("torch", "onnxruntime")
"""What runs the network: PyTorch modules, or an exported ONNX graph in onnxruntime."""
INPUT_NAMES = ("left", "right")
_REQUIRED = (
    "format",
    "architecture",
    "hyper_parameters",
    "label_set",
    "mean",
    "std",
    "max_disparity",
    "stride",
    "geometry",
    "tasks",
    "outputs",
    "input_size",
)


class OnnxModelError(CheckpointError):
    """An ONNX file that cannot serve as weights: missing, foreign, or not matching."""


@dataclass(frozen=True)
class OnnxMetadata:
    """What an exported graph says about itself (its ``metadata_props``).

    Attributes:
        checkpoint: architecture, hyper-parameters, label set, mean/std and provenance of the
            weights it was exported from (no tensors).
        max_disparity, stride, geometry, tasks: the network contract's values.
        outputs: output names in graph order.
        input_size: (width, height) of a fixed-size graph, None for a dynamic one.
        min_width: narrowest input a dynamic graph was verified for (pixels).
    """

    checkpoint: Checkpoint
    max_disparity: int
    stride: int
    geometry: str
    tasks: tuple[str, ...]
    outputs: tuple[str, ...]
    input_size: tuple[int, int] | None
    min_width: int
    raw: dict[str, str]


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise OnnxModelError(
            "backend onnxruntime needs the onnxruntime package: pip install -r requirements.txt "
            "(or pip install onnxruntime), or use backend torch"
        ) from None
    return onnxruntime


def parse_metadata(props: dict[str, str], source: str) -> OnnxMetadata:
    """:class:`OnnxMetadata` from a graph's metadata map; ``source`` names the file in errors.

    Raises:
        OnnxModelError: not written by stereo-semantic-export, or a malformed entry.
    """
    if props.get("format") != ONNX_FORMAT:
        raise OnnxModelError(
            f"{source} was not written by stereo-semantic-export (metadata format "
            f"{props.get('format')!r}, expected {ONNX_FORMAT!r}): its label set, normalisation "
            "and disparity range are unknown. Export the checkpoint with "
            "'stereo-semantic-export WEIGHTS.pt -o FILE.onnx'"
        )
    missing = [k for k in _REQUIRED if k not in props]
    if missing:
        raise OnnxModelError(f"{source}: metadata lacks {', '.join(missing)}; export it again")
    try:
        size = props["input_size"]
        input_size = None if size == "dynamic" else tuple(int(v) for v in size.split("x"))
        checkpoint = Checkpoint(
            architecture=props["architecture"],
            hyper_parameters=json.loads(props["hyper_parameters"]),
            state_dict={},
            label_set=LabelSet.from_dict(json.loads(props["label_set"])),
            mean=tuple(float(v) for v in json.loads(props["mean"])),  # type: ignore[arg-type]
            std=tuple(float(v) for v in json.loads(props["std"])),  # type: ignore[arg-type]
            provenance=json.loads(props.get("provenance", "{}")),
            metrics=json.loads(props.get("metrics", "{}")),
            source=source,
        )
        return OnnxMetadata(
            checkpoint=checkpoint,
            max_disparity=int(props["max_disparity"]),
            stride=int(props["stride"]),
            geometry=props["geometry"],
            tasks=tuple(json.loads(props["tasks"])),
            outputs=tuple(json.loads(props["outputs"])),
            input_size=input_size,  # type: ignore[arg-type]
            min_width=int(props.get("min_width", "0")),
            raw=dict(props),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise OnnxModelError(f"{source}: malformed metadata ({exc!r}); export it again") from None


def _session(path: Path, device: torch.device, threads: int) -> Any:
    ort = _onnxruntime()
    options = ort.SessionOptions()
    # as many threads as torch uses, so the two backends are compared on equal terms
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.type == "cuda":
        available = ort.get_available_providers()
        index = device.index or 0
        gpu = [
            (name, {"device_id": index})
            for name in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
            if name in available
        ]
        if not gpu:
            raise OnnxModelError(
                f"device {device} asked for onnxruntime on CUDA, but this onnxruntime has only "
                f"{', '.join(available)}; install onnxruntime-gpu, or use device cpu or backend "
                "torch"
            )
        providers = [*gpu, "CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for bad files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OnnxModelError(f"cannot load ONNX file {path}: {first}") from None


def read_onnx_metadata(path: str | os.PathLike[str]) -> OnnxMetadata:
    """The metadata of an exported graph (see :class:`OnnxMetadata`).

    Raises:
        OnnxModelError: missing, unreadable or foreign file.
    """
    path = Path(path)
    problem = weights_file_problem(path)
    if problem is not None:
        raise OnnxModelError(problem)
    session = _session(path, torch.device("cpu"), 1)
    return parse_metadata(dict(session.get_modelmeta().custom_metadata_map), str(path))


class OnnxNetwork(StereoNetwork):
    """An exported graph behind the network contract: ``forward(left, right)`` -> dict.

    Args:
        path: ``.onnx`` file written by ``stereo-semantic-export``.
        device: where the pipeline keeps its tensors; chooses the execution providers.
        threads: onnxruntime intra-op threads (0: torch's ``get_num_threads()``).

    Raises:
        OnnxModelError: missing, unreadable, foreign file, or a graph whose inputs and outputs
            disagree with its metadata.
    """

    constructor_only = ("path", "device", "threads")

    def __init__(
        self, path: str | os.PathLike[str], *, device: str | torch.device = "cpu", threads: int = 0
    ) -> None:
        super().__init__()
        self.path = Path(path)
        problem = weights_file_problem(self.path)
        if problem is not None:
            raise OnnxModelError(problem)
        self.session = _session(self.path, torch.device(device), threads)
        meta = parse_metadata(
            dict(self.session.get_modelmeta().custom_metadata_map), str(self.path)
        )
        self.metadata = meta
        self.stride = meta.stride  # type: ignore[misc]
        self.geometry = meta.geometry  # type: ignore[misc]
        self.max_disparity = meta.max_disparity
        self.tasks = meta.tasks
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        want_inputs = INPUT_NAMES if meta.geometry == "disparity" else INPUT_NAMES[:1]
        if self.input_names != want_inputs or self.output_names != meta.outputs:
            raise OnnxModelError(
                f"{self.path}: graph inputs {list(self.input_names)} / outputs "
                f"{list(self.output_names)} disagree with its metadata ({list(want_inputs)} / "
                f"{list(meta.outputs)}); the file was edited or is damaged, export it again"
            )
        self.providers = tuple(self.session.get_providers())

    @property
    def checkpoint(self) -> Checkpoint:
        """The weights' description (no tensors), as :func:`load_checkpoint` would give it."""
        return self.metadata.checkpoint

    def describe(self) -> str:
        size = self.metadata.input_size
        shape = "dynamic size" if size is None else f"fixed {size[0]}x{size[1]}"
        return f"onnxruntime ({', '.join(self.providers)}), {self.path.name}, {shape}"

    def size_problem(self, height: int, width: int) -> str | None:
        """Why the graph cannot take a (height, width) network input, or None."""
        size = self.metadata.input_size
        if size is not None and (width, height) != size:
            return (
                f"the ONNX graph {self.path.name} was exported for a fixed {size[0]}x{size[1]} "
                f"network input, this frame needs {width}x{height} (frame size x input_scale, "
                "padded to the stride); export it at this size (stereo-semantic-export --size) "
                "or with --dynamic"
            )
        if width < self.metadata.min_width:
            return (
                f"the dynamic ONNX graph {self.path.name} was verified for network inputs at "
                f"least {self.metadata.min_width} pixels wide, this frame is {width}; raise "
                "input_scale or export at a fixed size"
            )
        return None

    def forward(
        self, left: torch.Tensor, right: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the graph; same inputs and output keys as the network it was exported from
        (``labels`` instead of ``seg_logits`` when exported so)."""
        h, w = self.check_inputs(left, right, needs_right=self.geometry == "disparity")
        problem = self.size_problem(h, w)
        if problem:
            raise ValueError(problem)
        feeds = {"left": _host(left)}
        if "right" in self.input_names:
            assert right is not None
            feeds["right"] = _host(right)
        results = self.session.run(list(self.output_names), feeds)
        return {
            name: torch.from_numpy(value).to(left.device)
            for name, value in zip(self.output_names, results)
        }


def _host(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
