"""Lower-precision variants of ``model.onnx``: FP16 carried by the graph, and INT8 as Q/DQ nodes.

* FP16 (strongly typed TensorRT 11, ONNX Runtime): weights and activations in float16; graph inputs
  and outputs keep their fp32 types through Casts at the boundary, so a deployment feeds the same
  arrays to every variant. Normalisations (LayerNormalization, Softmax, reductions) stay fp32,
  because their sums of squares overflow or lose the small differences that matter in float16.
* INT8: static Q/DQ quantization of the compute-heavy ops (MatMul, Gemm, Conv) with per-channel
  int8 weights, calibrated on real samples, in two schemes (:class:`Int8Scheme`), because the two
  runtimes want different graphs:

  - :data:`TENSORRT_INT8` (``model.int8.onnx``, TensorRT 10/11 explicit quantization): symmetric
    int8 activations, since TensorRT accepts only zero points of 0, on every MatMul including
    attention's activation x activation products, which TensorRT's fused attention runs in int8.
  - :data:`ONNXRUNTIME_INT8` (``model.int8.ort.onnx``, ONNX Runtime on CPU): asymmetric uint8
    activations, the u8 x s8 form of x86's integer dot products (VNNI), with a Q/DQ pair per
    consumer, on two kinds of subgraph:

    * weight MatMuls / Gemms, on their inputs only: their outputs stay float, so ORT runs each as one
      MatMulIntegerToFloat instead of a QLinearMatMul, a re-quantization and a DequantizeLinear. The
      graph writes that op itself, with the bias Add folded in, which ORT's own fusion leaves apart
      (:mod:`.integer_matmuls`).
      Activation x activation MatMuls (attention) stay float: re-quantizing costs more than they save.
      Each self-attention over such projections is then written as the one QAttention kernel ORT has
      for it, projection, head layout, products and softmax together (:mod:`.integer_attention`).
      A residual Add that reads a LayerNorm output gets the float output, not its int8 round trip
      (:mod:`.float_residuals`).
    * convolution stacks (:func:`conv_stack_nodes`: convolutions with their Clip / Relu activations
      and the residual Adds between them) as a whole, so the CNN runs in integer kernels from end to
      end. Convolutions alone would be slower than fp32, since the float activations and Adds between
      them cost a DequantizeLinear and a QuantizeLinear per layer.

    Late MiniLM + MobileNetV2 at 224 px, batch 1: fp32 13.5 ms; MatMuls with quantized outputs and
    fp32 convs 9.6; float outputs 9.2; convs alone quantized 10.9; and this scheme, 7.4-7.7. With
    int8 activations ORT fuses few of the Q/DQ patterns into integer kernels and the graph runs
    *slower* than fp32, and shared pairs (a LayerNorm output feeding both a MatMul and the residual
    Add) block the fusion.

    Its weights are 7-bit (``reduce_range``): ONNX Runtime's x86 u8 x s8 kernels may multiply with
    ``vpmaddubsw``, which adds pairs of products in int16: 2 * 255 * 127 does not fit and saturates,
    2 * 255 * 64 does. ORT's documentation asks for 7 bits on CPUs without VNNI; here (a Xeon whose
    CPU flags include AVX-512 VNNI and AMX) onnxruntime 1.32's ``MatMulIntegerToFloat`` saturated with
    8 bits as well (``tests/training/test_export.py`` builds a MatMul that shows it). With 8-bit weights
    the demo's MobileNetV2 models lost up to 4.8 points of Acc-2 (hybrid 0.856 -> 0.808, image only
    0.631 -> 0.589); with 7-bit ones they are within a point of fp32 (0.857, 0.640). 7 bits cost a
    little resolution and no speed; TensorRT's graph keeps 8 bits (GPUs accumulate in int32).

  The fusion layers after the streams meet (the fusion operator and the prediction heads) stay in
  float in both: they are cheap and the score is sensitive to them. Early fusion's joint encoder
  (``fusion.early``) is a transformer stack like the backbones and is quantized like them: keeping it
  float left early MiniLM + MobileNetV2 at 1.3x fp32's speed instead of 1.5x.

Example:
    >>> convert_fp16("model.onnx", "model.fp16.onnx")  # doctest: +SKIP
    >>> feeds = calibration_feeds(loader, text_length=64, image_size=224)  # doctest: +SKIP
    >>> quantize_int8("model.onnx", "model.int8.onnx", feeds, TENSORRT_INT8)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from fusionrt.graph_io import PRESENCE

from .graph_io import batch_feeds
from .float_residuals import read_float_residuals
from .integer_attention import fuse_integer_attention
from .integer_matmuls import fold_bias_into_integer_matmuls

#: Ops computed in float32 inside the FP16 graph (on top of ONNX Runtime's default block list).
FP16_FP32_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Erf")
#: Module scopes (torch module paths recorded by the exporter) kept in float in the INT8 graph ...
INT8_FLOAT_SCOPES = ("fusion", "text_placeholder", "image_placeholder")
#: ... except these sub-scopes of theirs, quantized like the backbones.
INT8_QUANTIZED_SUBSCOPES = ("fusion.early",)
#: Calibration samples used by default: enough for stable MinMax / percentile ranges.
CALIBRATION_SAMPLES = 256
#: How int8 calibration turns observed activations into ranges (:func:`quantize_int8`).
CALIBRATION_METHODS = ("minmax", "percentile")


def convert_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Writes the FP16 variant of the fp32 graph ``src`` to ``dst`` (I/O types unchanged)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    converted = OnnxModel(
        convert_float_to_float16(
            onnx.load(str(src)), keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP16_FP32_OPS]
        )
    )
    # The converter appends the Casts it inserts at the end of the node list; ONNX wants them in order.
    converted.topological_sort()
    # It also leaves fp16 value_info on initializers that blocked ops keep in fp32; value_info is only a
    # cache of shape inference, so drop it and infer again.
    del converted.model.graph.value_info[:]
    onnx.save(onnx.shape_inference.infer_shapes(converted.model, strict_mode=True), str(dst))
    onnx.checker.check_model(str(dst), full_check=True)


@dataclass(frozen=True)
class Int8Scheme:
    """What one INT8 graph quantizes and how (weights are always per-channel symmetric int8);
    everything else (normalisation, softmax, elementwise) stays float."""

    #: Op types quantized.
    op_types: tuple[str, ...]
    #: "int8" (symmetric, zero point 0) or "uint8" (asymmetric).
    activations: str
    #: Whether MatMuls of two activations (attention's Q Kᵀ and P V) are quantized too.
    activation_matmuls: bool
    #: A Q/DQ pair per consumer rather than one shared by all consumers of a tensor.
    dedicated_pairs: bool
    #: Whether the outputs of ``op_types`` are quantized too, or stay float.
    quantized_outputs: bool
    #: Whether convolution stacks (:func:`conv_stack_nodes`) are quantized as a whole.
    conv_stacks: bool
    #: Weights in 7 bits ([-64, 63]) instead of 8, so that no sum of two uint8 x int8 products overflows
    #: int16 (see the module docstring).
    reduce_range: bool = False
    #: Whether weight MatMuls and their bias Adds are written as the com.microsoft.MatMulIntegerToFloat that
    #: ONNX Runtime runs them with, bias included (:mod:`.integer_matmuls`); ORT's graph only.
    integer_matmuls: bool = False
    #: Whether each self-attention over such MatMuls is written as the com.microsoft.QAttention that runs
    #: it in one kernel (:mod:`.integer_attention`); ORT's graph only, after ``integer_matmuls``.
    integer_attention: bool = False
    #: Whether residual Adds read LayerNorm outputs themselves instead of the int8 round trip a Q/DQ pair
    #: per consumer gives them (:mod:`.float_residuals`); ORT's graph only.
    float_residuals: bool = False


TENSORRT_INT8 = Int8Scheme(
    op_types=("MatMul", "Gemm", "Conv"), activations="int8", activation_matmuls=True, dedicated_pairs=False,
    quantized_outputs=True, conv_stacks=False,
)
ONNXRUNTIME_INT8 = Int8Scheme(
    op_types=("MatMul", "Gemm"), activations="uint8", activation_matmuls=False, dedicated_pairs=True,
    quantized_outputs=False, conv_stacks=True, reduce_range=True, integer_matmuls=True,
    integer_attention=True, float_residuals=True,
)
#: Op types of a convolution stack: the convolutions, their activations and the residual Adds.
CONV_STACK_OPS = ("Conv", "Clip", "Relu", "Add")


def calibration_feeds(
    batches: Iterable[Mapping[str, Any]], text_length: int, image_size: int, samples: int = CALIBRATION_SAMPLES
) -> list[dict[str, np.ndarray]]:
    """Graph feeds of the first ``samples`` samples of collated ``batches``, for :func:`quantize_int8`."""
    feeds_list, seen = [], 0
    for batch in batches:
        feeds = batch_feeds(batch, text_length, image_size)
        keep = min(samples - seen, len(feeds[PRESENCE]))
        feeds_list.append({name: value[:keep] for name, value in feeds.items()})
        seen += keep
        if seen >= samples:
            break
    if seen == 0:
        raise ValueError("calibration yielded no batches; INT8 needs a few hundred training samples")
    return feeds_list


class _CalibrationReader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over a list of feeds."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes none of whose inputs is a weight (an initializer)."""
    weights = {init.name for init in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not weights.intersection(n.input)]


def conv_stack_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes, the Adds all of whose inputs come out of the stack (residual
    connections), and the Clip / Relu nodes reading a Conv or such an Add: a CNN's layers, without
    what reads them (pooling, flattening, a transformer's float residual stream)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    stack: set[str] = set()

    def from_stack(tensor: str, op_types: tuple[str, ...]) -> bool:
        node = producer.get(tensor)
        return node is not None and node.name in stack and node.op_type in op_types

    weights = {init.name for init in model.graph.initializer}
    for node in model.graph.node:  # topologically sorted, so producers come first
        activations = [x for x in node.input if x not in weights]
        if (
            node.op_type == "Conv"
            or (node.op_type in ("Clip", "Relu") and from_stack(node.input[0], ("Conv", "Add")))
            or (node.op_type == "Add" and activations and all(from_stack(x, CONV_STACK_OPS) for x in activations))
        ):
            stack.add(node.name)
    return [node.name for node in model.graph.node if node.name in stack]


def float_scope_nodes(
    model: onnx.ModelProto,
    scopes: Iterable[str] = INT8_FLOAT_SCOPES,
    quantized_subscopes: Iterable[str] = INT8_QUANTIZED_SUBSCOPES,
) -> list[str]:
    """Names of the nodes the exporter attributes to a module under one of the top-level ``scopes``
    but under none of ``quantized_subscopes``."""
    wanted, quantized = set(scopes), set(quantized_subscopes)
    names = []
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        # The exporter records the module path as a list literal: "['', 'fusion', 'fusion.head', ...]".
        path = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        if len(path) > 1 and path[1].split(".")[0] in wanted and quantized.isdisjoint(path):
            names.append(node.name)
    return names


def quantize_int8(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    calibration: Iterable[dict[str, np.ndarray]],
    scheme: Int8Scheme = TENSORRT_INT8,
    method: str = "percentile",
) -> None:
    """Writes the Q/DQ INT8 variant of the fp32 graph ``src`` to ``dst``.

    Args:
        calibration: graph feeds of training samples (:func:`calibration_feeds`).
        scheme: :data:`TENSORRT_INT8` or :data:`ONNXRUNTIME_INT8` (see the module docstring).
        method: ``"minmax"`` or ``"percentile"`` (99.999th percentile of |activation|, robust to the
            rare outliers of transformer activations).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method is {method!r}, expected one of {CALIBRATION_METHODS}")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory(dir=Path(dst).parent, prefix=".quant-") as scratch:
        # Shape inference only: ORT's graph optimisation would rename the nodes float_scope_nodes
        # picks and may introduce com.microsoft ops that TensorRT cannot parse. ONNX's own shape
        # inference, not ORT's symbolic one, which fails on the attention lowering of early/hybrid.
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_optimization=True, skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        excluded = float_scope_nodes(graph) + ([] if scheme.activation_matmuls else activation_matmuls(graph))
        op_types, nodes = list(scheme.op_types), None  # None: every node of op_types not excluded
        if scheme.conv_stacks:
            op_types += [op for op in CONV_STACK_OPS if op not in op_types]
            nodes = [n.name for n in graph.graph.node if n.op_type in scheme.op_types] + conv_stack_nodes(graph)
        quantize_static(
            str(prepared),
            str(dst),
            _CalibrationReader(calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            nodes_to_quantize=nodes,
            per_channel=True,
            activation_type=QuantType.QInt8 if scheme.activations == "int8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=scheme.reduce_range,
            nodes_to_exclude=excluded,
            calibrate_method=methods[method],
            extra_options={
                "ActivationSymmetric": scheme.activations == "int8",
                "WeightSymmetric": True,
                "DedicatedQDQPair": scheme.dedicated_pairs,
                "OpTypesToExcludeOutputQuantization": [] if scheme.quantized_outputs else list(scheme.op_types),
            },
        )
    if scheme.integer_matmuls or scheme.float_residuals:
        quantized = onnx.load(str(dst))
        if scheme.integer_matmuls:
            fold_bias_into_integer_matmuls(quantized)
            if scheme.integer_attention:
                fuse_integer_attention(quantized)
        if scheme.float_residuals:
            read_float_residuals(quantized)
        onnx.save(quantized, str(dst))
    onnx.checker.check_model(str(dst), full_check=True)
