"""The study models at paper size for the benchmarks: a BERT-base-size text encoder, MobileNetV2-1.0 or
ViT-B/16 at 224 px, text length 64, random weights (latency does not depend on them).

``FUSIONRT_BENCH_PAPER=1`` switches the benchmarks that use :func:`study_model` from the quick
MiniLM-L6-size text encoder to BERT-base size (exports take minutes each on a few cores).
"""

from __future__ import annotations

import os
from typing import Any

#: Whether this run benchmarks the paper-size models.
PAPER = os.environ.get("FUSIONRT_BENCH_PAPER") == "1"
#: BERT-base on the bundled MiniLM tokenizer's vocabulary (30522 ids, as bert-base-uncased).
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TEXT_LENGTH = 64
SIZE_NAME = "paper size" if PAPER else "MiniLM-L6 text"


def study_model(name: str) -> Any:
    """Registered model ``name`` (``late_mobilenetv2``, ...) in eval mode, at paper size when :data:`PAPER`."""
    import torch

    from training.models import create_model

    torch.manual_seed(0)
    text = dict(name=None, pretrained=False, overrides=BERT_BASE) if PAPER else dict(pretrained=False)
    return create_model(name, text=text, vision=dict(pretrained=False)).eval()
