"""How a bundle is exported: :class:`ExportSettings`, the one home of the export options' defaults and checks.

Example:
    >>> settings = ExportSettings(text_max_length=64, precisions=("fp32", "int8"), calibration_method="minmax")
    >>> settings.variants
    ('fp32', 'int8')
    >>> ExportSettings(precisions=("fp32", "bf16"))
    Traceback (most recent call last):
    ...
    ValueError: precisions has ['bf16'], expected a subset of ('fp32', 'fp16', 'int8')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fusionrt.bundle import PRECISIONS, RUNTIMES

from .evaluation import ACCURACY_TOLERANCE
from .precision import CALIBRATION_METHODS, CALIBRATION_SAMPLES


@dataclass(frozen=True)
class ExportSettings:
    """The options of :func:`training.export.export_bundle`; invalid values fail here, before any export work.

    Attributes:
        text_max_length: the fixed text length L of the graph (the Session pads to it).
        precisions: variants to write, a subset of :data:`fusionrt.bundle.PRECISIONS`; ``"fp32"`` is
            always written. ``"int8"`` needs calibration batches.
        calibration_samples: training samples int8 calibration reads.
        calibration_method: ``"minmax"`` or ``"percentile"`` (see
            :func:`training.export.precision.quantize_int8`).
        accuracy_tolerance: largest Has0_acc_2 drop (a fraction: 0.01 is one point) a lower precision
            may cost against fp32 when evaluation batches are given; ``None`` records without checking.
        overwrite: replace a bundle already at the output path.
        targets: the runtimes the bundle serves, a subset of :data:`fusionrt.bundle.RUNTIMES`: only their
            files are written (a device that runs ONNX Runtime needs neither TensorRT's graphs nor the
            torch program).
    """

    text_max_length: int = 64
    precisions: Sequence[str] = PRECISIONS
    calibration_samples: int = CALIBRATION_SAMPLES
    calibration_method: str = "percentile"
    accuracy_tolerance: float | None = ACCURACY_TOLERANCE
    overwrite: bool = False
    targets: Sequence[str] = RUNTIMES

    def __post_init__(self) -> None:
        if isinstance(self.precisions, str):
            raise ValueError(f"precisions is {self.precisions!r}, expected a sequence of names, e.g. ('fp32', 'fp16')")
        # A tuple, so equal settings compare and hash equal whatever sequence they were given as.
        object.__setattr__(self, "precisions", tuple(self.precisions))
        unknown = sorted(set(self.precisions) - set(PRECISIONS))
        if unknown:
            raise ValueError(f"precisions has {unknown}, expected a subset of {PRECISIONS}")
        for name in ("text_max_length", "calibration_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} is {value!r}, expected an integer >= 1")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration_method is {self.calibration_method!r}, expected one of {CALIBRATION_METHODS}")
        tolerance = self.accuracy_tolerance
        if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                                      or not math.isfinite(tolerance) or not 0 <= tolerance <= 1):
            raise ValueError(f"accuracy_tolerance is {tolerance!r}, expected a fraction in [0, 1] or None (no check)")
        if isinstance(self.targets, str):
            raise ValueError(f"targets is {self.targets!r}, expected a sequence of names, e.g. ('onnxruntime',)")
        unknown = sorted(set(self.targets) - set(RUNTIMES))
        if unknown or not self.targets:
            raise ValueError(f"targets has {list(self.targets)}, expected a non-empty subset of {RUNTIMES}")
        # In RUNTIMES order, each once, so equal settings compare equal.
        object.__setattr__(self, "targets", tuple(t for t in RUNTIMES if t in self.targets))
        if not isinstance(self.overwrite, bool):
            raise ValueError(f"overwrite is {self.overwrite!r}, expected True or False")

    @property
    def variants(self) -> tuple[str, ...]:
        """The precisions written, in :data:`~fusionrt.bundle.PRECISIONS` order: fp32 and those asked for."""
        return tuple(p for p in PRECISIONS if p == "fp32" or p in self.precisions)
