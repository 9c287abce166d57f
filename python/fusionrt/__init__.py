"""fusionrt: multimodal (text + image) fusion models, trained in PyTorch and run with minimal latency.

``import fusionrt`` loads only numpy and the compiled ``fusionrt._C``; torch, ONNX Runtime and
TensorRT are imported by the parts that need them (``fusionrt.ops`` needs torch).

Example:
    >>> import fusionrt
    >>> fusionrt.build_info()["cuda"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import Any

from . import _C

__all__ = ["__version__", "build_info", "cuda_available"]

__version__: str = _C.build_info()["version"]


def build_info() -> dict[str, Any]:
    """What this build was compiled with.

    Returns a dict with ``version``, ``compiler``, ``openmp`` (bool), ``cuda`` (bool),
    ``cuda_version`` and ``cuda_architectures`` (None without CUDA), and ``tensorrt`` (the
    TensorRT version compiled against, or None).

    Example:
        >>> fusionrt.build_info()["tensorrt"] is None  # doctest: +SKIP
        True
    """
    return _C.build_info()


def cuda_available() -> bool:
    """Whether fusionrt was built with CUDA *and* a CUDA driver and device are usable right now.

    Example:
        >>> if fusionrt.cuda_available(): ...  # doctest: +SKIP
    """
    return bool(_C.cuda_available())
