"""``fusionrt study --latency-only`` and ``fusionrt report``: a micro study exported with random weights and
timed with the real ``fusionrt bench`` (no data, no training), then a report rebuilt with a second device."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("onnxruntime")
pytest.importorskip("matplotlib")

from fusionrt.bundle import read_manifest  # noqa: E402
from training import device_results, latency_only, report, report_command, study  # noqa: E402
from training.models.config import FusionConfig, TextBackboneConfig, VisionBackboneConfig  # noqa: E402

from conftest import TINY  # noqa: E402  (tests/training is on sys.path)

TARGETS = [{"backend": "tensorrt", "precision": "fp32"}, {"backend": "onnxruntime", "precision": "fp32"},
           {"backend": "onnxruntime", "precision": "int8"}]


@pytest.fixture(scope="module")
def latency_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A latency-only run of a tiny late model with two seeds (exported and timed once); its config."""
    root = tmp_path_factory.mktemp("latency_only")
    experiment = copy.deepcopy(TINY)
    experiment["data"]["root"] = str(root / "no-such-dataset")  # never read: no data, no training
    (root / "tiny.yaml").write_text(yaml.safe_dump(experiment))
    config = {
        "name": "lat",
        "experiments": [{"config": "tiny.yaml", "name": "lat_late"}],
        "seeds": [0, 1],
        "export": {"precisions": ["fp32", "int8"], "calibration_samples": 16, "calibration_method": "minmax"},
        "latency": {"targets": TARGETS},
        "work_dir": str(root / "work"),
        "report_dir": str(root / "report"),
    }
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert study.main(["--config", str(path), "--latency-only", "--seconds", "0.2"]) == 0
    return path


def test_latency_only_exports_random_weight_bundles_and_times_them_without_data(latency_study: Path) -> None:
    work, out = latency_study.parent / "work", latency_study.parent / "report"
    assert not (latency_study.parent / "no-such-dataset").exists()
    assert sorted(p.name for p in work.iterdir()) == [latency_only.WORK_SUBDIR]  # no training runs
    results = json.loads((out / latency_only.RESULTS_FILE).read_text())
    assert results["settings"]["latency_only"] is True
    assert [m["name"] for m in results["models"]] == ["lat_late"]  # one per experiment, not per seed
    for model in results["models"]:
        manifest = read_manifest(model["bundle"])
        assert manifest.model_name == model["name"] and {"fp32", "int8"} <= set(manifest.variants)
    text = (out / latency_only.REPORT_FILE).read_text()
    assert "not measured: tensorrt fp32" in text
    benches = sorted(out.glob("bench.*.json"))
    assert [b.name for b in benches] == ["bench.onnxruntime_fp32.json", "bench.onnxruntime_int8.json"]
    for bench in benches:
        for result in json.loads(bench.read_text())["results"]:
            assert result["error"] is None
            graph, e2e = (e["p50_ms"] for e in result["latency"] if e["batch"] == 1)
            row = next(line for line in text.splitlines()
                       if line.startswith(f"| {result['bundle']['model_name']} |") and " / " in line)
            assert f"{graph:.2f} / {e2e:.2f}" in row
    assert (out / device_results.COMPARISON_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_adds_a_device_and_keeps_the_hosts_measurements(latency_study: Path, tmp_path: Path) -> None:
    out = latency_study.parent / "report"
    bench = json.loads((out / "bench.onnxruntime_int8.json").read_text())
    bench["host"]["hostname"], bench["host"]["gpu"] = "orin", {"name": "Orin", "sm_count": 8, "memory_mib": 7600.0}
    factor = float(np.random.default_rng().uniform(3, 6))
    for result in bench["results"]:
        for entry in result["latency"]:
            for key in ("p50_ms", "p90_ms", "p99_ms"):
                entry[key] *= factor
    device = tmp_path / "orin.json"
    device.write_text(json.dumps(bench))
    rebuilt = tmp_path / "rebuilt"
    assert report_command.main([str(out), "--device-results", str(device), "--out", str(rebuilt)]) == 0
    results = json.loads((rebuilt / latency_only.RESULTS_FILE).read_text())
    assert [d["label"].split(" · ")[0] for d in results["devices"]][-1] == "Orin"
    assert len(results["devices"]) == 2  # this host's (from the latency-only run) and the new one
    assert sorted(p.name for p in rebuilt.glob("bench.*.json")) == sorted(p.name for p in out.glob("bench.*.json"))
    text = (rebuilt / latency_only.REPORT_FILE).read_text()
    for result in bench["results"]:
        graph = next(e["p50_ms"] for e in result["latency"] if (e["path"], e["batch"]) == ("graph", 1))
        assert f"{graph:.2f} / " in text


def test_a_trained_reports_seeds_take_the_latency_only_bundles_latency(latency_study: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng()
    models = []
    for name, strategy in (("lat_late", "late"),):
        for seed in (0, 1):
            metrics = {"Has0_acc_2": rng.uniform(0.5, 0.9), "Has0_F1_score": 0.5, "MAE": 1.0, "Corr": 0.1}
            models.append({"name": f"{name}_seed{seed}", "group": name, "strategy": strategy, "params": 1e6,
                           "flops": 1e9, "targets": {"onnxruntime int8": {
                               "metrics": metrics, "latency": {"p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0}}}})
    trained = tmp_path / "trained"
    report.write_report(trained, "lat", models, {"config": {}}, ["a note"])
    device = latency_study.parent / "report" / "bench.onnxruntime_int8.json"
    assert report_command.main([str(trained), "--device-results", str(device)]) == 0
    results = json.loads((trained / report.RESULTS_FILE).read_text())
    (run,) = [device_results.DeviceRun.from_dict(d) for d in results["devices"]]
    assert results["notes"] == ["a note"]
    for model in models:
        seen = device_results.device_models(results["models"], run)
        mine = next(m for m in seen if m["name"] == model["name"])
        assert mine["targets"]["onnxruntime int8"]["latency"] == run.latency[model["group"]]["onnxruntime int8"]["graph"]
        assert mine["targets"]["onnxruntime int8"]["metrics"] == model["targets"]["onnxruntime int8"]["metrics"]
    assert (trained / device_results.figure_file(run)).is_file() and (trained / device_results.COMPARISON_FILE).is_file()


def test_a_report_command_error_names_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_command.main([str(tmp_path), "--device-results", str(tmp_path / "x.json")]) == 1
    assert "cannot read a study report's results" in capsys.readouterr().err


def test_hub_text_encoders_are_built_offline_at_their_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    monkeypatch.setattr(latency_only, "_config_available", lambda name: False)  # as offline, without a cache
    fusion = FusionConfig(strategy="late", text=TextBackboneConfig(name="bert-base-uncased", pretrained=True),
                          vision=VisionBackboneConfig(pretrained=True))
    built = latency_only.random_weight_config(fusion)
    assert not built.text.pretrained and not built.vision.pretrained and built.text.name is None
    from training.models.text_encoder import _load

    ours = _load(built.text)
    reference = transformers.BertModel(transformers.BertConfig(), add_pooling_layer=False)  # transformers' defaults are bert-base's
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    with pytest.raises(ValueError, match="'some-org/unknown-bert'.*known: \\['bert-base-uncased'\\]"):
        latency_only.random_weight_config(FusionConfig(strategy="late", text=TextBackboneConfig(name="some-org/unknown-bert")))
