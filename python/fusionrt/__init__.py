"""fusionrt: multimodal (text + image) fusion models, trained in PyTorch and run with minimal latency.

``import fusionrt`` loads only numpy and the compiled ``fusionrt._C``; torch, ONNX Runtime and
TensorRT are imported by the parts that need them (``fusionrt.ops`` needs torch), and ``load`` /
``Session`` are imported on first use.

The package, by concern (the compiled half is mapped in ``csrc/README.md``):

==============================  ========================================================================
module                          what it holds
==============================  ========================================================================
``session``                     :func:`load` and :class:`Session`: ``run`` (graph feeds) and ``predict``
``bundle``                      the bundle's :class:`~fusionrt.bundle.Manifest`, read as untrusted input
``graph_io``                    the graph's input names / specs and output naming, used by every layer
``feeds``                       checking and completing ``Session.run``'s feeds against the manifest
``preprocessing``               raw text and images to graph inputs (``image_decode``: images to RGB)
``backends``                    a name -> backend table and :class:`~fusionrt.backends.RunOptions`;
                                ``backends.tensorrt`` (engine runtime, builder, cache),
                                ``backends.onnxruntime`` (sessions, execution modes, branch splitting),
                                ``backends.torch`` (the ``torch.export`` program)
``ops`` / ``onnx_ops``          the fused ops as torch custom ops, and their ONNX lowerings
``atomic``                      the one way files and directories are written (temp, fsync, rename)
``typed_json``                  untrusted JSON into dataclasses, every field type-checked
``serving``                     Triton Inference Server: model repositories from bundles, starting the server
``cli``                         the ``fusionrt`` command
==============================  ========================================================================

One op end to end (fused concat + LayerNorm): its contract is ``csrc/ops/concat_layernorm_contract.h``,
its kernels ``csrc/kernels/{cpu,cuda}/concat_layernorm.*``, its binding ``_C.fused_concat_layernorm``,
its torch op ``fusionrt.ops.fused_concat_layernorm``, its TensorRT plugin
``csrc/tensorrt/concat_layernorm/``, its ONNX lowerings ``fusionrt.onnx_ops.concat_layernorm_*``, its
tests ``tests/test_concat_layernorm.py`` and ``tests/test_plugin_fields.py``; ``csrc/README.md`` has
the checklist for adding an op.

Example:
    >>> import fusionrt
    >>> fusionrt.build_info()["cuda"]  # doctest: +SKIP
    True
    >>> fusionrt.load("bundle").predict(text="great film", image="face.png")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from . import _C

__all__ = ["Prediction", "Session", "__version__", "build_info", "cuda_available", "load"]

_LAZY = {"load": "session", "Session": "session", "Prediction": "session"}  # name -> submodule

__version__: str = _C.build_info()["version"]


def build_info() -> dict[str, Any]:
    """What this build was compiled with.

    Returns a dict with ``version``, ``compiler``, ``openmp`` (bool), ``cuda`` (bool),
    ``cuda_version`` and ``cuda_architectures`` (None without CUDA), ``tensorrt`` (the
    TensorRT version compiled against, or None), ``torch`` (the torch version the ops' C++ kernels
    were compiled against, or None when torch was not importable at build time or its headers did not
    compile) and ``torch_cuda_kernels`` (whether those kernels cover CUDA tensors too).

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


def __getattr__(name: str) -> Any:
    # PEP 562: the session layer (and what it imports) loads only when first asked for.
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
