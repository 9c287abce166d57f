"""``fusionrt bench``: runs with the deployment install alone (torch unimportable) and writes a valid
``fusionrt.bench/1`` report; timing and percentile reduction; the report checker; argument errors."""

from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np
import pytest

from bench_helpers import run_deployed
from fusionrt import cli
from fusionrt.benchmarks import report
from fusionrt.benchmarks.measure import Stats, time_block, warm_up
from fusionrt.benchmarks.workload import raw_inputs, with_delay
from tiny_bundles import tiny_bundle

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late")


def test_bench_runs_without_torch_and_writes_a_valid_report(bundle, tmp_path):
    # The child cannot import torch or training: proof that bench needs the deployment install only.
    assert run_deployed(["-c", "import torch"], tmp_path).returncode != 0
    out = tmp_path / "out.json"
    run = run_deployed(["-m", "fusionrt.cli", "bench", str(bundle), "--seconds", "0.5", "--batch", "1,2",
                        "--json", str(out)], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "fusionrt bench" in run.stderr  # the progress bar (tqdm, or plain lines without it)
    assert "end_to_end" in run.stdout and "cold start" in run.stdout  # the table
    data = json.loads(out.read_text())
    assert report.problems(data) == []
    assert data["schema"] == "fusionrt.bench/1"
    assert data["settings"]["batches"] == [1, 2]
    host = data["host"]
    assert host["cpu"]["cores_logical"] >= 1 and host["cpu"]["model"]
    assert host["versions"]["fusionrt"] and host["versions"]["onnxruntime"]
    (result,) = data["results"]
    assert result["error"] is None
    assert result["bundle"]["sha256"] == hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert (result["backend"], result["device"], result["precision"]) == ("onnxruntime", "cpu", "fp32")
    assert [(e["path"], e["batch"]) for e in result["latency"]] == [
        ("graph", 1), ("end_to_end", 1), ("graph", 2), ("end_to_end", 2)]
    for entry in result["latency"]:
        assert entry["p50_ms"] <= entry["p90_ms"] <= entry["p99_ms"] and entry["throughput_per_s"] > 0
        assert entry["energy"] is None  # no power rails here
    assert 0 < result["cold_start"]["load_s"] <= result["cold_start"]["total_s"]
    assert result["peak_host_memory_mib"] > 10
    assert result["peak_device_memory_mib"] is None


def test_a_failing_bundle_is_reported_and_exits_1(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert cli.main(["bench", str(tmp_path / "nowhere"), "--seconds", "0.1", "--json", str(out),
                     "--no-progress"]) == 1
    data = json.loads(out.read_text())
    assert report.problems(data) == []
    assert "no bundle at" in data["results"][0]["error"]
    assert "error: " in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0"], "not a list of positive batch sizes"),
    (["--batch", "1,x"], "not a list of positive batch sizes"),
    (["--image-size", "640"], "not a size like 480x640"),
    (["--precision", "bf16"], "invalid choice"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "some/bundle", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_stats_are_ordered_percentiles_and_samples_per_second():
    stats = Stats.of(np.array([0.001, 0.002, 0.003, 0.004, 0.010]), batch=4)
    assert (stats.p50_ms, stats.min_ms, stats.max_ms, stats.calls) == pytest.approx((3.0, 1.0, 10.0, 5))
    assert stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.throughput_per_s == pytest.approx(4 * 5 / 0.020)
    with pytest.raises(ValueError, match="no samples"):
        Stats.of(np.array([]), batch=1)


def test_time_block_warms_up_then_times_at_least_min_calls():
    calls = []
    samples = time_block(lambda: calls.append(1), seconds=0.0, warmup_calls=2, warmup_seconds=0, min_calls=7)
    assert len(samples) == 7 and len(calls) == 9
    assert warm_up(lambda: None, calls=3, seconds=0) == 3


def test_with_delay_sleeps_before_each_call_and_zero_is_the_call_itself():
    fn = lambda: 42  # noqa: E731
    assert with_delay(fn, 0) is fn
    start = time.perf_counter()
    assert with_delay(fn, 20)() == 42
    assert time.perf_counter() - start >= 0.02


def test_raw_inputs_are_strings_and_uint8_frames():
    texts, images = raw_inputs(3, (12, 16))
    assert len(texts) == 3 and all(isinstance(t, str) and t for t in texts)
    assert [i.shape for i in images] == [(12, 16, 3)] * 3 and images[0].dtype == np.uint8


def _report() -> dict:
    entry = {"path": "graph", "batch": 1, "calls": 10, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "mean_ms": 1.2,
             "min_ms": 0.9, "max_ms": 3.1, "throughput_per_s": 800.0, "energy": None}
    result = {"bundle": {"path": "/b", "model_name": "m", "strategy": "late", "sha256": "0" * 64},
              "backend": "onnxruntime", "device": "cpu", "precision": "fp32", "threads": 2, "execution": "auto",
              "error": None, "cold_start": {"load_s": 0.1, "first_run_s": 0.01, "first_predict_s": 0.02, "total_s": 0.11},
              "peak_host_memory_mib": 100.0, "peak_device_memory_mib": None,
              "latency": [entry, {**entry, "path": "end_to_end"}]}
    settings = {"backend": "auto", "precision": "fp32", "batches": [1], "threads": None, "execution": "auto",
                "seconds": 1.0, "image_hw": [480, 640]}
    host = {"hostname": "h", "cpu": {}, "memory_total_mib": 1.0, "gpu": None, "jetson": None,
            "versions": {"fusionrt": "0.1.0", "onnxruntime": "1.2", "cuda": None, "tensorrt": None}}
    return report.make_report(settings, host, [result], argv=["fusionrt", "bench"])


def test_report_checker_accepts_a_report_and_names_what_is_wrong():
    good = _report()
    assert report.problems(good) == []
    assert "fusionrt bench" not in report.table(good) and "graph" in report.table(good)
    bad = json.loads(json.dumps(good))
    bad["schema"] = "fusionrt.bench/0"
    del bad["host"]["versions"]["tensorrt"]
    latency = bad["results"][0]["latency"]
    latency[0].update(p90_ms=0.5, throughput_per_s=0)
    latency[1]["path"] = "graph"
    assert report.problems(bad) == [
        "report.schema is 'fusionrt.bench/0', expected 'fusionrt.bench/1'",
        "host.versions is missing tensorrt",
        "results[0].latency[0]: expected 0 <= p50 <= p90 <= p99, got 1.0, 0.5, 3.0",
        "results[0].latency[0].throughput_per_s is 0, expected > 0",
        "results[0].latency covers paths ['graph'], expected ['graph', 'end_to_end']",
    ]
    assert report.problems([]) == ["report is list, expected an object"]


def test_progress_without_tqdm_prints_plain_lines(monkeypatch, capsys):
    from fusionrt.benchmarks.progress import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as on an install without tqdm
    with Progress(total=2) as bar:
        bar.step("late: cold start")
        bar.step("late: graph batch 1")
    assert capsys.readouterr().err.splitlines() == ["fusionrt bench: [1/2] late: cold start",
                                                    "fusionrt bench: [2/2] late: graph batch 1"]
