"""FusionModel: text and vision backbones, missing-modality handling and a fusion strategy."""

from __future__ import annotations

import torch
from torch import nn

from .config import FusionConfig
from .flops import count_complexity
from .heads import split_prediction
from .modality_dropout import ModalityDropout
from .placeholder import ModalityPlaceholder
from .stream import Stream
from .strategies import get_strategy
from .text_encoder import TextEncoder, check_text_overrides
from .vision_encoder import VisionEncoder, check_vision_overrides


class FusionModel(nn.Module):
    """A multimodal (text + image) regression / classification model.

    ``forward(input_ids, attention_mask, image, presence=None)`` returns a dict with ``"score"``
    ``(batch,)``, ``"logits"`` ``(batch, num_classes)`` when ``num_classes > 0``, and for decision
    fusion the branch predictions ``"score_text"`` / ``"score_image"`` (and ``"logits_*"``), named by
    the graph I/O contract (:mod:`fusionrt.graph_io`), which the exported graph keeps.

    Missing modalities: ``input_ids=None`` or ``image=None`` means absent for the whole batch (that
    backbone is not run); ``presence`` ``(batch, 2)`` bool (text, image) marks absent samples. An absent
    modality's features are replaced by a learned placeholder (see :class:`ModalityPlaceholder`), so
    every strategy still predicts: late / intermediate / hybrid join the placeholder vector, early
    attends to a single placeholder token, decision averages only the present branches.

    Example:
        >>> from training.models import create_model
        >>> model = create_model("late_mobilenetv2", operator="sum", hidden_size=32,
        ...     text=dict(pretrained=False, overrides=dict(hidden_size=32, num_hidden_layers=2,
        ...               num_attention_heads=2, intermediate_size=64, vocab_size=100)),
        ...     vision=dict(pretrained=False, image_size=32)).eval()
        >>> model(*model.example_inputs(batch=2))["score"].shape
        torch.Size([2])
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        strategy = get_strategy(config.strategy)
        points = strategy.points
        # Both backbones' overrides before either loads weights: a typo must not wait for a download.
        check_text_overrides(config.text)
        check_vision_overrides(config.vision)
        self.text_encoder = TextEncoder(config.text, points)
        self.vision_encoder = VisionEncoder(config.vision, points)
        text_widths, image_widths = self.text_encoder.widths, self.vision_encoder.widths
        self.text_placeholder = nn.ModuleDict({p: ModalityPlaceholder(w) for p, w in text_widths.items()})
        self.image_placeholder = nn.ModuleDict({p: ModalityPlaceholder(w) for p, w in image_widths.items()})
        self.modality_dropout = ModalityDropout(config.text_dropout, config.image_dropout)
        self.fusion = strategy.fusion(config, text_widths, image_widths)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        image: torch.Tensor | None,
        presence: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Predicts from token ids ``(batch, length)``, their mask and images ``(batch, 3, size, size)``."""
        batch = self._check_inputs(input_ids, attention_mask, image, presence)
        given = torch.tensor([input_ids is not None, image is not None], device=self._reference.device)
        presence = given.expand(batch, 2) if presence is None else presence & given
        presence = self.modality_dropout(presence)
        if input_ids is None:
            text = self._absent(self.text_placeholder, batch)
        else:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            text = self._fill(self.text_placeholder, self.text_encoder(input_ids, attention_mask), presence[:, 0])
        if image is None:
            vision = self._absent(self.image_placeholder, batch)
        else:
            vision = self._fill(self.image_placeholder, self.vision_encoder(image), presence[:, 1])
        out = {}
        # The fusion's predictions are keyed by branch (None: fused); the contract names their outputs.
        for branch, prediction in self.fusion(text, vision, presence).items():
            out.update(split_prediction(prediction, self.config.num_classes, branch))
        return out

    @property
    def _reference(self) -> torch.Tensor:
        """A parameter whose dtype and device are the model's."""
        return next(self.parameters())

    @staticmethod
    def _absent(placeholders: nn.ModuleDict, batch: int) -> dict[str, Stream]:
        return {point: ph.full(batch) for point, ph in placeholders.items()}

    @staticmethod
    def _fill(placeholders: nn.ModuleDict, streams: dict[str, Stream], present: torch.Tensor) -> dict[str, Stream]:
        return {point: placeholders[point].fill(s, present) for point, s in streams.items()}

    def _check_inputs(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        image: torch.Tensor | None,
        presence: torch.Tensor | None,
    ) -> int:
        """Validates shapes and dtypes (static properties only, so torch.export traces it); returns the batch."""
        if input_ids is None and image is None:
            raise ValueError("both modalities are missing: give input_ids, image, or both")
        batch = None
        if input_ids is not None:
            if input_ids.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids has shape {tuple(input_ids.shape)}, expected 2 dims (batch, length)")
            if input_ids.shape[1] > self.text_encoder.max_length:
                raise ValueError(
                    f"input_ids has {input_ids.shape[1]} tokens, the text encoder takes at most "
                    f"{self.text_encoder.max_length}"
                )
            batch = input_ids.shape[0]
            if attention_mask is not None:
                if attention_mask.dtype not in (torch.int64, torch.int32, torch.bool):
                    raise TypeError(f"attention_mask must be an integer or bool tensor, got {attention_mask.dtype}")
                if attention_mask.shape != input_ids.shape:
                    raise ValueError(
                        f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                        f"{tuple(input_ids.shape)} (the shape of input_ids)"
                    )
        elif attention_mask is not None:
            raise ValueError("attention_mask given without input_ids")
        if image is not None:
            if not image.is_floating_point():
                raise TypeError(f"image must be a floating-point tensor, got {image.dtype}")
            dtype = self._reference.dtype
            if image.dtype != dtype:
                raise TypeError(f"image is {image.dtype}, expected {dtype} (the model's dtype)")
            size, chans = self.vision_encoder.image_size, self.vision_encoder.in_chans
            if image.dim() != 4 or tuple(image.shape[1:]) != (chans, size, size):
                got = "x".join(map(str, image.shape[1:])) if image.dim() == 4 else f"{image.dim()}-dim"
                raise ValueError(
                    f"image is {got}, expected {chans}x{size}x{size} (config.vision.image_size), "
                    f"as a (batch, {chans}, {size}, {size}) tensor"
                )
            if batch is not None and image.shape[0] != batch:
                raise ValueError(f"input_ids has batch {batch} but image has batch {image.shape[0]}")
            batch = image.shape[0]
        if presence is not None:
            if presence.dtype != torch.bool:
                raise TypeError(f"presence must be a bool tensor, got {presence.dtype}")
            if tuple(presence.shape) != (batch, 2):
                raise ValueError(f"presence has shape {tuple(presence.shape)}, expected ({batch}, 2) (text, image)")
        return batch

    def example_inputs(
        self, batch: int = 1, text_length: int = 16, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random ``(input_ids, attention_mask, image, presence)`` in the shapes ``forward`` takes.

        The last sample's text is padded (to exercise the mask) and ``presence`` is all True.
        """
        device, dtype = self._reference.device, self._reference.dtype
        size, chans = self.vision_encoder.image_size, self.vision_encoder.in_chans
        input_ids = torch.randint(0, self.text_encoder.vocab_size, (batch, text_length), generator=generator)
        attention_mask = torch.ones(batch, text_length, dtype=torch.int64)
        attention_mask[-1, text_length // 2 :] = 0
        image = torch.randn(batch, chans, size, size, generator=generator, dtype=dtype)
        presence = torch.ones(batch, 2, dtype=torch.bool)
        return input_ids.to(device), attention_mask.to(device), image.to(device), presence.to(device)

    def complexity(self, batch: int = 1, text_length: int = 64) -> dict[str, dict[str, int]]:
        """Parameters and forward FLOPs per branch (``text``, ``vision``, ``fusion``) and ``total``.

        FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one eval-mode forward pass of
        ``batch`` samples with ``text_length`` tokens; ``fusion`` is everything outside the backbones.
        """
        return count_complexity(
            self, self.example_inputs(batch, text_length), {"text": self.text_encoder, "vision": self.vision_encoder}
        )
