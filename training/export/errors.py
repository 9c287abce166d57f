"""The one exception type of the export side."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An exported graph failed a check (ONNX checker, torch vs ONNX Runtime parity, accuracy tolerance)."""
