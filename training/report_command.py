"""``fusionrt report REPORT --device-results A.json [B.json ...] [--out DIR]``: rebuilds a study report
with the latency measured on target devices (``fusionrt bench ... --batch 1 --json A.json`` there).

Accuracy stays the training host's (``results.json`` of the report); each device adds a latency column
group, its own Figure 1 and a bar in ``devices.png``. Devices already in the report are kept, a new
measurement of the same device, model and target replacing the old one. Works on a trained study's
report and on a ``fusionrt study --latency-only`` one.

Example:
    $ fusionrt report reports/full --device-results orin_nano.json agx_orin.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusionrt.atomic import atomic_directory
from training import device_results
from training.device_results import DeviceRun
from training.latency_only import write_latency_report
from training.report import RESULTS_FILE, show, write_report


def read_results(report: Path) -> dict[str, Any]:
    """A report's ``results.json``, checked for what a rebuild needs.

    Raises:
        ValueError: naming the file and what is missing or malformed.
    """
    path = report / RESULTS_FILE
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read a study report's results ({error})") from error
    if not isinstance(results, dict) or not all(k in results for k in ("study", "settings", "models")):
        raise ValueError(f"{path} is not a study report's results: expected an object with study, settings and models")
    if not isinstance(results["models"], list) or not results["models"]:
        raise ValueError(f"{path}: models is {type(results['models']).__name__} or empty, expected a list of models")
    return results


def rebuild(report: Path, device_files: Sequence[Path], out: Path | None = None) -> Path:
    """Rewrites ``report`` (or writes ``out``) with ``device_files`` added; returns the report directory."""
    results = read_results(report)
    devices = device_results.merge_runs([DeviceRun.from_dict(d) for d in results.get("devices", [])],
                                        device_results.read_device_results(device_files))
    target = out or report
    notes = results.get("notes", [])
    if not results["settings"].get("latency_only"):
        return write_report(target, results["study"], results["models"], results["settings"], notes, devices)
    device_results.check_matches(results["models"], devices)
    with atomic_directory(target, overwrite=True) as root:
        for bench in sorted(report.glob("bench.*.json")):  # the host's own measurements travel with the report
            shutil.copy2(bench, root / bench.name)
        write_latency_report(root, results["study"], results["models"], devices, results["settings"], notes)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``fusionrt report``: returns the exit code."""
    parser = argparse.ArgumentParser(prog="fusionrt report", description="Rebuild a study report with the latency "
                                     "measured on target devices (fusionrt bench --batch 1 --json there).")
    parser.add_argument("report", type=Path, help="a study report directory (with results.json)")
    parser.add_argument("--device-results", type=Path, nargs="+", required=True, metavar="JSON",
                        help="fusionrt bench reports from the devices")
    parser.add_argument("--out", type=Path, default=None, help="write the new report here (default: replace REPORT)")
    args = parser.parse_args(argv)
    try:
        report = rebuild(args.report, args.device_results, args.out)
    except ValueError as error:
        print(f"fusionrt report: error: {error}", file=sys.stderr)
        return 1
    show(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
