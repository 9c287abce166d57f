"""ONNX export of the fused attention op: the standard form against the op in ONNX Runtime
(padding, a sample with no key), the plugin form as one node carrying the plugin's identity."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrt import _C

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
import fusionrt.ops as ops  # noqa: E402
from fusionrt.onnx_ops import OPSET, PLUGIN_DOMAIN, translation_table  # noqa: E402

HEADS, HEAD_DIM, TEXT, IMAGE = 2, 8, 6, 5


class CrossAttention(torch.nn.Module):
    """Text queries over image keys / values, as the hybrid fusion blocks use the op."""

    def __init__(self, masked: bool, scale: float | None):
        super().__init__()
        self.masked, self.scale = masked, scale

    def forward(self, text, image, image_mask):
        mask = image_mask if self.masked else None
        return ops.multihead_attention(text, image, image, mask, self.scale)


def export(model, path, plugins):
    batch = torch.export.Dim("batch")
    args = (torch.randn(2, HEADS, TEXT, HEAD_DIM), torch.randn(2, HEADS, IMAGE, HEAD_DIM),
            torch.ones(2, IMAGE, dtype=torch.bool))
    program = torch.onnx.export(
        model.eval(), args, dynamo=True, opset_version=OPSET, input_names=["text", "image", "image_mask"],
        dynamic_shapes={"text": {0: batch}, "image": {0: batch}, "image_mask": {0: batch}},
        custom_translation_table=translation_table(plugins=plugins), verbose=False,
    )
    program.save(str(path))
    return onnx.load(str(path))


@pytest.mark.parametrize("scale", [None, 0.3])
def test_standard_form_runs_in_onnx_runtime_like_the_op(tmp_path, seed, scale):
    generator = torch.Generator().manual_seed(seed)
    model = CrossAttention(masked=True, scale=scale)
    proto = export(model, tmp_path / "model.onnx", plugins=False)
    onnx.checker.check_model(proto, full_check=True)
    assert not any(n.domain == PLUGIN_DOMAIN for n in proto.graph.node)
    # The mask reaches the scores as an additive bias (ORT's broadcasting Where is slow), not a Where.
    producers = {out: n for n in proto.graph.node for out in n.output}
    (softmax,) = [n for n in proto.graph.node if n.op_type == "Softmax"]
    assert producers[softmax.input[0]].op_type == "Add"
    # ... of finite values: an infinite one would give int8 calibration an infinite range.
    constants = [onnx.numpy_helper.to_array(a.t) for n in proto.graph.node if n.op_type == "Constant"
                 for a in n.attribute if a.name == "value"]
    constants += [onnx.numpy_helper.to_array(init) for init in proto.graph.initializer]
    assert constants and all(np.isfinite(c).all() for c in constants if c.dtype.kind == "f")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    text, image = torch.randn(3, HEADS, TEXT, HEAD_DIM, generator=generator), torch.randn(3, HEADS, IMAGE, HEAD_DIM)
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    feeds = {"text": text.numpy(), "image": image.numpy(), "image_mask": mask.numpy()}
    (got,) = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
    np.testing.assert_allclose(got, model(text, image, mask).numpy(), atol=1e-5, rtol=1e-5)
    assert np.all(got[1] == 0)


@pytest.mark.parametrize("masked", [False, True])
def test_plugin_form_is_one_node_named_after_the_plugin(tmp_path, masked):
    proto = export(CrossAttention(masked, None), tmp_path / "model.plugins.onnx", plugins=True)
    spec = _C.plugin_specs()["multihead_attention"]
    (node,) = [n for n in proto.graph.node if n.domain == PLUGIN_DOMAIN]
    assert node.op_type == spec["name"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    fields = spec["fields"]
    assert attributes["plugin_version"] == spec["version"].encode()
    assert attributes["plugin_namespace"] == PLUGIN_DOMAIN.encode()
    assert attributes[fields["scale"]] == pytest.approx(HEAD_DIM**-0.5)
    assert attributes[fields["has_mask"]] == int(masked)
    assert len(node.input) == 3 + masked
    assert not any(n.op_type in ("Softmax", "MatMul") for n in proto.graph.node)


def plugin_node_fields(node):
    """The fields TensorRT's ONNX parser hands the plugin creator for `node`: every attribute but the
    plugin's identity, FLOAT as float32 and INT as int32."""
    fields = []
    for attribute in node.attribute:
        if attribute.name in ("plugin_version", "plugin_namespace"):
            continue
        value = onnx.helper.get_attribute_value(attribute)
        kind = {onnx.AttributeProto.FLOAT: np.float32, onnx.AttributeProto.INT: np.int32}[attribute.type]
        fields.append((attribute.name, np.array([value], kind)))
    return fields


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_plugin_node_attributes_parse_as_the_plugin_creator_parses_them(tmp_path, masked, scale):
    proto = export(CrossAttention(masked, scale), tmp_path / "model.plugins.onnx", plugins=True)
    (node,) = [n for n in proto.graph.node if n.domain == PLUGIN_DOMAIN]
    fields = plugin_node_fields(node)
    spec = _C.plugin_specs()["multihead_attention"]
    assert sorted(name for name, _ in fields) == sorted(spec["fields"].values())
    config = _C.parse_multihead_attention_fields(fields)
    assert config == {"scale": pytest.approx(HEAD_DIM**-0.5 if scale is None else scale), "has_mask": masked,
                      "nb_node_inputs": len(node.input)}
    # The node's inputs, with the exported dynamic batch, pass the plugin's shape rules.
    shapes = {i.name: [d.dim_value if d.HasField("dim_value") else -1 for d in i.type.tensor_type.shape.dim]
              for i in proto.graph.input}
    assert _C.multihead_attention_output_shape(fields, [shapes[name] for name in node.input]) == (-1, HEADS, TEXT, HEAD_DIM)
