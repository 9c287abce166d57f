"""The study report: Markdown tables, the accuracy-vs-latency figure with its Pareto front, results.json.

Several seeds of one experiment (records sharing a ``group``) are one row and one point: mean ± standard
deviation, error bars in the figure. The robustness table and figure are :mod:`training.report_robustness`'s.

Input is the list of per-model results :mod:`training.study` produces (one dict per model, see
``study.measure_model``); :func:`write_report` writes everything into a folder atomically.

Example:
    >>> pareto_front([(1.0, 0.7), (2.0, 0.8), (3.0, 0.75)])
    [0, 1]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fusionrt.atomic import atomic_directory
from fusionrt.backends.onnxruntime.execution import DEPLOY_MARGIN
from training import device_results
from training.device_results import DeviceRun
from training.report_groups import STRATEGY_ORDER, group_of, grouped, mean_std, ordered, spread
from training.report_robustness import ROBUSTNESS_FIGURE, plot_robustness, robustness_lines

REPORT_FILE = "report.md"
RESULTS_FILE = "results.json"
FIGURE_FILE = "accuracy_vs_latency.png"
MODELS_DIR = "models"
#: Table columns from the test metrics (training.metrics.mosi_metrics names).
METRIC_COLUMNS = {"Acc-2": "Has0_acc_2", "F1": "Has0_F1_score", "MAE": "MAE", "Corr": "Corr"}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats, by ascending latency.

    A point ``(latency, accuracy)`` is dominated when another has latency <= and accuracy >=, and is
    strictly better in one of them.
    """
    def dominated(i: int) -> bool:
        x, y = points[i]
        return any(ox <= x and oy >= y and (ox < x or oy > y) for ox, oy in points)

    return sorted((i for i in range(len(points)) if not dominated(i)), key=lambda i: points[i])


def measured_targets(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels of the latency targets measured for at least one model, in the study's order."""
    labels: list[str] = []
    for model in models:
        labels += [label for label, t in model["targets"].items() if "latency" in t and label not in labels]
    return labels


def primary(model: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The model's first measured target (the study's reference backend): its label and entry."""
    for label, target in model["targets"].items():
        if "latency" in target:
            return label, target
    raise ValueError(f"model {model['name']!r} has no measured latency target")


def markdown(study: str, models: Sequence[Mapping[str, Any]], notes: Sequence[str] = (),
             devices: Sequence[DeviceRun] = ()) -> str:
    """The report: summary table (metrics of each model's reference target, latency per target), the
    accuracy of every variant, so int8's cost is visible, and the latency measured on other ``devices``."""
    targets = measured_targets(models)
    records = ordered(models)
    groups = grouped(models)
    seeded = any(len(runs) > 1 for _, runs in groups)
    header = ["model", "strategy", *(["seeds"] if seeded else []), "params (M)", "GFLOPs", *METRIC_COLUMNS,
              *(f"{t} p50/p90/p99 ms" for t in targets)]
    lines = [f"# Study `{study}`: accuracy vs latency", "",
             "Test-fold metrics (Acc-2 and F1 on non-negative vs negative sentiment) and batch-1 latency "
             "per backend. Metrics are measured through the deployed bundle on each model's first "
             f"available target; the figure `{FIGURE_FILE}` plots Acc-2 against p50 latency."
             + (" Models trained with several seeds show mean ± standard deviation over the seeds (error bars "
                "in the figure); latency columns are the seeds' means." if seeded else ""), "",
             _row(header), _row(["---"] * len(header))]
    for name, runs in groups:
        first = runs[0]
        metrics = [primary(m)[1]["metrics"] for m in runs]
        cells = [name, first["strategy"], *([str(len(runs))] if seeded else []), f"{first['params'] / 1e6:.2f}",
                 f"{first['flops'] / 1e9:.3f}", *(spread([m[key] for m in metrics]) for key in METRIC_COLUMNS.values())]
        for label in targets:
            latencies = [m["targets"].get(label, {}).get("latency") for m in runs]
            if any(latency is None for latency in latencies):
                cells.append("–")
                continue
            p50, p90, p99 = (mean_std([latency[k] for latency in latencies])[0] for k in ("p50_ms", "p90_ms", "p99_ms"))
            cells.append(f"{p50:.2f} / {p90:.2f} / {p99:.2f}")
        lines.append(_row(cells))
    lines += ["", "## Accuracy per deployed variant", "",
              _row(["model", "target", "Acc-2", "MAE", "p50 ms", "Pareto"]), _row(["---"] * 6)]
    front = {(p["model"], p["target"]) for p in figure_points(models) if p["pareto"]}
    for model in records:
        for label, target in model["targets"].items():
            if "latency" in target:
                lines.append(_row([model["name"], label, _metric(target["metrics"]["Has0_acc_2"]),
                                   _metric(target["metrics"]["MAE"]), f"{target['latency']['p50_ms']:.2f}",
                                   "yes" if (group_of(model), label) in front else ""]))
    lines += robustness_lines(models)
    lines += device_results.markdown_lines(models, devices, [m["name"] for m in records])
    lines += _concurrency_lines(records)
    skipped_by: dict[str, list[str]] = {}
    for m in models:
        for label, t in m["targets"].items():
            if "skipped" in t:
                skipped_by.setdefault(f"{label}: {t['skipped']}", []).append(m["name"])
    skipped = [why if len(names) == len(models) else f"{why} ({', '.join(names)})" for why, names in skipped_by.items()]
    issues = [f"{m['name']}: {m['export_issue']}" for m in models if m.get("export_issue")]
    if skipped or issues or notes:
        lines += ["", "## Notes", "", *(f"- not measured: {s}" for s in skipped),
                  *(f"- export: {i}" for i in issues), *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def _concurrency_lines(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """Before / after of running late and intermediate fusion's two branches concurrently: each mode's
    median latency, the slower branch alone (the floor concurrency aims at) and the mode deployed."""
    rows = [(m["name"], label, c) for m in models for label, c in m.get("concurrency", {}).items()]
    if not rows:
        return []
    header = ["model", "target", "sequential ms", "parallel ms", "branches ms", "slower branch alone ms",
              "deployed", "deployed / sequential", "deployed / slower branch"]
    lines = ["", "## Concurrent branches", "",
             "Late and intermediate fusion run two independent backbones. Medians of batch-1 calls timed "
             "in bursts, the modes in turn: one session running the graph in order (sequential), ONNX "
             "Runtime's parallel executor, and the two branches as sessions on two threads (branches); the "
             f"fastest is deployed when it is clearly ({DEPLOY_MARGIN:.0%}) faster than sequential.", "", _row(header),
             _row(["---"] * len(header))]
    for name, label, c in rows:
        modes = c["latency_ms"]
        deployed = modes[c["mode"]]
        lines.append(_row([name, label, *(f"{modes[m]:.2f}" if m in modes else "–"
                                          for m in ("sequential", "parallel", "branches")),
                           f"{c['slower_branch_ms']:.2f}", c["mode"], f"{deployed / modes['sequential']:.2f}",
                           f"{c['ratio_to_slower_branch']:.2f}"]))
    return lines


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _metric(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def figure_points(models: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One point per measured (experiment, target): p50 latency and Acc-2 (means over the experiment's
    seeds, with their standard deviations, None for one seed), strategy, seeds, and whether it is on
    the Pareto front (of the means)."""
    points = []
    for name, runs in grouped(models):
        for label in measured_targets(runs):
            measured = [m["targets"][label] for m in runs if "latency" in m["targets"].get(label, {})]
            latency, latency_std = mean_std([t["latency"]["p50_ms"] for t in measured])
            accuracy, accuracy_std = mean_std([t["metrics"]["Has0_acc_2"] for t in measured])
            points.append({"model": name, "strategy": runs[0]["strategy"], "target": label, "seeds": len(measured),
                           "latency_ms": latency, "latency_std": latency_std,
                           "accuracy": accuracy, "accuracy_std": accuracy_std})
    front = set(pareto_front([(p["latency_ms"], p["accuracy"]) for p in points]))
    for i, point in enumerate(points):
        point["pareto"] = i in front
    return points


def plot(study: str, models: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Writes the accuracy-vs-latency scatter (log latency; colour = strategy, marker = target) as a PNG."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # files only: no display on servers and devices
    import matplotlib.pyplot as plt

    points = figure_points(models)
    targets = measured_targets(models)
    present = {p["strategy"] for p in points}
    strategies = [s for s in STRATEGY_ORDER if s in present] + sorted(present - set(STRATEGY_ORDER))
    colours = {s: plt.get_cmap("tab10")(i) for i, s in enumerate(strategies)}
    markers = dict(zip(targets, "osD^vP*X"))
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    for name, runs in grouped(models):
        # A faint line joins one model's targets, so its variants read as a group; labelled once.
        mine = sorted((p for p in points if p["model"] == name), key=lambda p: p["latency_ms"])
        ax.plot([p["latency_ms"] for p in mine], [100 * p["accuracy"] for p in mine], color=colours[runs[0]["strategy"]],
                alpha=0.35, linewidth=1, zorder=1)
        label_at = min(mine, key=lambda p: targets.index(p["target"]))
        ax.annotate(name.removeprefix(f"{study}_"), (label_at["latency_ms"], 100 * label_at["accuracy"]),
                    textcoords="offset points", xytext=(6, 5), fontsize=7.5, zorder=4)
    for p in points:
        if p["accuracy_std"] is not None:  # several seeds: one standard deviation each way
            ax.errorbar(p["latency_ms"], 100 * p["accuracy"], yerr=100 * p["accuracy_std"], xerr=p["latency_std"],
                        color=colours[p["strategy"]], linewidth=1, capsize=3, zorder=2, gid="seed-errorbar")
        ax.scatter(p["latency_ms"], 100 * p["accuracy"], color=colours[p["strategy"]], marker=markers[p["target"]],
                   s=70, edgecolor="black" if p["pareto"] else "none", linewidth=1.2, zorder=3)
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["latency_ms"])
    ax.step([p["latency_ms"] for p in front], [100 * p["accuracy"] for p in front], where="post",
            color="black", linestyle="--", linewidth=1, zorder=2, label="Pareto front")
    handles = [ax.scatter([], [], color=colours[s], marker="o", s=50, label=s) for s in strategies]
    handles += [ax.scatter([], [], color="grey", marker=markers[t], s=50, label=t) for t in targets]
    handles.append(ax.get_legend_handles_labels()[0][0])
    ax.legend(handles=handles, fontsize=8, loc="lower right", title="strategy / target", title_fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("batch-1 latency p50 (ms, log scale)")
    ax.set_ylabel("test Acc-2 (%)")
    seeds = max(p["seeds"] for p in points)
    ax.set_title(f"Study {study}: test accuracy vs batch-1 latency (outlined: Pareto-optimal; "
                 f"labels at {targets[0]}" + (f"; mean ± std over up to {seeds} seeds" if seeds > 1 else "") + ")",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def show(report: Path) -> None:
    """Prints a written report's markdown and where it is (the study commands' last words)."""
    print((report / REPORT_FILE).read_text(encoding="utf-8"))
    print(f"report: {report}")


def write_report(path: str | os.PathLike[str], study: str, models: Sequence[Mapping[str, Any]],
                 settings: Mapping[str, Any], notes: Sequence[str] = (), devices: Sequence[DeviceRun] = ()) -> Path:
    """Writes ``report.md``, ``results.json``, the figures and ``models/<name>.json`` into ``path``,
    replacing an older report only once the new one is complete. Returns ``path``.

    ``devices``: latency measured on other devices (:mod:`training.device_results`), each with its own
    Figure 1 and all of them side by side in ``devices.png``; kept in ``results.json``.

    Raises:
        ValueError: no models, or a device measured a bundle that is none of them.
    """
    if not models:
        raise ValueError("write_report got no model results")
    device_results.check_matches(models, devices)
    with atomic_directory(path, overwrite=True) as root:
        (root / REPORT_FILE).write_text(markdown(study, models, notes, devices), encoding="utf-8")
        results = {"study": study, "settings": settings, "models": list(models), "pareto": figure_points(models),
                   "notes": list(notes), "devices": [run.to_dict() for run in devices]}
        (root / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        plot(study, models, root / FIGURE_FILE)
        if any("robustness" in m for m in models):
            plot_robustness(study, models, root / ROBUSTNESS_FIGURE)
        for run in devices:
            # Targets the host scored (or the export did): a device adds latency, never accuracy.
            scored = [{**m, "targets": {k: t for k, t in m["targets"].items() if "metrics" in t}}
                      for m in device_results.device_models(models, run)]
            scored = [m for m in scored if m["targets"]]
            if scored:
                plot(study, scored, root / device_results.figure_file(run))
        if devices:
            device_results.plot_devices(study, models, devices, [m["name"] for m in ordered(models)],
                                        root / device_results.COMPARISON_FILE)
        (root / MODELS_DIR).mkdir()
        for model in models:
            (root / MODELS_DIR / f"{model['name']}.json").write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
    return Path(path)
