"""A bundle served by a real Triton Inference Server (nvidia-pytriton's tritonserver, from the serve
environment `make serve-env` makes), checked through tritonclient over HTTP and gRPC against
Session.predict on the same inputs. One server per module: start-up is paid once."""

from __future__ import annotations

import concurrent.futures
import io
import urllib.request

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")
httpclient = pytest.importorskip("tritonclient.http", reason="needs tritonclient[http,grpc] (the dev extra)")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="needs tritonclient[http,grpc] (the dev extra)")
from tritonclient.utils import InferenceServerException  # noqa: E402
from PIL import Image  # noqa: E402

import fusionrt  # noqa: E402
from fusionrt.serving import server as triton  # noqa: E402
from fusionrt.serving.repository import write_repository  # noqa: E402
from tiny_bundles import tiny_bundle  # noqa: E402

MODEL = "served"
CLIENTS = 32
WORDS = ["great", "film", "awful", "boring", "wonderful", "plot", "the", "acting", "was", "not"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8"))


@pytest.fixture(scope="module")
def session(bundle):
    return fusionrt.load(bundle, backend="onnxruntime")


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    try:
        triton.find_install()
    except RuntimeError as error:
        pytest.skip(f"no Triton server to test against: {error}")
    repo = tmp_path_factory.mktemp("triton") / "repo"
    write_repository(bundle, repo, name=MODEL, max_batch_size=CLIENTS, runtime="onnxruntime")
    try:
        running = triton.start(repo, timeout=240)
    except RuntimeError as error:
        if "failed to load" in str(error) or "UNAVAILABLE" in str(error):
            raise  # the server ran; our model did not load: a bug, not a missing server
        pytest.skip(f"tritonserver cannot start here: {error}")
    yield running
    running.stop()


def random_sample(rng: np.random.Generator) -> tuple[str | None, np.ndarray | None]:
    text = None if rng.random() < 0.2 else " ".join(rng.choice(WORDS, rng.integers(1, 12)))
    image = None if (text is not None and rng.random() < 0.2) else rng.integers(
        0, 256, (*rng.integers(8, 48, size=2), 3), dtype=np.uint8)
    return text, image


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def request_inputs(client_module, texts: list[str | None], images: list[np.ndarray | None]) -> list:
    """The request's text and encoded-image inputs (empty entries: modality absent)."""
    inputs = []
    for name, values in (("text", [(t or "").encode() for t in texts]),
                         ("image", [png(m) if m is not None else b"" for m in images])):
        tensor = client_module.InferInput(name, [len(values), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[v] for v in values], dtype=object))
        inputs.append(tensor)
    return inputs


def assert_matches(result, predictions) -> None:
    # Another process and possibly another ONNX Runtime build, batched with other requests: close, not bitwise.
    np.testing.assert_allclose(result.as_numpy("score")[:, 0], [p.score for p in predictions], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("logits"), [p.logits for p in predictions], rtol=1e-5, atol=1e-6)


def test_readiness_and_metrics_endpoints_answer(server):
    client = httpclient.InferenceServerClient(server.http_url)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert grpcclient.InferenceServerClient(server.grpc_url).is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL)
    assert {i["name"] for i in metadata["inputs"]} == {"text", "image", "image_array"}
    assert [o["name"] for o in metadata["outputs"]] == ["score", "logits"]
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        metrics = response.read().decode()
    assert f'nv_inference_request_success{{model="{MODEL}"' in metrics


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_outputs_equal_session_predict(protocol, server, session, rng):
    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(server.http_url if protocol == "http" else server.grpc_url)
    for batch in (1, 3, 5):
        samples = [random_sample(rng) for _ in range(batch)]
        texts, images = [s[0] for s in samples], [s[1] for s in samples]
        assert_matches(client.infer(MODEL, request_inputs(module, texts, images)), session.predict(text=texts, image=images))
    # uint8 HWC arrays in place of encoded images
    pixels = rng.integers(0, 256, (2, 20, 30, 3), dtype=np.uint8)
    tensor = module.InferInput("image_array", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels)
    assert_matches(client.infer(MODEL, [tensor]), session.predict(image=list(pixels)))


def test_concurrent_clients_all_get_correct_answers_under_dynamic_batching(server, session, rng):
    samples = [random_sample(rng) for _ in range(CLIENTS * 2)]
    expected = session.predict(text=[s[0] for s in samples], image=[s[1] for s in samples])
    client = httpclient.InferenceServerClient(server.http_url)
    before = client.get_inference_statistics(MODEL)["model_stats"][0]

    def ask(i: int):
        module = httpclient if i % 2 else grpcclient
        url = server.http_url if i % 2 else server.grpc_url
        text, image = samples[i]
        return module.InferenceServerClient(url).infer(MODEL, request_inputs(module, [text], [image]))

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(ask, range(len(samples))))
    for result, prediction in zip(results, expected):
        assert_matches(result, [prediction])
    after = client.get_inference_statistics(MODEL)["model_stats"][0]
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == len(samples)
    assert executions < inferences, "the dynamic batcher never joined two requests"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_malformed_requests_get_errors_and_the_server_keeps_serving(protocol, server, session, rng):
    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(server.http_url if protocol == "http" else server.grpc_url)

    def tensor(name, array, dtype):
        t = module.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        return t

    bad = {
        "not an image": [tensor("image", np.array([[b"GIF89a but truncated"]], dtype=object), "BYTES")],
        "wrong dtype": [tensor("text", np.zeros((1, 1), np.int32), "INT32")],
        "wrong shape": [tensor("text", np.array([[b"a", b"b"]], dtype=object), "BYTES")],
        "no input": [],
        "float pixels": [tensor("image_array", rng.random((1, 8, 8, 3), dtype=np.float32), "FP32")],
        "unknown input": [tensor("input_ids", np.zeros((1, 16), np.int64), "INT64")],
    }
    ours = {"not an image": "not a decodable image"}  # an error our model raises (the rest, the server)
    for what, inputs in bad.items():
        with pytest.raises(InferenceServerException, match=ours.get(what)):
            client.infer(MODEL, inputs)
        text, image = random_sample(rng)
        result = client.infer(MODEL, request_inputs(module, [text], [image]))
        assert_matches(result, [session.predict(text=text, image=image)]), what
    assert server.process.poll() is None


def test_fusionrt_serve_prints_endpoints_serves_and_stops_on_ctrl_c(bundle, session, tmp_path, rng):
    import json
    import os
    import signal
    import subprocess
    import sys

    try:
        triton.find_install()
    except RuntimeError as error:
        pytest.skip(f"no Triton server to test against: {error}")
    env = dict(os.environ, FUSIONRT_SERVE_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "fusionrt.cli", "serve", str(bundle), "--name", "cli_served", "--runtime",
               "onnxruntime", "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not (lines and lines[-1].startswith("}")):  # the endpoints, as one JSON object
            line = process.stdout.readline()
            assert line, f"fusionrt serve ended early: {process.stderr.read()}"
            lines.append(line)
        endpoints = json.loads("".join(lines))
        assert endpoints["model"] == "cli_served"
        client = httpclient.InferenceServerClient(endpoints["http"])
        assert client.is_model_ready("cli_served")
        text, image = random_sample(rng)
        assert_matches(client.infer("cli_served", request_inputs(httpclient, [text], [image])),
                       [session.predict(text=text, image=image)])
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not _answers(endpoints["http"]), "tritonserver still answers after fusionrt serve stopped"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/live", timeout=2):
            return True
    except OSError:
        return False
