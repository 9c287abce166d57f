"""The TensorRT plugins in libfusionrt_plugins.so, loaded the way trtexec and the runtime load them.

Needs TensorRT (``pip install fusionrt[trt]`` or JetPack) and a build of fusionrt that found it; the
engine tests also need a CUDA GPU and torch. Everything here skips with the reason otherwise; the
plugin sources are still compiled against both TensorRT header sets by ``make trt-check``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fusionrt
from fusionrt import _C
from tiny_bundles import random_feeds, tiny_bundle

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install fusionrt[trt], or JetPack)")

pytestmark = pytest.mark.tensorrt

SPECS = _C.plugin_specs()
CLN = SPECS["concat_layernorm"]
MHA = SPECS["multihead_attention"]
# Installed beside the compiled module (CMake installs both into the wheel's fusionrt/ folder).
PLUGIN_LIBRARY = Path(_C.__file__).with_name("libfusionrt_plugins.so")


@pytest.fixture(scope="module")
def registry():
    if not PLUGIN_LIBRARY.exists():
        pytest.skip(f"fusionrt was built without TensorRT: no {PLUGIN_LIBRARY.name} beside {_C.__file__}")
    registry = trt.get_plugin_registry()
    # A library registers once per process; a second load_library would be refused.
    if registry.get_creator(CLN["name"], CLN["version"], SPECS["namespace"]) is None:
        assert registry.load_library(str(PLUGIN_LIBRARY)) is not None
    return registry


def registered_creator(registry, spec):
    creator = registry.get_creator(spec["name"], spec["version"], SPECS["namespace"])
    assert creator is not None, f"{spec['name']} not registered by {PLUGIN_LIBRARY}"
    return creator


@pytest.fixture(scope="module")
def creator(registry):
    return registered_creator(registry, CLN)


@pytest.fixture(scope="module")
def attention_creator(registry):
    return registered_creator(registry, MHA)


def field_collection(fields):
    """(name, numpy array) fields, as _C's *_plugin_fields give them, as TensorRT PluginFields."""
    types = {np.dtype(np.float32): trt.PluginFieldType.FLOAT32, np.dtype(np.int32): trt.PluginFieldType.INT32}
    return trt.PluginFieldCollection([trt.PluginField(name, value, types[value.dtype]) for name, value in fields])


def plugin_fields(eps, num_inputs, has_weight, has_bias):
    """The plugin's own serialised fields, as TensorRT PluginFields."""
    return field_collection(_C.concat_layernorm_plugin_fields(eps, num_inputs, has_weight, has_bias))


def test_creator_declares_the_spec_fields(creator):
    assert creator.name == CLN["name"]
    assert creator.plugin_version == CLN["version"]
    assert creator.plugin_namespace == SPECS["namespace"]
    assert sorted(field.name for field in creator.field_names) == sorted(CLN["fields"].values())


def test_invalid_fields_create_no_plugin(creator):
    fields = plugin_fields(1e-5, 5, False, False)  # num_inputs out of range: logged, no plugin
    assert creator.create_plugin("bad", fields, trt.TensorRTPhase.BUILD) is None


def test_attention_creator_declares_the_spec_fields(attention_creator):
    assert attention_creator.name == MHA["name"]
    assert attention_creator.plugin_version == MHA["version"]
    assert attention_creator.plugin_namespace == SPECS["namespace"]
    assert sorted(field.name for field in attention_creator.field_names) == sorted(MHA["fields"].values())
    # The types it declares are those of its own serialised fields, as the ONNX parser makes them from
    # the exporter's FLOAT / INT attributes.
    declared = {field.name: field.type for field in attention_creator.field_names}
    assert declared == {MHA["fields"]["scale"]: trt.PluginFieldType.FLOAT32,
                        MHA["fields"]["has_mask"]: trt.PluginFieldType.INT32}


def test_attention_invalid_fields_create_no_plugin(attention_creator):
    fields = field_collection([(MHA["fields"]["scale"], np.float32([0.5])), (MHA["fields"]["has_mask"], np.int32([2]))])
    assert attention_creator.create_plugin("bad", fields, trt.TensorRTPhase.BUILD) is None


# --- engines, against torch.cat + layer_norm --------------------------------------------------------


@pytest.fixture(scope="module")
def torch_cuda():
    torch = pytest.importorskip("torch")
    if not (torch.cuda.is_available() and fusionrt.cuda_available()):
        pytest.skip("needs a CUDA GPU")
    return torch


def build_plugin_engine(creator, layer_name, fields, inputs, output, max_batch):
    """An engine of one plugin layer made by `creator` from `fields` over `inputs` ({name: (dtype,
    shape)}, a leading -1 for a dynamic batch up to max_batch), its output named `output`."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Strongly typed: the only kind TensorRT 11 builds, and the tensor types decide the precision.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    profile = builder.create_optimization_profile()
    tensors = []
    for name, (dtype, shape) in inputs.items():
        tensors.append(network.add_input(name, dtype, shape))
        if shape[0] == -1:
            profile.set_shape(name, (1, *shape[1:]), (max_batch, *shape[1:]), (max_batch, *shape[1:]))
    plugin = creator.create_plugin(layer_name, fields, trt.TensorRTPhase.BUILD)
    assert plugin is not None
    layer = network.add_plugin_v3(tensors, [], plugin)
    layer.get_output(0).name = output
    network.mark_output(layer.get_output(0))
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "engine build failed (see the TensorRT log above)"
    # Deserialising re-creates the plugin from getFieldsToSerialize, so this also checks that path.
    return trt.Runtime(logger).deserialize_cuda_engine(serialized)


def execute(torch, context, inputs, outputs):
    """Binds CUDA tensors to an execution context by name (input shapes too) and runs it on torch's
    current stream, synchronously."""
    for name, tensor in inputs.items():
        assert context.set_input_shape(name, tuple(tensor.shape))
        assert context.set_tensor_address(name, tensor.data_ptr())
    for name, tensor in outputs.items():
        assert context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()


def build_engine(creator, widths, has_weight, has_bias, dtype, eps, max_batch):
    total = sum(widths)
    inputs = {f"x{i}": (dtype, (-1, width)) for i, width in enumerate(widths)}
    inputs |= {name: (dtype, (total,)) for name, present in (("weight", has_weight), ("bias", has_bias)) if present}
    return build_plugin_engine(creator, "concat_layernorm", plugin_fields(eps, len(widths), has_weight, has_bias),
                               inputs, "y", max_batch)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("widths", [(8, 24), (256, 128, 64)])
@pytest.mark.parametrize(("has_weight", "has_bias"), [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("batch", [1, 5])
def test_engine_matches_torch(creator, torch_cuda, dtype, widths, has_weight, has_bias, batch, seed):
    torch = torch_cuda
    eps = 1e-5
    trt_dtype = {"float32": trt.float32, "float16": trt.float16}[dtype]
    torch_dtype = getattr(torch, dtype)
    engine = build_engine(creator, widths, has_weight, has_bias, trt_dtype, eps, max_batch=8)
    context = engine.create_execution_context()

    generator = torch.Generator(device="cuda").manual_seed(seed)
    def randn(*shape):
        return torch.randn(*shape, generator=generator, device="cuda", dtype=torch.float32).to(torch_dtype)
    xs = [randn(batch, w) for w in widths]
    total = sum(widths)
    weight = randn(total) if has_weight else None
    bias = randn(total) if has_bias else None
    y = torch.empty(batch, total, device="cuda", dtype=torch_dtype)

    inputs = {f"x{i}": x for i, x in enumerate(xs)} | {"weight": weight, "bias": bias}
    execute(torch, context, {name: t for name, t in inputs.items() if t is not None}, {"y": y})

    expected = torch.nn.functional.layer_norm(torch.cat(xs, dim=1).float(), (total,),
                                              None if weight is None else weight.float(),
                                              None if bias is None else bias.float(), eps)
    tolerance = {"float32": 1e-5, "float16": 2e-3}[dtype]
    torch.testing.assert_close(y.float(), expected, atol=tolerance * 4, rtol=tolerance)


def build_attention_engine(creator, heads, lq, lk, head_dim, has_mask, scale, dtype, max_batch):
    inputs = {"q": (dtype, (-1, heads, lq, head_dim)), "k": (dtype, (-1, heads, lk, head_dim)),
              "v": (dtype, (-1, heads, lk, head_dim))}
    if has_mask:
        inputs["mask"] = (trt.bool, (-1, lk))
    fields = field_collection(_C.multihead_attention_plugin_fields(scale, has_mask))
    return build_plugin_engine(creator, "attention", fields, inputs, "out", max_batch)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize(("lq", "lk", "head_dim"), [(1, 1, 8), (6, 5, 32), (49, 20, 64), (17, 130, 128)])
@pytest.mark.parametrize("has_mask", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_attention_engine_matches_sdpa(attention_creator, torch_cuda, dtype, lq, lk, head_dim, has_mask, batch, seed):
    torch = torch_cuda
    heads, scale = 2, head_dim**-0.5
    trt_dtype = {"float32": trt.float32, "float16": trt.float16, "bfloat16": trt.bfloat16}[dtype]
    torch_dtype = getattr(torch, dtype)
    engine = build_attention_engine(attention_creator, heads, lq, lk, head_dim, has_mask, scale, trt_dtype, max_batch=4)
    context = engine.create_execution_context()

    generator = torch.Generator(device="cuda").manual_seed(seed)
    def randn(*shape):
        return torch.randn(*shape, generator=generator, device="cuda", dtype=torch.float32).to(torch_dtype)
    q, k, v = randn(batch, heads, lq, head_dim), randn(batch, heads, lk, head_dim), randn(batch, heads, lk, head_dim)
    mask = torch.rand(batch, lk, generator=generator, device="cuda") < 0.7
    mask[:, 0] = True  # every row has a key, so SDPA (NaN for keyless rows on some backends) is the reference
    out = torch.empty_like(q)

    execute(torch, context, {"q": q, "k": k, "v": v} | ({"mask": mask} if has_mask else {}), {"out": out})

    expected = torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), attn_mask=mask[:, None, None, :] if has_mask else None, scale=scale)
    tolerance = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}[dtype]
    torch.testing.assert_close(out.float(), expected, atol=tolerance * 4, rtol=tolerance)


@pytest.mark.cuda
def test_attention_engine_gives_zeros_for_rows_without_keys(attention_creator, torch_cuda):
    torch = torch_cuda
    engine = build_attention_engine(attention_creator, 2, 3, 4, 16, True, 0.25, trt.float32, max_batch=2)
    context = engine.create_execution_context()
    q, k, v = (torch.randn(2, 2, length, 16, device="cuda") for length in (3, 4, 4))
    mask = torch.tensor([[True, False, True, True], [False] * 4], device="cuda")
    out = torch.full_like(q, float("nan"))
    execute(torch, context, {"q": q, "k": k, "v": v, "mask": mask}, {"out": out})
    assert torch.all(out[1] == 0)
    expected = torch.nn.functional.scaled_dot_product_attention(q[:1], k[:1], v[:1], attn_mask=mask[:1, None, None, :],
                                                                scale=0.25)
    torch.testing.assert_close(out[:1], expected, atol=4e-5, rtol=1e-5)


# --- engines built from an exported bundle, run by fusionrt's runtime, against ONNX Runtime ----------


@pytest.fixture(scope="module")
def runtime():
    if not hasattr(_C, "EngineRunner"):
        pytest.skip("fusionrt was built without TensorRT: no _C.EngineRunner")
    if not fusionrt.cuda_available():
        pytest.skip("needs a CUDA GPU")
    return _C.EngineRunner


@pytest.fixture(scope="module")
def late_bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8"))


@pytest.mark.cuda
@pytest.mark.parametrize(("precision", "atol"), [("fp32", 1e-3), ("fp16", 5e-2)])
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_bundle_engine_matches_onnxruntime(runtime, late_bundle, precision, atol, cuda_graphs, rng):
    ort = pytest.importorskip("onnxruntime")
    from fusionrt.bundle import read_manifest
    from fusionrt.backends.tensorrt.engine_builder import build_engine

    manifest = read_manifest(late_bundle)
    path = build_engine(late_bundle, precision=precision, max_batch=4)
    assert build_engine(late_bundle, precision=precision, max_batch=4) == path  # cached
    runner = runtime(path, device=0, cuda_graphs=cuda_graphs)
    assert [t["name"] for t in runner.inputs] == list(manifest.inputs)  # the exporter's input order
    reference = ort.InferenceSession(str(late_bundle / manifest.variants["fp32"].onnx), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 1, 4, 3):  # new shapes, repeats (graph replays) and buffer growth
        feeds = random_feeds(manifest, batch, rng)
        got = runner.run(feeds)
        expected = dict(zip([o.name for o in reference.get_outputs()], reference.run(None, feeds)))
        assert set(got) == set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, atol=atol, rtol=atol, err_msg=f"{name}, batch {batch}")


@pytest.mark.cuda
def test_runner_accepts_device_tensors_and_reports_bad_feeds(runtime, late_bundle, rng):
    torch = pytest.importorskip("torch")
    from fusionrt.bundle import read_manifest
    from fusionrt.backends.tensorrt.engine_builder import build_engine

    manifest = read_manifest(late_bundle)
    runner = runtime(build_engine(late_bundle, max_batch=4), device=0)
    feeds = random_feeds(manifest, 2, rng)
    on_host = runner.run(feeds)
    on_device = runner.run({k: torch.from_numpy(v).cuda() for k, v in feeds.items()})
    for name in on_host:
        np.testing.assert_allclose(on_device[name], on_host[name], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="missing input 'image'"):
        runner.run({k: v for k, v in feeds.items() if k != "image"})
    with pytest.raises(ValueError, match=r"input 'image' has shape \(5, .*expected \(1\.\.4, "):
        runner.run(random_feeds(manifest, 5, rng))
    with pytest.raises(ValueError, match="input 'input_ids' is int32, expected int64"):
        runner.run(feeds | {"input_ids": feeds["input_ids"].astype(np.int32)})


@pytest.mark.cuda
def test_corrupt_engine_raises_with_tensorrt_message(runtime, tmp_path):
    path = tmp_path / "corrupt.engine"
    path.write_bytes(b"\0" * 4096)
    with pytest.raises(RuntimeError, match="deserialising the engine failed: .+"):
        runtime(path)


# --- fusionrt.load(backend="tensorrt"): the Session on its cached engine, against ONNX Runtime --------


@pytest.mark.cuda
@pytest.mark.parametrize(("precision", "atol"), [("fp32", 1e-3), ("fp16", 5e-2)])
def test_session_on_tensorrt_matches_onnxruntime(runtime, late_bundle, precision, atol, rng):
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from fusionrt.backends.tensorrt import backend as tensorrt_backend

    reference = fusionrt.load(late_bundle, backend="onnxruntime")
    session = fusionrt.load(late_bundle, backend="tensorrt", precision=precision)
    assert (session.backend, session.device) == ("tensorrt", "cuda")
    assert set(session.output_names) == set(reference.output_names)
    for batch in (1, tensorrt_backend.MAX_BATCH, 1):
        feeds = random_feeds(session.manifest, batch, rng)
        expected = reference.run(feeds)
        on_device = {name: torch.from_numpy(value).cuda() for name, value in feeds.items()}
        for got in (session.run(feeds), session.run(on_device)):
            for name, value in expected.items():
                np.testing.assert_allclose(got[name], value, atol=atol, rtol=atol, err_msg=f"{name}, batch {batch}")
    with pytest.raises(TypeError, match="feed 'image' is float64, expected float32"):
        session.run(feeds | {"image": feeds["image"].astype(np.float64)})
