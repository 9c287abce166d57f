"""Checkpoints: atomic save / load, random-number-generator state, and models rebuilt from a checkpoint.

A checkpoint is a dict (``torch.save``; loadable with ``weights_only=True``)::

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

Example:
    >>> ckpt = load_checkpoint("runs/demo_late/best.pt")  # doctest: +SKIP
    >>> model = model_from_checkpoint(ckpt).eval()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrt.atomic import atomic_file
from training.models import FusionConfig, FusionModel

REQUIRED_KEYS = ("config", "model", "experiment", "tokenizer", "text_max_length", "image_size", "epoch", "step",
                 "best_metric", "optimizer", "scheduler", "rng")


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> None:
    """Writes ``checkpoint`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint lacks {missing}; a checkpoint needs {list(REQUIRED_KEYS)}")
    with atomic_file(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save_checkpoint` (tensors only, no pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint] if isinstance(checkpoint, dict) else REQUIRED_KEYS
    if missing:
        raise ValueError(f"{path} is not a fusionrt training checkpoint: it lacks {list(missing)}")
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
