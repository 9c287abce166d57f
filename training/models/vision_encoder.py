"""Vision backbone: any timm model; inner features through timm's feature-extraction API."""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
from timm.models import get_pretrained_cfg_value
from torch import nn

from .config import VisionBackboneConfig
from .stream import Stream


def _create(cfg: VisionBackboneConfig, **kwargs) -> nn.Module:
    kwargs.update(cfg.overrides)
    if get_pretrained_cfg_value(cfg.name, "fixed_input_size"):
        # ViT-style models build position embeddings for one size: make it the configured one.
        kwargs.setdefault("img_size", cfg.image_size)
    if cfg.weights_file is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": cfg.weights_file}
    try:
        return timm.create_model(cfg.name, pretrained=cfg.pretrained, **kwargs)
    except OSError as err:
        raise OSError(
            f"could not load pretrained weights for {cfg.name!r}: set vision.weights_file to a local "
            f"checkpoint, make the hub reachable, or set vision.pretrained=False"
        ) from err


def _tokens(features: torch.Tensor, output_fmt: str) -> torch.Tensor:
    """Feature map (NCHW / NHWC) or token sequence (NLC) -> ``(batch, length, width)``."""
    if features.dim() == 3:
        return features
    if output_fmt == "NHWC":
        return features.flatten(1, 2)
    return features.flatten(2).transpose(1, 2)


class VisionEncoder(nn.Module):
    """Runs the vision backbone and returns its features at the requested points.

    Points are ``"tap"`` (timm feature index ``cfg.tap``) and ``"final"`` (the model's global pool,
    with the final feature map as tokens). Tap only: ``features_only`` with timm's getter, which
    prunes the stages after the tap, so they are neither run nor counted. Tap and final (hybrid):
    the full model's ``forward_intermediates``.

    Example:
        >>> cfg = VisionBackboneConfig("vit_base_patch16_224", pretrained=False, tap=1, image_size=32,
        ...                            overrides=dict(embed_dim=32, depth=2, num_heads=2, patch_size=8))
        >>> VisionEncoder(cfg, ["tap"])(torch.randn(2, 3, 32, 32))["tap"].tokens.shape
        torch.Size([2, 16, 32])
    """

    def __init__(self, cfg: VisionBackboneConfig, points: Sequence[str]) -> None:
        super().__init__()
        self.points = tuple(points)
        self.tap = cfg.tap
        self.image_size = cfg.image_size
        self.in_chans = cfg.overrides.get("in_chans", 3)
        if "final" in self.points:
            self.model = _create(cfg, num_classes=0)
            final_width = self.model.num_features
            pooled_width = getattr(self.model, "head_hidden_size", final_width)
            if pooled_width != final_width:
                raise ValueError(
                    f"{cfg.name}: pooled width {pooled_width} differs from its feature width {final_width}; "
                    f"models with a hidden head layer are not supported"
                )
            self._widths = {"final": final_width}
            if "tap" in self.points:
                self._widths["tap"] = self._tap_width(self.model.feature_info, cfg)
        else:
            self.model = _create(cfg, features_only=True, feature_cls="getter", out_indices=(cfg.tap,))
            self._widths = {"tap": self.model.feature_info.channels()[0]}
        self.output_fmt = getattr(self.model, "output_fmt", "NCHW")

    @staticmethod
    def _tap_width(feature_info: list[dict], cfg: VisionBackboneConfig) -> int:
        if cfg.tap >= len(feature_info):
            raise ValueError(f"vision.tap is {cfg.tap} but {cfg.name} has {len(feature_info)} feature levels")
        return feature_info[cfg.tap]["num_chs"]

    @property
    def widths(self) -> dict[str, int]:
        """Feature width at each point."""
        return {point: self._widths[point] for point in self.points}

    def _stream(self, features: torch.Tensor, pooled: torch.Tensor | None = None) -> Stream:
        tokens = _tokens(features, self.output_fmt)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return Stream(tokens, mask, tokens.mean(dim=1) if pooled is None else pooled)

    def forward(self, image: torch.Tensor) -> dict[str, Stream]:
        """``(batch, channels, size, size)`` image -> one :class:`Stream` per point."""
        if "final" not in self.points:
            return {"tap": self._stream(self.model(image)[0])}
        if "tap" in self.points:
            final, (tap,) = self.model.forward_intermediates(image, indices=[self.tap])
        else:
            final = self.model.forward_features(image)
        streams = {"final": self._stream(final, self.model.forward_head(final, pre_logits=True))}
        if "tap" in self.points:
            streams["tap"] = self._stream(tap)
        return streams
