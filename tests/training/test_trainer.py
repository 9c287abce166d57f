"""Tests of the trainer: a short run lowers the loss, checkpoints are atomic, a killed run resumes exactly."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from training import checkpoint as ckpt_io
from training.evaluate import evaluate
from training.evaluate import main as evaluate_main
from training.experiment import OptimSection
from training.models import create_model
from training.optim import build_optimizer, build_scheduler
from training.train import train
from training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_short_run_lowers_the_loss_and_writes_the_run_files(make_config, tmp_path):
    cfg = make_config(optim={"epochs": 4})
    result = train(cfg)
    run = cfg.run_dir
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "metrics.jsonl", "config.yaml", "result.json"}
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"], history
    assert json.loads((run / "result.json").read_text())["test"]["MAE"] == pytest.approx(result["test"]["MAE"])
    assert result["best_epoch"] == min(history, key=lambda r: r["valid"]["MAE"])["epoch"]
    assert result["complexity"]["total"]["params"] == sum(p.numel() for p in Trainer(cfg).model.parameters())

    best = ckpt_io.load_checkpoint(run / "best.pt")
    assert best["epoch"] == result["best_epoch"] and best["tokenizer"].endswith("tokenizer.json")
    assert (best["text_max_length"], best["image_size"]) == (16, 32)
    # The CLI scores the best checkpoint like the in-process call did, and writes the report.
    evaluate_main(["--checkpoint", str(run / "best.pt"), "--fold", "test", "--out", str(tmp_path / "eval.json")])
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["fold"] == "test" and report["metrics"]["MAE"] == pytest.approx(result["test"]["MAE"])


def test_killed_run_resumes_to_the_same_weights(make_config):
    # Dropout everywhere, so the generator states matter; modality dropout draws from them too.
    changes = dict(model={"name": "late", "overrides": {**make_config().model.overrides, "dropout": 0.3,
                                                        "text_dropout": 0.2}},
                   optim={"epochs": 3, "warmup_ratio": 0.3})
    whole = make_config(out="whole", **changes)
    train(whole)
    parts = make_config(out="parts", **changes)
    assert train(parts, max_epochs_this_run=1) == {"name": parts.name, "finished": False, "epoch": 1}
    assert train(parts, max_epochs_this_run=1)["epoch"] == 2
    train(parts)  # a fresh Trainer, as after a restart: everything comes from last.pt
    a = ckpt_io.load_checkpoint(whole.run_dir / "last.pt")
    b = ckpt_io.load_checkpoint(parts.run_dir / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["step"] == b["step"] and a["best_metric"] == b["best_metric"]
    lines = [(whole.run_dir / "metrics.jsonl").read_text(), (parts.run_dir / "metrics.jsonl").read_text()]
    drop_times = [[{k: v for k, v in json.loads(r).items() if k != "seconds"} for r in t.splitlines()] for t in lines]
    assert drop_times[0] == drop_times[1]


def test_resuming_with_another_config_is_refused(make_config):
    train(make_config(optim={"epochs": 2}), max_epochs_this_run=1)
    with pytest.raises(ValueError, match="another configuration"):
        train(make_config(optim={"epochs": 2, "lr_head": 1e-2}))


def test_early_stopping_ends_the_run(make_config):
    # A learning rate this small changes nothing, so loss never improves after the first epoch.
    cfg = make_config(optim={"epochs": 6, "lr_head": 1e-12, "lr_backbone": 0.0},
                      early_stopping={"metric": "Has0_acc_2", "patience": 1})
    result = train(cfg)
    assert result["stopped_early"] and result["epochs_run"] == 2 and result["best_epoch"] == 1


def test_unimodal_runs_leave_the_other_modality_out(make_config):
    trainer = Trainer(make_config(data={"modalities": ["text"]}))
    batch = next(iter(trainer.train_loader))
    assert "image" not in batch and not batch["presence"][:, 1].any()
    assert math.isfinite(trainer.evaluate("valid")["MAE"])
    image_only = Trainer(make_config(out="image", data={"modalities": ["image"]}))
    assert image_only.tokenizer_source is None and "input_ids" not in next(iter(image_only.train_loader))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    good = {key: 0 for key in ckpt_io.REQUIRED_KEYS}
    ckpt_io.save_checkpoint(path, good)

    def crash(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt_io.save_checkpoint(path, good)
    assert ckpt_io.load_checkpoint(path) == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    with pytest.raises(ValueError, match="lacks"):
        ckpt_io.save_checkpoint(path, {"model": {}})


class _OpensAFile:
    """Pickles as a call to ``open(path, "w")``: what a checkpoint carrying code could do when unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_load_checkpoint_refuses_garbage_and_pickled_code_with_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path / 'none.pt'} \\(expected"):
        ckpt_io.load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"config": {}, "model": {}, "hook": _OpensAFile(tmp_path / "ran")}, tmp_path / "code.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    for name in ("garbage.pt", "empty.pt", "code.pt"):
        with pytest.raises(ckpt_io.CheckpointError, match=f"{tmp_path / name} is not a readable fusionrt checkpoint "
                           r"\(.+\); expected a torch.save file of a dict with \['config', 'model'"):
            ckpt_io.load_checkpoint(tmp_path / name, required=ckpt_io.MODEL_KEYS)
    assert not (tmp_path / "ran").exists()  # the pickled call never ran
    with pytest.raises(ckpt_io.CheckpointError, match="list.pt holds a list, expected a torch.save file of a dict"):
        ckpt_io.load_checkpoint(tmp_path / "list.pt")
    torch.save({"config": {}, "model": {}}, tmp_path / "model_only.pt")
    with pytest.raises(ckpt_io.CheckpointError, match=r"model_only.pt is not a fusionrt training checkpoint: "
                       r"it lacks \['experiment', 'tokenizer'"):
        ckpt_io.load_checkpoint(tmp_path / "model_only.pt")
    with pytest.raises(ckpt_io.CheckpointError, match="garbage.pt is not a readable"):
        evaluate(tmp_path / "garbage.pt", "test")  # before any data or model is touched


def test_older_checkpoint_files_still_load(tmp_path):
    """What export used to read ({config, model}, and files in torch's pre-1.6 format) loads through the
    one safe loader, and rebuilds the same model."""
    torch.manual_seed(0)
    model = create_model("late", operator="sum", hidden_size=32, fusion_heads=2,
                         text=dict(pretrained=False, overrides=dict(hidden_size=32, num_hidden_layers=1,
                                                                    num_attention_heads=2, intermediate_size=64)),
                         vision=dict(name="mobilenetv2_035", pretrained=False, image_size=32))
    old = {"config": model.config.to_dict(), "model": model.state_dict(), "model_name": "late_tiny"}
    torch.save(old, tmp_path / "zip.pt")
    torch.save(old, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("zip.pt", "legacy.pt"):
        ckpt = ckpt_io.load_checkpoint(tmp_path / name, required=ckpt_io.MODEL_KEYS)
        assert ckpt["model_name"] == "late_tiny"
        rebuilt = ckpt_io.model_from_checkpoint(ckpt)
        for key, value in model.state_dict().items():
            assert torch.equal(rebuilt.state_dict()[key], value), key
        data = ckpt_io.data_from_checkpoint(ckpt, root="somewhere", text_max_length=12, batch_size=None)
        assert (data.root, data.text_max_length, data.image_size, data.batch_size) == ("somewhere", 12, 32, 32)


def test_rng_state_round_trips():
    state = ckpt_io.rng_state()
    first = (torch.rand(3), random.random(), np.random.rand())
    ckpt_io.set_rng_state(state)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


def test_optimizer_groups_and_schedule():
    model = create_model("late", operator="sum", hidden_size=32, fusion_heads=2,
                         text=dict(pretrained=False, overrides=dict(hidden_size=32, num_hidden_layers=1,
                                                                    num_attention_heads=2, intermediate_size=64)),
                         vision=dict(name="mobilenetv2_035", pretrained=False, image_size=32))
    optim = OptimSection(lr_backbone=1e-4, lr_head=1e-3, warmup_ratio=0.2, schedule="cosine")
    optimizer = build_optimizer(model, optim)
    lrs = {g["name"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert lrs == {"text": (1e-4, 0.01), "text_no_decay": (1e-4, 0.0), "vision": (1e-4, 0.01),
                   "vision_no_decay": (1e-4, 0.0), "head": (1e-3, 0.01), "head_no_decay": (1e-3, 0.0)}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    scheduler = build_scheduler(optimizer, optim, total_steps=10)
    vision = next(g for g in optimizer.param_groups if g["name"] == "vision")
    factors = []
    for _ in range(10):
        factors.append(vision["lr"] / 1e-4)
        optimizer.step()
        scheduler.step()
    assert factors[0] < factors[1] < factors[2] == pytest.approx(1.0)  # two warm-up steps, then the peak
    assert all(a > b for a, b in zip(factors[2:], factors[3:]))
    split = build_optimizer(model, OptimSection(lr_backbone=1e-4, lr_text=2e-5, lr_vision=3e-3))
    assert {g["name"]: g["lr"] for g in split.param_groups if not g["name"].endswith("_no_decay")} == {
        "text": 2e-5, "vision": 3e-3, "head": 1e-3}
    frozen_text = build_optimizer(model, OptimSection(lr_backbone=1e-4, lr_text=0.0))
    assert {g["name"] for g in frozen_text.param_groups} == {"vision", "vision_no_decay", "head", "head_no_decay"}
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert all(p.requires_grad for p in model.vision_encoder.parameters())
    frozen = build_optimizer(model, OptimSection(lr_backbone=0.0))
    assert {g["name"] for g in frozen.param_groups} == {"head", "head_no_decay"}
    assert not any(p.requires_grad for p in model.vision_encoder.parameters())


def test_evaluate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="fold is 'dev'"):
        evaluate(tmp_path / "best.pt", "dev")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        evaluate(tmp_path / "best.pt", "test")
