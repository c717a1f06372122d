"""The node's parameters as plain data: names, defaults, ranges, validation, what they build.

No rclpy here. The node declares one ROS parameter per :data:`PARAMETERS` entry (with the
description and range given here) and validates every change with :func:`check_value`; rosbag
replay reads the same parameter YAML with :meth:`NodeSettings.from_yaml` and builds the identical
pipeline, point-cloud options and output style without a ROS install, so a replayed bag holds
what the vehicle would have published with that file.

Parameters are either *live* (output switches, point-cloud options, ``min_confidence``,
``semantic_blend``: applied from the next frame on) or *start-up* parameters (everything that
shapes the network, the synchroniser or the subscriptions): the node declares those
``read_only``, so rqt and ``ros2 param set`` see that they cannot change while it runs.

stereo_image_proc's names for the same settings (:data:`ALIASES`) are accepted in parameter
files and on the command line, so a ported file keeps its meaning instead of being ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from stereo_semantic_ros.checkpoint import weights_file_problem
from stereo_semantic_ros.labels import CITYSCAPES_19, get_label_set
from stereo_semantic_ros.networks import list_models
from stereo_semantic_ros.outputs import OUTPUTS, SWITCHES, OutputStyle
from stereo_semantic_ros.pipeline import (
    BACKENDS,
    OVERSIZE_POLICIES,
    PRECISIONS,
    InputBound,
    StereoPipeline,
)
from stereo_semantic_ros.pointcloud import PointCloudOptions
from stereo_semantic_ros.resources import ResourceError, resolve_weights

NODE_NAME = "stereo_semantic_node"
PACKAGE = "stereo_semantic_ros"

#: Values the ``architecture`` parameter may name (design.md). Only registered ones can run.
ARCHITECTURES = tuple(list_models())
"""The architectures this release can run: the model registry's names."""
PLANNED_ARCHITECTURES = tuple(a for a in ("pseudo_mtl", "synchronized") if a not in ARCHITECTURES)
"""In the design (../shared/design.md) but not registered yet: refused with that reason."""
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
QOS_RELIABILITIES = ("best_effort", "reliable")
IMAGE_TRANSPORTS = ("raw", "compressed")
"""``raw``: sensor_msgs/Image on ``<image>``; ``compressed``: sensor_msgs/CompressedImage on
``<image>/compressed`` (image_transport's ``compressed`` plugin and its topic name)."""


class SettingsError(ValueError):
    """A parameter value (or combination) the node cannot run with; the text says which and why."""


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter. The default and type come from :class:`NodeSettings`.

    Attributes:
        name: parameter name.
        description: what it means, with units.
        limits: ``(from, to, step)`` inclusive range for numbers (step 0 = any value between).
        choices: allowed strings.
        live: applied while running; otherwise a change at run time is refused.
    """

    name: str
    description: str
    limits: tuple[float, float, float] | None = None
    choices: tuple[str, ...] | None = None
    live: bool = False


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "architecture",
        "network architecture, a key of the model registry; must match the weights' architecture",
        choices=ARCHITECTURES,
    ),
    ParameterSpec(
        "weights",
        "checkpoint file (backend onnxruntime: an .onnx graph written by "
        "stereo-semantic-export); a relative path is tried in the current directory, then in "
        "the package's models/ directory (a missing file is an error); '' runs an UNTRAINED "
        "network with random weights (plumbing tests only, backend torch)",
    ),
    ParameterSpec(
        "backend",
        "what runs the network: torch, or onnxruntime with weights an exported .onnx graph "
        "(CPU; CUDA / TensorRT execution providers where onnxruntime-gpu has them); the same "
        "pre- and post-processing either way",
        choices=BACKENDS,
    ),
    ParameterSpec("device", "torch device: auto (first CUDA GPU, else CPU), cpu, cuda or cuda:N"),
    ParameterSpec(
        "precision",
        "inference precision fp32, fp16 or bf16; half precisions fall back to fp32 on the CPU",
        choices=tuple(PRECISIONS),
    ),
    ParameterSpec(
        "max_disparity",
        "disparity search range D in pixels at network resolution (multiple of 4); 0 = from the "
        "weights (192 for the untrained network); a non-zero value must equal the weights' D",
        limits=(0, 1024, 4),
    ),
    ParameterSpec(
        "label_set",
        "label set name; '' = the weights' own set, otherwise it must equal the weights' set",
    ),
    ParameterSpec(
        "input_scale",
        "factor applied to the images before the network (speed); outputs keep the input size",
        limits=(0.05, 4.0, 0.0),
    ),
    ParameterSpec(
        "max_input_pixels",
        "most pixels per image the network may see (width x height after input_scale), a "
        "memory bound; 0 = automatic: 3 GiB over the architecture's measured CPU memory per "
        "pixel (esp_joint 2500 B, corr_mtl 950 B, hybridnet 300 B: about 1.29, 3.39 and 10.7 "
        "megapixels)",
        limits=(0, 1_000_000_000, 1),
    ),
    ParameterSpec(
        "oversize_policy",
        "a frame above max_input_pixels: drop (counted as too_large) or downscale (run at the "
        "largest input_scale that fits; outputs keep the input size)",
        choices=OVERSIZE_POLICIES,
    ),
    ParameterSpec("approximate_sync", "approximate instead of exact time synchronisation"),
    ParameterSpec(
        "sync_slop",
        "approximate sync: a set's stamps must spread by less than this many seconds (> 0)",
        limits=(0.0, 10.0, 0.0),
    ),
    ParameterSpec(
        "queue_size", "per-input synchroniser queue length, in messages", limits=(1, 1000, 1)
    ),
    ParameterSpec(
        "qos_reliability",
        "reliability of the input subscriptions: best_effort (sensor data, matches every "
        "publisher) or reliable (only matches reliable publishers)",
        choices=QOS_RELIABILITIES,
    ),
    ParameterSpec(
        "image_transport",
        "how the two images arrive: raw (sensor_msgs/Image on left|right/image_rect) or "
        "compressed (sensor_msgs/CompressedImage, JPEG or PNG, on "
        "left|right/image_rect/compressed as image_transport names it); camera_infos are the same",
        choices=IMAGE_TRANSPORTS,
    ),
    ParameterSpec(
        "mono16_bit_depth",
        "bit depth of the camera's 16-bit images (mono16, 16UC1, 16-bit PNG): 1..16 maps that "
        "range onto 8 bits the same way on every frame (12 for a 12-bit sensor); 0 = automatic, "
        "from each image's brightest pixel (at least 8 bits)",
        limits=(0, 16, 1),
    ),
    # the output switches, from the output table
    *(ParameterSpec(switch, text, live=True) for switch, text in SWITCHES.items()),
    ParameterSpec(
        "points_organized",
        "organized cloud (H x W, NaN for invalid points) instead of a dense list of valid points",
        live=True,
    ),
    ParameterSpec(
        "points_stride",
        "keep every n-th pixel in u and v for points2",
        limits=(1, 64, 1),
        live=True,
    ),
    ParameterSpec(
        "points_max_depth",
        "points farther than this many metres are invalid (NaN / left out)",
        limits=(0.01, 100000.0, 0.0),
        live=True,
    ),
    ParameterSpec("points_confidence", "add a float32 confidence field to points2", live=True),
    ParameterSpec(
        "min_confidence",
        "pixels whose confidence (peak probability of the disparity distribution) is lower are "
        "invalid: disparity below min_disparity, depth and points NaN",
        limits=(0.0, 1.0, 0.0),
        live=True,
    ),
    ParameterSpec(
        "semantic_blend",
        "weight of the class colours over the left image in semantic/color (1 = colours only)",
        limits=(0.0, 1.0, 0.0),
        live=True,
    ),
)
SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}
LIVE_PARAMETERS = frozenset(spec.name for spec in PARAMETERS if spec.live)


@dataclass(frozen=True)
class ParameterAlias:
    """Another package's name for one of our start-up parameters.

    Attributes:
        name: the other name (stereo_image_proc's).
        target: our parameter it sets.
        convert: its value -> the target's value; raises :class:`SettingsError` for a wrong
            type.
        description: what it means here, for the parameter descriptor.
    """

    name: str
    target: str
    convert: Callable[[Any], Any]
    description: str

    def target_value(self, value: Any) -> Any:
        """The target's value for ``value``, validated as the target's own would be."""
        return check_value(self.target, self.convert(value))


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(
            f"approximate_sync_tolerance_seconds must be a number of seconds, got {value!r}"
        )
    return float(value)


def _system_default_qos(value: Any) -> str:
    if not isinstance(value, bool):
        raise SettingsError(f"use_system_default_qos must be true or false, got {value!r}")
    return "reliable" if value else "best_effort"


ALIASES: tuple[ParameterAlias, ...] = (
    ParameterAlias(
        "approximate_sync_tolerance_seconds",
        "sync_slop",
        _seconds,
        "stereo_image_proc's name for sync_slop (seconds); read at start-up",
    ),
    # stereo_image_proc subscribes with SensorDataQoS unless this is true, then with the system
    # default QoS, which is reliable: the same choice as our qos_reliability. Its publishers
    # are reliable either way, as ours are.
    ParameterAlias(
        "use_system_default_qos",
        "qos_reliability",
        _system_default_qos,
        "stereo_image_proc's switch for the input QoS: true = reliable subscriptions "
        "(qos_reliability: reliable), false = best_effort; read at start-up",
    ),
)
"""stereo_image_proc's parameter names, honoured as ours. ``image_transport`` and
``queue_size``, ``approximate_sync`` have the same names here."""
ALIAS_BY_NAME: dict[str, ParameterAlias] = {alias.name: alias for alias in ALIASES}


def alias_conflict(alias: ParameterAlias, value: Any, target_value: Any) -> str:
    """The refusal when ``alias`` is ``value`` but its target was set to ``target_value``."""
    return (
        f"{alias.name} (stereo_image_proc's name for {alias.target}) is {value!r}, which means "
        f"{alias.target}: {alias.target_value(value)!r}, but {alias.target} is set to "
        f"{target_value!r} as well; keep only {alias.target}"
    )


def resolve_aliases(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each alias replaced by its target parameter.

    Raises:
        SettingsError: an alias of the wrong type or out of range, or an alias and its target
            both given with different meanings.
    """
    out = {name: value for name, value in values.items() if name not in ALIAS_BY_NAME}
    for name, value in values.items():
        alias = ALIAS_BY_NAME.get(name)
        if alias is None:
            continue
        target = alias.target_value(value)
        if alias.target in out and check_value(alias.target, out[alias.target]) != target:
            raise SettingsError(alias_conflict(alias, value, out[alias.target]))
        out[alias.target] = target
    return out


@dataclass(frozen=True)
class NodeSettings:
    """Values of all node parameters; the field defaults are the node's defaults.

    Units: ``sync_slop`` seconds, ``points_max_depth`` metres, ``max_disparity`` pixels.
    """

    architecture: str = "esp_joint"
    weights: str = ""
    backend: str = "torch"
    device: str = "auto"
    precision: str = "fp32"
    max_disparity: int = 0
    label_set: str = ""
    input_scale: float = 1.0
    max_input_pixels: int = 0
    oversize_policy: str = "drop"
    approximate_sync: bool = False
    sync_slop: float = 0.01
    queue_size: int = 5
    qos_reliability: str = "best_effort"
    image_transport: str = "raw"
    mono16_bit_depth: int = 0
    publish_disparity: bool = True
    publish_depth: bool = True
    publish_confidence: bool = True
    publish_points: bool = True
    publish_labels: bool = True
    publish_semantic_color: bool = True
    publish_disparity_color: bool = True
    points_organized: bool = True
    points_stride: int = 1
    points_max_depth: float = 100.0
    points_confidence: bool = False
    min_confidence: float = 0.0
    semantic_blend: float = 1.0

    def __post_init__(self) -> None:
        for name in SPECS:
            object.__setattr__(self, name, check_value(name, getattr(self, name)))
        if self.backend == "onnxruntime" and (
            not self.weights or Path(self.weights).suffix == ".pt"
        ):
            given = f"the checkpoint {self.weights!r}" if self.weights else "no weights ('')"
            raise SettingsError(
                f"backend onnxruntime runs an exported ONNX graph, but weights is {given}; "
                "export one with 'stereo-semantic-export WEIGHTS.pt -o FILE.onnx' and set "
                "weights to FILE.onnx, or use backend torch"
            )
        if self.approximate_sync and self.sync_slop <= 0.0:
            raise SettingsError(
                "approximate_sync needs sync_slop > 0 s: a set is accepted only when its stamps "
                "spread by strictly less than sync_slop, so 0 would never form a set; use exact "
                "sync (approximate_sync: false) for identical stamps"
            )

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> NodeSettings:
        """Settings from ``{name: value}`` (missing names keep their defaults).

        ``use_sim_time`` and rclpy's ``qos_overrides.*`` are accepted and ignored;
        stereo_image_proc's names (:data:`ALIASES`) set their target parameters.

        Raises:
            SettingsError: an unknown name or a bad value.
        """
        ours = {}
        for name, value in resolve_aliases(values).items():
            if name in SPECS:
                ours[name] = value
            elif name != "use_sim_time" and not name.startswith("qos_overrides."):
                raise SettingsError(
                    f"unknown parameter {name!r} for {NODE_NAME}; known: {', '.join(SPECS)} "
                    f"(and stereo_image_proc's {', '.join(ALIAS_BY_NAME)})"
                )
        return cls(**ours)

    @classmethod
    def from_yaml(cls, path: str | Path, node_name: str = NODE_NAME) -> NodeSettings:
        """Validated settings from a ROS 2 parameter file; see :func:`read_parameter_file`."""
        return cls.from_parameters(read_parameter_file(path, node_name))

    def updated(self, **changes: Any) -> NodeSettings:
        """A copy with ``changes`` applied and validated."""
        return replace(self, **changes)

    # -- what the settings build ----------------------------------------------------------------

    def weights_path(self) -> Path | None:
        """The checkpoint file, or None for the untrained network."""
        return resolve_weights(self.weights)

    def build_pipeline(self) -> StereoPipeline:
        """Load the weights (or build the untrained network) on the configured device.

        The pipeline's :class:`~stereo_semantic_ros.pipeline.InputBound` comes from
        ``max_input_pixels`` and ``oversize_policy`` (see :meth:`input_bound`).

        Raises:
            SettingsError: the weights disagree with ``architecture``, ``max_disparity`` or
                ``label_set``, or the device is unavailable.
            CheckpointError: the weights file cannot be used (see ``load_checkpoint``).
        """
        pipeline = self._build_network()
        pipeline.input_bound = self.input_bound(pipeline.max_disparity)
        return pipeline

    def input_bound(self, max_disparity: int) -> InputBound:
        """``max_input_pixels`` as given, or (0) the automatic bound for this architecture and
        disparity range; the measured figure is kept for the messages either way."""
        auto = InputBound.automatic(self.architecture, max_disparity, self.oversize_policy)
        if not self.max_input_pixels:
            return auto
        return InputBound(self.max_input_pixels, self.oversize_policy, auto.bytes_per_pixel)

    def _build_network(self) -> StereoPipeline:
        options: dict[str, Any] = {
            "device": self.device,
            "precision": self.precision,
            "input_scale": self.input_scale,
        }
        path = self.weights_path()
        try:
            if path is None:
                label_set = get_label_set(self.label_set) if self.label_set else CITYSCAPES_19
                hyper: dict[str, Any] = {"num_classes": label_set.num_classes}
                if self.max_disparity:
                    hyper["max_disparity"] = self.max_disparity
                return StereoPipeline.untrained(
                    self.architecture, label_set=label_set, **hyper, **options
                )
            pipeline = StereoPipeline.from_checkpoint(path, backend=self.backend, **options)
        except SettingsError:
            raise
        except ValueError as exc:
            if type(exc) is not ValueError:  # CheckpointError and friends keep their type
                raise
            raise SettingsError(str(exc)) from None
        ckpt = pipeline.checkpoint
        assert ckpt is not None
        if ckpt.architecture != self.architecture:
            raise SettingsError(
                f"weights {path} hold a {ckpt.architecture!r} network but architecture is "
                f"{self.architecture!r}; set architecture to {ckpt.architecture!r} or use "
                f"{self.architecture} weights"
            )
        if self.max_disparity and self.max_disparity != pipeline.max_disparity:
            raise SettingsError(
                f"weights {path} were trained with max_disparity {pipeline.max_disparity} but the "
                f"parameter says {self.max_disparity}; set max_disparity to 0 (from the weights)"
            )
        if self.label_set and self.label_set != pipeline.label_set.name:
            raise SettingsError(
                f"weights {path} predict label set {pipeline.label_set.name!r} but label_set is "
                f"{self.label_set!r}; set label_set to '' (from the weights)"
            )
        return pipeline

    def cloud_options(self) -> PointCloudOptions:
        """What ``points2`` holds."""
        return PointCloudOptions(
            organized=self.points_organized,
            stride=self.points_stride,
            max_depth=self.points_max_depth,
            with_confidence=self.points_confidence,
        )

    def output_style(
        self, pipeline: StereoPipeline, input_scale: float | None = None
    ) -> OutputStyle:
        """DisparityImage range and colour options for ``pipeline``'s outputs; ``input_scale``:
        the scale a frame actually ran at (``PipelineResult.input_scale``), if shrunk."""
        return OutputStyle(
            max_disparity=disparity_range(pipeline, input_scale),
            semantic_blend=self.semantic_blend,
        )

    def enabled_topics(self) -> tuple[str, ...]:
        """Output topics whose ``publish_*`` switch is on, in the output table's order."""
        return tuple(o.topic for o in OUTPUTS if getattr(self, o.switch))

    def sync_description(self) -> str:
        if self.approximate_sync:
            return f"approximate, slop {self.sync_slop:g} s, queue {self.queue_size}"
        return f"exact, queue {self.queue_size}"


def disparity_range(pipeline: StereoPipeline, input_scale: float | None = None) -> float:
    """Largest disparity the pipeline can output, in pixels at input resolution.

    The network searches ``max_disparity`` pixels of its own input, which is the camera image
    scaled by ``input_scale`` (the pipeline's, or the smaller one a downscaled frame ran at);
    disparities are scaled back by ``1 / input_scale``.
    """
    return float(pipeline.max_disparity) / (input_scale or pipeline.input_scale)


def check_value(name: str, value: Any) -> Any:
    """Validate one parameter value; returns it (ints widened to float for float parameters).

    Raises:
        SettingsError: unknown name, wrong type, out of range, or not an allowed value; the
            message names the parameter, the value and what is allowed.
    """
    spec = SPECS.get(name)
    if spec is None:
        raise SettingsError(f"unknown parameter {name!r}; known: {', '.join(SPECS)}")
    default = _DEFAULTS[name]
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise SettingsError(
            f"{name} must be a finite {kind.__name__}, got {value!r} ({type(value).__name__})"
        )
    if spec.limits is not None:
        lo, hi, step = spec.limits
        if not lo <= value <= hi:
            raise SettingsError(f"{name} must be within [{lo:g}, {hi:g}], got {value!r}")
        if kind is int and step > 1 and (value - lo) % step:
            raise SettingsError(f"{name} must be a multiple of {step:g}, got {value!r}")
    _check_special(name, value)  # first: a planned architecture gets its own reason
    if spec.choices is not None and value not in spec.choices:
        raise SettingsError(f"{name} must be one of {', '.join(spec.choices)}, got {value!r}")
    return value


def _check_special(name: str, value: Any) -> None:
    if name == "architecture" and value in PLANNED_ARCHITECTURES:
        raise SettingsError(
            f"architecture {value!r} is not implemented in this release; available: "
            f"{', '.join(ARCHITECTURES)}"
        )
    if name == "device" and not DEVICE_PATTERN.fullmatch(value):
        raise SettingsError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
    if name == "weights" and value:
        try:
            path = resolve_weights(value)
        except ResourceError as exc:
            raise SettingsError(str(exc)) from None
        assert path is not None
        problem = weights_file_problem(path)
        if problem is not None:
            raise SettingsError(problem)
    if name == "label_set" and value:
        try:
            get_label_set(value)
        except ValueError as exc:
            raise SettingsError(f"label_set: {exc}; or '' to use the weights' own set") from None


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML maps -> dotted names, as rcl reads parameter files."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(NodeSettings)}
# test_node_settings checks that every field has a ParameterSpec and every spec a field


def read_parameter_file(path: str | Path, node_name: str = NODE_NAME) -> dict[str, Any]:
    """Raw (unvalidated) parameters of ``node_name`` in a ROS 2 parameter file.

    Sections ``/**``, ``node_name`` and ``/node_name`` (``<node>: ros__parameters:``) are merged
    in that order, later wins, as rcl does for a node without a namespace. Replay reads the raw
    values so that a ``weights`` file that does not exist yet can fall back to the untrained
    network with a warning instead of refusing the whole file.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read parameter file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path} is not a ROS 2 parameter file (top level is not a map)")
    values: dict[str, Any] = {}
    found = False
    for key in ("/**", node_name, f"/{node_name}"):
        section = data.get(key)
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            values.update(_flatten(section["ros__parameters"]))
            found = True
    if not found:
        raise SettingsError(
            f"{path} has no '{node_name}: ros__parameters:' or '/**: ros__parameters:' section"
        )
    return values
