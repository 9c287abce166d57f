"""Study configuration: which experiments to train, how to export them, what latency to measure.

A study file (YAML or TOML) lists experiment configs (paths relative to the study file) and says how
every model is exported, which backend / precision pairs are timed, and where results go::

    name: demo                                  # default: the file's stem
    experiments:                                # experiment configs, relative to this file
      - demo_late_mobilenetv2.yaml
      - {config: late_mobilenetv2.yaml, name: text_only, overrides: {data: {modalities: [text]}}}
    overrides: {data: {generated: {scale: 0.5}}}  # merged into every experiment config
    export: {precisions: [fp32, int8], calibration_samples: 128, calibration_method: minmax}
    latency:
      targets: [{backend: onnxruntime, precision: fp32}, {backend: tensorrt, precision: fp16}]
      warmup: 20
      repeats: 200
    work_dir: runs/study/demo                   # trained runs and bundles (default runs/study/<name>)
    report_dir: reports/demo                    # report (default reports/<name>)

Example:
    >>> study = StudyConfig.load("training/configs/study_demo.yaml")  # doctest: +SKIP
    >>> [e.name for e in study.experiment_configs()]  # doctest: +SKIP
    ['demo_late_mobilenetv2', ...]
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrt.backends import NAMES as BACKENDS
from fusionrt.bundle import PRECISIONS
from training.experiment import ExperimentConfig, _build, read_config_file
from training.export.precision import CALIBRATION_SAMPLES

CALIBRATION_METHODS = ("minmax", "percentile")


@dataclass
class ExportSection:
    """Arguments of :func:`training.export.export_bundle` for every model of the study.

    ``accuracy_tolerance`` ``None`` records each variant's accuracy without failing the export: a
    study reports what int8 costs rather than refusing to show it.
    """

    precisions: list[str] = field(default_factory=lambda: ["fp32", "int8"])
    calibration_samples: int = CALIBRATION_SAMPLES
    calibration_method: str = "percentile"
    accuracy_tolerance: float | None = None

    def __post_init__(self) -> None:
        unknown = set(self.precisions) - set(PRECISIONS)
        if unknown:
            raise ValueError(f"export.precisions has {sorted(unknown)}, expected a subset of {list(PRECISIONS)}")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(f"export.calibration_method is {self.calibration_method!r}, "
                             f"expected one of {CALIBRATION_METHODS}")
        if self.calibration_samples < 1:
            raise ValueError(f"export.calibration_samples is {self.calibration_samples}, expected >= 1")


@dataclass
class LatencyTarget:
    """One backend / precision (/ device) pair to time; ``device`` ``None`` is the backend's default."""

    backend: str = "onnxruntime"
    precision: str = "fp32"
    device: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"latency target backend is {self.backend!r}, expected one of {list(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"latency target precision is {self.precision!r}, expected one of {list(PRECISIONS)}")

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
    #: faster (:func:`fusionrt.execution.choose_execution`), with this many timed calls per mode.
    concurrency_repeats: int = 30

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("latency.targets is empty, expected at least one {backend, precision}")
        self.targets = [t if isinstance(t, LatencyTarget) else _build(LatencyTarget, t, "latency.targets[].")
                        for t in self.targets]
        for name in ("repeats", "samples", "eval_batch_size", "concurrency_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"latency.{name} is {getattr(self, name)}, expected >= 1")
        if self.warmup < 0:
            raise ValueError(f"latency.warmup is {self.warmup}, expected >= 0")


@dataclass
class ExperimentEntry:
    """One experiment of the study: a config file, optionally renamed and with its own overrides
    (merged after the study-wide ones), e.g. a unimodal baseline made from a fusion config."""

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

    @property
    def resolved_work_dir(self) -> Path:
        """Trained runs and bundles, one folder per experiment."""
        return Path(self.work_dir if self.work_dir is not None else Path("runs") / "study" / self.name)

    @property
    def resolved_report_dir(self) -> Path:
        """The report folder (replaced as a whole when a study finishes)."""
        return Path(self.report_dir if self.report_dir is not None else Path("reports") / self.name)

    def experiment_configs(self) -> list[ExperimentConfig]:
        """Every experiment, loaded, with ``overrides`` merged in and its run directory under the work dir."""
        configs = []
        for entry in self.experiments:
            path = Path(self.base_dir) / entry.config
            base = ExperimentConfig.load(path).to_dict()
            if entry.name is not None:
                base["name"] = entry.name
            try:
                config = ExperimentConfig.from_dict(_merge(_merge(base, self.overrides), entry.overrides))
            except (TypeError, ValueError) as err:
                raise ValueError(f"study overrides do not apply to {path}: {err}") from err
            config.output_dir = str(self.resolved_work_dir / config.name / "run")
            configs.append(config)
        names = [c.name for c in configs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"experiments {duplicates} appear more than once; each needs its own name")
        return configs

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
