"""Checkpoints: atomic save / load, random-number-generator state, and models rebuilt from a checkpoint.

A checkpoint is a dict (``torch.save``; loaded with ``weights_only=True``, so a file never runs code)::

    config           FusionConfig.to_dict() of the model
    model            its state_dict
    experiment       ExperimentConfig.to_dict() of the run
    tokenizer        tokenizer.json path or hub name the texts were tokenised with (None: no text)
    text_max_length  tokens per text
    image_size       side of the square images
    epoch, step      epochs / optimiser steps completed
    best_metric      best validation value of the early-stopping metric so far
    optimizer, scheduler, scaler   their state_dicts (scaler None without float16 loss scaling)
    trainer          early-stopping counters and the per-epoch metrics history
    rng              python / numpy / torch (and CUDA) generator states

Export also takes a *model-only* checkpoint, ``{"config", "model"}`` (:data:`MODEL_KEYS`, optionally
``"model_name"``): enough to rebuild the model, with default data settings (:func:`data_from_checkpoint`).

Example:
    >>> ckpt = load_checkpoint("runs/demo_late/best.pt")  # doctest: +SKIP
    >>> model = model_from_checkpoint(ckpt).eval()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrt.atomic import atomic_file
from training.experiment import DataSection, ExperimentConfig
from training.models import FusionConfig, FusionModel

#: What rebuilding the model needs (export reads nothing else).
MODEL_KEYS = ("config", "model")
#: Every entry of a trainer checkpoint (resuming and evaluating read them).
REQUIRED_KEYS = (*MODEL_KEYS, "experiment", "tokenizer", "text_max_length", "image_size", "epoch", "step",
                 "best_metric", "optimizer", "scheduler", "scaler", "trainer", "rng")


class CheckpointError(ValueError):
    """A file is not a checkpoint fusionrt can read: unreadable, pickled objects, or entries missing."""


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> None:
    """Writes ``checkpoint`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint lacks {missing}; a checkpoint needs {list(REQUIRED_KEYS)}")
    with atomic_file(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    *,
    required: Sequence[str] = REQUIRED_KEYS,
) -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save_checkpoint` (tensors and plain values only, no pickled code).

    Args:
        required: entries the caller reads; :data:`MODEL_KEYS` accepts a model-only checkpoint.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        CheckpointError: ``path`` is not a ``torch.save`` file of tensors and plain values (garbage, a
            truncated file, pickled Python objects), not a dict, or lacks a ``required`` entry.
    """
    path = Path(path)
    expected = f"expected a torch.save file of a dict with {list(required)}"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} ({expected})")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError) as error:
        # torch's own message suggests weights_only=False or allowlisting globals, either of which would
        # run what the file names; the reason is the first sentence of the error it wraps.
        text = str(error.__context__ or error).strip() or f"{type(error).__name__}: empty or truncated file"
        reason = text.splitlines()[0].split(". ")[0]
        raise CheckpointError(
            f"{path} is not a readable fusionrt checkpoint ({reason}); {expected} of tensors and plain "
            f"values (fusionrt never unpickles Python objects from a checkpoint)"
        ) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, {expected}")
    missing = [key for key in required if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is not a fusionrt training checkpoint: it lacks {missing}; {expected}")
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any]) -> FusionModel:
    """The checkpoint's model with its trained weights (backbones built without downloading pretrained ones)."""
    config = FusionConfig.from_dict(checkpoint["config"])
    # The state dict holds every weight: pretrained ones would only be fetched to be overwritten.
    config = dataclasses.replace(
        config,
        text=dataclasses.replace(config.text, pretrained=False),
        vision=dataclasses.replace(config.vision, pretrained=False, weights_file=None),
    )
    model = FusionModel(config)
    model.load_state_dict(checkpoint["model"])
    return model


def experiment_from_checkpoint(checkpoint: dict[str, Any]) -> ExperimentConfig | None:
    """The run configuration of a trainer checkpoint; ``None`` for a model-only one."""
    return ExperimentConfig.from_dict(checkpoint["experiment"]) if "experiment" in checkpoint else None


def data_from_checkpoint(checkpoint: dict[str, Any], **overrides: Any) -> DataSection:
    """The data settings the checkpoint's model reads, with ``overrides`` (``None``: keep) applied.

    A trainer checkpoint gives its run's data section, its tokenizer being the one the texts were
    tokenised with; a model-only checkpoint the defaults at its model's image size.

    Example:
        >>> data = data_from_checkpoint(ckpt, root="data/mosi", batch_size=8)  # doctest: +SKIP
    """
    experiment = experiment_from_checkpoint(checkpoint)
    if experiment is not None:
        data = experiment.data
        if checkpoint.get("tokenizer") is not None:
            data = dataclasses.replace(data, tokenizer=checkpoint["tokenizer"])
    else:
        data = DataSection(image_size=FusionConfig.from_dict(checkpoint["config"]).vision.image_size)
    return dataclasses.replace(data, **{name: value for name, value in overrides.items() if value is not None})


def rng_state() -> dict[str, Any]:
    """The states of every generator training draws from, as tensors and plain values."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(keys), gauss],
        "numpy": [name, torch.from_numpy(np_keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores generator states saved by :func:`rng_state`."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, np_keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
