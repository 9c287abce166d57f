"""The fusion study end to end: train every experiment, export bundles, score and time them, report.

``python -m training.study --config training/configs/study_demo.yaml`` (also ``fusionrt study`` and
``make demo``) generates the sample data if needed, then for each experiment of the study config:

1. **train** (:func:`training.train.train`) into ``<work_dir>/<name>/run``;
2. **export** the best checkpoint (:func:`training.export.export_bundle`) to ``<work_dir>/<name>/bundle``,
   int8 calibrated on the train fold, every variant scored on the test fold;
3. **measure**: load the bundle with each latency target's backend and precision (skipping, with the
   reason, those that cannot run here), score the test fold through ``Session.run`` and time batch-1
   calls (:mod:`training.latency`). For late / intermediate fusion on ONNX Runtime, first time its
   branches run one after the other, concurrently, and the slower one alone
   (:func:`fusionrt.backends.onnxruntime.execution.choose_execution`); the session then runs the
   faster mode. On the first target that runs (the one the model deploys with), score the test fold
   under every robustness condition (:mod:`training.robustness`: a modality absent, image noise and
   blur, text word dropout, each at graded levels).

With ``seeds`` in the study config every experiment runs once per seed; the report gives each
experiment's mean ± std over its seeds.

Every experiment's model config is checked before the first is trained (:func:`check_experiments`).
Every stage's output is kept, so a rerun after an interruption picks up where it stopped. The report
(:mod:`training.report`) replaces ``<report_dir>`` as a whole once every model is done.

Example:
    >>> report = run_study(StudyConfig.load("training/configs/study_demo.yaml"))  # doctest: +SKIP
    >>> (report / "report.md").read_text()  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import fusionrt
from fusionrt import backends
from fusionrt.backends import RunOptions
from fusionrt.backends.onnxruntime.branches import SPLITTABLE
from fusionrt.backends.onnxruntime.execution import choose_execution
from fusionrt.bundle import MANIFEST_NAME, BundleError, Manifest, read_manifest
from fusionrt.graph_io import SCORE, output_name
from training.checkpoint import load_checkpoint, model_from_checkpoint
from training.experiment import MODALITIES, DataSection, ExperimentConfig
from training.export import export_bundle
from training.export.graph_io import batch_feeds
from training.latency import measure_latency, split_batch
from training.loaders import bundle_tokenizer, dataset_root, export_loaders, fold_loader, load_tokenizer
from training.metrics import mosi_metrics
from training.models.text_encoder import check_text_overrides
from training.models.vision_encoder import check_vision_overrides
from training.device_results import DeviceRun, read_device_results
from training.latency_only import run_latency_only
from training.report import show, write_report
from training.robustness import RobustnessSettings, TestFold, applies, conditions
from training.study_config import ExportSection, LatencySection, LatencyTarget, StudyConfig
from training.train import RESULT, train
from training.trainer import BEST, write_json

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "study_demo.yaml"
BUNDLE_DIR = "bundle"
EXPORT_ISSUE = "export_issue.txt"
MEASURED = "measured.json"
#: Beside the bundle: the export options it was written with that its manifest does not record.
EXPORTED = "exported.json"
STAGES = ("train", "export", "measure")


def run_study(study: StudyConfig, *, show_progress: bool | None = None, devices: Sequence[DeviceRun] = ()) -> Path:
    """Runs (or resumes) ``study`` and writes its report; returns the report directory.

    Args:
        show_progress: a progress bar of models and stages; ``None`` shows it when stderr is a terminal.
        devices: latency measured on target devices (:mod:`training.device_results`), added to the report.
    """
    started = time.perf_counter()
    groups = study.experiment_groups()
    configs = [config for _, config in groups]
    check_experiments(configs)
    progress = _Progress(len(configs) * len(STAGES), show_progress)
    # One dataset per (root, generation parameters, cache), however many experiments read it.
    datasets = {(c.data.root, repr(c.data.generated), str(c.data.resolved_cache_dir)): c.data for c in configs}
    for data in datasets.values():
        progress.stage("data", "sample dataset" if data.root == "generated" else data.root)
        dataset_root(data)  # generated into the cache when missing
    models = []
    for group, config in groups:
        bundle = config.run_dir.parent / BUNDLE_DIR
        progress.stage(config.name, "train")
        result = train_model(config)
        progress.stage(config.name, "export", done=1)
        export_model(config, result, study.export, bundle)
        progress.stage(config.name, "measure", done=1)
        models.append(measure_model(config, result, bundle, study.latency, study.robustness, group))
        progress.stage(config.name, "done", done=1)
    progress.bar.close()
    settings = {"config": dataclasses.asdict(study), "host": platform.node(), "machine": platform.machine(),
                "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
                "fusionrt": fusionrt.__version__, "seconds": round(time.perf_counter() - started, 1)}
    notes = [f"{settings['seconds']:.0f} s for this run of the study on {settings['machine']} "
             f"({'with' if settings['cuda'] else 'no'} CUDA, {settings['torch_threads']} torch threads); "
             f"a rerun reuses the stages already done in {study.resolved_work_dir}"]
    scored = [m["robustness"]["seconds"] for m in models if "seconds" in m.get("robustness", {})]
    if scored:
        notes.append(f"robustness scoring took {sum(scored):.0f} s over {len(scored)} models "
                     f"({max(scored):.1f} s the slowest), when each was measured")
    return write_report(study.resolved_report_dir, study.name, models, settings, notes, devices)


def check_experiments(configs: Sequence[ExperimentConfig]) -> None:
    """Checks every experiment's model before the study trains the first one, so a typo in the last
    experiment fails in seconds, not hours into the study.

    Loading the study has checked each config's fields; this builds each model's :class:`FusionConfig`
    (registered defaults, overrides, image size) and checks the backbone overrides against what the
    libraries accept (:func:`~training.models.text_encoder.check_text_overrides`: the transformers
    config, read from its ``config.json``; :func:`~training.models.vision_encoder.check_vision_overrides`:
    timm's keywords), as building the model would, without loading weights.

    Raises:
        ValueError: naming the experiment and the field (and the closest valid key).
    """
    for config in configs:
        try:
            fusion = config.fusion_config()
            check_text_overrides(fusion.text, "model.overrides.text.overrides")
            check_vision_overrides(fusion.vision, "model.overrides.vision.overrides")
        except (ValueError, TypeError, OSError) as error:  # OSError: a text backbone that cannot be found
            raise ValueError(f"experiment {config.name!r}: {error} (no experiment was started)") from error


class _Progress:
    """A line per stage (kept in logs) and a tqdm bar over all stages of all models (on a terminal)."""

    def __init__(self, total: int, show: bool | None) -> None:
        show = sys.stderr.isatty() if show is None else show
        self.bar = tqdm(total=total, unit="stage", dynamic_ncols=True, disable=not show)
        self.started = time.perf_counter()

    def stage(self, model: str, stage: str, done: int = 0) -> None:
        """Marks ``done`` stages finished and announces the next one."""
        self.bar.update(done)
        self.bar.set_description(f"{model}: {stage}")
        tqdm.write(f"[study {time.perf_counter() - self.started:6.0f} s] {model}: {stage}")


def train_model(config: ExperimentConfig) -> dict[str, Any]:
    """``result.json`` of the experiment's run, training (or resuming) it unless a finished run of this
    exact configuration is already there."""
    result_path = config.run_dir / RESULT
    saved = config.run_dir / "config.yaml"
    if result_path.is_file() and saved.is_file() and ExperimentConfig.load(saved).to_dict() == config.to_dict():
        return json.loads(result_path.read_text(encoding="utf-8"))
    result = train(config)
    if not result["finished"]:
        raise RuntimeError(f"training {config.name} stopped at epoch {result['epoch']} without finishing")
    return result


def export_model(config: ExperimentConfig, result: dict[str, Any], options: ExportSection, path: Path) -> None:
    """Writes the experiment's bundle to ``path`` unless one newer than the checkpoint with the wanted
    precisions and runtimes, calibrated as ``options`` say (recorded in ``exported.json`` beside it), is
    there: a study file whose calibration changed exports its models again.

    When a lower-precision variant fails to export, the study goes on with fp32 only: one model's
    int8 problem should not cost the other models' results. Why is kept in ``export_issue.txt`` beside
    the bundle (and shown in the report), and the failing variant is not retried on a rerun.
    """
    checkpoint = Path(result["checkpoint"])
    issue = path.parent / EXPORT_ISSUE
    record = path.parent / EXPORTED
    precisions = ["fp32"] if issue.is_file() else list(options.precisions)
    calibrated_as = {"calibration_method": options.calibration_method,
                     "calibration_samples": options.calibration_samples}
    try:
        manifest = read_manifest(path)
        fresh = (path / MANIFEST_NAME).stat().st_mtime >= checkpoint.stat().st_mtime
        if (fresh and set(precisions) <= set(manifest.variants) and set(options.targets) <= set(manifest.targets)
                and _recorded_options(record) == calibrated_as):
            return
    except BundleError:
        pass  # missing or incomplete (an interrupted export leaves none): export it
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    data = config.data
    # The loaders keep the experiment's modalities, so a unimodal baseline is calibrated and scored as trained.
    calibration, evaluation = export_loaders(data, load_tokenizer(ckpt["tokenizer"]), config.seed)
    tokenizer = bundle_tokenizer(data, model.config.text)

    def export(variants: list[str]) -> None:
        settings = options.settings(data.text_max_length, variants)
        export_bundle(model, path, model_name=config.name, tokenizer=tokenizer, settings=settings,
                      calibration=calibration, evaluation=evaluation)

    try:
        export(precisions)
    except Exception as error:  # noqa: BLE001 - any variant's failure, reported below with its type
        if precisions == ["fp32"]:
            raise
        issue.write_text(f"exporting {precisions} failed ({type(error).__name__}: {error}); exported fp32 only\n",
                         encoding="utf-8")
        tqdm.write(f"[study] {config.name}: {issue.read_text(encoding='utf-8').strip()}")
        export(["fp32"])
    write_json(record, calibrated_as)


def _recorded_options(record: Path) -> dict[str, Any] | None:
    """The export options recorded beside a bundle, or None where none are (or the record is unreadable,
    which a new export replaces)."""
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def measure_model(config: ExperimentConfig, result: dict[str, Any], bundle: Path, latency: LatencySection,
                  robustness: RobustnessSettings | None = None, group: str | None = None) -> dict[str, Any]:
    """The model's study record: identity, complexity, per latency target the test metrics through
    the deployed session and batch-1 latency (or why the target was skipped), and on the first target
    that runs the metrics under each robustness condition (:func:`score_robustness`).

    ``group`` names the experiment the record is one seed of (default: its own name); the report
    gives each group's mean and standard deviation over its seeds.

    Cached in ``measured.json`` beside the run; the cache is used while it is newer than the bundle
    and was measured with the same latency settings."""
    robustness = RobustnessSettings(enabled=False) if robustness is None else robustness
    group = config.name if group is None else group
    manifest = read_manifest(bundle)
    cache = config.run_dir.parent / MEASURED
    settings = dataclasses.asdict(latency)
    if cache.is_file() and cache.stat().st_mtime >= (bundle / MANIFEST_NAME).stat().st_mtime:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        same_robustness = cached.get("robustness_settings") == dataclasses.asdict(robustness)
        if cached["latency_settings"] == settings and same_robustness:
            return {**cached["record"], "group": group}
    modalities = result["modalities"]
    record = {
        "name": config.name,
        "group": group,
        "seed": config.seed,
        "model": result["model"],
        "strategy": result["strategy"] if len(modalities) == len(MODALITIES) else f"{modalities[0]} only",
        "modalities": modalities,
        "params": result["complexity"]["total"]["params"],
        "flops": result["complexity"]["total"]["flops"],
        "complexity": result["complexity"],
        "training": {k: result[k] for k in ("epochs_run", "best_epoch", "stopped_early", "train_seconds")},
        "trainer_test_metrics": result["test"],
        "bundle": str(bundle),
        "export_metrics": {name: variant.metrics for name, variant in manifest.variants.items()},
        "export_issue": _read_issue(config.run_dir.parent / EXPORT_ISSUE),
        "targets": {},
    }
    batches, labels = _test_feeds(config, latency.eval_batch_size)
    timing_feeds = [f for batch in batches for f in split_batch(batch, latency.samples)][:latency.samples]
    for target in latency.targets:
        why = _why_not(target.backend, target.precision, target.device, manifest)
        if why is not None:
            record["targets"][target.label] = {"skipped": why}
            continue
        concurrency = _choose_concurrency(bundle, manifest, modalities, target, latency)
        if concurrency is not None:
            record.setdefault("concurrency", {})[target.label] = concurrency
        # execution="auto" runs the mode _choose_concurrency recorded in the bundle, if any.
        session = fusionrt.load(bundle, backend=target.backend, device=target.device, precision=target.precision,
                                threads=latency.threads)
        scores = np.concatenate([session.run(feeds)[output_name(SCORE)] for feeds in batches])
        stats = measure_latency(session, timing_feeds, warmup=latency.warmup, repeats=latency.repeats)
        record["targets"][target.label] = {
            "backend": session.backend, "device": session.device, "precision": session.precision,
            "metrics": mosi_metrics(scores, labels), "latency": stats.to_dict(),
        }
        if "robustness" not in record and robustness.enabled:  # on the first target that runs: the deployed one
            record["robustness"] = score_robustness(config, session, target.label, robustness)
    write_json(cache, {"latency_settings": settings, "robustness_settings": dataclasses.asdict(robustness),
                       "record": record})
    return record


def score_robustness(config: ExperimentConfig, session: fusionrt.Session, label: str,
                     settings: RobustnessSettings) -> dict[str, Any]:
    """The model's test metrics through ``session`` under every condition of :mod:`training.robustness`
    (a condition that would leave the model no input is listed with the reason instead)."""
    started = time.perf_counter()
    loader, data = _test_loader(config, settings.batch_size)
    fold = TestFold(loader, settings.samples, settings.batch_size)  # decoded once for every condition
    modalities = config.data.modalities
    results: dict[str, Any] = {}
    for condition in conditions(settings):
        why = applies(condition, modalities)
        if why is not None:
            results[condition.label] = {"kind": condition.kind, "level": condition.level, "skipped": why}
            continue
        scores, labels = [], []
        for batch in fold.batches(condition, settings.seed):
            feeds = batch_feeds(batch, data.text_max_length, data.image_size)
            scores.append(session.run(feeds)[output_name(SCORE)])
            labels.append(batch["label"].numpy())
        results[condition.label] = {"kind": condition.kind, "level": condition.level,
                                    "metrics": mosi_metrics(np.concatenate(scores), np.concatenate(labels))}
    return {"target": label, "seed": settings.seed, "samples": len(fold.items),
            "seconds": round(time.perf_counter() - started, 2),
            "conditions": results}


def _choose_concurrency(bundle: Path, manifest: Manifest, modalities: Sequence[str], target: LatencyTarget,
                        latency: LatencySection) -> dict[str, Any] | None:
    """Times sequential vs concurrent branches of a late / intermediate model on ONNX Runtime and records
    the faster in the bundle (:func:`fusionrt.backends.onnxruntime.execution.choose_execution`); None
    for other targets and for unimodal baselines (one branch only)."""
    if target.backend != "onnxruntime" or manifest.strategy not in SPLITTABLE or len(modalities) < len(MODALITIES):
        return None
    options = RunOptions(device=target.device, precision=target.precision, threads=latency.threads)
    return choose_execution(bundle, latency.concurrency_repeats, options=options)


def _read_issue(path: Path) -> str | None:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def _test_loader(config: ExperimentConfig, batch_size: int) -> tuple[DataLoader, DataSection]:
    """The test fold's loader (in the experiment's modalities, with its tokenizer) and its data section."""
    data = dataclasses.replace(config.data, batch_size=batch_size)
    checkpoint = load_checkpoint(config.run_dir / BEST)
    loader = fold_loader(data, "test", load_tokenizer(checkpoint["tokenizer"]), dataset_root(data), shuffle=False,
                         seed=config.seed)
    return loader, data


def _test_feeds(config: ExperimentConfig, batch_size: int) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """The test fold as graph feeds (in the experiment's modalities) and its labels."""
    loader, data = _test_loader(config, batch_size)
    batches = [(batch_feeds(b, data.text_max_length, data.image_size), b["label"].numpy()) for b in loader]
    return [f for f, _ in batches], np.concatenate([y for _, y in batches])


def _why_not(backend: str, precision: str, device: str | None, manifest: Manifest) -> str | None:
    """Why this target cannot be measured here (backend unavailable, variant missing or not run by the
    backend), or None."""
    # The variant first: a backend's availability check reads the files of the variant it would run.
    if precision not in manifest.variants:
        return f"the bundle has no {precision} variant (export.precisions)"
    why = backends.unavailable(backend, manifest, RunOptions(device=device, precision=precision))
    if why is not None:
        return why
    return backends.backend_type(backend).precision_issue(precision)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.study`` / ``fusionrt study``: runs a study config; returns the exit code."""
    parser = argparse.ArgumentParser(prog="fusionrt study", description="Train, export, score and time every model "
                                     "of a fusion study; write its report (resumes an interrupted study).")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"study config (default: the CPU demo, {DEFAULT_CONFIG.name}; study_full.yaml: full size)")
    parser.add_argument("--out", type=Path, default=None, help="report directory (default: reports/<study name>)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="trained runs and bundles, reused on a rerun (default: runs/study/<study name>)")
    parser.add_argument("--device-results", type=Path, nargs="+", default=[], metavar="JSON",
                        help="fusionrt bench reports (--batch 1 --json) from target devices: a latency column group, "
                             "a Figure 1 per device and a plot comparing them (also: fusionrt report)")
    parser.add_argument("--latency-only", action="store_true",
                        help="no data, no training: export every model at its configured size with random weights "
                             "and time it (the latency half of Figure 1, for any device)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="with --latency-only: timed seconds per model and target (default: 2)")
    args = parser.parse_args(argv)
    if args.latency_only and args.device_results:
        parser.error("--device-results adds devices to a report; after --latency-only, run fusionrt report on it")
    try:
        study = StudyConfig.load(args.config)
        study = dataclasses.replace(
            study, report_dir=str(args.out) if args.out else study.report_dir,
            work_dir=str(args.work_dir) if args.work_dir else study.work_dir,
        )
        if args.latency_only:
            report = run_latency_only(study, seconds=args.seconds)
        else:
            report = run_study(study, devices=read_device_results(args.device_results))
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"fusionrt study: error: {error}", file=sys.stderr)
        return 1
    show(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
