"""ONNX lowerings of fusionrt's torch ops, for ``torch.onnx.export(..., dynamo=True)``.

Two forms of every op:

* standard ONNX ops (``model.onnx``), which ONNX Runtime and TensorRT run as they are;
* one custom-domain node per op (``model.plugins.onnx``), whose op type, ``plugin_version`` and
  ``plugin_namespace`` are the TensorRT plugin's identity, so TensorRT's ONNX parser maps it to the
  fusionrt plugin. Names and fields come from ``fusionrt._C.plugin_specs()``, the constants the
  plugin creators are compiled from.

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


@cache
def _plugin_op(spec_key: str, input_types: tuple[str, ...]) -> Any:
    """An onnxscript op for a plugin node with variadic float inputs and the spec's attributes."""
    onnxscript = require("onnxscript")
    defs = require("onnx.defs")
    spec = _C.plugin_specs()[spec_key]
    schema_type = defs.OpSchema
    param = schema_type.FormalParameter
    attribute_types = {"eps": schema_type.AttrType.FLOAT}
    attributes = [
        schema_type.Attribute(field, attribute_types.get(key, schema_type.AttrType.INT), key)
        for key, field in spec["fields"].items()
    ] + [schema_type.Attribute(name, schema_type.AttrType.STRING, name) for name in ("plugin_version", "plugin_namespace")]
    schema = schema_type(
        spec["name"],
        PLUGIN_DOMAIN,
        1,
        inputs=[param("inputs", "T", param_option=schema_type.FormalParameterOption.Variadic)],
        outputs=[param("output", "T")],
        type_constraints=[("T", list(input_types), "float tensors")],
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


def translation_table(plugins: bool = False) -> dict[Any, Callable[..., Any]]:
    """``custom_translation_table`` for ``torch.onnx.export``: every fusionrt op, as standard ONNX ops
    (``plugins=False``, for ``model.onnx``) or as TensorRT plugin nodes (``plugins=True``)."""
    torch = require("torch")
    require("fusionrt.ops")  # registers the torch ops
    return {
        torch.ops.fusionrt.fused_concat_layernorm.default: (
            concat_layernorm_plugin if plugins else concat_layernorm_standard
        ),
    }
