"""ONNX lowerings of fusionrt's torch ops, for ``torch.onnx.export(..., dynamo=True)``.

Two forms of every op:

* standard ONNX ops (``model.onnx``), which ONNX Runtime and TensorRT run as they are;
* one custom-domain node per op (``model.plugins.onnx``), whose op type, ``plugin_version`` and
  ``plugin_namespace`` are the TensorRT plugin's identity, so TensorRT's ONNX parser maps it to the
  fusionrt plugin. Names, attribute names and attribute types come from ``fusionrt._C.plugin_specs()``:
  each op's contract (``csrc/ops/<op>_contract.h``), which the plugin creators are compiled from.

Map: ``concat_layernorm_standard`` / ``concat_layernorm_plugin`` lower ``fusionrt::fused_concat_layernorm``,
``multihead_attention_standard`` / ``multihead_attention_plugin`` lower ``fusionrt::multihead_attention``;
``translation_table`` picks one form for ``torch.onnx.export``. Where the rest of an op lives: ``csrc/README.md``.

Example:
    >>> program = torch.onnx.export(model, args, dynamo=True,
    ...                             custom_translation_table=translation_table(plugins=True))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from . import _C
from ._optional import require

# LayerNormalization is opset 17; 18 is supported by ONNX Runtime and TensorRT 10.x / 11.x parsers.
OPSET = 18
PLUGIN_DOMAIN = _C.plugin_specs()["namespace"]
# ONNX attribute types (onnx.defs.OpSchema.AttrType names) of the plugin field types the contracts use.
_ATTRIBUTE_TYPES = {"float32": "FLOAT", "int32": "INT"}
#: The lowest finite float32, the additive mask of a key not attended.
_LOWEST_FLOAT32 = -3.4028234663852886e38


def attribute_types(spec_key: str) -> dict[str, Any]:
    """The ONNX attribute type of each of a plugin's fields, by its contract's field types.

    Example:
        >>> attribute_types("concat_layernorm")["eps"]  # doctest: +SKIP
        <AttrType.FLOAT: 1>
    """
    attr_type = require("onnx.defs").OpSchema.AttrType
    field_types = _C.plugin_specs()[spec_key]["field_types"]
    return {field: getattr(attr_type, _ATTRIBUTE_TYPES[field_type]) for field, field_type in field_types.items()}


@cache
def _plugin_op(spec_key: str, input_types: tuple[str, ...], mask_input: bool = False) -> Any:
    """An onnxscript op for a plugin node with the spec's attributes and variadic float inputs, or with
    float inputs q, k, v and an optional bool mask (``mask_input``)."""
    onnxscript = require("onnxscript")
    defs = require("onnx.defs")
    spec = _C.plugin_specs()[spec_key]
    schema_type = defs.OpSchema
    param = schema_type.FormalParameter
    attributes = [
        schema_type.Attribute(field, attr_type, field) for field, attr_type in attribute_types(spec_key).items()
    ] + [schema_type.Attribute(name, schema_type.AttrType.STRING, name) for name in ("plugin_version", "plugin_namespace")]
    schema = schema_type(
        spec["name"],
        PLUGIN_DOMAIN,
        1,
        inputs=(
            [param(name, "T") for name in ("q", "k", "v")]
            + [param("key_padding_mask", "M", param_option=schema_type.FormalParameterOption.Optional)]
            if mask_input
            else [param("inputs", "T", param_option=schema_type.FormalParameterOption.Variadic)]
        ),
        outputs=[param("output", "T")],
        type_constraints=[("T", list(input_types), "float tensors")]
        + ([("M", ["tensor(bool)"], "bool mask")] if mask_input else []),
        attributes=attributes,
    )
    opset = onnxscript.values.Opset(PLUGIN_DOMAIN, 1)
    return onnxscript.values.Op(opset, spec["name"], schema)


_FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")


def concat_layernorm_standard(inputs: Sequence[Any], weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    """``fusionrt::fused_concat_layernorm`` as Concat + LayerNormalization."""
    op = require("onnxscript").opset18
    x = op.Concat(*inputs, axis=-1)
    if weight is None:  # LayerNormalization requires a scale; ones in the input's dtype
        weight = op.Expand(op.CastLike(op.Constant(value_float=1.0), x), op.Shape(x, start=-1))
    y, _, _ = op.LayerNormalization(x, weight, bias, axis=-1, epsilon=eps)
    return y


def concat_layernorm_plugin(inputs: Sequence[Any], weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    """``fusionrt::fused_concat_layernorm`` as one FusionrtConcatLayerNorm plugin node."""
    spec = _C.plugin_specs()["concat_layernorm"]
    fields = spec["fields"]
    affine = [t for t in (weight, bias) if t is not None]
    attributes = {
        fields["eps"]: float(eps),
        fields["num_inputs"]: len(inputs),
        fields["has_weight"]: int(weight is not None),
        fields["has_bias"]: int(bias is not None),
    }
    node = _plugin_op("concat_layernorm", _FLOAT_TYPES)
    return node(*inputs, *affine, plugin_version=spec["version"], plugin_namespace=PLUGIN_DOMAIN, **attributes)


def _attention_scale(q: Any, scale: float | None) -> float:
    """The op's default scale, 1 / sqrt(head_dim), from the exported graph's static head_dim."""
    return float(scale) if scale is not None else float(q.shape[-1]) ** -0.5


def multihead_attention_standard(q: Any, k: Any, v: Any, key_padding_mask: Any = None, scale: float | None = None) -> Any:
    """``fusionrt::multihead_attention`` as MatMul + Softmax + MatMul; rows with no key are zeros."""
    op = require("onnxscript").opset18
    factor = op.CastLike(op.Constant(value_float=_attention_scale(q, scale)), q)
    scores = op.Mul(op.MatMul(q, op.Transpose(k, perm=[0, 1, 3, 2])), factor)
    if key_padding_mask is None:
        return op.MatMul(op.Softmax(scores, axis=-1), v)
    attended = op.Unsqueeze(key_padding_mask, op.Constant(value_ints=[1, 2]))  # (batch, 1, 1, Lk)
    zero = op.CastLike(op.Constant(value_float=0.0), q)
    # Masked by adding the lowest float (a score plus it rounds to it, far below every attended score, so
    # its softmax weight is 0 as a selected -inf's would be; -inf itself in an Add output gives ORT's int8
    # calibration an infinite range). The bias is built on the (batch, 1, 1, Lk) mask, and ONNX Runtime's
    # broadcasting Add over the scores is several times faster than its broadcasting Where (1.4 ms of a
    # paper-size early ViT int8 graph's 28 here; the graph ran 3 % faster A/B).
    lowest = op.CastLike(op.Constant(value_float=_LOWEST_FLOAT32), q)
    bias = op.Where(attended, zero, lowest)
    out = op.MatMul(op.Softmax(op.Add(scores, bias), axis=-1), v)
    # Softmax over no key is NaN; the op defines such rows as zeros.
    has_key = op.ReduceMax(op.Cast(attended, to=1), op.Constant(value_ints=[-1]), keepdims=1)  # float
    return op.Where(op.Greater(has_key, op.Constant(value_float=0.0)), out, zero)


def multihead_attention_plugin(q: Any, k: Any, v: Any, key_padding_mask: Any = None, scale: float | None = None) -> Any:
    """``fusionrt::multihead_attention`` as one FusionrtMultiheadAttention plugin node."""
    spec = _C.plugin_specs()["multihead_attention"]
    fields = spec["fields"]
    attributes = {fields["scale"]: _attention_scale(q, scale), fields["has_mask"]: int(key_padding_mask is not None)}
    node = _plugin_op("multihead_attention", _FLOAT_TYPES, mask_input=True)
    mask = () if key_padding_mask is None else (key_padding_mask,)
    return node(q, k, v, *mask, plugin_version=spec["version"], plugin_namespace=PLUGIN_DOMAIN, **attributes)


def translation_table(plugins: bool = False) -> dict[Any, Callable[..., Any]]:
    """``custom_translation_table`` for ``torch.onnx.export``: every fusionrt op, as standard ONNX ops
    (``plugins=False``, for ``model.onnx``) or as TensorRT plugin nodes (``plugins=True``)."""
    torch = require("torch")
    require("fusionrt.ops")  # registers the torch ops
    return {
        torch.ops.fusionrt.fused_concat_layernorm.default: (
            concat_layernorm_plugin if plugins else concat_layernorm_standard
        ),
        torch.ops.fusionrt.multihead_attention.default: (
            multihead_attention_plugin if plugins else multihead_attention_standard
        ),
    }
