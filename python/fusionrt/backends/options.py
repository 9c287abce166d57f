"""How to run a bundle on a backend: :class:`RunOptions`, validated once where it is made.

Example:
    >>> RunOptions(precision="int8", threads=2)
    RunOptions(device=None, precision='int8', threads=2, execution='auto')
    >>> RunOptions(precision="bf16")
    Traceback (most recent call last):
    ...
    ValueError: unknown precision 'bf16', expected one of ['fp32', 'fp16', 'int8']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..bundle import PRECISIONS

#: Every execution mode some backend runs; each backend type lists the ones it runs
#: (:attr:`~fusionrt.backends.base.BackendType.executions`). "auto" is the calibrated one, else sequential.
EXECUTIONS = ("auto", "sequential", "parallel", "branches")


@dataclass(frozen=True)
class RunOptions:
    """Device, precision, threads and execution mode of a backend; checked on construction.

    Attributes:
        device: "cpu", "cuda", "cuda:N"; None: the backend's default (:attr:`BackendType.default_device`).
        precision: the bundle variant to run ("fp32", "fp16", "int8").
        threads: ONNX Runtime intra-op threads; None: the physical cores this process may use.
        execution: "auto", "sequential", or an ONNX Runtime concurrent mode ("parallel", "branches").
    """

    device: str | None = None
    precision: str = "fp32"
    threads: int | None = None
    execution: str = "auto"

    def __post_init__(self) -> None:
        if self.device is not None and (not isinstance(self.device, str) or not self.device):
            raise ValueError(f"device is {self.device!r}, expected None or a name like 'cpu', 'cuda', 'cuda:1'")
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
