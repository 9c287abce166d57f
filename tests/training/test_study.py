"""The study pipeline on a micro study: two tiny models, one epoch, a few latency repeats."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("onnxruntime")
pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402

from training import report, study  # noqa: E402

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
