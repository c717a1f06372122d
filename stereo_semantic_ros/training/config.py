"""The training recipe: a YAML file of four sections, validated into :class:`TrainConfig`.

``model`` (architecture and its hyper-parameters), ``data`` (dataset, split, crop,
augmentation, validation split), ``train`` (steps, batch, optimiser, schedule, checkpointing,
tasks) and ``loss`` (weighting). Unknown keys and wrong types are refused with the key named
(:class:`ConfigError`); ``--set section.key=value`` overrides are applied before validation.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stereo_semantic_ros.datasets.registry import DATASETS
from stereo_semantic_ros.losses import WEIGHTINGS
from stereo_semantic_ros.networks import hyper_parameters
from stereo_semantic_ros.networks.contract import TASKS

DATASET_TYPES = tuple(DATASETS)
"""``data.type`` values: the names of the one dataset table."""
SEG_WARP_DISPARITIES = ("ground_truth", "predicted")


class ConfigError(ValueError):
    """A training recipe that cannot be used: unknown keys, wrong types or values."""


@dataclass
class ModelConfig:
    """``model:`` -- ``architecture`` (registry key) and any keyword hyper-parameters of its
    builder (e.g. ``max_disparity``, ``volume_channels``). ``num_classes`` follows the label
    set and ``tasks`` comes from ``train.tasks``."""

    architecture: str = "esp_joint"
    hyper_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValDataConfig:
    """``data.val:`` -- a held-out split evaluated every ``train.eval_every`` steps."""

    root: str = ""
    type: str | None = None
    split: str | None = None
    file_list: str | None = None
    variations: list[str] | None = None
    indices: list[int] | str | None = None
    max_images: int | None = None


@dataclass
class GenerateConfig:
    """``data.generate:`` -- render the synthetic split with ``stereo-semantic-synth`` first
    when ``data.root`` does not hold it yet (``type: synthetic`` only); ``family``,
    ``objects_fraction`` and ``objects_max_disparity`` are the synth CLI's options."""

    count: int = 300
    width: int = 512
    height: int = 160
    seed: int = 0
    family: str = "street"
    objects_fraction: float = 0.5
    objects_max_disparity: float = 88.0


@dataclass
class DataConfig:
    """``data:`` -- where the training samples come from and how they are augmented.

    ``type``: synthetic (our generator's KITTI-layout output, with right-view ground truth so
    mirroring works), kitti2015, cityscapes, vkitti2, or a user's own Middlebury / ETH3D
    layout folder (middlebury, eth3d: disparity only, no labels, so a disparity-only recipe).
    ``split``: kitti2015 ``training``, cityscapes ``train``, vkitti2 / middlebury / eth3d a
    list of scenes. ``variations``: vkitti2 only, its rendering variations (``clone``,
    ``fog``, ``15-deg-left``, ...; default ``[clone]``). ``file_list``: kitti2015/synthetic only,
    a list of scenes (path relative to ``root``), e.g. the generator's ``train.txt`` /
    ``val.txt``. ``indices``: keep these sample positions (a list or a ``"start:stop"``
    range). ``crop``: ``[height, width]`` training crop, multiples of 8. ``augment``:
    ``default`` (the package's :meth:`Augmentor.for_training`), ``transfer`` (synthetic-to-real:
    :meth:`Augmentor.for_transfer`, the defaults plus stretch, per-view photometric, blur,
    right-view vertical shift and eraser), ``none``, or a mapping of Augmentor fields
    overriding a preset (``preset: transfer`` picks it; ``default`` otherwise).
    ``stats_max_images``: images used for the mean/std and class frequencies (all when null).
    """

    type: str = "synthetic"
    root: str = ""
    split: str | list[str] | None = None
    file_list: str | None = None
    variations: list[str] | None = None
    indices: list[int] | str | None = None
    crop: list[int] | None = None
    augment: str | dict[str, Any] = "default"
    stats_max_images: int | None = None
    generate: GenerateConfig | None = None
    val: ValDataConfig | None = None


@dataclass
class TrainSection:
    """``train:`` -- the optimisation.

    ``milestones`` are where the learning rate is multiplied by ``lr_decay``, as fractions of
    ``steps`` (the paper's 400 and 500 of 600 epochs -> 2/3, 5/6), so they scale with
    ``--max-steps``; every shipped recipe uses fractions. Values >= 1 are absolute steps.
    ``amp`` only applies on CUDA (autocast fp16 + GradScaler). ``grad_clip``: max global L2
    norm (0 = off). ``threads``: torch CPU threads (0 = torch's default). ``device``: auto,
    cpu, cuda; under torchrun each rank takes cuda:LOCAL_RANK. ``init_weights``: a checkpoint
    (path, or a file in models/) whose weights start a fresh run -- a second stage that
    fine-tunes them with a new optimiser, schedule and data; it must hold the same architecture
    and hyper-parameters, and its normalisation statistics are kept. Ignored on resume, where
    ``last.pt`` already carries the weights. A list of checkpoints joins networks trained apart
    (pseudo_mtl's second stage: ``[depth.pt, segmentation.pt]``): each parameter comes from the
    first checkpoint that has it, every parameter must come from one, the normalisation
    statistics from the first; they may differ from the recipe only in ``train.tasks``.
    """

    steps: int = 1000
    batch_size: int = 2
    lr: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    milestones: list[float] = field(default_factory=lambda: [2 / 3, 5 / 6])
    lr_decay: float = 0.5
    grad_clip: float = 10.0
    amp: bool = True
    seed: int = 0
    checkpoint_every: int = 500
    eval_every: int = 0
    log_every: int = 1
    num_workers: int = 2
    threads: int = 0
    device: str = "auto"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    init_weights: str | list[str] = ""


@dataclass
class CrossViewSection:
    """``loss.cross_view:`` -- pseudo_mtl's training (seed 003,
    :mod:`stereo_semantic_ros.mono_losses`): the single-image network runs on the left and the
    right image; ``L_d`` is the confidence-weighted L1 of the pseudo (or true) disparity of both
    views (as a fraction of the width; ``loss.w_disp`` is a_d = 850), ``L_s`` the cross-entropy
    of both views (``loss.w_seg`` is a_s = 2.5), and the six cross-view consistency losses are
    added with these weights (the paper's a_d,lr .. a_s,r; 0 turns one off). ``confidence``:
    weight by the teacher's confidence (false: 1 wherever a pseudo label exists).
    """

    confidence: bool = True
    d_lr: float = 0.5
    d_l: float = 1.0
    d_r: float = 1.0
    s_lr: float = 0.5
    s_l: float = 1.5
    s_r: float = 1.5


@dataclass
class LossSection:
    """``loss:`` -- ``weighting`` fixed (``w_disp * L_d + w_seg * L_s``), gradnorm or
    uncertainty; ``class_weight_c`` is c in ``w = 1 / ln(c + p_class)``.

    ``seg_warp`` > 0 adds the corr_mtl paper's warp method (seed 000, Algorithm 1) with that
    weight, outside the task weighting: the network also segments the mirrored pair (the right
    view), those logits are warped into the left view with ``seg_warp_disparity``
    (``ground_truth`` as the paper, or the network's own ``predicted`` disparity, detached),
    added to the left logits where trusted and scored against the left labels; the first
    ``seg_warp_border`` columns are masked and the untrusted (invalid or occluded) regions are
    dilated by a ``seg_warp_dilation`` square (paper: 60 columns of 2048, 8x8). 0 = off.

    ``cross_view``: pseudo_mtl's losses (:class:`CrossViewSection`); absent = the other
    architectures' losses. ``contrastive`` > 0 adds synchronized's CLIP-style contrastive loss
    (seed 004) between the depth and segmentation maps of the batch with that weight, outside
    the task weighting; it needs both tasks and a batch of at least 2. 0 = off.
    """

    weighting: str = "fixed"
    w_disp: float = 5.0
    w_seg: float = 1.0
    class_weight_c: float = 1.02
    class_weights: bool = True
    gradnorm_alpha: float = 1.5
    gradnorm_lr: float = 0.025
    gradnorm_parameter: str = "features.norm3.0.weight"
    seg_warp: float = 0.0
    seg_warp_disparity: str = "ground_truth"
    seg_warp_border: int = 0
    seg_warp_dilation: int = 8
    cross_view: CrossViewSection | None = None
    contrastive: float = 0.0


@dataclass
class TrainConfig:
    """A whole recipe; build it with :func:`load_config` / :func:`config_from_dict`."""

    model: ModelConfig
    data: DataConfig
    train: TrainSection = field(default_factory=TrainSection)
    loss: LossSection = field(default_factory=LossSection)
    name: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        model = out.pop("model")
        out["model"] = {"architecture": model["architecture"], **model["hyper_parameters"]}
        return out

    def milestone_steps(self) -> list[int]:
        steps = self.train.steps
        return sorted({int(round(m * steps)) if m < 1 else int(m) for m in self.train.milestones})


def _section(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"allowed in {where}: {', '.join(fields)}"
        )
    hints = inspect.get_annotations(cls, eval_str=True)
    values = {}
    for key, value in data.items():
        values[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a (simple) annotation; ints are accepted where floats are."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0]
            if len(errors) == 1
            else f"{where}: {value!r} fits none of {', '.join(_type_name(o) for o in options)}"
        )
    if dataclasses.is_dataclass(hint):
        return _section(hint, value, where)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Validate a parsed recipe.

    Raises:
        ConfigError: unknown sections or keys, wrong types, impossible values; the message
            names the key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a training config is a mapping of sections, got {type(data).__name__}")
    allowed = {"model", "data", "train", "loss", "name", "description"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; allowed: {sorted(allowed)}")
    for key in ("model", "data"):
        if key not in data:
            raise ConfigError(f"the config needs a '{key}:' section")
    model_data = dict(data["model"] or {})
    architecture = model_data.pop("architecture", "esp_joint")
    if not isinstance(architecture, str):
        raise ConfigError(f"model.architecture must be a string, got {architecture!r}")
    try:
        params = hyper_parameters(architecture)
    except ValueError as exc:
        raise ConfigError(f"model.architecture: {exc}") from None
    for key in ("tasks", "num_classes"):
        if key in model_data:
            where = "train.tasks" if key == "tasks" else "the label set (19 classes)"
            raise ConfigError(f"model.{key} is not set in the model section; it comes from {where}")
    unknown = sorted(set(model_data) - set(params))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join('model.' + k for k in unknown)} for architecture "
            f"{architecture!r}; its hyper-parameters: "
            f"{', '.join(k for k in params if k not in ('tasks', 'num_classes'))}"
        )
    cfg = TrainConfig(
        model=ModelConfig(architecture, model_data),
        data=_section(DataConfig, data["data"], "data"),
        train=_section(TrainSection, data.get("train"), "train"),
        loss=_section(LossSection, data.get("loss"), "loss"),
        name=str(data.get("name") or ""),
        description=str(data.get("description") or ""),
    )
    _validate(cfg)
    return cfg


def _validate(cfg: TrainConfig) -> None:
    d, t, loss = cfg.data, cfg.train, cfg.loss
    if d.type not in DATASET_TYPES:
        raise ConfigError(f"data.type must be one of {', '.join(DATASET_TYPES)}, got {d.type!r}")
    if not d.root:
        raise ConfigError("data.root is required (the dataset's directory)")
    for where, kind, variations in (
        ("data", d.type, d.variations),
        ("data.val", (d.val.type or d.type) if d.val else None, d.val and d.val.variations),
    ):
        takes = kind in DATASETS and DATASETS[kind].variations
        if variations is not None and (not takes or not variations):
            raise ConfigError(
                f"{where}.variations lists Virtual KITTI 2 variations (e.g. [clone, fog]); it "
                f"needs type vkitti2 and at least one name, got {variations!r} for {kind}"
            )
    if d.generate is not None and d.type != "synthetic":
        raise ConfigError("data.generate only applies to data.type: synthetic")
    if d.crop is not None and (len(d.crop) != 2 or any(v <= 0 or v % 8 for v in d.crop)):
        raise ConfigError(f"data.crop must be [height, width], multiples of 8, got {d.crop}")
    if isinstance(d.augment, str) and d.augment not in ("default", "transfer", "none"):
        raise ConfigError(
            f"data.augment must be 'default', 'transfer', 'none' or a mapping, got {d.augment!r}"
        )
    if d.val is not None and not d.val.root:
        raise ConfigError("data.val.root is required when data.val is given")
    if t.steps < 1:
        raise ConfigError(f"train.steps must be >= 1, got {t.steps}")
    if t.batch_size < 1:
        raise ConfigError(f"train.batch_size must be >= 1, got {t.batch_size}")
    if t.lr <= 0 or not 0 < t.lr_decay <= 1:
        raise ConfigError(
            f"need train.lr > 0 and 0 < train.lr_decay <= 1, got {t.lr}, {t.lr_decay}"
        )
    if len(t.betas) != 2 or not all(0 <= b < 1 for b in t.betas):
        raise ConfigError(f"train.betas must be two numbers in [0, 1), got {t.betas}")
    if any(m <= 0 for m in t.milestones):
        raise ConfigError(f"train.milestones must be positive, got {t.milestones}")
    for key in ("checkpoint_every", "eval_every", "num_workers", "threads", "log_every"):
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {getattr(t, key)}")
    if not t.tasks or any(x not in TASKS for x in t.tasks) or len(set(t.tasks)) != len(t.tasks):
        raise ConfigError(f"train.tasks must be a non-empty subset of {list(TASKS)}, got {t.tasks}")
    if loss.weighting not in WEIGHTINGS:
        raise ConfigError(
            f"loss.weighting must be one of {', '.join(WEIGHTINGS)}, got {loss.weighting!r}"
        )
    if loss.class_weight_c <= 1.0:
        raise ConfigError(f"loss.class_weight_c must be > 1, got {loss.class_weight_c}")
    if loss.seg_warp < 0:
        raise ConfigError(f"loss.seg_warp must be >= 0 (0 = off), got {loss.seg_warp}")
    if loss.seg_warp_disparity not in SEG_WARP_DISPARITIES:
        raise ConfigError(
            f"loss.seg_warp_disparity must be one of {', '.join(SEG_WARP_DISPARITIES)}, "
            f"got {loss.seg_warp_disparity!r}"
        )
    if loss.seg_warp_border < 0 or loss.seg_warp_dilation < 1:
        raise ConfigError(
            f"need loss.seg_warp_border >= 0 and loss.seg_warp_dilation >= 1, got "
            f"{loss.seg_warp_border}, {loss.seg_warp_dilation}"
        )
    if loss.cross_view is not None:
        cv = loss.cross_view
        weights = {k: getattr(cv, k) for k in ("d_lr", "d_l", "d_r", "s_lr", "s_l", "s_r")}
        negative = {k: v for k, v in weights.items() if v < 0}
        if negative:
            raise ConfigError(f"loss.cross_view weights must be >= 0 (0 = off), got {negative}")
        if loss.seg_warp > 0:
            raise ConfigError(
                "loss.cross_view (pseudo_mtl's two-view losses) and loss.seg_warp (corr_mtl's "
                "warp method) cannot be combined; set loss.seg_warp: 0"
            )
    if loss.contrastive < 0:
        raise ConfigError(f"loss.contrastive must be >= 0 (0 = off), got {loss.contrastive}")
    if loss.contrastive > 0:
        if sorted(t.tasks) != sorted(TASKS):
            raise ConfigError(
                "loss.contrastive compares depth and segmentation maps: it needs both tasks in "
                f"train.tasks, got {t.tasks}"
            )
        if t.batch_size < 2:
            raise ConfigError(
                "loss.contrastive needs train.batch_size >= 2 (the other images of the batch "
                "are the negatives)"
            )
    if isinstance(t.init_weights, list) and (not t.init_weights or not all(t.init_weights)):
        raise ConfigError(
            f"train.init_weights must be a checkpoint or a non-empty list of them, got "
            f"{t.init_weights}"
        )
    if loss.seg_warp > 0:
        if "segmentation" not in t.tasks:
            raise ConfigError("loss.seg_warp needs the segmentation task in train.tasks")
        if loss.seg_warp_disparity == "predicted" and "disparity" not in t.tasks:
            raise ConfigError(
                "loss.seg_warp_disparity: predicted needs the disparity task in train.tasks"
            )


def _set_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``section.key=value`` (value parsed as YAML) to a raw config mapping."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read and validate a YAML recipe, applying ``--set`` overrides first."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config is a mapping of sections")
    for assignment in overrides:
        _set_override(data, assignment)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
