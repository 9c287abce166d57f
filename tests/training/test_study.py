"""The study pipeline on a micro study: two tiny models, one epoch, a few latency repeats."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("onnxruntime")
pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402

from fusionrt.bundle import RUNTIMES  # noqa: E402
from training import report, study  # noqa: E402
from training.study_config import StudyConfig  # noqa: E402

from conftest import TINY  # noqa: E402  (tests/training is on sys.path)

# tensorrt cannot run here and int8 is not exported (it costs seconds; test_export covers it): both are
# listed as skipped with the reason.
TARGETS = [{"backend": "tensorrt", "precision": "fp32"}, {"backend": "onnxruntime", "precision": "fp32"},
           {"backend": "onnxruntime", "precision": "int8"}, {"backend": "torch", "precision": "fp32"}]


def write_micro_study(root: Path, cache: Path) -> Path:
    """A study of the tiny late model and its text-only baseline, 1 epoch, into ``root``."""
    experiment = copy.deepcopy(TINY)
    experiment["optim"]["epochs"] = 1
    experiment["data"]["cache_dir"] = str(cache)
    (root / "tiny_late.yaml").write_text(yaml.safe_dump(experiment))
    config = {
        "name": "micro",
        "experiments": ["tiny_late.yaml",
                        {"config": "tiny_late.yaml", "name": "tiny_text", "overrides": {"data": {"modalities": ["text"]}}}],
        "export": {"precisions": ["fp32"]},
        "latency": {"targets": TARGETS, "warmup": 2, "repeats": 5, "samples": 4, "concurrency_repeats": 3},
        # Level 0 of each corruption must reproduce the clean score; one real level each.
        "robustness": {"noise": [0.0, 0.3], "blur": [0.0, 2.0], "word_dropout": [0.0, 0.6], "seed": 0},
        "work_dir": str(root / "work"),
        "report_dir": str(root / "report"),
    }
    path = root / "study_micro.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory, trainer_cache: Path) -> Path:
    """The micro study, run once; its config file."""
    path = write_micro_study(tmp_path_factory.mktemp("study"), trainer_cache)
    assert study.main(["--config", str(path)]) == 0
    return path


def test_report_has_every_model_and_column(micro: Path) -> None:
    out = micro.parent / "report"
    text = (out / report.REPORT_FILE).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| model | strategy"))
    for column in ("params (M)", "GFLOPs", "Acc-2", "F1", "MAE", "Corr", "onnxruntime fp32 p50/p90/p99 ms",
                   "torch fp32 p50/p90/p99 ms"):
        assert column in header
    assert "| tiny_late | late |" in text and "| tiny_text | text only |" in text
    results = json.loads((out / report.RESULTS_FILE).read_text())
    assert [m["name"] for m in results["models"]] == ["tiny_late", "tiny_text"]
    late = results["models"][0]
    assert late["params"] > 0 and late["flops"] > 0
    assert set(late["targets"]["onnxruntime fp32"]["latency"]) == {"p50_ms", "p90_ms", "p99_ms", "repeats"}
    assert "skipped" in late["targets"]["tensorrt fp32"]  # no TensorRT runtime here: listed with the reason
    assert "no int8 variant" in late["targets"]["onnxruntime int8"]["skipped"]
    assert "not measured: onnxruntime int8" in text
    assert (out / report.MODELS_DIR / "tiny_text.json").is_file()
    with Image.open(out / report.FIGURE_FILE) as image:
        image.verify()
        assert image.format == "PNG"


def test_late_fusion_deploys_the_faster_branch_execution_and_reports_it(micro: Path) -> None:
    from fusionrt.backends import RunOptions
    from fusionrt.backends.onnxruntime.execution import recorded_mode

    out = micro.parent / "report"
    late, text_only = json.loads((out / report.RESULTS_FILE).read_text())["models"]
    assert "concurrency" not in text_only  # one modality: one branch, nothing to run concurrently
    assert set(late["concurrency"]) == {"onnxruntime fp32"}  # ONNX Runtime targets that ran, only
    chosen = late["concurrency"]["onnxruntime fp32"]
    modes = chosen["latency_ms"]
    assert set(modes) == {"sequential", "parallel", "branches"} and chosen["slower_branch_ms"] > 0
    assert chosen["mode"] == "sequential" or modes[chosen["mode"]] < 0.95 * modes["sequential"]
    # The bundle remembers the choice, so the session the study timed (execution="auto") ran it.
    assert recorded_mode(late["bundle"], RunOptions(device="cpu", precision="fp32")) == chosen["mode"]
    text = (out / report.REPORT_FILE).read_text()
    section = text.split("## Concurrent branches", 1)[1]
    assert f"| tiny_late | onnxruntime fp32 | {modes['sequential']:.2f} |" in section
    assert "| tiny_text |" not in section


def test_rerun_continues_where_the_study_stopped(micro: Path) -> None:
    work = micro.parent / "work"
    kept = [work / name / part for name in ("tiny_late", "tiny_text") for part in ("run/best.pt", "bundle/model.onnx")]
    kept.append(work / "tiny_late" / study.MEASURED)
    before = [path.stat().st_mtime_ns for path in kept]
    # As if the first run had been interrupted while measuring the second model.
    (work / "tiny_text" / study.MEASURED).unlink()
    assert study.main(["--config", str(micro)]) == 0
    assert [path.stat().st_mtime_ns for path in kept] == before
    assert (work / "tiny_text" / study.MEASURED).is_file()
    results = json.loads((micro.parent / "report" / report.RESULTS_FILE).read_text())
    assert [m["name"] for m in results["models"]] == ["tiny_late", "tiny_text"]


def test_a_bundle_is_exported_again_only_for_a_runtime_it_lacks(micro: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = StudyConfig.load(micro)
    experiment = config.experiment_config("tiny_late")
    bundle = experiment.run_dir.parent / study.BUNDLE_DIR
    result = json.loads((experiment.run_dir / study.RESULT).read_text())
    exported = []
    monkeypatch.setattr(study, "export_bundle", lambda *args, settings, **kwargs: exported.append(settings))
    study.export_model(experiment, result, dataclasses.replace(config.export, targets=["onnxruntime"]), bundle)
    assert exported == []  # the study's bundle serves every runtime, ONNX Runtime among them
    read = study.read_manifest
    monkeypatch.setattr(study, "read_manifest", lambda path: dataclasses.replace(read(path), targets=["onnxruntime"]))
    study.export_model(experiment, result, config.export, bundle)
    assert [settings.targets for settings in exported] == [RUNTIMES]
    assert dataclasses.replace(config.export, targets=["torch", "onnxruntime"]).settings(8).targets == (
        "onnxruntime", "torch")


def test_a_bundle_is_exported_again_when_its_calibration_changed(micro: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = StudyConfig.load(micro)
    experiment = config.experiment_config("tiny_late")
    bundle = experiment.run_dir.parent / study.BUNDLE_DIR
    record = experiment.run_dir.parent / study.EXPORTED
    result = json.loads((experiment.run_dir / study.RESULT).read_text())
    assert json.loads(record.read_text()) == {"calibration_method": config.export.calibration_method,
                                              "calibration_samples": config.export.calibration_samples}
    exported = []
    monkeypatch.setattr(study, "export_bundle", lambda *args, settings, **kwargs: exported.append(settings))
    study.export_model(experiment, result, config.export, bundle)
    assert exported == []  # as the study exported it
    other_method = next(m for m in ("minmax", "percentile") if m != config.export.calibration_method)
    for done, changed in enumerate(({"calibration_samples": config.export.calibration_samples + 1},
                                    {"calibration_method": other_method}), start=1):
        options = dataclasses.replace(config.export, **changed)
        study.export_model(experiment, result, options, bundle)
        assert len(exported) == done
        assert (exported[-1].calibration_method, exported[-1].calibration_samples) == (
            options.calibration_method, options.calibration_samples)
        study.export_model(experiment, result, options, bundle)  # recorded now: not again
        assert len(exported) == done
    record.write_text("{not json")  # a torn or foreign record: export again rather than trust it
    study.export_model(experiment, result, options, bundle)
    assert len(exported) == 3


def test_train_experiment_reuses_the_run_the_study_trained(micro: Path) -> None:
    from training import train

    best = micro.parent / "work" / "tiny_text" / "run" / "best.pt"
    before = best.stat().st_mtime_ns
    result = train.train(micro, experiment="tiny_text")  # the study's experiment, resolved as the study does
    assert result["finished"] and Path(result["run_dir"]) == best.parent
    assert result["modalities"] == ["text"]
    assert best.stat().st_mtime_ns == before  # the same config, so the finished run is not trained again


def test_pareto_front() -> None:
    points = [(1.0, 0.70), (2.0, 0.80), (3.0, 0.75), (2.0, 0.78), (0.5, 0.60), (4.0, 0.85), (4.0, 0.85)]
    # (3, .75) and (2, .78) are beaten by (2, .80); the two identical points do not beat each other.
    assert report.pareto_front(points) == [4, 0, 1, 5, 6]
    assert report.pareto_front([]) == []


@pytest.mark.parametrize(("content", "message"), [
    ("experiments: []\n", "experiments is empty"),
    ("experiments: [missing.yaml]\n", "experiment config not found"),
    ("experiments: [a.yaml]\nlatency: {targets: [{backend: tpu}]}\n", "expected one of"),
    ("experiments: [a.yaml]\nexport: {precisions: [fp8]}\n", "export.precisions"),
    ("experiments: [a.yaml]\nexport: {targets: [tflite]}\n", "export.targets"),
    ("experiment: [a.yaml]\n", "unknown fields ['experiment']"),
])
def test_bad_study_config_says_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                             message: str) -> None:
    path = tmp_path / "study_bad.yaml"
    path.write_text(content)
    assert study.main(["--config", str(path)]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("typo", "message"), [
    ({"text": {"overrides": {"num_hidden_layer": 1}}},
     "model.overrides.text.overrides has an unknown key 'num_hidden_layer'"),
    ({"vision": {"overrides": {"drop_rat": 0.1}}}, "model.overrides.vision.overrides has an unknown key 'drop_rat'"),
])
def test_a_typo_in_the_last_experiment_fails_before_anything_trains(
        tmp_path: Path, trainer_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        typo: dict, message: str) -> None:
    path = write_micro_study(tmp_path, trainer_cache)
    config = yaml.safe_load(path.read_text())
    config["experiments"] += [{"config": "tiny_late.yaml", "name": f"tiny_late_{i}"} for i in range(2, 9)]
    config["experiments"].append({"config": "tiny_late.yaml", "name": "tiny_typo", "overrides": {"model": {"overrides": typo}}})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = []
    monkeypatch.setattr(study, "dataset_root", lambda data: started.append("data"))
    monkeypatch.setattr(study, "train", lambda config: started.append(config.name))
    assert study.main(["--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"experiment 'tiny_typo': {message}" in err and "did you mean" in err
    assert started == [] and not (tmp_path / "work").exists()


def test_robustness_is_scored_through_the_deployed_session(micro: Path) -> None:
    out = micro.parent / "report"
    late, text_only = json.loads((out / report.RESULTS_FILE).read_text())["models"]
    robust = late["robustness"]
    assert robust["target"] == "onnxruntime fp32"  # the first target that runs: the one the model deploys with
    scores = {label: c.get("metrics") for label, c in robust["conditions"].items()}
    assert list(scores) == ["both", "text only", "image only", "image noise 0", "image noise 0.3", "image blur 0",
                            "image blur 2", "word dropout 0", "word dropout 0.6"]
    clean = late["targets"]["onnxruntime fp32"]["metrics"]
    for label in ("both", "image noise 0", "image blur 0", "word dropout 0"):
        assert scores[label]["MAE"] == pytest.approx(clean["MAE"], abs=1e-6), label  # level 0 is the clean fold
    for label in ("text only", "image only", "image noise 0.3", "image blur 2", "word dropout 0.6"):
        assert scores[label]["MAE"] != pytest.approx(clean["MAE"], abs=1e-6), label
    # The text-only baseline has no image: image conditions leave its score as it is, image only leaves it nothing.
    text_scores = text_only["robustness"]["conditions"]
    assert text_scores["image only"] == {"kind": "image only", "level": 0.0, "skipped": "the model has no image input"}
    text_clean = text_only["targets"]["onnxruntime fp32"]["metrics"]["MAE"]
    for label in ("text only", "image noise 0.3", "image blur 2"):
        assert text_scores[label]["metrics"]["MAE"] == pytest.approx(text_clean, abs=1e-6)
    assert text_scores["word dropout 0.6"]["metrics"]["MAE"] != pytest.approx(text_clean, abs=1e-6)


def test_a_missing_modality_scores_as_the_torch_model_without_it(micro: Path) -> None:
    """ONNX Runtime's absent-modality path against the trained PyTorch model given ``None`` for it."""
    import torch

    from training.checkpoint import load_checkpoint, model_from_checkpoint
    from training.loaders import model_inputs
    from training.metrics import mosi_metrics
    from training.robustness import IMAGE_ONLY, TEXT_ONLY, Condition, condition_batches
    from training.study_config import StudyConfig

    late = json.loads((micro.parent / "report" / report.RESULTS_FILE).read_text())["models"][0]
    config = StudyConfig.load(micro).experiment_config("tiny_late")
    model = model_from_checkpoint(load_checkpoint(config.run_dir / "best.pt")).eval()
    loader, _ = study._test_loader(config, 8)
    for kind in (TEXT_ONLY, IMAGE_ONLY):
        preds, labels = [], []
        with torch.no_grad():
            for batch in condition_batches(loader, Condition(kind), seed=0):
                inputs = model_inputs(batch, torch.device("cpu"))
                assert (inputs["image"] is None) == (kind == TEXT_ONLY)  # the absent input is None to torch
                preds.append(model(**inputs)["score"].numpy())
                labels.append(batch["label"].numpy())
        expected = mosi_metrics(np.concatenate(preds), np.concatenate(labels))
        got = late["robustness"]["conditions"][kind]["metrics"]
        assert got["MAE"] == pytest.approx(expected["MAE"], abs=1e-5) and got["Corr"] == pytest.approx(expected["Corr"], abs=1e-4)


def test_report_has_the_robustness_table_and_plot(micro: Path) -> None:
    from training.report_robustness import ROBUSTNESS_FIGURE, plot_robustness

    out = micro.parent / "report"
    models = json.loads((out / report.RESULTS_FILE).read_text())["models"]
    text = (out / report.REPORT_FILE).read_text()
    section = text.split("## Robustness", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in section.splitlines() if line.startswith("| model |"))
    assert header == ("| model | strategy | both | text only | image only | image noise 0 | image noise 0.3 | "
                      "image blur 0 | image blur 2 | word dropout 0 | word dropout 0.6 |")
    late = models[0]["robustness"]["conditions"]
    row = next(line for line in section.splitlines() if line.startswith("| tiny_late |"))
    assert row.split(" | ")[2:4] == [f"{late['both']['metrics']['Has0_acc_2']:.4f}",
                                     f"{late['text only']['metrics']['Has0_acc_2']:.4f}"]
    assert "| tiny_text | text only |" in section and " | – | " in section  # image only: no input left
    with Image.open(out / ROBUSTNESS_FIGURE) as image:
        image.verify()
        assert image.format == "PNG"
    lines = plot_robustness("micro", models, micro.parent / "again.png")
    assert list(lines) == ["tiny_late", "tiny_text"]  # one line per model
    assert lines["tiny_late"][1] == pytest.approx(100 * late["text only"]["metrics"]["Has0_acc_2"])
    assert np.isnan(lines["tiny_text"][2])  # a gap where the condition leaves the model no input


def test_seeds_train_every_experiment_per_seed_and_report_mean_and_std(
        tmp_path: Path, trainer_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``seeds`` runs each experiment once per seed (its own run directory and seed); the report groups
    the seeds: mean ± sample std in the table, error bars (std) in Figure 1. The pipeline's stages are
    replaced by records whose accuracy depends on the seed, so the aggregation is checked on known values."""
    path = write_micro_study(tmp_path, trainer_cache)
    config = yaml.safe_load(path.read_text())
    config["seeds"] = [0, 1, 2]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    accuracy = {s: v for s, v in zip((0, 1, 2), np.random.default_rng().uniform(0.5, 0.9, 3), strict=True)}
    latency = {s: v for s, v in zip((0, 1, 2), np.random.default_rng().uniform(1.0, 3.0, 3), strict=True)}
    trained = []

    def measure(config, result, bundle, latency_section, robustness, group):  # noqa: ANN001, ANN202
        metrics = {"Has0_acc_2": accuracy[config.seed], "Has0_F1_score": 0.5, "MAE": 1.0, "Corr": 0.1}
        return {"name": config.name, "group": group, "seed": config.seed, "strategy": "late", "params": 1e6,
                "flops": 1e9, "export_issue": None, "robustness": {"target": "onnxruntime fp32", "conditions": {
                    "both": {"kind": "both", "level": 0.0, "metrics": metrics}}},
                "targets": {"onnxruntime fp32": {"metrics": metrics, "latency": {
                    "p50_ms": latency[config.seed], "p90_ms": 4.0, "p99_ms": 5.0, "repeats": 5}}}}

    monkeypatch.setattr(study, "dataset_root", lambda data: None)
    monkeypatch.setattr(study, "train_model", lambda config: trained.append(
        (config.name, config.seed, config.run_dir.name, config.run_dir.parent.name)) or {})
    monkeypatch.setattr(study, "export_model", lambda *args: None)
    monkeypatch.setattr(study, "measure_model", measure)
    assert study.main(["--config", str(path)]) == 0
    assert trained == [(f"{name}_seed{s}", s, "run", f"{name}_seed{s}") for name in ("tiny_late", "tiny_text")
                       for s in (0, 1, 2)]
    out = tmp_path / "report"
    acc = np.array([accuracy[s] for s in (0, 1, 2)])
    text = (out / report.REPORT_FILE).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| model | strategy"))
    assert header.startswith("| model | strategy | seeds |")
    row = next(line for line in text.splitlines() if line.startswith("| tiny_late |"))
    assert f"| 3 |" in row and f"| {acc.mean():.4f} ± {acc.std(ddof=1):.4f} |" in row
    assert f"| {np.mean([latency[s] for s in (0, 1, 2)]):.2f} / 4.00 / 5.00 |" in row
    robustness_row = text.split("## Robustness", 1)[1]
    assert f"| tiny_late | late | {acc.mean():.4f} ± {acc.std(ddof=1):.4f} |" in robustness_row
    results = json.loads((out / report.RESULTS_FILE).read_text())
    assert len(results["models"]) == 6  # every seed's record is kept
    point = next(p for p in results["pareto"] if p["model"] == "tiny_late")
    assert point["seeds"] == 3 and point["accuracy"] == pytest.approx(acc.mean())
    assert point["accuracy_std"] == pytest.approx(acc.std(ddof=1))
    assert point["latency_std"] == pytest.approx(np.std([latency[s] for s in (0, 1, 2)], ddof=1))
    with Image.open(out / report.FIGURE_FILE) as image:
        image.verify()


def test_one_seed_has_no_spread(tmp_path: Path) -> None:
    metrics = {"Has0_acc_2": 0.75, "Has0_F1_score": 0.5, "MAE": 1.0, "Corr": 0.1}
    model = {"name": "m", "strategy": "decision", "params": 1e6, "flops": 1e9, "targets": {
        "onnxruntime fp32": {"metrics": metrics, "latency": {"p50_ms": 2.0, "p90_ms": 3.0, "p99_ms": 4.0}}}}
    (point,) = report.figure_points([model])
    assert point["accuracy_std"] is None and point["latency_std"] is None and point["seeds"] == 1
    text = report.markdown("s", [model])
    assert "| m | decision | 1.00 | 1.000 | 0.7500 |" in text and "±" not in text and "| seeds |" not in text
    assert report.mean_std([0.7]) == (0.7, None)


def test_study_configs_have_decision_fusion_dropout_variants_and_seeds() -> None:
    from training.study_config import StudyConfig

    configs = Path(study.__file__).parent / "configs"
    demo = StudyConfig.load(configs / "study_demo.yaml")
    full = StudyConfig.load(configs / "study_full.yaml")
    assert demo.seeds is None and full.seeds == [0, 1, 2]
    for config in (demo, full):
        robustness = config.robustness
        assert robustness.enabled and all(len(levels) == 3 for levels in
                                          (robustness.noise, robustness.blur, robustness.word_dropout))
    for config, prefix in ((demo, "demo_"), (full, "")):
        runs = {group: c.fusion_config() for group, c in config.experiment_groups()}
        assert runs[f"{prefix}decision_mobilenetv2"].strategy == "decision"
        for strategy in ("late", "early"):
            fusion = runs[f"{prefix}{strategy}_mobilenetv2_mdrop"]
            assert fusion.strategy == strategy and fusion.text_dropout == fusion.image_dropout == 0.3
    study.check_experiments(demo.experiment_configs())  # every demo model builds (no weights loaded)
