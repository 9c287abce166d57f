"""The study pipeline on a micro study: two tiny models, one epoch, a few latency repeats."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("onnxruntime")
pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402

from training import report, study  # noqa: E402
from training.study_config import StudyConfig  # noqa: E402

from conftest import TINY  # noqa: E402  (tests/training is on sys.path)

TARGETS = [{"backend": "tensorrt", "precision": "fp32"}, {"backend": "onnxruntime", "precision": "fp32"},
           {"backend": "onnxruntime", "precision": "int8"}]


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
        "export": {"precisions": ["fp32", "int8"], "calibration_samples": 16, "calibration_method": "minmax"},
        "latency": {"targets": TARGETS, "warmup": 2, "repeats": 5, "samples": 4},
        "work_dir": str(root / "work"),
        "report_dir": str(root / "report"),
    }
    path = root / "study_micro.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The micro study run once: (its config file, seconds the first run took)."""
    root = tmp_path_factory.mktemp("study")
    path = write_micro_study(root, tmp_path_factory.mktemp("cache"))
    started = time.perf_counter()
    assert study.main(["--config", str(path)]) == 0
    return path, time.perf_counter() - started


def test_report_has_every_model_and_column(micro: tuple[Path, float]) -> None:
    path, _ = micro
    out = path.parent / "report"
    text = (out / report.REPORT_FILE).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| model | strategy"))
    for column in ("params (M)", "GFLOPs", "Acc-2", "F1", "MAE", "Corr", "onnxruntime fp32 p50/p90/p99 ms",
                   "onnxruntime int8 p50/p90/p99 ms"):
        assert column in header
    assert "| tiny_late | late |" in text and "| tiny_text | text only |" in text
    results = json.loads((out / report.RESULTS_FILE).read_text())
    assert [m["name"] for m in results["models"]] == ["tiny_late", "tiny_text"]
    late = results["models"][0]
    assert late["params"] > 0 and late["flops"] > 0
    assert set(late["targets"]["onnxruntime fp32"]["latency"]) == {"p50_ms", "p90_ms", "p99_ms", "repeats"}
    assert "skipped" in late["targets"]["tensorrt fp32"]  # no TensorRT runtime here: listed with the reason
    assert (out / report.MODELS_DIR / "tiny_text.json").is_file()
    with Image.open(out / report.FIGURE_FILE) as image:
        image.verify()
        assert image.format == "PNG"


def test_rerun_reuses_trained_and_exported_models(micro: tuple[Path, float]) -> None:
    path, first = micro
    bundle = path.parent / "work" / "tiny_late" / "bundle" / "model.onnx"
    before = bundle.stat().st_mtime_ns
    started = time.perf_counter()
    assert study.main(["--config", str(path)]) == 0
    assert bundle.stat().st_mtime_ns == before
    assert time.perf_counter() - started < first / 2


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
