"""DistributedDataParallel: two CPU processes (gloo) under torchrun train one model and agree on its weights."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.data.mosi import build_index
from training.evaluate import evaluate
from training.loaders import dataset_root

WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).parents[2]


def test_two_process_ddp_trains_and_ranks_agree(make_config, tmp_path):
    cfg = make_config(optim={"epochs": 2})
    cfg.save(tmp_path / "tiny.yaml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tmp_path / "tiny.yaml"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    weights = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
    last = torch.load(cfg.run_dir / "last.pt", weights_only=True)
    assert all(torch.equal(t, last["model"][n]) for n, t in weights[0].items())
    # Two processes halve the steps of an epoch: DistributedSampler gives each half of the train fold.
    history = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    per_rank = math.ceil(len(build_index(dataset_root(cfg.data))["train"]) / 2)
    assert [r["step"] for r in history] == [math.ceil(per_rank / 16), 2 * math.ceil(per_rank / 16)]

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0] == reports[1] and reports[0]["world_size"] == 2
    single = evaluate(cfg.run_dir / "last.pt", "test")  # one process, every sample
    assert reports[0]["MAE"] == pytest.approx(single["MAE"], abs=1e-5)
