"""Study configuration: which experiments to train, how to export them, what latency to measure.

A study file (YAML or TOML) lists its experiments, each a base experiment config (a path relative to
the study file) with a name and the overrides that make it this experiment, and says how every model
is exported, which backend / precision pairs are timed, and where results go::

    name: demo                                  # default: the file's stem without "study_"
    experiments:                                # {config: base file, name, overrides}
      - {config: base_demo.yaml, name: demo_late_mobilenetv2}
      - {config: base_demo.yaml, name: demo_late_vit, overrides: {model: {name: late_vit}}}
      - {config: base_demo.yaml, name: demo_text_only, overrides: {data: {modalities: [text]}}}
      - other_experiment.yaml                   # a whole config file (its own name, else its stem)
    overrides: {data: {generated: {scale: 0.5}}}  # merged into every experiment config
    export: {precisions: [fp32, int8], calibration_samples: 128, calibration_method: minmax,
             targets: [onnxruntime, tensorrt, torch]}   # runtimes the bundles serve (default: all)
    latency:
      targets: [{backend: onnxruntime, precision: fp32}, {backend: tensorrt, precision: fp16}]
      warmup: 20
      repeats: 200
    seeds: [0, 1, 2]                            # train every experiment once per seed (default: once,
                                                #   at its own seed); the report gives mean ± std
    robustness: {noise: [0.1, 0.2, 0.4], blur: [1, 2, 4], word_dropout: [0.25, 0.5, 0.75], seed: 0}
    work_dir: runs/study/demo                   # trained runs and bundles (default runs/study/<name>)
    report_dir: reports/demo                    # report (default reports/<name>)

Each experiment resolves to ``base + study overrides + its own overrides`` (mappings merge, anything
else replaces), named ``name`` and run in ``<work_dir>/<name>/run``; with ``seeds``, once per seed as
``<name>_seed<seed>`` (its ``seed`` field set), grouped under ``name`` in the report. :func:`load_experiment` gives one
of them, resolved the same way, to train on its own (``python -m training.train --experiment``).

Example:
    >>> study = StudyConfig.load("training/configs/study_demo.yaml")  # doctest: +SKIP
    >>> [e.name for e in study.experiment_configs()]  # doctest: +SKIP
    ['demo_late_mobilenetv2', ...]
    >>> load_experiment("training/configs/study_demo.yaml", "demo_late_vit").model.name  # doctest: +SKIP
    'late_vit'
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrt.backends import NAMES as BACKENDS
from fusionrt.bundle import PRECISIONS, RUNTIMES
from training.checks import require_at_least, require_one_of
from training.experiment import ExperimentConfig, _build, read_config_file
from training.export import ExportSettings
from training.export.precision import CALIBRATION_SAMPLES
from training.robustness import RobustnessSettings
from training.tables import lookup

@dataclass
class ExportSection:
    """The study's export options for every model, checked by :class:`training.export.ExportSettings`
    (their one home) when the study file is read.

    ``accuracy_tolerance`` ``None`` records each variant's accuracy without failing the export: a
    study reports what int8 costs rather than refusing to show it.
    """

    precisions: list[str] = field(default_factory=lambda: ["fp32", "int8"])
    calibration_samples: int = CALIBRATION_SAMPLES
    calibration_method: str = "percentile"
    accuracy_tolerance: float | None = None
    #: The runtimes the bundles are written for (:data:`fusionrt.bundle.RUNTIMES`): a study that times
    #: only ONNX Runtime skips TensorRT's graphs and the torch program (a third of a demo model's export).
    targets: list[str] = field(default_factory=lambda: list(RUNTIMES))

    def __post_init__(self) -> None:
        try:
            self.settings(text_max_length=1)
        except ValueError as error:
            raise ValueError(f"export.{error}") from None

    def settings(self, text_max_length: int, precisions: list[str] | None = None) -> ExportSettings:
        """The export settings for one model: these options at its text length (``precisions``, when
        given, replaces the study's list, e.g. fp32 only after a failed int8 export)."""
        return ExportSettings(
            text_max_length=text_max_length, precisions=self.precisions if precisions is None else precisions,
            calibration_samples=self.calibration_samples, calibration_method=self.calibration_method,
            accuracy_tolerance=self.accuracy_tolerance, overwrite=True, targets=self.targets,
        )


@dataclass
class LatencyTarget:
    """One backend / precision (/ device) pair to time; ``device`` ``None`` is the backend's default."""

    backend: str = "onnxruntime"
    precision: str = "fp32"
    device: str | None = None

    def __post_init__(self) -> None:
        require_one_of("latency target backend", self.backend, list(BACKENDS))
        require_one_of("latency target precision", self.precision, list(PRECISIONS))

    @property
    def label(self) -> str:
        """Short column name, e.g. ``onnxruntime fp32`` or ``tensorrt fp16 cuda:1``."""
        return " ".join(p for p in (self.backend, self.precision, self.device) if p)


@dataclass
class LatencySection:
    """Batch-1 latency: ``warmup`` untimed then ``repeats`` timed ``Session.run`` calls, cycling over the
    first ``samples`` test samples; ``eval_batch_size`` is the batch used to score the test fold.
    Before ONNX Runtime times late / intermediate fusion, ``concurrency_repeats`` timed calls per mode
    compare running its two branches one after the other and concurrently; the faster is deployed."""

    targets: list[LatencyTarget] = field(default_factory=lambda: [LatencyTarget()])
    warmup: int = 20
    repeats: int = 200
    samples: int = 32
    threads: int | None = None
    eval_batch_size: int = 8
    #: Late / intermediate fusion on ONNX Runtime: time sequential vs concurrent branches and deploy the
    #: faster (:func:`fusionrt.backends.onnxruntime.execution.choose_execution`), with this many timed
    #: calls per mode.
    concurrency_repeats: int = 30

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("latency.targets is empty, expected at least one {backend, precision}")
        self.targets = [t if isinstance(t, LatencyTarget) else _build(LatencyTarget, t, "latency.targets[].")
                        for t in self.targets]
        for name in ("repeats", "samples", "eval_batch_size", "concurrency_repeats"):
            require_at_least(f"latency.{name}", getattr(self, name), 1)
        require_at_least("latency.warmup", self.warmup, 0)


@dataclass
class ExperimentEntry:
    """One experiment of the study: a base config file, the experiment's name (default: the config's
    own ``name``, else the file's stem) and its own overrides (merged after the study-wide ones),
    e.g. a ViT model or a unimodal baseline made from the late MobileNetV2 base."""

    config: str = ""
    name: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.config:
            raise ValueError("an experiments entry has no config file")


@dataclass
class StudyConfig:
    """A whole study: experiments (+ overrides), export and latency settings, output directories."""

    experiments: list[ExperimentEntry | str]
    name: str = "study"
    overrides: dict[str, Any] = field(default_factory=dict)
    export: ExportSection = field(default_factory=ExportSection)
    latency: LatencySection = field(default_factory=LatencySection)
    #: Training seeds: every experiment runs once per seed (None: once, at the seed its config says).
    seeds: list[int] | None = None
    robustness: RobustnessSettings = field(default_factory=RobustnessSettings)
    work_dir: str | None = None
    report_dir: str | None = None
    base_dir: str = "."  # where relative experiment paths start (the study file's folder)

    def __post_init__(self) -> None:
        if not self.experiments:
            raise ValueError("experiments is empty, expected a list of experiment config files")
        self.experiments = [
            e if isinstance(e, ExperimentEntry)
            else ExperimentEntry(config=e) if isinstance(e, str)
            else _build(ExperimentEntry, e, "experiments[].")
            for e in self.experiments
        ]
        if self.seeds is not None:
            if not self.seeds or any(isinstance(v, bool) or not isinstance(v, int) for v in self.seeds):
                raise ValueError(f"seeds is {self.seeds!r}, expected a non-empty list of integers (or leave it out)")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds {self.seeds} has repeats; each seed trains once")

    @property
    def resolved_work_dir(self) -> Path:
        """Trained runs and bundles, one folder per experiment."""
        return Path(self.work_dir if self.work_dir is not None else Path("runs") / "study" / self.name)

    @property
    def resolved_report_dir(self) -> Path:
        """The report folder (replaced as a whole when a study finishes)."""
        return Path(self.report_dir if self.report_dir is not None else Path("reports") / self.name)

    def experiment_configs(self) -> list[ExperimentConfig]:
        """Every experiment (once per seed with ``seeds``), loaded, with ``overrides`` merged in and its run
        directory under the work dir."""
        return [config for _, config in self.experiment_groups()]

    def experiment_groups(self) -> list[tuple[str, ExperimentConfig]]:
        """``(experiment name, config)`` for every run of the study: one per experiment, or with ``seeds``
        one per experiment and seed (named ``<name>_seed<seed>``), grouped by the experiment's name."""
        groups = []
        for entry in self.experiments:
            path = Path(self.base_dir) / entry.config
            base = ExperimentConfig.load(path).to_dict()
            if entry.name is not None:
                base["name"] = entry.name
            try:
                config = ExperimentConfig.from_dict(_merge(_merge(base, self.overrides), entry.overrides))
            except (TypeError, ValueError) as err:
                what = path if entry.name is None else f"{path} (experiment {entry.name})"
                raise ValueError(f"study overrides do not apply to {what}: {err}") from err
            group = config.name
            for seed in self.seeds if self.seeds is not None else [None]:
                run = config if seed is None else dataclasses.replace(config, name=f"{group}_seed{seed}", seed=seed)
                run.output_dir = str(self.resolved_work_dir / run.name / "run")
                groups.append((group, run))
        configs = [c for _, c in groups]
        names = [c.name for c in configs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"experiments {duplicates} appear more than once; each needs its own name")
        return groups

    def experiment_config(self, name: str) -> ExperimentConfig:
        """Experiment ``name``, resolved exactly as :meth:`experiment_configs` resolves it (same run
        directory, so the study finds it trained); an unknown name lists the study's experiments."""
        return lookup({c.name: c for c in self.experiment_configs()}, name, "experiment")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StudyConfig:
        """Reads a ``.yaml`` / ``.yml`` / ``.toml`` study file; errors name the file and the field."""
        path = Path(path)
        data = read_config_file(path, "study config", "a mapping with an 'experiments' list")
        data.setdefault("name", path.stem.removeprefix("study_"))
        data.setdefault("base_dir", str(path.parent))
        try:
            return _build(cls, data, "")
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in recursively (mappings merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def is_study_file(path: str | os.PathLike[str]) -> bool:
    """Whether the config file at ``path`` is a study (it lists ``experiments``) rather than one experiment."""
    return "experiments" in read_config_file(Path(path), "config", "a mapping of config sections")


def load_experiment(path: str | os.PathLike[str], experiment: str | None = None) -> ExperimentConfig:
    """The experiment config to train from file ``path``.

    Args:
        path: A plain experiment config, or a study config.
        experiment: With a study file, the name of one of its experiments (required); with a plain
            config, ``None``.

    Example:
        >>> load_experiment("training/configs/study_demo.yaml", "demo_text_only").data.modalities  # doctest: +SKIP
        ['text']
    """
    if not is_study_file(path):
        if experiment is not None:
            raise ValueError(f"{path} is one experiment's config, not a study: --experiment {experiment} "
                             "needs a study file (or leave --experiment out)")
        return ExperimentConfig.load(path)
    study = StudyConfig.load(path)
    if experiment is None:
        names = [c.name for c in study.experiment_configs()]
        raise ValueError(f"{path} is a study of {len(names)} experiments; pick one with --experiment: "
                         f"{', '.join(names)}")
    return study.experiment_config(experiment)
