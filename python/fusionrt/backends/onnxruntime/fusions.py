"""ONNX Runtime graph fusions the backend turns off where their fused kernel is slower than what it replaces.

ONNX Runtime's ``SkipLayerNormFusion`` folds ``Add`` + ``LayerNormalization`` (a transformer's residual
and its norm) into one ``com.microsoft.SkipLayerNormalization``. On the CPU that fused kernel is not
always the fast one, and which is fast changes between releases and CPUs. Measured here at (1, 64, 768)
on one thread (a Xeon with AVX-512; one BERT-base layer has two of them):

=============  =========================  ============================  ===================
onnxruntime    SkipLayerNormalization     Add + LayerNormalization      LayerNormalization
=============  =========================  ============================  ===================
1.20 - 1.26    44 us                      49 us                         43 us
1.29           43 us                      (fused)                       254 us
1.30 - 1.32    242 - 253 us               32 us                         26 us
=============  =========================  ============================  ===================

With 1.32 the fusion cost a paper-size late MobileNetV2 graph 12 % (int8: 22.0 vs 19.7 ms at batch 1;
fp32: 59.1 vs 56.1 ms). So rather than pin a version list, :func:`slow_fusions` times both forms once
per process on this host and turns the fusion off only where the fused kernel is clearly slower. GPU
providers keep every fusion: their kernels are not these.

Example:
    >>> slow_fusions("CPUExecutionProvider")  # doctest: +SKIP
    ('SkipLayerNormFusion',)
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..._optional import require
from .execution import _interleaved

#: Shape the fusions are timed at: one batch-1 BERT-base residual (64 tokens x 768).
TIMED_SHAPE = (1, 64, 768)
#: The fusion is turned off only when its kernel takes this many times the unfused ops' time: the two
#: differ 5-10x where it matters, so timing noise on a loaded host does not flip the choice.
SLOWER_BY = 1.5


def residual_norm_graph(shape: tuple[int, ...] = TIMED_SHAPE) -> bytes:
    """``LayerNormalization(x + y)`` over inputs of ``shape``: the pattern ``SkipLayerNormFusion`` rewrites."""
    onnx = require("onnx")
    helper = onnx.helper
    width = shape[-1]
    values = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape) for name in ("x", "y", "out")]
    rng = np.random.default_rng(0)
    affine = [onnx.numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), name) for name in ("g", "b")]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["sum"]),
         helper.make_node("LayerNormalization", ["sum", "g", "b"], ["out"], axis=-1, epsilon=1e-12)],
        "residual_norm", values[:2], values[2:], affine,
    )
    # Opset 17 (LayerNormalization) and IR 8: what every onnxruntime fusionrt supports can read.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


@cache
def slow_fusions(provider: str) -> tuple[str, ...]:
    """The ONNX Runtime optimizers to disable for sessions on ``provider``: ``("SkipLayerNormFusion",)``
    where this host's fused kernel is :data:`SLOWER_BY` slower than ``Add`` + ``LayerNormalization``,
    else none. Measured once per process (about 30 ms) on the first CPU session, the two forms timed in
    alternating bursts as the execution calibration times its modes; other providers: none."""
    if provider != "CPUExecutionProvider":
        return ()
    ort = require("onnxruntime")
    graph = residual_norm_graph()
    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal(TIMED_SHAPE).astype(np.float32) for name in ("x", "y")}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the kernels themselves, without a thread pool's wake-ups
    fused = ort.InferenceSession(graph, options, providers=[provider])
    unfused = ort.InferenceSession(graph, options, providers=[provider], disabled_optimizers=["SkipLayerNormFusion"])
    times = _interleaved({"fused": lambda: fused.run(None, feeds), "unfused": lambda: unfused.run(None, feeds)},
                         repeats=30)
    return ("SkipLayerNormFusion",) if min(times["fused"]) > SLOWER_BY * min(times["unfused"]) else ()
