"""Imports of optional dependencies, failing with the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> the fusionrt extra that installs it
_EXTRA_OF = {
    "torch": "train",
    "timm": "train",
    "transformers": "train",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "tokenizers": "onnx",
    "tensorrt": "trt",
    "av": "video",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the fusionrt extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = _EXTRA_OF.get(module.split(".")[0])
        hint = f"pip install fusionrt[{extra}]" if extra else f"pip install {module}"
        raise ImportError(f"this part of fusionrt needs {module!r}, which is not installed: {hint}") from error
