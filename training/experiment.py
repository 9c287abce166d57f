"""Experiment configuration: one file (YAML or TOML) says what to train, on what data, and how.

A config has six sections; every field but ``model.name`` has a default::

    name: demo_late                       # run name (default: the file's stem)
    seed: 0
    output_dir: runs/demo_late            # run directory (default: runs/<name>)
    model:
      name: late_mobilenetv2              # a registered model (training.models.list_models())
      overrides: {hidden_size: 128, vision: {name: mobilenetv2_050, pretrained: false}}
    data:
      root: generated                     # a MOSI root, or "generated" (built into a cache if missing)
      generated: {seed: 0, scale: 0.5}
      modalities: [text, image]
      text_max_length: 16
      image_size: 64                      # also the model's vision.image_size
      batch_size: 32                      # per process
    optim: {epochs: 6, lr_text: 5.0e-5, lr_vision: 2.0e-3, lr_head: 1.0e-3, schedule: cosine, warmup_ratio: 0.1}
    early_stopping: {metric: Has0_acc_2, patience: 3}

Example:
    >>> cfg = ExperimentConfig.from_dict({"model": {"name": "late_vit"}, "optim": {"epochs": 3}})
    >>> ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> cfg.early_stopping.resolved_mode
    'max'
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.checks import require_at_least, require_one_of
from training.models import FusionConfig, get_config
from training.models.registry import list_models
from training.tables import closest_hint

MODALITIES = ("text", "image")
SCHEDULES = ("linear", "cosine", "constant")
LOSSES = ("l1", "mse")
FRAME_MODES = ("middle", "uniform")
#: Metrics early stopping may watch: the validation loss or any of training.metrics.mosi_metrics.
STOP_METRICS = ("loss", "Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5", "Mult_acc_7",
                "MAE", "Corr")
_LOWER_IS_BETTER = ("loss", "MAE")


@dataclass
class ModelSection:
    """Which registered model to build, and the :class:`FusionConfig` fields to change.

    ``overrides`` follows :func:`training.models.get_config`: ``text`` / ``vision`` may be a
    backbone name or a dict of backbone fields.
    """

    name: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in list_models():
            raise ValueError(f"model.name is {self.name!r}, expected a registered model: {', '.join(list_models())}"
                             f"{closest_hint(self.name, list_models())}")


@dataclass
class GeneratedData:
    """Parameters of the built-in sample dataset (:mod:`training.data.generated`).

    ``style`` is how faces are drawn: ``"clean"`` (learnable by nets trained from scratch) or
    ``"varied"`` (random colours, pose and thin strokes); scores are the same in both.
    """

    seed: int = 0
    scale: float = 1.0
    image_size: int = 64
    style: str = "clean"

    def __post_init__(self) -> None:
        require_one_of("data.generated.style", self.style, ("clean", "varied"))  # training.data.generated.STYLES


@dataclass
class DataSection:
    """Where the data is and how samples become tensors.

    Attributes:
        root: A MOSI-layout directory, or ``"generated"`` for the sample dataset, generated into
            ``cache_dir`` on first use.
        modalities: Modalities fed to the model; a left-out one is absent for the model (its
            placeholder is used), which is how unimodal baselines are trained.
        text_max_length: Tokens per text (padding / truncation).
        tokenizer: ``tokenizer.json`` file, a directory holding one, or a hub name; ``None`` takes
            the text backbone's own.
        image_size: Side of the square images; the model's ``vision.image_size`` is set to it.
        frame_sampling, num_frames: How a segment's frames become one image
            (:class:`training.data.frames.FrameSampling`).
        batch_size: Samples per step and process (the global batch is this times the world size).
        workers: DataLoader worker processes.
        cache_dir: Generated datasets and decoded frames (default ``$FUSIONRT_CACHE`` or
            ``~/.cache/fusionrt``).
    """

    root: str = "generated"
    generated: GeneratedData = field(default_factory=GeneratedData)
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    text_max_length: int = 64
    tokenizer: str | None = None
    image_size: int = 224
    frame_sampling: str = "middle"
    num_frames: int = 1
    batch_size: int = 32
    workers: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.modalities) - set(MODALITIES)
        if not self.modalities or unknown:
            raise ValueError(f"data.modalities is {self.modalities}, expected a non-empty subset of {list(MODALITIES)}")
        require_one_of("data.frame_sampling", self.frame_sampling, FRAME_MODES)
        for name in ("text_max_length", "image_size", "num_frames", "batch_size"):
            require_at_least(f"data.{name}", getattr(self, name), 1)
        require_at_least("data.workers", self.workers, 0)

    @property
    def resolved_cache_dir(self) -> Path:
        """The cache directory, with the default applied."""
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        return Path(os.environ.get("FUSIONRT_CACHE", "~/.cache/fusionrt")).expanduser()


@dataclass
class OptimSection:
    """AdamW with a learning rate per encoder and one for the rest (fusion and head).

    Attributes:
        epochs: Maximum number of epochs (early stopping may end sooner).
        lr_backbone: Learning rate of the text and vision encoders unless ``lr_text`` /
            ``lr_vision`` says otherwise; 0 freezes them.
        lr_text, lr_vision: Learning rate of one encoder (``None``: ``lr_backbone``; 0 freezes it).
            They differ when one encoder is pretrained and the other is not: a pretrained
            transformer wants ~1e-5..5e-5, a randomly initialised CNN / ViT ~1e-3.
        lr_head: Learning rate of everything else (placeholders, fusion, head).
        weight_decay: AdamW decay, not applied to biases and normalisation weights.
        warmup_ratio: Fraction of all steps with a linear warm-up from 0.
        schedule: Decay after warm-up: ``linear`` / ``cosine`` to 0, or ``constant``.
        grad_clip: Maximum global gradient norm (0: no clipping).
        amp: Mixed precision on GPU (bfloat16 where supported, else float16 with loss scaling);
            ignored on CPU.
        loss: ``l1`` (MMSA's choice for MOSI) or ``mse`` on the score.
    """

    epochs: int = 10
    lr_backbone: float = 2e-5
    lr_text: float | None = None
    lr_vision: float | None = None
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "cosine"
    grad_clip: float = 1.0
    amp: bool = True
    loss: str = "l1"

    def __post_init__(self) -> None:
        require_at_least("optim.epochs", self.epochs, 1)
        for name in ("lr_backbone", "lr_text", "lr_vision"):
            value = getattr(self, name)
            if value is not None:
                require_at_least(f"optim.{name}", value, 0, ">= 0 (0 freezes the encoder)")
        if self.lr_head <= 0:
            raise ValueError(f"optim.lr_head is {self.lr_head}, expected > 0")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("optim.weight_decay and optim.grad_clip must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"optim.warmup_ratio is {self.warmup_ratio}, expected a fraction in [0, 1)")
        require_one_of("optim.schedule", self.schedule, SCHEDULES)
        require_one_of("optim.loss", self.loss, LOSSES)

    @property
    def resolved_lr_text(self) -> float:
        """The text encoder's learning rate (``lr_text``, else ``lr_backbone``)."""
        return self.lr_backbone if self.lr_text is None else self.lr_text

    @property
    def resolved_lr_vision(self) -> float:
        """The vision encoder's learning rate (``lr_vision``, else ``lr_backbone``)."""
        return self.lr_backbone if self.lr_vision is None else self.lr_vision


@dataclass
class EarlyStoppingSection:
    """Stop when the validation ``metric`` has not improved for ``patience`` epochs.

    ``mode`` ``None`` picks ``min`` for ``loss`` / ``MAE`` and ``max`` otherwise; ``patience`` 0
    never stops early (the best epoch is still the one kept).
    """

    metric: str = "Has0_acc_2"
    mode: str | None = None
    patience: int = 3

    def __post_init__(self) -> None:
        require_one_of("early_stopping.metric", self.metric, STOP_METRICS)
        if self.mode not in (None, "min", "max"):
            raise ValueError(f"early_stopping.mode is {self.mode!r}, expected 'min', 'max' or null")
        require_at_least("early_stopping.patience", self.patience, 0)

    @property
    def resolved_mode(self) -> str:
        """``"min"`` or ``"max"``."""
        if self.mode is not None:
            return self.mode
        return "min" if self.metric in _LOWER_IS_BETTER else "max"


def read_config_file(path: Path, what: str, expected: str) -> dict[str, Any]:
    """The mapping in a ``.yaml`` / ``.yml`` / ``.toml`` file; errors name the file and what was expected."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ValueError(f"{path}: unknown config format {path.suffix!r}, expected .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{path} is not valid {path.suffix[1:].upper()}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected {expected}, found {type(data).__name__}")
    return data


@dataclass
class ExperimentConfig:
    """One training run: model, data, optimisation, early stopping, seed and output directory."""

    model: ModelSection
    name: str = "run"
    seed: int = 0
    output_dir: str | None = None
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    early_stopping: EarlyStoppingSection = field(default_factory=EarlyStoppingSection)

    @property
    def run_dir(self) -> Path:
        """Where checkpoints, metrics and the result go (``output_dir`` or ``runs/<name>``)."""
        return Path(self.output_dir if self.output_dir is not None else Path("runs") / self.name)

    def fusion_config(self) -> FusionConfig:
        """The model's :class:`FusionConfig`: the registered defaults, the overrides, the data's image size."""
        overrides = dict(self.model.overrides)
        vision = overrides.get("vision", {})
        vision = {"name": vision} if isinstance(vision, str) else dict(vision)
        if vision.get("image_size", self.data.image_size) != self.data.image_size:
            raise ValueError(
                f"model.overrides.vision.image_size is {vision['image_size']} but data.image_size is "
                f"{self.data.image_size}; set data.image_size only (the model takes it from there)"
            )
        overrides["vision"] = {**vision, "image_size": self.data.image_size}
        try:
            return get_config(self.model.name, **overrides)
        except TypeError as err:  # dataclasses.replace on an unknown field
            raise ValueError(f"model.overrides: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON / YAML / TOML ready) that :meth:`from_dict` turns back into this config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Builds a config from nested dicts; unknown keys and wrong types are errors naming the field."""
        return _build(cls, data, "")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExperimentConfig:
        """Reads a ``.yaml`` / ``.yml`` / ``.toml`` file; ``name`` defaults to the file's stem."""
        path = Path(path)
        data = read_config_file(path, "experiment config", "a mapping of config sections")
        data.setdefault("name", path.stem)
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the config as YAML (``null`` fields included, so the file is complete)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiates dataclass ``cls`` from ``data``, recursing into nested sections and checking types."""
    if not isinstance(data, dict):
        raise TypeError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} in {where or 'config'}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{where}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ValueError(f"{where or 'config'}: {err}") from err


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against type ``hint``; numbers given as strings (YAML's ``1e-4``) are converted."""
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{where}.")
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise TypeError(f"{where} is null, expected {hint}")
    for option in options:
        base = typing.get_origin(option) or option
        if base is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                continue
        if base is bool and isinstance(value, bool):
            return value
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base in (str, list, dict) and isinstance(value, base):
            return value
    raise TypeError(f"{where} is {value!r} ({type(value).__name__}), expected {hint}")
