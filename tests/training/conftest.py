"""Trainer test fixtures: tiny experiments (a 1-layer random BERT, a small MobileNetV2, 32 px images)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from training.experiment import ExperimentConfig

# vocab_size stays MiniLM's (30522): the texts are tokenised with the bundled MiniLM tokenizer.json.
TINY_TEXT = dict(name=None, pretrained=False, tap_layer=1,
                 overrides=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
TINY_VISION = dict(name="mobilenetv2_035", pretrained=False, tap=2)
TINY = {
    "seed": 0,
    "model": {"name": "late", "overrides": {"hidden_size": 32, "fusion_heads": 2, "operator": "sum",
                                            "text": TINY_TEXT, "vision": TINY_VISION}},
    "data": {"root": "generated", "generated": {"seed": 0, "scale": 0.05, "image_size": 32},
             "text_max_length": 16, "image_size": 32, "batch_size": 16},
    "optim": {"epochs": 3, "lr_backbone": 1e-3, "lr_head": 3e-3, "warmup_ratio": 0.0},
    "early_stopping": {"metric": "MAE", "patience": 0},
}


@pytest.fixture(scope="session")
def trainer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache (generated dataset, decoded frames) shared by every trainer test of the session."""
    return tmp_path_factory.mktemp("fusionrt-cache")


@pytest.fixture
def one_thread() -> Any:
    """Runs the test on one intra-op thread: tiny ops only lose to thread hand-offs, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_config(trainer_cache: Path, tmp_path: Path) -> Callable[..., ExperimentConfig]:
    """``make_config(out="run", **sections)``: the tiny experiment with sections merged in, run dir under tmp_path."""

    def make(out: str = "run", **sections: Any) -> ExperimentConfig:
        return tiny_config(trainer_cache, tmp_path / out, **sections)

    return make


def tiny_config(cache_dir: Path, out: Path, **sections: Any) -> ExperimentConfig:
    """The tiny experiment with ``sections`` merged into it (one level deep), writing to ``out``."""
    data = copy.deepcopy(TINY)
    for name, changes in sections.items():
        if isinstance(changes, dict):
            data[name] = {**data.get(name, {}), **changes}
        else:
            data[name] = changes
    data["data"]["cache_dir"] = str(cache_dir)
    data["output_dir"] = str(out)
    return ExperimentConfig.from_dict(data)
