"""The one pipeline: a rectified pair + calibration in, disparity, depth, labels and points out.

The node, rosbag replay, evaluation and the benchmark all call :class:`StereoPipeline`, so what
is measured offline is what runs on the vehicle. No ROS imports here.

On a GPU the pair is uploaded once; normalisation, the network, depth, confidence masking,
labels and the 3D points are computed on the device, and only the requested arrays come back
in a single device-to-host copy.

Two kinds of network, told apart by the model's ``geometry`` attribute
(:mod:`~stereo_semantic_ros.networks.contract`):

* ``disparity`` (the default; esp_joint, corr_mtl): stereo networks that take the pair and
  output ``disparity`` in pixels and its ``confidence``; depth is ``fx * B / (d + doffs)``.
* ``depth`` (hybridnet): single-image networks that see the LEFT image only and output
  ``depth`` in metres. The pipeline turns it into disparity on the device with the pair's
  calibration, ``d = fx * B / Z - doffs`` (the same relation read the other way), so every
  output means the same for both kinds and the node, replay and evaluation need no change. Their
  ``confidence`` is 1.0 everywhere (they have no per-pixel uncertainty, so ``min_confidence``
  masks nothing), and ``max_disparity`` is the disparity range they report and keep: pixels
  whose converted disparity exceeds ``max_disparity / input_scale`` (nearer than
  ``fx * B / (max_disparity / input_scale + doffs)``) are invalid, as a stereo network could
  not have matched them. The right image is still required (same input checks, same
  calibration) but does not reach the network.

``doffs = cx_right - cx_left`` (:class:`~stereo_semantic_ros.calibration.StereoCalibration`) is
honoured everywhere: the ``disparity`` output stays the raw pixel shift ``u_left - u_right`` (the
network's output), depth and points use ``Z = fx * B / (d + doffs)``, and a pixel with
``d + doffs <= 0`` (no finite positive depth) is invalid in every output. With ``doffs = 0`` the
arithmetic is exactly that of ``fx * B / d``.

Frames the pipeline refuses to turn into results raise a :class:`FrameDroppedError` whose
``reason`` is the node's drop reason (:data:`stereo_semantic_ros.ros.node_stats.DROP_REASONS`);
callers count the frame under that reason and go on with the next one:

* ``too_large`` (:class:`InputTooLargeError`): the network would see more pixels than the
  :class:`InputBound` allows (``oversize_policy: downscale`` shrinks the frame instead).
* ``non_finite_output`` (:class:`NonFiniteOutputError`): the network returned NaN or Inf in any
  output (disparity, confidence, depth or segmentation logits). Nothing of the frame is returned:
  argmax over NaN logits is class 0 and a NaN disparity would read as invalid, so a broken network
  would otherwise look like an empty road.
* ``out_of_memory`` (:class:`OutOfMemoryFrameError`): torch ran out of memory (CUDA, or the CPU
  allocator refusing); the CUDA cache is emptied before the error is raised, so the next frame
  starts from a clean allocator.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stereo_semantic_ros.backends.onnx import OnnxModelError, OnnxNetwork
from stereo_semantic_ros.calibration import StereoCalibration
from stereo_semantic_ros.checkpoint import DEFAULT_MEAN, DEFAULT_STD, Checkpoint, load_checkpoint
from stereo_semantic_ros.labels import CITYSCAPES_19, IGNORE_LABEL, LabelSet
from stereo_semantic_ros.networks import get_model
from stereo_semantic_ros.networks.contract import network_traits
from stereo_semantic_ros.networks.inference import fold_batchnorm, to_channels_last
from stereo_semantic_ros.pointcloud import PointCloudOptions, build_cloud
from stereo_semantic_ros.preprocess import hwc_to_bchw, normalize, pad_to_multiple

INVALID_DISPARITY = -1.0
"""Value of invalid disparity pixels: below ``MIN_DISPARITY`` as DisparityImage consumers expect."""
MIN_DISPARITY = 0.0
"""Smallest valid disparity; any pixel with disparity <= 0 has no finite depth and is invalid."""

OUTPUTS = ("disparity", "depth", "confidence", "labels", "points")
GEOMETRIC_OUTPUTS = frozenset(("disparity", "depth", "confidence", "points"))
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("torch", "onnxruntime")  # = backends.onnx.BACKENDS
"""What runs the network (:mod:`stereo_semantic_ros.backends`): PyTorch, or an ONNX graph
written by ``stereo-semantic-export`` in onnxruntime; pre- and post-processing are shared."""


class InputError(ValueError):
    """A stereo pair the pipeline cannot process (shapes, dtype, calibration)."""


class FrameDroppedError(RuntimeError):
    """This frame gives no result; count it under :attr:`reason` and go on with the next one."""

    reason = "pipeline_error"


class InputTooLargeError(FrameDroppedError):
    """More network pixels than :attr:`StereoPipeline.input_bound` allows (policy ``drop``)."""

    reason = "too_large"


class NonFiniteOutputError(FrameDroppedError):
    """The network returned NaN or Inf; nothing of the frame may be used."""

    reason = "non_finite_output"


class OutOfMemoryFrameError(FrameDroppedError):
    """torch ran out of memory on this frame; the CUDA cache has been emptied."""

    reason = "out_of_memory"


#: Peak memory of one ``StereoPipeline.run`` (every output) at ``input_scale`` 1 on the CPU, in
#: bytes per input pixel, with the shipped weights of config/<arch>.yaml, and the max_disparity it
#: was measured at (0: independent of it). The larger of two sizes (512x256 and 1024x512); the
#: smaller frame costs more per pixel (fixed overheads). Measured with
#: ``.venv/bin/python test/measure_memory.py --sizes 512x256,1024x512`` (peak RSS - RSS before,
#: one torch thread): esp_joint 2488 / 2021, corr_mtl 937 / 948, hybridnet 288 / 295 B/pixel.
#: corr_mtl re-measured with corr_mtl_mixed.pt (census in the output cost, D 96) at 512x256 only:
#: 1534 B/pixel, rounded up to 1600.
BYTES_PER_PIXEL: dict[str, tuple[float, int]] = {
    "esp_joint": (2500.0, 96),  # esp_joint_mixed.pt, census cost, D 96: the 4D cost volume
    "corr_mtl": (1600.0, 96),  # corr_mtl_mixed.pt, D 96: the census volume in the head
    "hybridnet": (300.0, 0),  # hybridnet_synthetic.pt; a monocular network: no cost volume
}
#: Memory the network may take per frame when ``max_input_pixels`` is automatic: leaves room for
#: the OS, ROS and the rest of the stack on an 8 GB Jetson (CPU and GPU share that memory).
MEMORY_BUDGET_BYTES = 3 * 2**30
OVERSIZE_POLICIES = ("drop", "downscale")


@dataclass(frozen=True)
class InputBound:
    """How many pixels the network may see per image, and what happens to a larger frame.

    Attributes:
        max_pixels: width x height at network resolution (after ``input_scale``); 0 = no bound.
        policy: ``drop`` (raise :class:`InputTooLargeError`) or ``downscale`` (run this frame at
            the largest scale that fits; outputs keep the input size).
        bytes_per_pixel: the measured memory figure behind the bound, quoted in messages.
    """

    max_pixels: int = 0
    policy: str = "drop"
    bytes_per_pixel: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_pixels, int) or self.max_pixels < 0:
            raise ValueError(f"max_pixels must be an integer >= 0, got {self.max_pixels!r}")
        if self.policy not in OVERSIZE_POLICIES:
            raise ValueError(
                f"oversize_policy must be one of {', '.join(OVERSIZE_POLICIES)}, "
                f"got {self.policy!r}"
            )

    @classmethod
    def automatic(cls, architecture: str, max_disparity: int, policy: str = "drop") -> InputBound:
        """:data:`MEMORY_BUDGET_BYTES` over the architecture's measured :data:`BYTES_PER_PIXEL`.

        The figure grows linearly with ``max_disparity`` above the measured range (an upper
        bound: only the cost volume grows with it). An architecture without a figure is taken
        at the largest one measured.
        """
        figure, measured_d = BYTES_PER_PIXEL.get(
            architecture, max(BYTES_PER_PIXEL.values(), key=lambda v: v[0])
        )
        if measured_d and max_disparity > measured_d:
            figure *= max_disparity / measured_d
        return cls(int(MEMORY_BUDGET_BYTES // figure), policy, figure)

    def describe(self) -> str:
        if not self.max_pixels:
            return "unbounded"
        text = f"{self.max_pixels} network pixels per image"
        if self.bytes_per_pixel:
            text += (
                f" (~{self.max_pixels * self.bytes_per_pixel / 2**30:.1f} GiB at a measured "
                f"{self.bytes_per_pixel:.0f} B/pixel)"
            )
        return f"{text}, larger frames: {self.policy}"


def resolve_device(device: str) -> torch.device:
    """``auto`` -> the first CUDA device if any, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as is."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but no CUDA device is available; use 'auto' or 'cpu'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return dev


@dataclass
class PipelineResult:
    """Host arrays of one frame, all at the input image's resolution (points: strided).

    Attributes:
        disparity: (H, W) float32 pixels, ``INVALID_DISPARITY`` where invalid or not confident.
        depth: (H, W) float32 metres, NaN where invalid.
        confidence: (H, W) float32 peak probability of the soft-argmin distribution.
        labels: (H, W) uint8 train ids (argmax of the segmentation).
        points: structured array from :func:`stereo_semantic_ros.pointcloud.build_cloud`.
        timings_ms: ``network`` (forward pass) and ``total`` wall-clock milliseconds.
        input_scale: the scale the network ran at: the pipeline's, or smaller for a frame the
            ``downscale`` policy shrank to fit the input bound.
    """

    disparity: np.ndarray | None = None
    depth: np.ndarray | None = None
    confidence: np.ndarray | None = None
    labels: np.ndarray | None = None
    points: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    input_scale: float = 1.0


class StereoPipeline:
    """Network + pre/post-processing on one device.

    Args:
        model: a registered architecture in eval mode (outputs ``disparity``, ``confidence``,
            ``seg_logits``, or ``depth`` and ``seg_logits`` for a ``geometry = "depth"``
            network; see the network's forward contract and the module docstring).
        label_set: classes of the segmentation head.
        mean, std: RGB normalisation in 0..255 units.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``fp16`` or ``bf16``; half precisions need CUDA and fall back to
            fp32 on the CPU (recorded in ``self.precision``).
        input_scale: the pair is resized by this factor before the network (speed); results
            are brought back to the input resolution.
        input_bound: the most network pixels per image and what to do with a larger frame
            (default: no bound; the node and replay use :meth:`InputBound.automatic`).
        channels_last: run the torch network on channels-last (NHWC / NDHWC) tensors, the
            layout tensor cores and cuDNN's fast kernels want; off by default (on a CPU it
            changes nothing measurable for these networks).
        cuda_graphs: on CUDA, capture the network's forward pass as a CUDA graph for the input
            size of the frame and replay it (one launch instead of hundreds; re-captured when
            the size changes). Off by default; ignored on a CPU and for onnxruntime.

    The backend follows the model: an :class:`~stereo_semantic_ros.backends.onnx.OnnxNetwork`
    is ``onnxruntime`` (its graph keeps its exported float32, so ``precision`` falls back to
    fp32 as on a CPU), anything else ``torch``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        label_set: LabelSet = CITYSCAPES_19,
        mean: Sequence[float] = DEFAULT_MEAN,
        std: Sequence[float] = DEFAULT_STD,
        device: str = "auto",
        precision: str = "fp32",
        input_scale: float = 1.0,
        input_bound: InputBound | None = None,
        channels_last: bool = False,
        cuda_graphs: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if not 0.05 <= input_scale <= 4.0:
            raise ValueError(f"input_scale must be within [0.05, 4], got {input_scale}")
        self.device = resolve_device(device)
        self.requested_precision = precision
        self.backend = "onnxruntime" if isinstance(model, OnnxNetwork) else "torch"
        # half precision on a CPU is slower than fp32 and poorly supported: fall back; an
        # exported graph runs in the precision it was exported in
        on_gpu = self.device.type == "cuda" and self.backend == "torch"
        self.precision = precision if on_gpu else "fp32"
        self.channels_last = bool(channels_last) and self.backend == "torch"
        self.model = model.to(self.device).eval()
        if self.channels_last:
            to_channels_last(self.model)
        self.label_set = label_set
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.input_scale = float(input_scale)
        self.input_bound = input_bound or InputBound()
        traits = network_traits(model)  # the network contract (networks/contract.py)
        self.stride = traits.stride
        self.max_disparity = traits.max_disparity
        self.tasks = traits.tasks
        self.geometry = traits.geometry
        self.checkpoint: Checkpoint | None = None
        self._pinned: torch.Tensor | None = None
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self.cuda_graphs = self.cuda_graphs and self.backend == "torch"
        self._graph: _CapturedForward | None = None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, backend: str = "torch", **kwargs: object
    ) -> StereoPipeline:
        """Load weights: a checkpoint written by the training script (backend ``torch``), or
        an ONNX graph written by ``stereo-semantic-export`` (backend ``onnxruntime``).

        With ``torch`` the network's eval-mode batch norms are folded into the convolutions
        (:func:`~stereo_semantic_ros.networks.inference.fold_batchnorm`: float rounding only,
        one pass over the activations fewer per layer); ``self.checkpoint`` keeps the file's
        tensors as they are.

        Raises:
            CheckpointError: see :func:`load_checkpoint`; for ``onnxruntime``
                :class:`~stereo_semantic_ros.backends.onnx.OnnxModelError` (a missing, foreign
                or damaged graph, or a ``.pt`` file given to it).
            ValueError: an unknown backend.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "onnxruntime":
            return cls._from_onnx(Path(path), **kwargs)
        ckpt = load_checkpoint(path)
        model = ckpt.build_model()
        fold_batchnorm(model)
        pipe = cls(model, label_set=ckpt.label_set, mean=ckpt.mean, std=ckpt.std, **kwargs)  # type: ignore[arg-type]
        pipe.checkpoint = ckpt
        return pipe

    @classmethod
    def _from_onnx(cls, path: Path, **kwargs: object) -> StereoPipeline:
        if path.suffix == ".pt":
            raise OnnxModelError(
                f"backend onnxruntime needs an ONNX graph, got the checkpoint {path}; export it "
                f"with 'stereo-semantic-export {path} -o {path.with_suffix('.onnx')}' and give "
                "that file, or use backend torch"
            )
        device = resolve_device(str(kwargs.get("device", "auto")))
        network = OnnxNetwork(path, device=device)
        ckpt = network.checkpoint
        pipe = cls(network, label_set=ckpt.label_set, mean=ckpt.mean, std=ckpt.std, **kwargs)  # type: ignore[arg-type]
        pipe.checkpoint = ckpt
        return pipe

    @classmethod
    def untrained(
        cls, architecture: str = "esp_joint", seed: int = 0, **kwargs: object
    ) -> StereoPipeline:
        """Randomly initialised network, for tests and plumbing checks (outputs are meaningless)."""
        hyper = {k: kwargs.pop(k) for k in list(kwargs) if k in ("max_disparity", "num_classes")}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = get_model(architecture, **hyper)
        return cls(model, **kwargs)  # type: ignore[arg-type]

    def _network_size(self, h: int, w: int, scale: float) -> tuple[int, int]:
        return (max(self.stride, round(h * scale)), max(self.stride, round(w * scale)))

    def _scale_for(self, h: int, w: int) -> float:
        """The scale this (H, W) frame runs at under :attr:`input_bound`.

        Raises:
            InputTooLargeError: above the bound with policy ``drop``.
        """
        bound, scale = self.input_bound, self.input_scale
        if not bound.max_pixels:
            return scale
        nh, nw = self._network_size(h, w, scale)
        if nh * nw <= bound.max_pixels:
            return scale
        if bound.policy == "drop":
            figure = (
                f", ~{nh * nw * bound.bytes_per_pixel / 2**30:.2f} GiB at the measured "
                f"{bound.bytes_per_pixel:.0f} B/pixel"
                if bound.bytes_per_pixel
                else ""
            )
            raise InputTooLargeError(
                f"{w}x{h} frame at input_scale {scale:g} is {nw}x{nh} = {nh * nw} network "
                f"pixels{figure}, above max_input_pixels {bound.max_pixels}; lower input_scale, "
                "raise max_input_pixels if the memory is there, or set oversize_policy: downscale"
            )
        # shrink until it fits: rounding can land a pixel row above the bound
        scale *= math.sqrt(bound.max_pixels / (nh * nw))
        while scale > 1e-4:
            nh, nw = self._network_size(h, w, scale)
            if nh * nw <= bound.max_pixels:
                return scale
            scale *= 0.99
        raise InputTooLargeError(
            f"{w}x{h} frame cannot be shrunk below max_input_pixels {bound.max_pixels}"
        )

    @staticmethod
    def _finite_sum(net: dict[str, torch.Tensor]) -> torch.Tensor:
        """A (1,) device tensor that is finite if every output is (one summing pass each).

        NaN or Inf anywhere makes the sum non-finite; a finite sum proves every value finite.
        A sum that overflows float32 is the one false alarm: :meth:`_check_finite` then counts
        exactly. It travels to the host in the frame's one copy, so the good path has no
        device synchronisation of its own.
        """
        if not net:
            return torch.zeros(1)
        return torch.stack([t.float().sum() for t in net.values()]).sum().reshape(1)

    def _check_finite(self, net: dict[str, torch.Tensor], w: int, h: int) -> None:
        """Raise :class:`NonFiniteOutputError` if any network output holds NaN or Inf."""
        if not net:
            return
        if bool(torch.stack([torch.isfinite(t).all() for t in net.values()]).all()):
            return
        bad = {k: int((~torch.isfinite(t)).sum()) for k, t in net.items()}
        found = ", ".join(f"{k} {n} of {net[k].numel()} values" for k, n in bad.items() if n)
        raise NonFiniteOutputError(
            f"the network returned non-finite values (NaN/Inf) for this {w}x{h} frame: {found}. "
            "Nothing of it is published; if this repeats, the weights or the precision "
            "(fp16 overflow?) are broken"
        )

    def _to_host(self, flat: torch.Tensor) -> np.ndarray:
        """``flat`` as a host array: on CUDA one asynchronous copy into a pinned buffer (kept
        and grown across frames), waited for by an event; the buffer is copied out, so the
        arrays returned stay valid after the next frame."""
        if flat.device.type != "cuda":
            return flat.numpy()
        n = flat.numel()
        if self._pinned is None or self._pinned.numel() < n:
            self._pinned = torch.empty(max(n, 1), dtype=torch.float32, pin_memory=True)
        target = self._pinned[:n]
        target.copy_(flat, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        done.synchronize()
        return target.numpy().copy()

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        # a captured graph must not depend on autocast's weight cache (cleared on exit)
        return torch.autocast(
            self.device.type, dtype=PRECISIONS[self.precision], cache_enabled=not self.cuda_graphs
        )

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network on a normalised, padded (2 or 1, 3, H, W) batch."""
        return self.model(x[:1], x[1:]) if self.geometry == "disparity" else self.model(x)

    def _upload(
        self, left: np.ndarray | torch.Tensor, right: np.ndarray | torch.Tensor
    ) -> torch.Tensor:
        for name, img in (("left", left), ("right", right)):
            if tuple(img.shape[-1:]) != (3,) or img.ndim != 3:
                raise InputError(
                    f"{name} image must be (H, W, 3) RGB, got shape {tuple(img.shape)}"
                )
            if img.dtype not in (np.uint8, torch.uint8):
                raise InputError(f"{name} image must be uint8, got {img.dtype}")
        if tuple(left.shape) != tuple(right.shape):
            raise InputError(
                f"left {tuple(left.shape)} and right {tuple(right.shape)} images differ in size; "
                "both must come from the same rectification"
            )
        if isinstance(left, torch.Tensor) and isinstance(right, torch.Tensor):
            pair = torch.stack([left, right]).to(self.device, non_blocking=True)
        else:
            pair = torch.from_numpy(np.stack([np.asarray(left), np.asarray(right)])).to(self.device)
        return pair  # (2, H, W, 3) uint8 on the device

    @torch.inference_mode()
    def infer(self, pair: torch.Tensor, scale: float | None = None) -> dict[str, torch.Tensor]:
        """Network outputs at the input resolution for an uploaded (2, H, W, 3) uint8 pair.

        Returns ``disparity``/``confidence`` (1, 1, H, W) (``depth`` (1, 1, H, W) metres for a
        depth network, see :meth:`_disparity_and_confidence`) and ``seg_logits`` (1, C, H, W),
        on the device. ``scale`` overrides ``input_scale`` for this pair. Raw: no finiteness
        check and no input bound (:meth:`run` applies both).
        """
        scale = self.input_scale if scale is None else scale
        h, w = pair.shape[1:3]
        if self.geometry == "depth":
            pair = pair[:1]  # single-image network: the left view only
        x = hwc_to_bchw(pair)
        if scale != 1.0:
            size = self._network_size(h, w, scale)
            x = F.interpolate(
                x.float(), size=size, mode="bilinear", align_corners=False, antialias=True
            )
        x = normalize(x, self.mean, self.std)
        x, (sh, sw) = pad_to_multiple(x, self.stride)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            if self.cuda_graphs:
                if self._graph is None or self._graph.shape != tuple(x.shape):
                    self._graph = None  # free the old graph's memory before capturing anew
                    self._graph = _CapturedForward(self._forward, x)
                out = self._graph(x)
            else:
                out = self._forward(x)
        out = {k: v[..., :sh, :sw].float() for k, v in out.items() if v.shape[-1] == x.shape[-1]}
        if (sh, sw) != (h, w):
            scale_x = w / sw
            out = {
                # class ids (a graph exported with --labels) are picked, not blended
                k: F.interpolate(v, size=(h, w), mode="nearest")
                if k == "labels"
                else F.interpolate(v, size=(h, w), mode="bilinear", align_corners=False)
                for k, v in out.items()
            }
            if "disparity" in out:
                out["disparity"] = out["disparity"] * scale_x
        return out

    def run(
        self,
        left: np.ndarray | torch.Tensor,
        right: np.ndarray | torch.Tensor,
        calib: StereoCalibration,
        *,
        outputs: Collection[str] = OUTPUTS,
        min_confidence: float = 0.0,
        cloud: PointCloudOptions | None = None,
    ) -> PipelineResult:
        """Process one rectified pair.

        Args:
            left, right: (H, W, 3) uint8 RGB, numpy or torch (a CUDA tensor skips the upload).
            calib: calibration of this pair at (H, W).
            outputs: subset of ``OUTPUTS`` to bring back to the host; others are not computed
                or copied. ``points`` uses ``cloud`` options.
            min_confidence: pixels whose confidence is lower are invalid (disparity, depth, points).

        Raises:
            InputError: mismatched or malformed images.
        """
        unknown = set(outputs) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown outputs {sorted(unknown)}; choose from {OUTPUTS}")
        geometric = set(outputs) & GEOMETRIC_OUTPUTS
        if geometric and "disparity" not in self.tasks:
            raise ValueError(
                f"{sorted(geometric)} need disparity, but these weights were trained for "
                f"{list(self.tasks)} only; request 'labels' or use joint weights"
            )
        cloud = cloud or PointCloudOptions()
        t0 = time.perf_counter()
        pair = self._upload(left, right)
        h, w = pair.shape[1:3]
        if calib.width and calib.height and (calib.width, calib.height) != (w, h):
            raise InputError(
                f"calibration is for {calib.width}x{calib.height} but the images are {w}x{h}"
            )
        result = PipelineResult(input_scale=self.input_scale)
        if not outputs:
            return result
        result.input_scale = scale = self._scale_for(h, w)
        size_problem = getattr(self.model, "size_problem", None)
        if size_problem is not None:  # an exported graph of a fixed size
            nh, nw = self._network_size(h, w, scale)
            problem = size_problem(nh + -nh % self.stride, nw + -nw % self.stride)
            if problem:
                raise InputError(problem)
        t1 = time.perf_counter()
        oom = ""
        on_cuda = self.device.type == "cuda"
        try:
            if on_cuda:
                # timed by events: no host synchronisation until the frame's one copy
                events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
                events[0].record()
            net = self.infer(pair, scale)
            if on_cuda:
                events[1].record()
            t2 = time.perf_counter()
            host = self._postprocess(net, pair, calib, set(outputs), min_confidence, cloud, scale)
            if not math.isfinite(float(host.pop("finite_sum")[0])):
                self._check_finite(net, w, h)  # counts exactly; raises unless the sum overflowed
        except torch.OutOfMemoryError as exc:
            oom = str(exc).splitlines()[0] if str(exc) else "out of memory"
        except RuntimeError as exc:
            if "can't allocate memory" not in str(exc):  # the CPU allocator's refusal
                raise
            oom = str(exc).splitlines()[0]
        if oom:
            # outside the except block: the traceback no longer pins the frame's tensors
            net = host = None  # type: ignore[assignment]
            self._release_memory()
            raise OutOfMemoryFrameError(
                f"{w}x{h} frame ran out of memory on {self.device} ({oom}); the cache was "
                f"emptied. Input bound: {self.input_bound.describe()}; lower input_scale or "
                "max_input_pixels, or disable unused outputs"
            )
        result.disparity = host.get("disparity")
        result.depth = host.get("depth")
        result.confidence = host.get("confidence")
        if "labels" in host:
            result.labels = host["labels"].astype(np.uint8)
        if "points" in outputs:
            result.points = build_cloud(
                host["xyz"],
                host["rgb"],
                host["point_labels"].astype(np.uint8),
                host.get("point_confidence"),
                organized=cloud.organized,
            )
        t3 = time.perf_counter()
        network_ms = events[0].elapsed_time(events[1]) if on_cuda else (t2 - t1) * 1e3
        result.timings_ms = {"network": network_ms, "total": (t3 - t0) * 1e3}
        return result

    @torch.inference_mode()
    def _postprocess(
        self,
        net: dict[str, torch.Tensor],
        pair: torch.Tensor,
        calib: StereoCalibration,
        outputs: set[str],
        min_confidence: float,
        cloud: PointCloudOptions,
        scale: float,
    ) -> dict[str, np.ndarray]:
        h, w = pair.shape[1:3]
        if "seg_logits" in net:
            labels = net["seg_logits"][0].argmax(0)
        elif "labels" in net:  # argmax done in an exported graph
            labels = net["labels"][0, 0].long()
        else:  # a disparity-only model: every label is "unknown"
            labels = torch.full((h, w), IGNORE_LABEL, device=pair.device)
        device_arrays: dict[str, torch.Tensor] = {}
        if "labels" in outputs:
            device_arrays["labels"] = labels.float()
        if outputs & GEOMETRIC_OUTPUTS:
            device_arrays.update(
                self._geometry(net, pair, calib, labels, outputs, min_confidence, cloud, scale)
            )
        device_arrays["finite_sum"] = self._finite_sum(net).to(pair.device)
        # one device-to-host copy for everything requested
        flat = self._to_host(torch.cat([t.reshape(-1).float() for t in device_arrays.values()]))
        host: dict[str, np.ndarray] = {}
        offset = 0
        for key, t in device_arrays.items():
            n = t.numel()
            host[key] = flat[offset : offset + n].reshape(t.shape)
            offset += n
        if "rgb" in host:
            host["rgb"] = host["rgb"].astype(np.uint8)
        return host

    def _geometry(
        self,
        net: dict[str, torch.Tensor],
        pair: torch.Tensor,
        calib: StereoCalibration,
        labels: torch.Tensor,
        outputs: set[str],
        min_confidence: float,
        cloud: PointCloudOptions,
        scale: float,
    ) -> dict[str, torch.Tensor]:
        """Disparity, depth, confidence and points on the device, for the requested outputs."""
        h, w = pair.shape[1:3]
        disp, conf, in_range = self._disparity_and_confidence(net, calib, scale)
        valid = (disp > MIN_DISPARITY) & torch.isfinite(disp) & (conf >= min_confidence)
        if in_range is not None:
            valid &= in_range
        # Z = fx * B / (d + doffs); only shifted when doffs != 0, so doffs = 0 is bit-identical
        shifted = disp
        if calib.doffs:
            shifted = disp + calib.doffs
            valid &= shifted > 0
        if self.geometry == "depth":
            depth = torch.where(valid, net["depth"][0, 0], torch.nan)
        else:
            depth = torch.where(
                valid, (calib.fx * calib.baseline) / shifted.clamp_min(1e-6), torch.nan
            )
        device_arrays: dict[str, torch.Tensor] = {}
        if "disparity" in outputs:
            device_arrays["disparity"] = torch.where(valid, disp, INVALID_DISPARITY)
        if "depth" in outputs:
            device_arrays["depth"] = depth
        if "confidence" in outputs:
            device_arrays["confidence"] = conf
        if "points" in outputs:
            s = cloud.stride
            z = depth[::s, ::s]
            z = torch.where(z <= cloud.max_depth, z, torch.nan)
            v, u = torch.meshgrid(
                torch.arange(0, h, s, device=z.device, dtype=torch.float32),
                torch.arange(0, w, s, device=z.device, dtype=torch.float32),
                indexing="ij",
            )
            xyz = torch.stack([(u - calib.cx) * z / calib.fx, (v - calib.cy) * z / calib.fy, z], -1)
            point_valid = torch.isfinite(z)
            device_arrays["xyz"] = xyz
            device_arrays["rgb"] = pair[0, ::s, ::s].float()
            device_arrays["point_labels"] = torch.where(
                point_valid, labels[::s, ::s].float(), IGNORE_LABEL
            )
            if cloud.with_confidence:
                device_arrays["point_confidence"] = conf[::s, ::s]
        return device_arrays

    def _disparity_and_confidence(
        self, net: dict[str, torch.Tensor], calib: StereoCalibration, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(H, W) disparity in pixels, confidence, and (depth networks) the in-range mask.

        A depth network's disparity is ``fx * B / Z - doffs`` with the calibration of the input
        resolution, its confidence 1.0, and pixels beyond ``max_disparity / scale`` (the scale
        the frame ran at) are out of range (see the module docstring).
        """
        if self.geometry == "disparity":
            return net["disparity"][0, 0], net["confidence"][0, 0], None
        depth = net["depth"][0, 0]
        # a tensor numerator: ``float / tensor`` is computed as ``float * reciprocal``, one
        # rounding more than the division
        disp = depth.new_full((), calib.fx * calib.baseline) / depth
        if calib.doffs:
            disp = disp - calib.doffs
        in_range = disp <= self.max_disparity / scale
        return disp, torch.ones_like(depth), in_range


class _CapturedForward:
    """A network's forward pass captured as a CUDA graph for one input shape.

    Warm-up runs on a side stream first (cuDNN's benchmark picks its algorithms and the
    allocator settles), then one capture; a call copies the input into the captured input
    tensor and replays. The outputs are the captured output tensors, overwritten by the next
    replay, which is after the pipeline has copied them to the host.
    """

    WARMUP = 3

    def __init__(self, forward: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor):
        self.shape = tuple(x.shape)
        self.input = x.clone()
        stream = torch.cuda.Stream(x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):
            for _ in range(self.WARMUP):
                forward(self.input)
        torch.cuda.current_stream(x.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = forward(self.input)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.input.copy_(x)
        self.graph.replay()
        return self.outputs
