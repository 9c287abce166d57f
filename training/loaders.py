"""From a :class:`DataSection` to DataLoaders: dataset root (generating the sample set), tokenizer, samplers.

Training, evaluation, the study and export all build their loaders and tokenizers here.

Example:
    >>> data = ExperimentConfig.load("training/configs/base_demo.yaml").data  # doctest: +SKIP
    >>> tokenizer = load_tokenizer(resolve_tokenizer(data, fusion.text))  # doctest: +SKIP
    >>> loader = fold_loader(data, "train", tokenizer, shuffle=True, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from training.data import generated
from training.data.dataset import MosiCollator, MosiDataset
from training.data.frames import FrameSampling
from training.data.mosi import FOLDS, build_index
from training.distributed import barrier, is_main_process, rank, world_size
from training.experiment import MODALITIES, DataSection
from training.models import TextBackboneConfig
from training.models.text_encoder import default_text_source

GENERATED = "generated"
TOKENIZER_FILE = "tokenizer.json"


def dataset_root(data: DataSection) -> Path:
    """The MOSI root to read: ``data.root``; ``"generated"`` is built into the cache once.

    Under ``torchrun`` the main process generates while the others wait at a barrier.
    """
    if data.root != GENERATED:
        return Path(data.root).expanduser()
    g = data.generated
    # The style is in the name so that a cache generated before styles existed (varied faces) is not
    # mistaken for the clean default.
    path = data.resolved_cache_dir / "generated" / f"seed{g.seed}_scale{g.scale:g}_px{g.image_size}_{g.style}"
    if is_main_process() and not (path / generated.MANIFEST_FILENAME).is_file():
        generated.generate(path, seed=g.seed, scale=g.scale, image_size=g.image_size, style=g.style)
    barrier()
    return path


def resolve_tokenizer(data: DataSection, text: TextBackboneConfig) -> str | None:
    """Where the tokenizer comes from: a ``tokenizer.json`` path or a hub name; ``None`` without text.

    A directory (``data.tokenizer`` or the text backbone's) is resolved to its ``tokenizer.json``,
    so the checkpoint names the one file the deployment side needs.
    """
    if "text" not in data.modalities:
        return None
    source = data.tokenizer or text.name or default_text_source()
    path = Path(source).expanduser()
    if path.is_dir() and (path / TOKENIZER_FILE).is_file():
        return str(path / TOKENIZER_FILE)
    if path.is_dir() or path.suffix == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"no {TOKENIZER_FILE} at {path}; set data.tokenizer to a tokenizer.json file")
        return str(path)
    return source  # a hub name, for transformers


def load_tokenizer(source: str | None) -> Any:
    """A ``tokenizers.Tokenizer`` for a ``tokenizer.json`` path, a transformers tokenizer for a hub name."""
    if source is None:
        return None
    if source.endswith(".json"):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(source)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


def bundle_tokenizer(data: DataSection, text: TextBackboneConfig) -> Any:
    """The tokenizer a bundle ships: a ``tokenizer.json`` path, or a hub tokenizer's ``tokenizers`` backend.

    Resolved as if the data had text, so an image-only model's bundle still has one (a deployment may
    still send text).
    """
    source = resolve_tokenizer(dataclasses.replace(data, modalities=list(MODALITIES)), text)
    return source if source.endswith(".json") else load_tokenizer(source).backend_tokenizer


def frame_cache_dir(data: DataSection, root: Path) -> Path:
    """Decoded-frame cache of one dataset root (segment ids repeat across datasets, so one folder per root)."""
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return data.resolved_cache_dir / "frames" / digest


def fold_loader(
    data: DataSection,
    fold: str,
    tokenizer: Any,
    root: Path,
    *,
    shuffle: bool,
    seed: int,
    index: dict[str, list] | None = None,
) -> DataLoader:
    """A DataLoader over one fold.

    Training (``shuffle=True``) uses a :class:`DistributedSampler` also with one process: its order is
    a pure function of ``(seed, epoch)`` (``loader.sampler.set_epoch``), so a resumed run sees the
    same batches as an uninterrupted one. Evaluation gives each process every ``world_size``-th
    sample, unpadded; :func:`training.distributed.gather` puts the predictions back together.
    """
    if fold not in FOLDS:
        raise ValueError(f"fold is {fold!r}, expected one of {FOLDS}")
    if index is None:
        index = build_index(root, modalities=data.modalities)
    if not index[fold]:
        raise ValueError(f"fold {fold!r} of {root} has no samples")
    size = (data.image_size, data.image_size)
    sampling = FrameSampling(mode=data.frame_sampling, num_frames=data.num_frames, size=size)
    dataset = MosiDataset(index[fold], sampling, cache_dir=frame_cache_dir(data, root))
    collate = MosiCollator(tokenizer, max_length=data.text_max_length, image_size=size if "image" in data.modalities
                           else None)
    common = dict(batch_size=data.batch_size, collate_fn=collate, num_workers=data.workers,
                  persistent_workers=data.workers > 0)
    if shuffle:
        sampler = DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)
        return DataLoader(dataset, sampler=sampler, **common)
    shard = Subset(dataset, range(rank(), len(dataset), world_size()))
    return DataLoader(shard, shuffle=False, **common)


def export_loaders(data: DataSection, tokenizer: Any, seed: int) -> tuple[DataLoader, DataLoader]:
    """What an export reads: the train fold, shuffled by ``seed`` (int8 calibration takes its first
    samples), and the test fold (every precision variant is scored on it)."""
    root = dataset_root(data)
    index = build_index(root, modalities=data.modalities)
    calibration = fold_loader(data, "train", tokenizer, root, shuffle=True, seed=seed, index=index)
    evaluation = fold_loader(data, "test", tokenizer, root, shuffle=False, seed=seed, index=index)
    return calibration, evaluation


def model_inputs(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor | None]:
    """The ``FusionModel.forward`` arguments of a collated batch; a modality the batch lacks is ``None``."""
    return {key: batch[key].to(device, non_blocking=True) if key in batch else None
            for key in ("input_ids", "attention_mask", "image", "presence")}
