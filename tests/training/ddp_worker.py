"""Run by test_distributed.py under ``torchrun``: trains a config, then saves this rank's weights and test metrics.

Usage: ``torchrun --nproc_per_node 2 ddp_worker.py CONFIG OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from training import distributed
from training.evaluate import evaluate
from training.experiment import ExperimentConfig
from training.trainer import Trainer


def main(config_path: str, out: str) -> None:
    trainer = Trainer(ExperimentConfig.load(config_path))
    trainer.fit()
    rank = distributed.rank()
    torch.save(trainer.model.state_dict(), Path(out) / f"rank{rank}.pt")
    # Sharded evaluation: each rank scores every world_size-th sample, the scores are gathered.
    metrics = evaluate(trainer.run_dir / "last.pt", "test")
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({"world_size": distributed.world_size(), **metrics}))
    distributed.teardown()


if __name__ == "__main__":
    main(*sys.argv[1:])
