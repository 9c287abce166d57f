"""The exported graph's I/O in the manifest, and batches -> ONNX Runtime feeds.

The names, dtypes and shapes are the deployment package's contract (:mod:`fusionrt.graph_io`); this
module describes one forward pass's outputs in it and turns collator batches into graph feeds. The
graph always takes all four inputs, so one engine serves every request; the text length is fixed at
export (the Session pads to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fusionrt.bundle import TensorSpec
from fusionrt.graph_io import (
    ATTENTION_MASK,
    BATCH,
    IMAGE,
    INPUT_IDS,
    INPUT_NAMES,
    MODALITIES,
    PIXELS,
    PRESENCE,
    TEXT,
    output_role,
)


def output_specs(outputs: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    """The manifest's ``outputs``, from one forward pass's output dict (in graph order)."""
    return {
        name: TensorSpec(str(value.detach().numpy().dtype), [BATCH, *value.shape[1:]], output_role(name).description)
        for name, value in outputs.items()
    }


def batch_feeds(batch: Mapping[str, Any], text_length: int, image_size: int) -> dict[str, np.ndarray]:
    """ONNX Runtime feeds from a :class:`training.data.dataset.MosiCollator` batch.

    An input the batch lacks (image-only or text-only data) becomes zeros with ``presence`` False.

    Raises:
        ValueError: the batch's text length differs from the graph's, or it has neither modality.
    """
    presence = _numpy(batch[PRESENCE]).astype(bool)
    size = presence.shape[0]
    feeds = {PRESENCE: presence.copy()}
    text_column, image_column = (MODALITIES.index(m) for m in (TEXT, IMAGE))
    if INPUT_IDS in batch:
        ids = _numpy(batch[INPUT_IDS]).astype(np.int64)
        if ids.shape[1] != text_length:
            raise ValueError(
                f"batch has input_ids of length {ids.shape[1]}, expected {text_length} (the exported text length): "
                f"collate with max_length={text_length}"
            )
        feeds[INPUT_IDS] = ids
        feeds[ATTENTION_MASK] = _numpy(batch[ATTENTION_MASK]).astype(np.int64)
    else:
        feeds[INPUT_IDS] = np.zeros((size, text_length), np.int64)
        feeds[ATTENTION_MASK] = np.ones((size, text_length), np.int64)
        feeds[PRESENCE][:, text_column] = False
    if PIXELS in batch:
        feeds[PIXELS] = _numpy(batch[PIXELS]).astype(np.float32)
    else:
        feeds[PIXELS] = np.zeros((size, 3, image_size, image_size), np.float32)
        feeds[PRESENCE][:, image_column] = False
    return {name: feeds[name] for name in INPUT_NAMES}


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
