"""How to run a bundle on a backend: :class:`RunOptions`, validated once where it is made.

Example:
    >>> RunOptions(precision="int8", threads=2)
    RunOptions(device=None, precision='int8', threads=2, execution='auto')
    >>> RunOptions(precision="bf16")
    Traceback (most recent call last):
    ...
    ValueError: unknown precision 'bf16', expected one of ['fp32', 'fp16', 'int8']
    >>> parse_device("cuda:1")
    ('cuda', 1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..bundle import PRECISIONS

#: Every execution mode some backend runs; each backend type lists the ones it runs
#: (:attr:`~fusionrt.backends.base.BackendType.executions`). "auto" is the calibrated one, else sequential.
EXECUTIONS = ("auto", "sequential", "parallel", "branches")
#: Every device kind some backend runs on; each backend type lists the ones it runs on
#: (:attr:`~fusionrt.backends.base.BackendType.devices`). "meta" (torch) holds shapes, not values: it
#: checks that a program moves off the CPU on hosts without a GPU.
DEVICE_KINDS = ("cpu", "cuda", "meta")


def parse_device(device: str) -> tuple[str, int | None]:
    """``(kind, index)`` of a device name: ``"cpu"`` -> ("cpu", None), ``"cuda:1"`` -> ("cuda", 1).

    The one place device names are parsed; ValueError for anything but :data:`DEVICE_KINDS`, with an
    index >= 0 for "cuda" only. Whether the device exists here is each backend type's question
    (:meth:`~fusionrt.backends.base.BackendType.unavailable`).
    """
    kind, colon, index = device.partition(":") if isinstance(device, str) else ("", "", "")
    if kind in DEVICE_KINDS and not colon:
        return kind, None
    # isdecimal, not int(): int() also takes "-1", "+1", " 1" and "1_0".
    if kind == "cuda" and index.isdecimal() and index.isascii():
        return kind, int(index)
    raise ValueError(
        f"device is {device!r}, expected 'cpu', 'cuda', 'cuda:N' (N >= 0, a CUDA device index) or 'meta' (torch)"
    )


@dataclass(frozen=True)
class RunOptions:
    """Device, precision, threads and execution mode of a backend; checked on construction.

    Attributes:
        device: "cpu", "cuda", "cuda:N", "meta" (:func:`parse_device`); None: the backend's default
            (:attr:`BackendType.default_device`).
        precision: the bundle variant to run ("fp32", "fp16", "int8").
        threads: ONNX Runtime intra-op threads; None: the physical cores this process may use.
        execution: "auto", "sequential", or an ONNX Runtime concurrent mode ("parallel", "branches").
    """

    device: str | None = None
    precision: str = "fp32"
    threads: int | None = None
    execution: str = "auto"

    def __post_init__(self) -> None:
        if self.device is not None:
            parse_device(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}, expected one of {list(PRECISIONS)}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads is {self.threads!r}, expected None or a positive integer")
        if self.execution not in EXECUTIONS:
            raise ValueError(f"unknown execution {self.execution!r}, expected one of {list(EXECUTIONS)}")

    def replace(self, **changes: object) -> RunOptions:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)
