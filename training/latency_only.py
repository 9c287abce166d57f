"""``fusionrt study --latency-only``: the study's models at their configured size with random weights,
exported and timed — no data, no training — so the latency half of Figure 1 is made for any device in
minutes.

Latency does not depend on the weights, so each experiment (its first seed) is built from its config
with ``pretrained`` off, exported with the study's precisions (int8 calibrated on random inputs) to
``<work_dir>/latency_only/<name>/bundle`` under its experiment's name, then timed with ``fusionrt bench``
(batch 1, graph and end to end) for every latency target that runs here. The report
(``<report_dir>/report.md``, ``devices.png``, ``results.json`` and each bench report) has latency only.

Copy the bundles to a device (``fusionrt pack`` keeps what its runtime needs), time them there with
``fusionrt bench BUNDLE... --batch 1 --json DEVICE.json`` and add that device to this report, or to the
trained study's, with ``fusionrt report REPORT --device-results DEVICE.json``.

A text backbone named by the hub (``bert-base-uncased``) whose ``config.json`` is not at hand offline is
built from the bundled MiniLM's config at the named model's shape (:data:`KNOWN_TEXT_SHAPES`): the same
architecture and vocabulary, so the same latency.

Example:
    >>> report = run_latency_only(StudyConfig.load("training/configs/study_full.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import fusionrt
from fusionrt.atomic import atomic_directory
from fusionrt.bundle import BundleError, read_manifest
from training import device_results
from training.device_results import DeviceRun
from training.experiment import ExperimentConfig
from training.loaders import bundle_tokenizer
from training.models import FusionModel
from training.models.config import FusionConfig
from training.study_config import StudyConfig

WORK_SUBDIR = "latency_only"
BUNDLE_DIR = "bundle"
#: Shapes of the hub text encoders the study configs name (transformers config fields), so they can be
#: built offline on the bundled MiniLM's config (the same BERT architecture and uncased vocabulary).
KNOWN_TEXT_SHAPES: dict[str, dict[str, int]] = {
    "bert-base-uncased": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
#: Random calibration: batches x batch size of random inputs (ranges, not accuracy, are what int8 needs here).
CALIBRATION_BATCHES, CALIBRATION_BATCH = 4, 8
REPORT_FILE = "report.md"
RESULTS_FILE = "results.json"


def random_weight_config(fusion: FusionConfig) -> FusionConfig:
    """``fusion`` with random backbones (``pretrained`` off), its text encoder buildable offline."""
    text = dataclasses.replace(fusion.text, pretrained=False)
    if text.name is not None and not _config_available(text.name):
        if text.name not in KNOWN_TEXT_SHAPES:
            raise ValueError(f"text backbone {text.name!r}: its config.json is neither a local path nor in the "
                             f"Hugging Face cache, and its shape is not known offline (known: "
                             f"{sorted(KNOWN_TEXT_SHAPES)}); give model.overrides.text.name a local directory")
        text = dataclasses.replace(text, name=None, overrides={**KNOWN_TEXT_SHAPES[text.name], **text.overrides})
    return dataclasses.replace(fusion, text=text, vision=dataclasses.replace(fusion.vision, pretrained=False))


def _config_available(name: str) -> bool:
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):
        return False
    return True


def _random_batches(model: FusionModel, text_length: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(CALIBRATION_BATCHES):
        ids, mask, image, presence = model.example_inputs(CALIBRATION_BATCH, text_length, generator=generator)
        batches.append(dict(input_ids=ids, attention_mask=mask, image=image, presence=presence,
                            label=torch.rand(CALIBRATION_BATCH, generator=generator) * 6 - 3))
    return batches


def export_random(config: ExperimentConfig, study: StudyConfig, path: Path) -> Path:
    """Exports experiment ``config``'s model with random weights to ``path`` (kept when it is there with
    the study's precisions, so a rerun only times)."""
    try:
        if set(study.export.precisions) <= set(read_manifest(path, verify_hashes=False).variants):
            return path
    except BundleError:
        pass  # missing or incomplete: export it
    from training.export import export_bundle

    torch.manual_seed(config.seed)
    fusion = random_weight_config(config.fusion_config())
    model = FusionModel(fusion).eval()
    data = config.data
    batches = _random_batches(model, data.text_max_length, config.seed)
    settings = study.export.settings(data.text_max_length, list(study.export.precisions))
    export_bundle(model, path, model_name=config.name, tokenizer=bundle_tokenizer(data, fusion.text),
                  settings=settings, calibration=batches, evaluation=batches)
    return path


def run_latency_only(study: StudyConfig, *, seconds: float = 2.0, show_progress: bool | None = None) -> Path:
    """Exports and times every experiment of ``study`` (first seed) with random weights; writes the
    latency-only report and returns its directory."""
    from fusionrt import backends
    from fusionrt.backends import RunOptions
    from fusionrt.benchmarks.runner import bench, write_json

    started = time.perf_counter()
    seen: dict[str, ExperimentConfig] = {}
    for group, config in study.experiment_groups():
        seen.setdefault(group, dataclasses.replace(config, name=group))
    work = study.resolved_work_dir / WORK_SUBDIR
    bundles = []
    for name, config in tqdm(seen.items(), desc="export (random weights)", unit="model", disable=show_progress is False):
        bundles.append(export_random(config, study, work / name / BUNDLE_DIR))
    manifest = read_manifest(bundles[0], verify_hashes=False)
    reports, skipped = [], []
    for target in study.latency.targets:
        why = (f"the bundles have no {target.precision} variant (export.precisions)"
               if target.precision not in manifest.variants else
               backends.unavailable(target.backend, manifest, RunOptions(device=target.device, precision=target.precision)))
        if why is not None:
            skipped.append(f"{target.label}: {why}")
            continue
        reports.append((target.label, bench(bundles, backend=target.backend, device=target.device,
                                            precision=target.precision, batches=(1,), threads=study.latency.threads,
                                            seconds=seconds, show_progress=show_progress is not False,
                                            argv=["fusionrt", "study", "--latency-only"])))
    if not reports:
        raise RuntimeError("no latency target of the study can run here: " + "; ".join(skipped))
    models = [_record(name, path) for name, path in zip(seen, bundles)]
    settings = {"latency_only": True, "config": dataclasses.asdict(study), "host": platform.node(),
                "machine": platform.machine(), "fusionrt": fusionrt.__version__,
                "seconds": round(time.perf_counter() - started, 1)}
    with atomic_directory(study.resolved_report_dir, overwrite=True) as root:
        paths = []
        for label, report in reports:
            paths.append(root / f"bench.{label.replace(' ', '_')}.json")
            write_json(report, paths[-1])
        devices = device_results.read_device_results(paths)
        for run in devices:  # the report's own files, by name, wherever the folder is renamed to
            run.sources = [Path(s).name for s in run.sources]
        notes = [f"not measured: {s}" for s in skipped]
        notes.append(f"{settings['seconds']:.0f} s for this run on {settings['machine']}; bundles in {work}")
        write_latency_report(root, study.name, models, devices, settings, notes)
    return study.resolved_report_dir


def _record(name: str, bundle: Path) -> dict[str, Any]:
    manifest = read_manifest(bundle, verify_hashes=False)
    return {"name": name, "strategy": manifest.strategy, "bundle": str(bundle), "targets": {},
            "bundle_bytes": sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())}


def write_latency_report(root: Path, study: str, models: Sequence[dict[str, Any]], devices: Sequence[DeviceRun],
                         settings: dict[str, Any], notes: Sequence[str] = ()) -> None:
    """Writes a latency-only report's ``report.md``, ``results.json`` and ``devices.png`` into ``root``
    (an existing folder: the caller makes the write atomic)."""
    device_results.check_matches(models, devices)
    order = [m["name"] for m in models]
    lines = [f"# Study `{study}`: latency only", "",
             "The study's models at their configured size with random weights (no data, no training): "
             "latency does not depend on the weights. Bundle sizes:", "",
             "| model | strategy | bundle MB |", "| --- | --- | --- |",
             *(f"| {m['name']} | {m['strategy']} | {m.get('bundle_bytes', 0) / 1e6:.1f} |" for m in models),
             *device_results.markdown_lines(models, devices, order)]
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    (root / REPORT_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = {"study": study, "settings": settings, "models": list(models), "notes": list(notes),
               "devices": [run.to_dict() for run in devices]}
    (root / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    device_results.plot_devices(study, models, devices, order, root / device_results.COMPARISON_FILE)

