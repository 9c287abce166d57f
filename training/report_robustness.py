"""The study report's robustness table and figure: Acc-2 of every model with a modality missing and
under graded corruption (:mod:`training.robustness`), one row / line per experiment.

Each record's ``robustness`` (``study.score_robustness``) holds the metrics per condition label on the
target the model deploys with; seeds of one experiment show mean ± std.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from training.report_groups import STRATEGY_ORDER, grouped, mean_std, spread

ROBUSTNESS_FIGURE = "robustness.png"
#: The metric the table and figure show (training.metrics.mosi_metrics name).
ROBUSTNESS_METRIC = "Has0_acc_2"


def condition_labels(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """Condition labels of every model's robustness record, in the order they were scored."""
    labels: list[str] = []
    for model in models:
        labels += [c for c in model.get("robustness", {}).get("conditions", {}) if c not in labels]
    return labels


def condition_values(runs: Sequence[Mapping[str, Any]], label: str) -> list[float | None]:
    """Each seed's Acc-2 under condition ``label`` (None where skipped or not scored)."""
    values = []
    for model in runs:
        entry = model.get("robustness", {}).get("conditions", {}).get(label, {})
        values.append(entry["metrics"][ROBUSTNESS_METRIC] if "metrics" in entry else None)
    return values


def robustness_lines(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """The report's robustness section (empty when no model was scored for robustness)."""
    labels = condition_labels(models)
    if not labels:
        return []
    targets = sorted({m["robustness"]["target"] for m in models if "robustness" in m})
    sizes = sorted({m["robustness"]["samples"] for m in models if "samples" in m.get("robustness", {})})
    header = ["model", "strategy", *labels]
    lines = ["", "## Robustness: a missing or noisy modality", "",
             f"Test Acc-2 through the deployed session ({', '.join(targets)}"
             + (f"; the first {' / '.join(map(str, sizes))} test samples" if sizes else "")
             + ") with both modalities, one absent for "
             "every sample (the bundle's missing-modality path), and under graded corruption of the raw "
             "inputs: Gaussian noise (std in [0, 1] pixel units) and Gaussian blur (sigma in pixels) on the "
             "image, word dropout (probability per word) on the text; seeded, the same corrupted fold for "
             f"every model. – : the condition leaves the model no input. Figure: `{ROBUSTNESS_FIGURE}`.", "",
             "| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for name, runs in grouped(models):
        if not any("robustness" in m for m in runs):
            continue
        cells = [name, runs[0]["strategy"], *(spread(condition_values(runs, label)) for label in labels)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plot_robustness(study: str, models: Sequence[Mapping[str, Any]],
                    path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """Writes Acc-2 by condition as a PNG: one line per experiment, coloured by strategy (a second model
    of a strategy dashed), gaps where a condition leaves a model no input, error bars over seeds.

    Returns the lines drawn: per experiment, Acc-2 (%) at each condition (NaN: a gap)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and devices
    import matplotlib.pyplot as plt

    labels = condition_labels(models)
    groups = [(name, runs) for name, runs in grouped(models) if any("robustness" in m for m in runs)]
    present = {runs[0]["strategy"] for _, runs in groups}
    strategies = [s for s in STRATEGY_ORDER if s in present] + sorted(present - set(STRATEGY_ORDER))
    colours = {s: plt.get_cmap("tab10")(i) for i, s in enumerate(strategies)}
    styles = ("-", "--", ":", "-.")
    seen: dict[str, int] = {}
    drawn: dict[str, list[float]] = {}
    fig, ax = plt.subplots(figsize=(11, 6), dpi=120)
    x = list(range(len(labels)))
    for name, runs in groups:
        strategy = runs[0]["strategy"]
        style = styles[seen.get(strategy, 0) % len(styles)]
        seen[strategy] = seen.get(strategy, 0) + 1
        stats = [mean_std(condition_values(runs, label)) for label in labels]
        y = [math.nan if mean is None else 100 * mean for mean, _ in stats]  # NaN: a gap in the line
        err = [0.0 if std is None else 100 * std for _, std in stats]
        container = ax.errorbar(x, y, yerr=err if any(err) else None, color=colours[strategy], linestyle=style,
                                marker="o", markersize=4, linewidth=1.5, capsize=3,
                                label=f"{name.removeprefix(f'{study}_')} ({strategy})")
        drawn[name] = [float(v) for v in container.lines[0].get_ydata()]  # the data line, as matplotlib holds it
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test Acc-2 (%)")
    ax.set_title(f"Study {study}: accuracy with a modality missing or corrupted", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return drawn
