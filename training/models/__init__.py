"""Multimodal fusion models: backbones, fusion strategies and operators, and the model registry.

Example:
    >>> from training.models import create_model, list_models
    >>> model = create_model("late_vit", text="bert-base-uncased")  # doctest: +SKIP
    >>> out = model(input_ids, attention_mask, image)  # doctest: +SKIP
    >>> out["score"].shape  # doctest: +SKIP
    torch.Size([8])
"""

from .config import FusionConfig, TextBackboneConfig, VisionBackboneConfig
from .model import FusionModel
from .registry import create_model, get_config, list_models, register_model

__all__ = [
    "FusionConfig",
    "FusionModel",
    "TextBackboneConfig",
    "VisionBackboneConfig",
    "create_model",
    "get_config",
    "list_models",
    "register_model",
]
