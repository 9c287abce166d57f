"""Device results in the study report: real ``fusionrt bench`` reports of tiny bundles, matched to study
model records by model name, with accuracy from the training host and latency from the device."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

from fusionrt.benchmarks.runner import bench
from tiny_bundles import tiny_bundle
from training import device_results as dr
from training.report import pareto_front

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory):
    """One real bench run: two tiny bundles (fp32 + int8), ONNX Runtime int8, batch 1 and 2."""
    bundles = [tiny_bundle(tmp_path_factory, name, ("fp32", "int8")) for name in ("late", "early")]
    return bench(bundles, backend="onnxruntime", precision="int8", batches=(1, 2), seconds=0.2, show_progress=False)


def _study_models(report: dict, rng: np.random.Generator) -> list[dict]:
    """Study records (as training.study writes them) for the benched bundles: host metrics on two targets."""
    models = []
    for result in report["results"]:
        name = result["bundle"]["model_name"]
        host_acc = {"fp32": rng.uniform(0.5, 0.9), "int8": rng.uniform(0.5, 0.9)}
        models.append({
            "name": name, "strategy": result["bundle"]["strategy"], "params": 1e6, "flops": 1e9,
            "export_metrics": {"fp32": {"Has0_acc_2": host_acc["fp32"], "MAE": 1.0},
                               "int8": {"Has0_acc_2": rng.uniform(0.5, 0.9), "MAE": 1.0}},
            "targets": {"onnxruntime fp32": {"metrics": {"Has0_acc_2": host_acc["fp32"], "MAE": 1.0},
                                             "latency": {"p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0}},
                        "torch int8": {"metrics": {"Has0_acc_2": host_acc["int8"], "MAE": 1.0},
                                       "latency": {"p50_ms": 2.0, "p90_ms": 2.0, "p99_ms": 2.0}}},
        })
    return models


def _as_other_device(report: dict, hostname: str, gpu: str, slower: float) -> dict:
    other = copy.deepcopy(report)
    other["host"]["hostname"] = hostname
    other["host"]["gpu"] = {"name": gpu, "sm_count": 8, "memory_mib": 8192.0}
    for result in other["results"]:
        for entry in result["latency"]:
            for key in ("p50_ms", "p90_ms", "p99_ms"):
                entry[key] *= slower
    return other


def _write(tmp_path, name: str, report: dict):
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return path


def test_device_latency_is_the_bench_reports_batch_1_entries(bench_report, tmp_path):
    (run,) = dr.read_device_results([_write(tmp_path, "cpu.json", bench_report)])
    assert run.label == f"{bench_report['host']['cpu']['model']} · {bench_report['host']['hostname']}"
    assert sorted(run.latency) == sorted(r["bundle"]["model_name"] for r in bench_report["results"])
    for result in bench_report["results"]:
        (target,) = run.latency[result["bundle"]["model_name"]]
        assert target == "onnxruntime int8"
        entries = run.latency[result["bundle"]["model_name"]][target]
        expected = {e["path"]: e for e in result["latency"] if e["batch"] == 1}
        assert entries == expected and set(expected) == {"graph", "end_to_end"}


def test_each_device_point_takes_the_hosts_accuracy_for_its_precision(bench_report, tmp_path):
    rng = np.random.default_rng()
    models = _study_models(bench_report, rng)
    (run,) = dr.read_device_results([_write(tmp_path, "cpu.json", bench_report)])
    seen = dr.device_models(models, run)
    for model, device in zip(models, seen):
        target = device["targets"]["onnxruntime int8"]
        # No "onnxruntime int8" on the host: the host's int8 on another backend, not the export's score.
        assert target["metrics"] is model["targets"]["torch int8"]["metrics"]
        assert target["latency"] == run.latency[model["name"]]["onnxruntime int8"]["graph"]
    del models[0]["targets"]["torch int8"]
    assert dr.device_models(models, run)[0]["targets"]["onnxruntime int8"]["metrics"] is models[0]["export_metrics"]["int8"]
    models[0]["export_metrics"] = {}
    assert "metrics" not in dr.device_models(models, run)[0]["targets"]["onnxruntime int8"]  # latency-only


def test_two_devices_give_a_column_group_each_and_a_comparison_plot(bench_report, tmp_path):
    rng = np.random.default_rng()
    models = _study_models(bench_report, rng)
    slower = float(rng.uniform(2, 5))
    paths = [_write(tmp_path, "cpu.json", bench_report),
             _write(tmp_path, "orin.json", _as_other_device(bench_report, "orin-nano", "Orin", slower))]
    runs = dr.read_device_results(paths)
    assert [r.label.split(" · ")[0] for r in runs] == [bench_report["host"]["cpu"]["model"], "Orin"]
    order = [m["name"] for m in models]
    text = "\n".join(dr.markdown_lines(models, runs, order))
    for result in bench_report["results"]:
        row = next(line for line in text.splitlines() if line.startswith(f"| {result['bundle']['model_name']} |"))
        graph, e2e = (e["p50_ms"] for e in result["latency"] if e["batch"] == 1)
        assert f"{graph:.2f} / {e2e:.2f}" in row and f"{graph * slower:.2f} / {e2e * slower:.2f}" in row
    assert text.count("onnxruntime int8") >= 2 and dr.figure_file(runs[1]) in text
    png = tmp_path / dr.COMPARISON_FILE
    dr.plot_devices("tiny", models, runs, order, png)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 300 and len(np.unique(np.asarray(image).reshape(-1, len(image.getbands())), axis=0)) > 10


def test_a_devices_figure_marks_its_own_pareto_front(bench_report, tmp_path):
    from training.report import figure_points, plot

    models = _study_models(bench_report, np.random.default_rng())
    (run,) = dr.read_device_results([_write(tmp_path, "cpu.json", bench_report)])
    seen = dr.device_models(models, run)
    points = figure_points(seen)
    expected = pareto_front([(p["latency_ms"], p["accuracy"]) for p in points])
    assert [i for i, p in enumerate(points) if p["pareto"]] == sorted(expected)
    assert {p["latency_ms"] for p in points} == {run.latency[m["name"]]["onnxruntime int8"]["graph"]["p50_ms"]
                                                 for m in models}
    plot("tiny", seen, tmp_path / dr.figure_file(run))
    assert (tmp_path / dr.figure_file(run)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_later_measurement_replaces_an_earlier_one_per_model_and_target(bench_report, tmp_path):
    first = dr.read_device_results([_write(tmp_path, "a.json", bench_report)])
    rerun = _as_other_device(bench_report, bench_report["host"]["hostname"], "", 0.5)
    rerun["host"]["gpu"] = None
    (merged,) = dr.merge_runs(first, dr.read_device_results([_write(tmp_path, "b.json", rerun)]))
    for result in rerun["results"]:
        assert merged.latency[result["bundle"]["model_name"]]["onnxruntime int8"]["graph"]["p50_ms"] == \
            next(e["p50_ms"] for e in result["latency"] if (e["path"], e["batch"]) == ("graph", 1))
    assert [s.rsplit("/", 1)[-1] for s in merged.sources] == ["a.json", "b.json"]
    assert dr.DeviceRun.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged


def test_bad_device_results_name_what_is_wrong(bench_report, tmp_path):
    models = _study_models(bench_report, np.random.default_rng())
    with pytest.raises(ValueError, match="cannot read a JSON report"):
        dr.read_device_results([tmp_path / "missing.json"])
    broken = copy.deepcopy(bench_report)
    del broken["results"][0]["latency"][0]["p50_ms"]
    with pytest.raises(ValueError, match=r"not a fusionrt bench report: results\[0\]\.latency\[0\] is missing p50_ms"):
        dr.read_device_results([_write(tmp_path, "broken.json", broken)])
    batch_2 = copy.deepcopy(bench_report)
    for result in batch_2["results"]:
        result["latency"] = [e for e in result["latency"] if e["batch"] == 2]
    with pytest.raises(ValueError, match="no batch-1 measurement.*--batch 1"):
        dr.read_device_results([_write(tmp_path, "b2.json", batch_2)])
    runs = dr.read_device_results([_write(tmp_path, "cpu.json", bench_report)])
    with pytest.raises(ValueError, match=r"not models of this study \(expected bundle model names among"):
        dr.check_matches(models[1:], runs)
    dr.check_matches(models, runs)
