"""``make device-check`` (tools/device_check.py, tools/device_summary.py) where no GPU is: GPU detection,
the one-line no-GPU exit, and the summary written from real pytest JUnit and pytest-benchmark reports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
import device_check  # noqa: E402
import device_summary  # noqa: E402


def test_no_gpu_is_found_without_nvidia_smi_or_a_jetson_gpu_node(tmp_path):
    assert device_check.find_gpu(nvidia_smi=str(tmp_path / "no-nvidia-smi"), root=tmp_path) is None


FAKE_NVIDIA_SMI = """#!/bin/sh
case "$1" in
  -L) echo 'GPU 0: NVIDIA H200 (UUID: GPU-1234)'; echo 'GPU 1: NVIDIA A100 (UUID: GPU-5678)' ;;
  --query-gpu=compute_cap) echo 9.0; echo 8.0 ;;
esac
"""


@pytest.fixture
def nvidia_smi(tmp_path) -> str:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    return str(smi)


def test_nvidia_smi_names_the_gpus_and_their_architectures(tmp_path, nvidia_smi):
    assert device_check.find_gpu(nvidia_smi=nvidia_smi, root=tmp_path) == "GPU 0: NVIDIA H200; GPU 1: NVIDIA A100"
    assert device_check.gpu_architectures(nvidia_smi) == ["80", "90"]


def test_the_build_is_for_the_present_gpus_or_the_defaults(tmp_path, nvidia_smi):
    [build] = [step for step in device_check.steps("python", tmp_path, ["80", "90"]) if step.name == "build"]
    assert "cmake.define.CMAKE_CUDA_ARCHITECTURES=80;90" in build.argv and "cmake.define.FUSIONRT_CUDA=ON" in build.argv
    [build] = [step for step in device_check.steps("python", tmp_path, []) if step.name == "build"]
    assert not any("CMAKE_CUDA_ARCHITECTURES" in word for word in build.argv)
    assert device_check.gpu_architectures(str(tmp_path / "none")) == []


def test_nvidia_smi_without_a_gpu_is_no_gpu(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n")
    smi.chmod(0o755)
    assert device_check.find_gpu(nvidia_smi=str(smi), root=tmp_path) is None


def test_a_jetson_is_found_by_its_gpu_device_node(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "nvhost-ctrl-gpu").touch()
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\0")
    assert device_check.find_gpu(nvidia_smi=str(tmp_path / "none"), root=tmp_path) == "NVIDIA Jetson AGX Orin Developer Kit"


def test_without_a_gpu_it_prints_one_line_exits_0_and_runs_nothing(tmp_path):
    report_dir = tmp_path / "reports"
    result = subprocess.run(
        [sys.executable, str(TOOLS / "device_check.py"), "--nvidia-smi", str(tmp_path / "none"),
         "--root", str(tmp_path), "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "no NVIDIA GPU" in result.stdout
    assert not report_dir.exists()


# A pytest run of this file gives real reports: JUnit XML with a pass, a failure and a skip, and a
# pytest-benchmark JSON with per-round timings.
RECORDED_RUN = textwrap.dedent('''
    import time
    import pytest

    def test_cuda_kernel_matches():
        pass

    def test_cuda_kernel_fails():
        assert 1 == 2, "kernel and reference differ"

    @pytest.mark.skip(reason="needs TensorRT")
    def test_tensorrt_engine():
        pass

    def test_cuda_latency(benchmark):
        benchmark.group = "concat_layernorm cuda 384+1280 batch 1"
        benchmark(time.sleep, 0.0005)
''')


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    pytest.importorskip("pytest_benchmark")
    folder = tmp_path_factory.mktemp("device")
    (folder / "test_recorded.py").write_text(RECORDED_RUN)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_recorded.py",
         f"--junitxml={folder / 'tests.xml'}", f"--benchmark-json={folder / 'bench_fused_ops.json'}",
         "--benchmark-min-rounds=20", "--benchmark-max-time=0.05"],
        cwd=folder, capture_output=True, text=True, timeout=120)
    steps = [{"name": "build", "ok": True, "status": "ok", "seconds": 80.5},
             {"name": "tests", "ok": False, "status": "exit 1", "seconds": 3.2},
             {"name": "bench-models", "ok": False, "status": "timed out after 300 s", "seconds": 300.0}]
    (folder / "steps.json").write_text(json.dumps(steps))
    info = {"gpu": "GPU 0: NVIDIA H200", "fusionrt": {"build": {"version": "0.1.0", "cuda_version": "13.0.88",
            "cuda_architectures": [90], "tensorrt": None, "torch": "2.11.0"}, "cuda_available": True}}
    (folder / "info.json").write_text(json.dumps(info))
    (folder / "bench_study_models.json").write_text("{\"benchmarks\": [")  # a step killed mid-write
    return folder


def test_summary_counts_tests_and_names_failures_and_skip_reasons(report_dir):
    tests = device_summary.write_summary(report_dir)["tests"]
    assert (tests["passed"], tests["failed"], tests["errors"], tests["skipped"]) == (2, 1, 0, 1)
    assert tests["failures"][0]["test"].endswith("::test_cuda_kernel_fails")
    assert "kernel and reference differ" in tests["failures"][0]["message"]
    assert tests["skip_reasons"] == [{"reason": "needs TensorRT", "count": 1}]


def test_summary_gives_latency_percentiles_from_the_rounds(report_dir):
    summary = device_summary.write_summary(report_dir)
    [row] = summary["benchmarks"]["fused_ops"]
    assert row["group"] == "concat_layernorm cuda 384+1280 batch 1" and row["rounds"] >= 20
    assert 500 <= row["p50_us"] <= row["p90_us"] <= row["p99_us"]
    assert summary["benchmarks"]["study_models"] is None  # unreadable, reported rather than fatal
    assert summary["ok"] is False


def test_summary_markdown_and_json_are_written(report_dir):
    device_summary.write_summary(report_dir)
    markdown = (report_dir / "summary.md").read_text()
    assert markdown.startswith("# fusionrt device check: FAILED")
    assert "GPU 0: NVIDIA H200" in markdown and "CUDA 13.0.88" in markdown
    assert "| bench-models | timed out after 300 s | 300.0 |" in markdown
    assert "FAILED `" in markdown and "skipped 1×: needs TensorRT" in markdown
    assert "## Benchmarks: study_models" in markdown and "No benchmark ran" in markdown
    assert json.loads((report_dir / "summary.json").read_text())["info"]["gpu"] == "GPU 0: NVIDIA H200"


def test_percentile_interpolates_like_numpy():
    np = pytest.importorskip("numpy")
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.5]
    for q in (0, 50, 90, 99, 100):
        assert device_summary.percentile(values, q) == pytest.approx(np.percentile(values, q))
