"""Names, dtypes and shapes of the exported graph's inputs and outputs, and batches -> ONNX Runtime feeds.

The graph always takes all four inputs (a missing modality is a ``presence`` of False, never an absent
input), so one engine serves every request; the text length is fixed at export (the Session pads to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fusionrt.bundle import TensorSpec

INPUT_NAMES = ("input_ids", "attention_mask", "image", "presence")


def input_specs(text_length: int, image_size: int) -> dict[str, TensorSpec]:
    """The manifest's ``inputs``: dtype, shape (``"batch"`` is the dynamic axis) and meaning of each input."""
    return {
        "input_ids": TensorSpec("int64", ["batch", text_length], "token ids from tokenizer.json, padded to max_length"),
        "attention_mask": TensorSpec("int64", ["batch", text_length], "1 for real tokens, 0 for padding"),
        "image": TensorSpec(
            "float32", ["batch", 3, image_size, image_size], "RGB, scaled to [0, 1], normalised with image.mean/std"
        ),
        "presence": TensorSpec("bool", ["batch", 2], "(text, image) present; False replaces it by a learned placeholder"),
    }


def output_specs(outputs: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    """The manifest's ``outputs``, from one forward pass's output dict (in graph order)."""
    specs = {}
    for name, value in outputs.items():
        branch = name.partition("_")[2]
        what = "sentiment score in output.score_range" if name.startswith("score") else "class logits"
        specs[name] = TensorSpec(
            str(value.detach().numpy().dtype),
            ["batch", *value.shape[1:]],
            f"{what}{f' of the {branch} branch alone' if branch else ''}",
        )
    return specs


def batch_feeds(batch: Mapping[str, Any], text_length: int, image_size: int) -> dict[str, np.ndarray]:
    """ONNX Runtime feeds from a :class:`training.data.dataset.MosiCollator` batch.

    An input the batch lacks (image-only or text-only data) becomes zeros with ``presence`` False.

    Raises:
        ValueError: the batch's text length differs from the graph's, or it has neither modality.
    """
    presence = _numpy(batch["presence"]).astype(bool)
    size = presence.shape[0]
    feeds = {"presence": presence.copy()}
    if "input_ids" in batch:
        ids = _numpy(batch["input_ids"]).astype(np.int64)
        if ids.shape[1] != text_length:
            raise ValueError(
                f"batch has input_ids of length {ids.shape[1]}, expected {text_length} (the exported text length): "
                f"collate with max_length={text_length}"
            )
        feeds["input_ids"] = ids
        feeds["attention_mask"] = _numpy(batch["attention_mask"]).astype(np.int64)
    else:
        feeds["input_ids"] = np.zeros((size, text_length), np.int64)
        feeds["attention_mask"] = np.ones((size, text_length), np.int64)
        feeds["presence"][:, 0] = False
    if "image" in batch:
        feeds["image"] = _numpy(batch["image"]).astype(np.float32)
    else:
        feeds["image"] = np.zeros((size, 3, image_size, image_size), np.float32)
        feeds["presence"][:, 1] = False
    return {name: feeds[name] for name in INPUT_NAMES}


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
