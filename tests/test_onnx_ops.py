"""ONNX export of fusionrt's ops: standard form checked by ONNX Runtime, plugin form by its node."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrt import _C

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
import fusionrt.ops as ops  # noqa: E402
from fusionrt.onnx_ops import (  # noqa: E402
    _FLOAT_TYPES,
    OPSET,
    PLUGIN_DOMAIN,
    _plugin_op,
    attribute_types,
    translation_table,
)


class Head(torch.nn.Module):
    """A fusion head: the op between two linear layers, as the models use it."""

    def __init__(self, widths, affine):
        super().__init__()
        self.proj = torch.nn.ModuleList(torch.nn.Linear(w, w) for w in widths)
        width = sum(widths)
        self.weight = torch.nn.Parameter(torch.randn(width)) if affine else None
        self.bias = torch.nn.Parameter(torch.randn(width)) if affine else None
        self.out = torch.nn.Linear(width, 1)

    def forward(self, *features):
        joined = ops.fused_concat_layernorm([p(x) for p, x in zip(self.proj, features)], self.weight, self.bias, 1e-4)
        return self.out(joined)


def export(model, widths, path, plugins):
    names = [f"x{i}" for i in range(len(widths))]
    args = tuple(torch.randn(2, w) for w in widths)
    program = torch.onnx.export(
        model, args, dynamo=True, opset_version=OPSET, input_names=names,
        dynamic_shapes={"features": tuple({0: torch.export.Dim("batch")} for _ in widths)},
        custom_translation_table=translation_table(plugins=plugins), verbose=False,
    )
    program.save(str(path))
    return onnx.load(str(path)), names


@pytest.mark.parametrize("widths", [(3, 5), (8, 4, 6, 2)])
@pytest.mark.parametrize("affine", [False, True])
def test_standard_form_runs_in_onnx_runtime_like_torch(tmp_path, seed, widths, affine):
    torch.manual_seed(seed)
    model = Head(widths, affine).eval()
    proto, names = export(model, widths, tmp_path / "model.onnx", plugins=False)
    onnx.checker.check_model(proto, full_check=True)
    assert {n.op_type for n in proto.graph.node} >= {"Concat", "LayerNormalization"}
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        features = [torch.randn(batch, w) for w in widths]
        (got,) = session.run(None, {n: f.numpy() for n, f in zip(names, features)})
        with torch.no_grad():
            expected = model(*features).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("affine", [False, True])
def test_plugin_form_is_one_node_named_after_the_plugin(tmp_path, affine):
    widths = (3, 5, 4)
    proto, _ = export(Head(widths, affine).eval(), widths, tmp_path / "model.plugins.onnx", plugins=True)
    spec = _C.plugin_specs()["concat_layernorm"]
    (node,) = [n for n in proto.graph.node if n.domain == PLUGIN_DOMAIN]
    assert node.op_type == spec["name"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    fields = spec["fields"]
    assert attributes["plugin_version"] == spec["version"].encode()
    assert attributes["plugin_namespace"] == PLUGIN_DOMAIN.encode()
    assert attributes[fields["num_inputs"]] == 3
    assert attributes[fields["has_weight"]] == attributes[fields["has_bias"]] == int(affine)
    assert attributes[fields["eps"]] == pytest.approx(1e-4)
    assert len(node.input) == 3 + 2 * affine
    assert not any(n.op_type in ("Concat", "LayerNormalization") for n in proto.graph.node)


ONNX_ATTRIBUTE_TYPES = {"float32": onnx.defs.OpSchema.AttrType.FLOAT, "int32": onnx.defs.OpSchema.AttrType.INT}


@pytest.mark.parametrize(("key", "mask_input"), [("concat_layernorm", False), ("multihead_attention", True)])
def test_plugin_node_attribute_types_are_the_contract_field_types(key, mask_input):
    spec = _C.plugin_specs()[key]
    schema = _plugin_op(key, _FLOAT_TYPES, mask_input).op_schema
    declared = {name: attribute.type for name, attribute in schema.attributes.items()}
    expected = {field: ONNX_ATTRIBUTE_TYPES[field_type] for field, field_type in spec["field_types"].items()}
    assert attribute_types(key) == expected
    assert {name: declared[name] for name in spec["fields"].values()} == expected
    assert list(spec["field_types"]) == list(spec["fields"].values())


def test_plugin_node_attributes_have_the_contract_field_types(tmp_path):
    widths = (3, 5)
    proto, _ = export(Head(widths, True).eval(), widths, tmp_path / "model.plugins.onnx", plugins=True)
    (node,) = [n for n in proto.graph.node if n.domain == PLUGIN_DOMAIN]
    proto_types = {"float32": onnx.AttributeProto.FLOAT, "int32": onnx.AttributeProto.INT}
    types = {a.name: a.type for a in node.attribute}
    for field, field_type in _C.plugin_specs()["concat_layernorm"]["field_types"].items():
        assert types[field] == proto_types[field_type]
