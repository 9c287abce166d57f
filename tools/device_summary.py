"""Writes the one-page summary of a device check (``make device-check``) from what its steps left in a
report folder, and prints the Markdown:

- ``steps.json``: each step's name, exit code, seconds and whether it ran out of time (tools/device_check.py),
- ``info.json``: the GPU and ``fusionrt info``'s build facts,
- ``tests.xml``: pytest's JUnit XML report of the CUDA and TensorRT tests,
- ``bench_*.json``: pytest-benchmark ``--benchmark-json`` reports (per-round timings included).

Any of them may be missing (a step that failed or never ran); the summary says so rather than failing.
Output: ``summary.md`` and ``summary.json`` in the same folder.

Usage: python tools/device_summary.py REPORT_DIR
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

PERCENTILES = (50, 90, 99)


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or not JSON (a step killed while writing it)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_junit(path: Path) -> dict[str, Any] | None:
    """Counts, time, failures (test id and first message line) and skip reasons of a pytest JUnit report."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    counts: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    skips: Counter[str] = Counter()
    seconds = 0.0
    for case in root.iter("testcase"):
        seconds += float(case.get("time") or 0)
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            skips[_first_line(outcome.get("message"))] += 1
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
            failures.append({"test": test, "message": _first_line(outcome.get("message") or outcome.text)})
    return {
        "passed": counts["passed"], "failed": counts["failed"], "errors": counts["errors"],
        "skipped": counts["skipped"], "seconds": round(seconds, 2), "failures": failures,
        "skip_reasons": [{"reason": reason, "count": n} for reason, n in skips.most_common()],
    }


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "(no message)"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile with linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def read_benchmarks(path: Path) -> list[dict[str, Any]] | None:
    """One row per benchmark: group, name, rounds and p50/p90/p99 in microseconds (from the per-round
    timings when the report has them, else the median alone)."""
    report = read_json(path)
    if not isinstance(report, dict):
        return None
    rows = []
    for bench in report.get("benchmarks", []):
        stats = bench.get("stats", {})
        data = stats.get("data") or []
        row: dict[str, Any] = {"group": bench.get("group") or "", "name": bench.get("name", ""),
                               "rounds": stats.get("rounds", len(data))}
        for q in PERCENTILES:
            seconds = percentile(data, q) if data else (stats.get("median") if q == 50 else None)
            row[f"p{q}_us"] = None if seconds is None else round(seconds * 1e6, 2)
        rows.append(row)
    return rows


def summarize(report_dir: Path) -> dict[str, Any]:
    """Everything the report folder holds, as one JSON-ready dict."""
    steps = read_json(report_dir / "steps.json") or []
    return {
        "ok": bool(steps) and all(step.get("ok") for step in steps),
        "info": read_json(report_dir / "info.json"),
        "steps": steps,
        "tests": read_junit(report_dir / "tests.xml"),
        "benchmarks": {path.stem.removeprefix("bench_"): read_benchmarks(path)
                       for path in sorted(report_dir.glob("bench_*.json"))},
    }


def _cell(value: Any) -> str:
    return "—" if value is None else str(value).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def to_markdown(summary: dict[str, Any]) -> str:
    info = summary["info"] or {}
    build = (info.get("fusionrt") or {}).get("build") or {}
    lines = [f"# fusionrt device check: {'passed' if summary['ok'] else 'FAILED'}", ""]
    lines.append(f"- GPU: {_cell(info.get('gpu'))}")
    lines.append(f"- fusionrt {_cell(build.get('version'))}: CUDA {_cell(build.get('cuda_version'))} "
                 f"(sm {_cell(build.get('cuda_architectures'))}), TensorRT {_cell(build.get('tensorrt'))}, "
                 f"torch {_cell(build.get('torch'))}, torch CUDA kernels {_cell(build.get('torch_cuda_kernels'))}, "
                 f"CUDA usable: {_cell((info.get('fusionrt') or {}).get('cuda_available'))}")
    lines += ["", "## Steps", ""]
    lines += _table(["step", "result", "seconds"], [
        [step["name"], "ok" if step.get("ok") else step.get("status", "failed"), step.get("seconds")]
        for step in summary["steps"]])
    tests = summary["tests"]
    lines += ["", "## CUDA and TensorRT tests", ""]
    if tests is None:
        lines.append("No test report (the tests did not run or did not finish).")
    else:
        lines += _table(["passed", "failed", "errors", "skipped", "seconds"],
                        [[tests["passed"], tests["failed"], tests["errors"], tests["skipped"], tests["seconds"]]])
        for failure in tests["failures"]:
            lines.append(f"- FAILED `{failure['test']}`: {failure['message']}")
        for skip in tests["skip_reasons"]:
            lines.append(f"- skipped {skip['count']}×: {skip['reason']}")
    for name, rows in summary["benchmarks"].items():
        lines += ["", f"## Benchmarks: {name} (µs per call)", ""]
        if not rows:
            lines.append("No benchmark ran (all skipped, or the step did not finish).")
            continue
        lines += _table(["group", "benchmark", "rounds", *(f"p{q}" for q in PERCENTILES)],
                        [[row["group"], row["name"], row["rounds"], *(row[f"p{q}_us"] for q in PERCENTILES)]
                         for row in rows])
    return "\n".join(lines) + "\n"


def write_summary(report_dir: Path) -> dict[str, Any]:
    """Writes summary.json and summary.md into ``report_dir``; returns the summary."""
    summary = summarize(report_dir)
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (report_dir / "summary.md").write_text(to_markdown(summary))
    return summary


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    report_dir = Path(argv[0])
    write_summary(report_dir)
    print((report_dir / "summary.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
