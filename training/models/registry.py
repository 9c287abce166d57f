"""Model registry: names -> default configs, and ``create_model`` to build one with overrides.

Example:
    >>> "late_vit" in list_models()
    True
    >>> get_config("intermediate_vit", operator="gated").vision.name
    'vit_base_patch16_224'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from training.tables import lookup, register

from .config import FusionConfig, TextBackboneConfig, VisionBackboneConfig
from .model import FusionModel

_REGISTRY: dict[str, Callable[[], FusionConfig]] = {}

#: The paper's vision pair, with the feature index inner-point strategies tap (about six layers in).
STUDY_VISION = {
    "mobilenetv2": VisionBackboneConfig("mobilenetv2_100", tap=3),
    "vit": VisionBackboneConfig("vit_base_patch16_224", tap=5),
}


def register_model(name: str) -> Callable[[Callable[[], FusionConfig]], Callable[[], FusionConfig]]:
    """Decorator registering a function that returns the default :class:`FusionConfig` of ``name``."""
    return register(_REGISTRY, name, "model")


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def _backbone(base: Any, value: Any, cls: type) -> Any:
    """A backbone override: a name, a dict of fields to change, or a whole config."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        return dataclasses.replace(base, name=value)
    if isinstance(value, dict):
        return dataclasses.replace(base, **value)
    raise TypeError(f"expected a model name, a dict of fields or a {cls.__name__}, got {type(value).__name__}")


def get_config(name: str, **overrides: Any) -> FusionConfig:
    """The default config of model ``name`` with ``overrides`` (FusionConfig fields) applied.

    ``text`` / ``vision`` may be a name (``"bert-base-uncased"``), a dict of backbone fields to
    change (``{"pretrained": False}``) or a full backbone config. An unknown ``name`` raises a
    ``KeyError`` (also a ``ValueError``) listing the registered models.
    """
    cfg = lookup(_REGISTRY, name, "model")()
    if "text" in overrides:
        overrides["text"] = _backbone(cfg.text, overrides["text"], TextBackboneConfig)
    if "vision" in overrides:
        overrides["vision"] = _backbone(cfg.vision, overrides["vision"], VisionBackboneConfig)
    return dataclasses.replace(cfg, **overrides)


def create_model(name: str, **overrides: Any) -> FusionModel:
    """Builds registered model ``name``; see :func:`get_config` for ``overrides``.

    Example:
        >>> model = create_model("late", vision="mobilenetv2_100", text="bert-base-uncased")  # doctest: +SKIP
    """
    return FusionModel(get_config(name, **overrides))


def _register_defaults() -> None:
    for strategy in ("late", "intermediate", "early", "hybrid", "decision"):
        register_model(strategy)(lambda strategy=strategy: FusionConfig(strategy=strategy))
    # The study's six models: {late, intermediate, early} x {MobileNetV2, ViT-B/16}.
    for strategy in ("late", "intermediate", "early"):
        for short, vision in STUDY_VISION.items():
            register_model(f"{strategy}_{short}")(
                lambda strategy=strategy, vision=vision: FusionConfig(
                    strategy=strategy, vision=dataclasses.replace(vision)
                )
            )


_register_defaults()
