"""Vision backbone: any timm model; inner features through timm's feature-extraction API."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterator, Sequence
from types import FunctionType

import timm
import torch
from timm.models import build_model_with_cfg, get_pretrained_cfg_value, model_entrypoint
from torch import nn

from training.checks import require_known_keys

from .config import VisionBackboneConfig
from .stream import Stream


def _keywords(fn: Callable) -> set[str]:
    """The parameters of ``fn`` a caller may pass by keyword."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds}


#: Keywords timm's factory takes for any model: create_model's and its builder's own, and the feature
#: extraction ones the builder takes out before the model class sees them (timm.models.build_model_with_cfg).
_FACTORY_OPTIONS = frozenset(_keywords(timm.create_model) | _keywords(build_model_with_cfg)
                             | {"features_only", "out_indices", "feature_cls", "pruned"})


def _takes_var_keywords(fn: Callable) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def _helpers(entrypoint: FunctionType) -> Iterator[FunctionType]:
    """``entrypoint`` and the functions of its module it calls, directly or through one another (timm's
    ``_create_*`` / ``_gen_*``): their parameters are model options as well (e.g. ``channel_divisor``)."""
    seen: set[FunctionType] = set()
    todo = [entrypoint]
    while todo:
        fn = todo.pop()
        if fn in seen:
            continue
        seen.add(fn)
        yield fn
        codes = [fn.__code__]
        while codes:  # nested code (comprehensions, lambdas) names globals too
            code = codes.pop()
            codes += [c for c in code.co_consts if inspect.iscode(c)]
            for name in code.co_names:
                obj = fn.__globals__.get(name)
                if isinstance(obj, FunctionType) and obj.__module__ == entrypoint.__module__:
                    todo.append(obj)


@functools.cache
def timm_model_options(name: str) -> frozenset[str] | None:
    """The keywords ``timm.create_model(name, **kwargs)`` takes, or ``None`` where signatures cannot tell.

    They are ``create_model``'s and its builder's own, those of the model's entrypoint and the helpers
    it calls, and those of the model class's ``__init__`` (and its bases' while it passes ``**kwargs``
    up). ``None`` for names that are not registered architectures (``hf-hub:`` ones: the architecture
    is in the hub's config) and for models whose ``**kwargs`` go elsewhere (byobnet's config
    dataclass); timm itself still rejects what they do not take.

    Example:
        >>> {"drop_rate", "img_size", "features_only", "embed_dim"} <= timm_model_options("vit_base_patch16_224")
        True
    """
    if not timm.is_model(name):
        return None
    entrypoint = model_entrypoint(name)
    try:
        model_cls = typing.get_type_hints(entrypoint).get("return")
    except (NameError, TypeError):
        return None
    if not (isinstance(model_cls, type) and issubclass(model_cls, nn.Module)):
        return None
    options = set(_FACTORY_OPTIONS)
    for fn in _helpers(entrypoint):
        options |= _keywords(fn)
    for cls in model_cls.__mro__:
        if cls is nn.Module:
            return None  # **kwargs did not end in a base class: where they go, signatures do not say
        if "__init__" in vars(cls):
            options |= _keywords(cls.__init__) - {"self"}
            if not _takes_var_keywords(cls.__init__):
                return frozenset(options)
    return None


def check_vision_overrides(cfg: VisionBackboneConfig, where: str = "vision.overrides") -> None:
    """Raises a ``ValueError`` naming ``where`` and the closest valid key when an override is not a
    keyword of ``timm.create_model(cfg.name, ...)`` (see :func:`timm_model_options`).

    Example:
        >>> check_vision_overrides(VisionBackboneConfig("resnet18", overrides={"drop_rat": 0.1}))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
          ...
        ValueError: vision.overrides has an unknown key 'drop_rat', ...; did you mean 'drop_rate'?
    """
    options = timm_model_options(cfg.name)
    if options is not None:
        require_known_keys(where, cfg.overrides, options, f"a keyword of timm's {cfg.name!r}")


def _create(cfg: VisionBackboneConfig, **kwargs) -> nn.Module:
    check_vision_overrides(cfg)  # timm's own TypeError names neither the field nor a fix
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
