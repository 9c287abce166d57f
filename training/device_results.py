"""Latency measured on target devices, merged into a study's report (``fusionrt report``).

A study trains and scores its models on the training host. Its bundles (or the random-weight ones of
``fusionrt study --latency-only``) are then timed on each device with the deployment install alone:
``fusionrt bench BUNDLE... --batch 1 --json DEVICE.json``. This module reads those reports, matches
each result to a study model by the bundle's model name (the study exports each bundle under its
experiment's name), and gives per device a latency column group, a Figure 1 (accuracy from the training
host, latency from the device, Pareto front marked) and one plot comparing the devices.

A device result's accuracy is the training host's for the same backend and precision, else for the same
precision on any backend, else the export's score of that precision variant (ONNX Runtime, test fold).

Example:
    >>> runs = read_device_results(["orin_nano.json", "agx_orin.json"])  # doctest: +SKIP
    >>> device_models(models, runs[0])[0]["targets"]  # doctest: +SKIP
    {'onnxruntime int8': {'latency': {...}, 'metrics': {...}, 'end_to_end': {...}}}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrt.benchmarks.report import problems

#: The batch a device's Figure 1 plots: the study's latency is batch 1.
BATCH = 1
ACCURACY = "Has0_acc_2"


@dataclass
class DeviceRun:
    """One device's measurements: ``latency[model][target]`` is the batch-1 ``{"graph": entry,
    "end_to_end": entry}`` of ``fusionrt bench`` (entries as in its JSON), ``sources`` the files read."""

    label: str
    host: dict[str, Any]
    latency: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "host": self.host, "latency": self.latency, "sources": self.sources}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceRun:
        return cls(label=data["label"], host=dict(data["host"]), latency=dict(data["latency"]),
                   sources=list(data["sources"]))


def device_label(host: Mapping[str, Any]) -> str:
    """A device's name for tables and plots: the Jetson board (and its power mode), else the GPU, else the
    CPU model; with the host name, so two boxes of one model stay apart."""
    jetson = host.get("jetson") or {}
    gpu = host.get("gpu") or {}
    cpu = host.get("cpu") or {}
    if jetson.get("board"):
        mode = jetson.get("nvpmodel") or {}
        name = jetson["board"] + (f" ({mode['name']})" if isinstance(mode, dict) and mode.get("name") else "")
    elif gpu.get("name"):
        name = gpu["name"]
    else:
        name = cpu.get("model") or "unknown device"
    return f"{name} · {host.get('hostname') or '?'}"


def target_label(result: Mapping[str, Any]) -> str:
    """The study's label for a bench result: ``backend precision`` (as ``LatencyTarget.label``)."""
    return f"{result['backend']} {result['precision']}"


def read_device_results(paths: Sequence[str | os.PathLike[str]]) -> list[DeviceRun]:
    """Reads ``fusionrt bench --json`` reports; files from one device (same label) are merged, a later
    file's measurement of the same model and target replacing an earlier one.

    Raises:
        ValueError: a file that is not a valid ``fusionrt.bench`` report (what is wrong with it), or one
            with no batch-1 measurement to use.
    """
    runs: dict[str, DeviceRun] = {}
    for path in paths:
        try:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"device results {path}: cannot read a JSON report ({error})") from error
        found = problems(report)
        if found:
            raise ValueError(f"device results {path} is not a fusionrt bench report: " + "; ".join(found[:5]))
        run = runs.setdefault(device_label(report["host"]), DeviceRun(device_label(report["host"]), report["host"]))
        run.sources.append(str(path))
        used = 0
        for result in report["results"]:
            entries = {e["path"]: e for e in result["latency"] or () if e["batch"] == BATCH}
            if result["error"] is not None or len(entries) < 2:
                continue
            run.latency.setdefault(result["bundle"]["model_name"], {})[target_label(result)] = entries
            used += 1
        if not used:
            raise ValueError(f"device results {path} has no batch-{BATCH} measurement of any bundle "
                             f"(run fusionrt bench with --batch {BATCH})")
    return list(runs.values())


def merge_runs(old: Sequence[DeviceRun], new: Sequence[DeviceRun]) -> list[DeviceRun]:
    """``old`` (a report's earlier devices) updated with ``new``: per device, model and target, new wins."""
    merged = {run.label: DeviceRun.from_dict(json.loads(json.dumps(run.to_dict()))) for run in old}
    for run in new:
        into = merged.setdefault(run.label, DeviceRun(run.label, run.host))
        into.host = run.host
        into.sources += [s for s in run.sources if s not in into.sources]
        for model, targets in run.latency.items():
            into.latency.setdefault(model, {}).update(targets)
    return list(merged.values())


def _measured(run: DeviceRun, model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What ``run`` measured of ``model``: its own bundle, else its experiment's (a seeded study's
    ``<name>_seed<n>`` records take the latency-only bundle ``<name>``: latency does not depend on weights)."""
    return run.latency.get(model["name"]) or run.latency.get(model.get("group") or model["name"], {})


def check_matches(models: Sequence[Mapping[str, Any]], runs: Sequence[DeviceRun]) -> None:
    """Raises ValueError when a device measured a bundle that is no model of the study, naming both."""
    names = {m["name"] for m in models} | {m["group"] for m in models if m.get("group")}
    for run in runs:
        unknown = sorted(set(run.latency) - names)
        if unknown:
            raise ValueError(f"device {run.label!r} ({', '.join(run.sources)}) measured {unknown}, which are not "
                             f"models of this study (expected bundle model names among {sorted(names)})")


def accuracy_metrics(model: Mapping[str, Any], target: str) -> dict[str, Any] | None:
    """The training host's test metrics for ``target`` (``backend precision``) of ``model``: the same
    target, else the same precision on any backend, else the export's score of that variant; None
    when the study has none (a latency-only study)."""
    targets = model.get("targets", {})
    if "metrics" in targets.get(target, {}):
        return targets[target]["metrics"]
    precision = target.split()[1]
    for label, measured in targets.items():
        if label.split()[1:2] == [precision] and "metrics" in measured:
            return measured["metrics"]
    exported = (model.get("export_metrics") or {}).get(precision)
    return exported if exported and ACCURACY in exported else None


def device_models(models: Sequence[Mapping[str, Any]], run: DeviceRun) -> list[dict[str, Any]]:
    """The study's model records as seen on one device: each target the device measured, with the
    device's batch-1 graph latency under ``latency`` (what :func:`training.report.plot` draws), the
    end-to-end one under ``end_to_end`` and the host's accuracy under ``metrics`` (omitted when none)."""
    seen = []
    for model in models:
        measured = _measured(run, model)
        targets = {}
        for label, entries in measured.items():
            target: dict[str, Any] = {"latency": entries["graph"], "end_to_end": entries["end_to_end"]}
            metrics = accuracy_metrics(model, label)
            if metrics is not None:
                target["metrics"] = metrics
            targets[label] = target
        if targets:
            seen.append({**model, "targets": targets})
    return seen


def figure_file(run: DeviceRun) -> str:
    """The device's Figure 1 file name, from its label (letters, digits, ``-``, ``_``)."""
    return "accuracy_vs_latency." + (re.sub(r"[^A-Za-z0-9_-]+", "_", run.label).strip("_") or "device") + ".png"


COMPARISON_FILE = "devices.png"


def markdown_lines(models: Sequence[Mapping[str, Any]], runs: Sequence[DeviceRun], order: Sequence[str]) -> list[str]:
    """The report's "Latency per device" section: per device a column group of its targets (batch-1 p50
    of the graph and end to end, ms), then what each device is; empty without devices. ``order`` is the
    models' row order (names)."""
    if not runs:
        return []
    columns = [(run, target) for run in runs
               for target in sorted({t for targets in run.latency.values() for t in targets})]
    header = ["model", "strategy", *(f"{run.label}: {target}" for run, target in columns)]
    lines = ["", "## Latency per device", "",
             f"Batch-{BATCH} p50 in ms, graph / end to end (raw text and image through the tokenizer and "
             "pre-processing), measured on each device with `fusionrt bench` and the deployment install; "
             "accuracy in each device's figure is the training host's for the same precision.", "",
             "| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    by_name = {m["name"]: m for m in models}
    for name in order:
        cells = [name, by_name[name]["strategy"]]
        for run, target in columns:
            entries = _measured(run, by_name[name]).get(target)
            cells.append("–" if entries is None else
                         f"{entries['graph']['p50_ms']:.2f} / {entries['end_to_end']['p50_ms']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for run in runs:
        lines.append(f"- {run.label}: {_host_summary(run.host)}; figure `{figure_file(run)}`; "
                     f"from {', '.join(Path(s).name for s in run.sources)}")
    lines.append(f"- all devices side by side: `{COMPARISON_FILE}`")
    return lines


def _host_summary(host: Mapping[str, Any]) -> str:
    cpu = host.get("cpu") or {}
    parts = [f"{cpu.get('model', '?')} ({cpu.get('cores_usable', '?')} cores)"]
    gpu = host.get("gpu")
    if gpu:
        parts.append(f"{gpu['name']} ({gpu.get('sm_count', '?')} SMs, {gpu.get('memory_mib', 0) / 1024:.0f} GiB)")
    jetson = host.get("jetson")
    if jetson:
        parts.append(f"L4T {jetson.get('l4t') or '?'}, JetPack {jetson.get('jetpack') or '?'}")
    versions = host.get("versions") or {}
    parts.append(", ".join(f"{k} {v}" for k, v in versions.items()
                           if k in ("fusionrt", "onnxruntime", "tensorrt", "cuda") and v))
    return "; ".join(p for p in parts if p)


def plot_devices(study: str, models: Sequence[Mapping[str, Any]], runs: Sequence[DeviceRun], order: Sequence[str],
                 path: str | os.PathLike[str]) -> None:
    """Writes the devices side by side as a PNG: one panel per target, a bar per model and device
    (batch-1 graph p50, log scale)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and devices
    import matplotlib.pyplot as plt

    by_name = {m["name"]: m for m in models}
    targets = sorted({t for run in runs for m in run.latency.values() for t in m})
    rows = [name for name in order if any(_measured(run, by_name[name]) for run in runs)]
    fig, axes = plt.subplots(1, len(targets), figsize=(4.5 * len(targets) + 2, 0.45 * len(rows) * len(runs) + 2),
                             dpi=120, squeeze=False, sharey=True)
    height = 0.8 / len(runs)
    colours = {run.label: plt.get_cmap("tab10")(i) for i, run in enumerate(runs)}
    for ax, target in zip(axes[0], targets):
        for i, run in enumerate(runs):
            values = [_measured(run, by_name[name]).get(target, {}).get("graph", {}).get("p50_ms") for name in rows]
            ys = [r + i * height for r, v in enumerate(values) if v is not None]
            ax.barh(ys, [v for v in values if v is not None], height=height, color=colours[run.label],
                    label=run.label)
        ax.set_xscale("log")
        ax.set_title(target, fontsize=10)
        ax.set_xlabel(f"batch-{BATCH} graph p50 (ms, log scale)")
        ax.grid(True, axis="x", which="both", alpha=0.3)
    axes[0][0].set_yticks([r + 0.4 - height / 2 for r in range(len(rows))],
                          [name.removeprefix(f"{study}_") for name in rows], fontsize=8)
    axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(runs)), fontsize=8)
    fig.suptitle(f"Study {study}: batch-{BATCH} latency per device", fontsize=11)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(runs) // 3), 1, 1))
    fig.savefig(path)
    plt.close(fig)
