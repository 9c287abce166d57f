"""fusionrt.serving without a server: the model repository's files, every config.pbtxt parsed with
Triton's own ModelConfig protobuf (shipped in tritonclient), and the served models' request handling
against Session.predict on the same inputs."""

from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")
model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc] (Triton's model-config protobuf)")
text_format = pytest.importorskip("google.protobuf.text_format")

from PIL import Image  # noqa: E402

import fusionrt  # noqa: E402
from fusionrt.bundle import BundleError, read_manifest, write_manifest  # noqa: E402
from fusionrt.serving.config import TRITON_DTYPES, spec_dims, tensor  # noqa: E402
from fusionrt.serving.handlers import BundleHandler, PreprocessHandler  # noqa: E402
from fusionrt.serving.protocol import REQUEST_INPUTS, served_outputs  # noqa: E402
from fusionrt.serving.repository import LAYOUTS, write_repository  # noqa: E402
from tiny_bundles import random_feeds, tiny_bundle  # noqa: E402

WORDS = ["great", "film", "awful", "boring", "wonderful", "plot", "the", "acting", "was", "not"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8"))


@pytest.fixture(scope="module")
def manifest(bundle):
    return read_manifest(bundle, verify_hashes=False)


def parse(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def random_texts(rng: np.random.Generator, n: int) -> list[str | None]:
    return [None if rng.random() < 0.2 else " ".join(rng.choice(WORDS, rng.integers(1, 12))) for _ in range(n)]


def random_image(rng: np.random.Generator) -> np.ndarray:
    h, w = rng.integers(8, 64, size=2)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def encode(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


def column(values: list) -> np.ndarray:
    return np.array([[v] for v in values], dtype=object)


def graph_dims(spec) -> list[int]:
    return [int(d) for d in spec.shape[1:]]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_config_parses_with_tritons_protobuf_and_matches_the_manifest(layout, bundle, manifest, tmp_path, rng):
    engine = None
    if layout == "tensorrt":
        engine = tmp_path / "model.plan"
        engine.write_bytes(b"an engine built on the serving GPU")  # the file is only copied here
    precision = "int8" if layout == "onnxruntime" else "fp32"
    names = write_repository(bundle, tmp_path / "repo", name="served", max_batch_size=16, instances=2,
                             precision=precision, backend=layout, engine=engine)
    configs = {n: parse(tmp_path / "repo" / n / "config.pbtxt") for n in names}
    assert set(configs) == {p.name for p in (tmp_path / "repo").iterdir()}
    front = configs["served"]
    assert front.name == "served" and front.max_batch_size == 16
    # The client-facing model takes the request inputs, all optional, and answers the prediction outputs.
    assert [(i.name, i.data_type, list(i.dims), i.optional) for i in front.input] == [
        (n, model_config_pb2.DataType.Value(TRITON_DTYPES[d]), dims, True) for n, d, dims in REQUEST_INPUTS]
    expected_outputs = served_outputs(list(manifest.outputs))
    assert expected_outputs == ["score", "logits"]
    assert [(o.name, list(o.dims)) for o in front.output] == [
        (n, graph_dims(manifest.outputs[n]) or [1]) for n in expected_outputs]
    assert all(o.data_type == model_config_pb2.TYPE_FP32 for o in front.output)
    if layout == "python":
        assert front.backend == "python" and front.HasField("dynamic_batching")
        assert [(g.count, g.kind) for g in front.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
        assert {k: v.string_value for k, v in front.parameters.items()} == dict(
            handler="bundle", bundle="bundle", backend="auto", precision="fp32")
        copied = tmp_path / "repo" / "served" / "1" / "bundle"
        assert fusionrt.load(copied, backend="onnxruntime").manifest == manifest  # hash-checked copy
        assert (tmp_path / "repo" / "served" / "1" / "model.py").is_file()
        return
    assert front.platform == "ensemble"
    pre, inference = configs["served_preprocess"], configs[names[2]]
    assert pre.backend == "python" and pre.HasField("dynamic_batching")
    assert inference.platform == {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}[layout]
    assert inference.max_batch_size == 16 and inference.HasField("dynamic_batching")
    kind = model_config_pb2.ModelInstanceGroup.KIND_GPU if layout == "tensorrt" else model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert [(g.count, g.kind) for g in inference.instance_group] == [(2, kind)]
    # The graph model's I/O is the manifest's: names, dtypes, dims after the batch axis, scalars reshaped.
    for entries, specs in ((inference.input, manifest.inputs), (inference.output, manifest.outputs)):
        assert {e.name for e in entries} == set(specs)
        for e in entries:
            spec = specs[e.name]
            assert e.data_type == model_config_pb2.DataType.Value(TRITON_DTYPES[spec.dtype])
            dims, reshaped = spec_dims(e.name, spec)
            assert list(e.dims) == dims and e.HasField("reshape") == reshaped
            if reshaped:
                assert list(e.reshape.shape) == []
    assert {o.name: list(o.dims) for o in pre.output} == {n: graph_dims(s) for n, s in manifest.inputs.items()}
    # The ensemble wires request -> preprocess -> graph -> prediction outputs, every tensor produced once.
    steps = front.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["served_preprocess", names[2]]
    assert set(steps[0].output_map.values()) == set(steps[1].input_map.values())
    assert set(steps[1].output_map.values()) == set(expected_outputs)
    assert not set(steps[0].output_map.values()) & {i.name for i in front.input}
    graph_file = tmp_path / "repo" / names[2] / "1" / ("model.onnx" if layout == "onnxruntime" else "model.plan")
    source = bundle / manifest.variants[precision].onnxruntime_file if layout == "onnxruntime" else engine
    assert graph_file.read_bytes() == source.read_bytes()
    if layout == "onnxruntime":  # the graph model's folder alone (graph + its external data) runs as the bundle does
        import onnxruntime as ort

        graph = ort.InferenceSession(str(graph_file), providers=["CPUExecutionProvider"])
        feeds = random_feeds(manifest, int(rng.integers(1, 5)), rng)
        expected = fusionrt.load(bundle, backend="onnxruntime", precision=precision).run(feeds)
        for name, value in zip([o.name for o in graph.get_outputs()], graph.run(None, feeds)):
            np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)


def test_tensor_entries_render_batch_axis_dims_and_reshape():
    for shape, dims in ((["batch", 7], [7]), (["batch", 3, 5, 5], [3, 5, 5]), ([-1, -1, 3], [-1, -1, 3])):
        entry = text_format.Parse(f"input [ {tensor('x', 'float16', shape)} ]", model_config_pb2.ModelConfig()).input[0]
        assert list(entry.dims) == dims and not entry.HasField("reshape") and entry.data_type == model_config_pb2.TYPE_FP16
    with pytest.raises(ValueError, match="expected one of"):
        tensor("x", "complex64", ["batch"])
    with pytest.raises(ValueError, match="leading 'batch' axis"):
        spec_dims("x", type("Spec", (), {"shape": [3, "batch"]})())


def test_bad_options_are_refused_before_writing(bundle, tmp_path):
    out = tmp_path / "repo"
    for kwargs, message in (
        (dict(backend="triton"), "expected one of"),
        (dict(runtime="cuda"), "expected one of"),
        (dict(max_batch_size=0), "must be >= 1"),
        (dict(precision="bf16"), "has no 'bf16' variant"),
        (dict(backend="tensorrt"), "needs engine="),
        (dict(name="../up"), "not usable as a Triton model name"),
    ):
        with pytest.raises(ValueError, match=message):
            write_repository(bundle, out, **kwargs)
        assert not out.exists()
    with pytest.raises(fusionrt.bundle.BundleError):
        write_repository(tmp_path / "nothing", out)


def test_bundle_handler_answers_like_session_predict_per_request(bundle, rng):
    session = fusionrt.load(bundle, backend="onnxruntime")
    handler = BundleHandler(bundle, backend="onnxruntime")
    requests, expected = [], []
    for _ in range(5):  # one dynamic batch of requests of several sizes and input kinds
        n = int(rng.integers(1, 4))
        texts = random_texts(rng, n)
        images = [random_image(rng) if rng.random() < 0.8 else None for _ in range(n)]
        if all(t is None for t in texts):
            texts[0] = "fine"
        request = {"text": column([(t or "").encode() for t in texts])}
        if rng.random() < 0.5:
            request["image"] = column([encode(m) if m is not None else b"" for m in images])
        else:
            images = [random_image(rng)] * n  # an array input holds equally sized images
            request["image_array"] = np.stack(images)
        requests.append(request)
        expected.append(session.predict(text=texts, image=images))
    answers = handler(requests)
    for answer, predictions in zip(answers, expected):
        assert answer["score"].shape == (len(predictions), 1) and answer["logits"].shape == (len(predictions), 3)
        np.testing.assert_array_equal(answer["score"][:, 0], np.float32([p.score for p in predictions]))
        np.testing.assert_array_equal(answer["logits"], np.float32([p.logits for p in predictions]))


def test_bad_requests_fail_alone(bundle, rng):
    handler = BundleHandler(bundle, backend="onnxruntime")
    good = {"text": column([b"a good film"])}
    bad = [
        ({"image": column([b"\x89PNG but not really"])}, "not a decodable image"),
        ({"image_array": rng.integers(0, 255, (1, 8, 8, 3)).astype(np.float32)}, "expected uint8"),
        ({"text": column([b"\xff\xfe"])}, "not UTF-8"),
        ({"text": np.array([b"x", b"y"], dtype=object)}, "expected \\[2, 1\\]"),
        ({}, "at least one"),
        ({"text": column([b"a"]), "image": column([encode(random_image(rng))] * 2)}, "different batch sizes"),
        ({"token_ids": column([b"a"])}, "unknown inputs"),
    ]
    answers = handler([good, *[r for r, _ in bad], good])
    assert isinstance(answers[0], dict) and isinstance(answers[-1], dict)
    np.testing.assert_array_equal(answers[0]["score"], answers[-1]["score"])
    for answer, (_, message) in zip(answers[1:-1], bad):
        assert isinstance(answer, (ValueError, TypeError)), answer
        assert re.search(message, str(answer)), (message, answer)


def test_preprocess_handler_gives_the_feeds_session_runs(bundle, manifest, rng):
    session = fusionrt.load(bundle, backend="onnxruntime")
    handler = PreprocessHandler(bundle)
    texts = random_texts(rng, 4)
    images = [random_image(rng) for _ in range(4)]
    [feeds] = handler([{"text": column([(t or "").encode() for t in texts]), "image": column([encode(m) for m in images])}])
    assert {n: (a.dtype.name, list(a.shape[1:])) for n, a in feeds.items()} == {
        n: (s.dtype, graph_dims(s)) for n, s in manifest.inputs.items()}
    out = session.run(feeds)
    predictions = session.predict(text=texts, image=images)
    np.testing.assert_array_equal(out["score"], np.float32([p.score for p in predictions]))


def test_generated_python_model_names_match_the_protocol(tmp_path, bundle):
    write_repository(bundle, tmp_path / "repo", name="m")
    config = parse(tmp_path / "repo" / "m" / "config.pbtxt")
    params = {k: v.string_value for k, v in config.parameters.items()}
    # What triton_model.py reads from its config: the bundle folder under the version folder.
    assert (tmp_path / "repo" / "m" / "1" / params["bundle"] / "manifest.json").is_file()
    assert json.loads((tmp_path / "repo" / "m" / "1" / params["bundle"] / "manifest.json").read_text())["model_name"]


def test_fusionrt_triton_command_writes_the_repository(bundle, tmp_path, capsys):
    from fusionrt import cli

    assert cli.main(["triton", str(bundle), "--out", str(tmp_path / "repo"), "--backend", "onnxruntime",
                     "--precision", "int8", "--name", "cli", "--instances", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["models"] == ["cli", "cli_preprocess", "cli_onnx"] and printed["call"] == "cli"
    assert parse(tmp_path / "repo" / "cli_onnx" / "config.pbtxt").instance_group[0].count == 3
    # Errors are one line naming the problem, exit code 1; the existing repository is untouched.
    assert cli.main(["triton", str(bundle), "--out", str(tmp_path / "repo"), "--backend", "tensorrt"]) == 1
    assert "needs engine=" in capsys.readouterr().err
    assert (tmp_path / "repo" / "cli_onnx").is_dir()


def test_the_onnxruntime_layout_copies_only_external_data_the_variant_may_read(bundle, tmp_path):
    # The tiny int8 graph reads float tensors equal to fp32's from model.weights (its shared_weights); a
    # manifest that no longer allows that file makes the graph's reference one the repository must refuse.
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = read_manifest(copy)
    assert manifest.variants["int8"].shared_weights == "model.weights"
    manifest.variants["int8"].shared_weights = None
    write_manifest(copy, manifest)  # manifest.json is not among the hashed files
    with pytest.raises(BundleError, match="reads external data from 'model.weights'"):
        write_repository(copy, tmp_path / "repo", backend="onnxruntime", precision="int8")
    assert not (tmp_path / "repo").exists()
