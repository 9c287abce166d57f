"""A progress bar on stderr: ``tqdm`` where it is installed (the ``onnx`` extra brings it), else one
plain line per step, so the deployment install never needs more than it has.

Example:
    >>> with Progress(total=2, enabled=False) as bar:
    ...     bar.step("late batch 1 graph")
    ...     bar.step("late batch 1 end_to_end")
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """``step(text)`` marks one step started; the bar shows how many of ``total`` are done."""

    def __init__(self, total: int, enabled: bool = True, description: str = "fusionrt bench") -> None:
        self.total, self.enabled, self.description = total, enabled, description
        self._done = -1
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=description, unit="step", file=sys.stderr, dynamic_ncols=True)

    def step(self, text: str) -> None:
        self._done += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.n = self._done
            self._bar.set_postfix_str(text)  # refreshes the bar
        else:
            print(f"{self.description}: [{self._done + 1}/{self.total}] {text}", file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.n = self.total if exc[0] is None else self._done
            self._bar.close()
