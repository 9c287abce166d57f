"""The training loop: one :class:`Trainer` per run, resumable from its last checkpoint.

Each epoch trains on the train fold, scores the valid fold with :func:`training.metrics.mosi_metrics`,
appends a line to ``metrics.jsonl``, writes ``last.pt`` (and ``best.pt`` when the early-stopping
metric improved) atomically, and prints a one-line summary. Everything a later epoch depends on is
in ``last.pt`` (weights, optimiser, scheduler, loss scaler, early-stopping counters, generator
states; the data order is a function of seed and epoch), so a run killed between epochs and started
again ends with the same weights as one never interrupted.

Example:
    >>> trainer = Trainer(ExperimentConfig.load("training/configs/base_demo.yaml"))  # doctest: +SKIP
    >>> trainer.fit()  # doctest: +SKIP
    >>> trainer.evaluate("test")["Has0_acc_2"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from training import distributed
from training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fusionrt.atomic import copy_atomic, write_text_atomic
from training.data.mosi import build_index
from training.experiment import ExperimentConfig
from training.loaders import dataset_root, fold_loader, load_tokenizer, model_inputs, resolve_tokenizer
from training.metrics import mosi_metrics
from training.models import FusionModel
from training.optim import build_optimizer, build_scheduler
from training.tables import lookup

LAST, BEST, METRICS = "last.pt", "best.pt", "metrics.jsonl"
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"l1": F.l1_loss, "mse": F.mse_loss}
# Fields that may differ between a run and its resumption without changing its result.
_RESUME_FREE = {"output_dir", "name"}
_RESUME_FREE_DATA = {"workers", "cache_dir"}


def set_seed(seed: int) -> None:
    """Seeds python, numpy and torch (every process alike: DDP starts from identical weights anyway)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device, enabled: bool) -> tuple[contextlib.AbstractContextManager, torch.amp.GradScaler]:
    """The mixed-precision context and the loss scaler: bfloat16 where the GPU has it, else float16 + scaling.

    On CPU (or with ``enabled=False``) both are inert, so the loop has a single code path.
    """
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext(), torch.amp.GradScaler(device.type, enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return torch.autocast("cuda", dtype=dtype), scaler


def progress(iterable: Any, **kwargs: Any) -> Any:
    """A tqdm bar on the main process when stderr is a terminal; the bare iterable otherwise."""
    show = distributed.is_main_process() and sys.stderr.isatty()
    return tqdm(iterable, leave=False, dynamic_ncols=True, **kwargs) if show else iterable


@torch.no_grad()
def predict(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, amp: contextlib.AbstractContextManager
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of every sample of ``loader``, gathered over all processes."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    try:
        for batch in progress(loader, desc="eval"):
            with amp:
                score = model(**model_inputs(batch, device))["score"]
            preds.append(score.float().cpu().numpy())
            labels.append(batch["label"].numpy())
    finally:
        model.train(was_training)
    shards = distributed.gather((np.concatenate(preds), np.concatenate(labels)))
    return np.concatenate([p for p, _ in shards]), np.concatenate([y for _, y in shards])


def score_metrics(preds: np.ndarray, labels: np.ndarray, loss: str) -> dict[str, float]:
    """:func:`mosi_metrics` plus the training loss (:data:`LOSSES`) on these predictions, in float64."""
    loss_fn = lookup(LOSSES, loss, "loss")
    value = loss_fn(torch.from_numpy(preds.astype(np.float64)), torch.from_numpy(labels.astype(np.float64)))
    return {"loss": float(value), **mosi_metrics(preds, labels)}


def write_json(path: Path, data: Any) -> None:
    """Writes ``data`` as JSON atomically; NaN (an undefined metric) becomes ``null``."""
    write_text_atomic(path, json.dumps(_finite(data), indent=2) + "\n")


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_finite(v) for v in data]
    return data


class Trainer:
    """Trains one :class:`ExperimentConfig`; under ``torchrun`` with DistributedDataParallel.

    Example:
        >>> trainer = Trainer(config)  # doctest: +SKIP
        >>> trainer.fit(); trainer.evaluate("test")  # doctest: +SKIP
    """

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self.device = distributed.setup()
        set_seed(config.seed)
        self.fusion = config.fusion_config()
        self.model = FusionModel(self.fusion).to(self.device)
        data = config.data
        self.root = dataset_root(data)
        self.index = build_index(self.root, modalities=data.modalities)
        self.tokenizer_source = resolve_tokenizer(data, self.fusion.text)
        self.tokenizer = load_tokenizer(self.tokenizer_source)
        self.train_loader = self.loader("train", shuffle=True)
        self.valid_loader = self.loader("valid")
        optim = config.optim
        self.optimizer = build_optimizer(self.model, optim)
        self.scheduler = build_scheduler(self.optimizer, optim, optim.epochs * len(self.train_loader))
        self.amp, self.scaler = autocast(self.device, optim.amp)
        self.loss_fn = LOSSES[optim.loss]
        self.ddp_model: torch.nn.Module = self.model
        if distributed.world_size() > 1:
            # Unused parameters exist by design (e.g. the placeholder of a modality present in every sample).
            self.ddp_model = DistributedDataParallel(self.model, find_unused_parameters=True)
        self.epoch = 0
        self.step = 0
        self.best_metric: float | None = None
        self.bad_epochs = 0
        self.stopped = False
        self.history: list[dict[str, Any]] = []

    def loader(self, fold: str, shuffle: bool = False) -> DataLoader:
        """A DataLoader over ``fold`` of this run's data."""
        return fold_loader(self.config.data, fold, self.tokenizer, self.root, shuffle=shuffle,
                           seed=self.config.seed, index=self.index)

    @property
    def finished(self) -> bool:
        """Whether every epoch ran or early stopping ended the run."""
        return self.stopped or self.epoch >= self.config.optim.epochs

    def fit(self, max_epochs_this_run: int | None = None) -> None:
        """Trains until finished, resuming from ``last.pt`` when the run directory has one.

        Args:
            max_epochs_this_run: Stop after this many epochs even if not finished (as if the process
                were killed there); calling ``fit`` again, in this or a new process, resumes.
        """
        self.resume()
        if distributed.is_main_process():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.save(self.run_dir / "config.yaml")
        ran = 0
        while not self.finished and (max_epochs_this_run is None or ran < max_epochs_this_run):
            self._epoch()
            ran += 1

    def resume(self) -> bool:
        """Loads ``last.pt`` of the run directory if there is one; returns whether it did."""
        path = self.run_dir / LAST
        if not path.is_file():
            return False
        ckpt = load_checkpoint(path, map_location=self.device)
        if _resume_key(ckpt["experiment"]) != _resume_key(self.config.to_dict()):
            raise ValueError(
                f"{path} belongs to a run with another configuration; resume it with that configuration or "
                f"train into a new output directory"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"] is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.step, self.best_metric = ckpt["epoch"], ckpt["step"], ckpt["best_metric"]
        state = ckpt["trainer"]
        self.bad_epochs, self.stopped, self.history = state["bad_epochs"], state["stopped"], state["history"]
        set_rng_state(ckpt["rng"])
        return True

    def checkpoint(self) -> dict[str, Any]:
        """The run's complete state (format in :mod:`training.checkpoint`)."""
        return {
            "config": self.fusion.to_dict(),
            "model": self.model.state_dict(),
            "experiment": self.config.to_dict(),
            "tokenizer": self.tokenizer_source,
            "text_max_length": self.config.data.text_max_length,
            "image_size": self.config.data.image_size,
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best_metric,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "trainer": {"bad_epochs": self.bad_epochs, "stopped": self.stopped, "history": self.history},
            "rng": rng_state(),
        }

    def evaluate(self, fold: str) -> dict[str, float]:
        """Metrics of the current weights on ``fold``."""
        loader = self.valid_loader if fold == "valid" else self.loader(fold)
        return score_metrics(*predict(self.model, loader, self.device, self.amp), self.config.optim.loss)

    def _epoch(self) -> None:
        started = time.perf_counter()
        self.train_loader.sampler.set_epoch(self.epoch)
        train_loss = distributed.mean(self._train_epoch())
        distributed.sync_buffers(self.model)
        self.epoch += 1
        valid = self.evaluate("valid")
        improved = self._early_stopping(valid)
        lrs = {f"lr_{g['name']}": g["lr"] for g in self.optimizer.param_groups if not g["name"].endswith("_no_decay")}
        record = {"epoch": self.epoch, "step": self.step, "train_loss": train_loss, **lrs,
                  "valid": valid, "best": improved, "seconds": round(time.perf_counter() - started, 2)}
        self.history.append(record)
        if distributed.is_main_process():
            # best.pt first: a crash between the two leaves last.pt behind, so a resume redoes the epoch.
            # When both are this state, last.pt is linked to best.pt (~0.7 s less per epoch at demo size).
            ckpt = self.checkpoint()
            if improved:
                save_checkpoint(self.run_dir / BEST, ckpt)
                copy_atomic(self.run_dir / BEST, self.run_dir / LAST)
            else:
                save_checkpoint(self.run_dir / LAST, ckpt)
            lines = (json.dumps(_finite(r)) + "\n" for r in self.history)
            write_text_atomic(self.run_dir / METRICS, "".join(lines))
            print(self._summary(record), flush=True)
        distributed.barrier()  # no process starts the next epoch before last.pt is complete

    def _train_epoch(self) -> float:
        self.ddp_model.train()
        total, count = 0.0, 0
        bar = progress(self.train_loader, desc=f"epoch {self.epoch + 1}/{self.config.optim.epochs}")
        for batch in bar:
            labels = batch["label"].to(self.device)
            with self.amp:
                score = self.ddp_model(**model_inputs(batch, self.device))["score"]
            loss = self.loss_fn(score.float(), labels)
            self.scaler.scale(loss).backward()
            if self.config.optim.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.step += 1
            total += loss.item() * len(labels)
            count += len(labels)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total / count:.3f}")
        return total / count

    def _early_stopping(self, valid: dict[str, float]) -> bool:
        """Updates the best value and patience counter; returns whether this epoch is the best so far."""
        stop = self.config.early_stopping
        value = valid[stop.metric]
        better = math.isfinite(value) and (
            self.best_metric is None
            or (value < self.best_metric if stop.resolved_mode == "min" else value > self.best_metric)
        )
        if better:
            self.best_metric, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            self.stopped = 0 < stop.patience <= self.bad_epochs
        return better

    def _summary(self, record: dict[str, Any]) -> str:
        valid, metric = record["valid"], self.config.early_stopping.metric
        shown = " ".join(f"{k}={valid[k]:.4f}" for k in dict.fromkeys(("loss", metric, "Has0_acc_2", "MAE", "Corr")))
        flags = (" *best*" if record["best"] else "") + (" (early stop)" if self.stopped else "")
        return (f"[{self.config.name}] epoch {record['epoch']}/{self.config.optim.epochs} "
                f"train_loss={record['train_loss']:.4f} valid: {shown} ({record['seconds']:.1f}s){flags}")


def _resume_key(experiment: dict[str, Any]) -> dict[str, Any]:
    """The parts of an experiment dict that determine its result."""
    key = {k: v for k, v in experiment.items() if k not in _RESUME_FREE}
    key["data"] = {k: v for k, v in experiment["data"].items() if k not in _RESUME_FREE_DATA}
    return key
