"""``make device-check``: everything the first GPU or Jetson fusionrt meets should run, in one command.

With an NVIDIA GPU: builds fusionrt in place with CUDA for that GPU (and TensorRT where it is found),
runs every CUDA and TensorRT test, the GPU benchmarks of the fused ops and the batch-1 latency of the
six study models on each backend, then writes reports/device/summary.{md,json} (tools/device_summary.py)
and prints the Markdown. Each step gets what is left of one time budget (DEVICE_CHECK_BUDGET_S seconds,
default 570), so the summary is written within 10 minutes even when a step hangs. Exits non-zero when
the build, a test or a benchmark failed.

Without a GPU: prints one line and exits 0, having run nothing.

The build uses the running Python and what it has installed (torch, pybind11, scikit-build-core...):
``pip install --no-build-isolation --no-deps --editable .``, so it works with no network.

Usage: python tools/device_check.py [--report-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import device_summary  # noqa: E402  (beside this file)

ROOT = Path(__file__).resolve().parents[1]
# The six models of the study (late / intermediate / early x MobileNetV2 / ViT), batch 1: hybrid and
# batch 8 would double the time for numbers the study does not report.
MODEL_BENCH_FILTER = "batch1 and not hybrid"


@dataclass
class Step:
    name: str
    argv: list[str]
    cap_s: float  # at most this long, and never past the budget
    output: str | None = None  # a file that receives the step's stdout (else the console)


def find_gpu(nvidia_smi: str = "nvidia-smi", root: Path = Path("/")) -> str | None:
    """The GPU's name(s) from ``nvidia-smi -L``, or the Jetson's model when its integrated GPU's device
    node exists (older JetPacks have no nvidia-smi); None without either."""
    if shutil.which(nvidia_smi):
        try:
            listing = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            listing = None
        if listing is not None and listing.returncode == 0:
            gpus = [line.split(" (UUID")[0] for line in listing.stdout.splitlines() if line.startswith("GPU ")]
            if gpus:
                return "; ".join(gpus)
    jetson_gpu_nodes = ("dev/nvhost-ctrl-gpu", "dev/nvgpu/igpu0/ctrl")
    if any((root / node).exists() for node in jetson_gpu_nodes):
        model = root / "proc/device-tree/model"
        return model.read_bytes().rstrip(b"\0").decode(errors="replace") if model.exists() else "Jetson integrated GPU"
    return None


def gpu_architectures(nvidia_smi: str = "nvidia-smi") -> list[str]:
    """The present GPUs' architectures (``["90"]`` for compute capability 9.0), to build for them alone;
    empty when nvidia-smi cannot say (a Jetson without it builds the default architectures, Orin's among
    them). Not CMake's ``native``: _C's build facts need the numbers."""
    try:
        query = subprocess.run([nvidia_smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    capabilities = [line.strip() for line in query.stdout.splitlines()] if query.returncode == 0 else []
    if not capabilities or not all(c.replace(".", "", 1).isdigit() for c in capabilities):
        return []
    return sorted({c.replace(".", "") for c in capabilities}, key=int)


def steps(python: str, report_dir: Path, architectures: list[str]) -> list[Step]:
    pytest = [python, "-m", "pytest", "-q", "-rs"]
    bench = [*pytest, "--benchmark-only", "--benchmark-group-by=group", "--benchmark-max-time=0.2"]
    only_these_gpus = ["-C", f"cmake.define.CMAKE_CUDA_ARCHITECTURES={';'.join(architectures)}"] if architectures else []
    return [
        # Its own build folder, so this build's architectures stay out of `make install`'s CMake cache.
        Step("build", [python, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--editable", ".",
                       "-C", "build-dir=build/device/{wheel_tag}", "-C", "cmake.define.FUSIONRT_CUDA=ON",
                       *only_these_gpus], cap_s=300),
        Step("info", [python, "-m", "fusionrt.cli", "info"], cap_s=60, output="fusionrt_info.json"),
        # Every test named or marked cuda / tensorrt (module names count: all of test_tensorrt*.py).
        Step("tests", [*pytest, "tests", "-k", "cuda or tensorrt", f"--junitxml={report_dir / 'tests.xml'}"],
             cap_s=240),
        Step("bench-ops", [*bench, "bench/test_concat_layernorm_bench.py", "bench/test_attention_bench.py",
                           "-k", "cuda", f"--benchmark-json={report_dir / 'bench_fused_ops.json'}"], cap_s=120),
        Step("bench-models", [*bench, "bench/test_model_latency_bench.py", "-k", MODEL_BENCH_FILTER,
                              f"--benchmark-json={report_dir / 'bench_study_models.json'}"], cap_s=300),
    ]


def run_step(step: Step, deadline: float, report_dir: Path) -> dict[str, object]:
    timeout = min(step.cap_s, deadline - time.monotonic())
    record: dict[str, object] = {"name": step.name, "command": " ".join(step.argv)}
    if timeout < 5:
        return {**record, "ok": False, "status": "no time left", "seconds": 0}
    print(f"device-check: {step.name}: {' '.join(step.argv)}", flush=True)
    started = time.monotonic()
    stdout = open(report_dir / step.output, "w") if step.output else None  # noqa: SIM115 - closed below
    env = {**os.environ, "PIP_BREAK_SYSTEM_PACKAGES": "1"}  # a GPU host's system Python may be "externally managed"
    try:
        returncode = subprocess.run(step.argv, cwd=ROOT, stdout=stdout, timeout=timeout, env=env).returncode
        status = "ok" if returncode == 0 else f"exit {returncode}"
    except subprocess.TimeoutExpired:
        returncode, status = None, f"timed out after {timeout:.0f} s"
    finally:
        if stdout:
            stdout.close()
    return {**record, "ok": returncode == 0, "status": status, "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-dir", type=Path, default=ROOT / "reports" / "device")
    parser.add_argument("--nvidia-smi", default="nvidia-smi", help=argparse.SUPPRESS)  # for tests
    parser.add_argument("--root", type=Path, default=Path("/"), help=argparse.SUPPRESS)  # for tests
    args = parser.parse_args(argv)

    gpu = find_gpu(args.nvidia_smi, args.root)
    if gpu is None:
        print("device-check: no NVIDIA GPU here (nvidia-smi lists none, no Jetson GPU device): nothing run")
        return 0
    budget = float(os.environ.get("DEVICE_CHECK_BUDGET_S", "570"))
    deadline = time.monotonic() + budget
    report_dir = args.report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*report_dir.glob("bench_*.json"), report_dir / "tests.xml", report_dir / "fusionrt_info.json"]:
        stale.unlink(missing_ok=True)
    print(f"device-check: {gpu}; budget {budget:.0f} s; reports in {report_dir}", flush=True)

    records: list[dict[str, object]] = []
    for step in steps(sys.executable, report_dir, gpu_architectures(args.nvidia_smi)):
        if records and not records[0]["ok"]:  # nothing else means anything without a build
            records.append({"name": step.name, "ok": False, "status": "not run: build failed", "seconds": 0})
            continue
        records.append(run_step(step, deadline, report_dir))
        (report_dir / "steps.json").write_text(json.dumps(records, indent=2) + "\n")
    (report_dir / "steps.json").write_text(json.dumps(records, indent=2) + "\n")
    info = {"gpu": gpu, "fusionrt": device_summary.read_json(report_dir / "fusionrt_info.json")}
    (report_dir / "info.json").write_text(json.dumps(info, indent=2) + "\n")

    summary = device_summary.write_summary(report_dir)
    print((report_dir / "summary.md").read_text(), end="")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
