"""Images made on the GPU straight into a TensorRT engine's input (``_C.EngineRunner.run_images``,
``TensorRTBackend.run_images``) and ``Session.predict``'s choice between that and the host path.

The dispatch runs anywhere: a backend that offers ``run_images`` gets the decoded uint8 frames, the
spec and the other feeds; one without it gets host feeds. The GPU tests (TensorRT and a CUDA device;
skipped otherwise, run by ``make device-check``) compare what the CUDA kernel wrote into the engine's
input buffer with the CPU op, and the engine's outputs with the host path's on the same engine.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from fusionrt import _C
from fusionrt.backends.tensorrt.backend import TensorRTBackend
from fusionrt.bundle import ImageSpec, read_manifest
from fusionrt.preprocessing import TextTokenizer, preprocess_images, raw_feeds, rgb_array
from tiny_bundles import tiny_bundle

FULL = ("fp32", "fp16", "int8")


def frames(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Decoded frames of different sizes, larger and smaller than the model's input."""
    return [rng.integers(0, 256, (int(rng.integers(8, 90)), int(rng.integers(8, 90)), 3), dtype=np.uint8)
            for _ in range(count)]


# --- Session.predict's dispatch (any machine) ---------------------------------------------------------


class ImagesOnTheHost:
    """A real backend (ONNX Runtime) given ``run_images`` by making the image with the CPU op: what the
    TensorRT backend does on the GPU, with each call recorded."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.name, self.device, self.output_names = backend.name, backend.device, backend.output_names
        self.adopt, self.dtype, self.run = backend.adopt, backend.dtype, backend.run
        self.calls: list[tuple[dict, list, ImageSpec]] = []

    def run_images(self, feeds, images, spec):
        self.calls.append((feeds, images, spec))
        return self._backend.run({**feeds, "image": preprocess_images(images, spec)[0]})


class HostFeedsOnly:
    """A real backend without ``run_images``, recording the feeds it runs."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.name, self.device, self.output_names = backend.name, backend.device, backend.output_names
        self.adopt, self.dtype = backend.adopt, backend.dtype
        self.feeds: list[dict] = []

    def run(self, feeds):
        self.feeds.append(feeds)
        return self._backend.run(feeds)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late", FULL)


@pytest.fixture(scope="module")
def loaded(bundle):
    pytest.importorskip("onnxruntime")
    return fusionrt.load(bundle, backend="onnxruntime")


def session_on(loaded, backend, absent_path=None, vocab_size=None) -> fusionrt.Session:
    """A Session of ``loaded``'s bundle on ``backend`` (without the absent path unless given)."""
    manifest = loaded.manifest
    tokenizer = TextTokenizer(loaded.path / manifest.text.tokenizer, manifest.text.max_length)
    return fusionrt.Session(loaded.path, manifest, backend, loaded.precision, tokenizer,
                            vocab_size or loaded.vocab_size, absent_path)


@pytest.fixture
def raw_batch(rng, tmp_path):
    """Every kind of image predict takes: a file, an array, a strided crop, a PIL image, None."""
    pil = pytest.importorskip("PIL.Image")
    picture, array, wide, small = frames(rng, 4)
    path = tmp_path / "face.png"
    pil.fromarray(picture).save(path)
    images = [path, array, wide[::2, 1:], pil.fromarray(small), None]
    texts = ["a fine film", None, "dull", "what a ride", "so-so"]
    return texts, images


def test_predict_gives_a_backend_that_runs_images_the_decoded_frames(loaded, raw_batch):
    texts, images = raw_batch
    backend = ImagesOnTheHost(loaded._backend)
    got = session_on(loaded, backend).predict(text=texts, image=images)
    expected = session_on(loaded, HostFeedsOnly(loaded._backend)).predict(text=texts, image=images)

    [(feeds, handed, spec)] = backend.calls
    assert spec is loaded.manifest.image
    assert set(feeds) == {"input_ids", "attention_mask", "presence"}  # the image is the backend's to make
    np.testing.assert_array_equal(feeds["presence"], [[True, True], [False, True], [True, True], [True, True],
                                                      [True, False]])
    assert handed[-1] is None and len(handed) == len(images)
    for frame, image in zip(handed[:-1], images[:-1]):
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        np.testing.assert_array_equal(frame, rgb_array(image))
    assert [p.score for p in got] == pytest.approx([p.score for p in expected], abs=1e-6)


def test_predict_gives_a_backend_without_run_images_host_feeds(loaded, raw_batch):
    texts, images = raw_batch
    backend = HostFeedsOnly(loaded._backend)
    session_on(loaded, backend).predict(text=texts, image=images)
    [feeds] = backend.feeds
    pixels, present = preprocess_images(images, loaded.manifest.image)
    np.testing.assert_array_equal(feeds["image"], pixels)
    np.testing.assert_array_equal(feeds["presence"][:, 1], present)


def test_the_absent_path_keeps_its_batches_on_the_host(loaded, rng):
    backend = ImagesOnTheHost(loaded._backend)
    session = session_on(loaded, backend, absent_path=loaded._absent_path)
    if loaded._absent_path is None:
        pytest.skip("this bundle has no absent-modality path on ONNX Runtime")
    text_only = session.predict(text=["good", "bad"])
    assert backend.calls == []  # no image anywhere: the absent path runs the text branch alone
    assert [p.score for p in text_only] == pytest.approx([p.score for p in loaded.predict(text=["good", "bad"])], abs=1e-6)
    session.predict(text=["good", None], image=frames(rng, 2))
    assert len(backend.calls) == 1


def test_predict_checks_token_ids_on_the_device_path_too(loaded, rng):
    # A graph whose table holds fewer ids than the tokenizer makes.
    session = session_on(loaded, ImagesOnTheHost(loaded._backend), vocab_size=100)
    with pytest.raises(ValueError, match="input_ids"):
        session.predict(text="a film about a photographer", image=frames(rng, 1)[0])


class RecordedRunner:
    """Stands in for ``_C.EngineRunner`` (which needs TensorRT and a GPU) to show what the backend passes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def run_images(self, *args, **kwargs):
        self.calls.append(("run_images", args, kwargs))
        return {}

    def run(self, *args, **kwargs):
        self.calls.append(("run", args, kwargs))
        return {}


def backend_with(runner: RecordedRunner) -> TensorRTBackend:
    backend = object.__new__(TensorRTBackend)  # without deserialising an engine
    backend._runner = runner
    return backend


@pytest.mark.parametrize(("layout", "order"), [("NCHW", "RGB"), ("NHWC", "BGR")])
def test_tensorrt_backend_hands_the_spec_to_the_runner(rng, layout, order):
    runner = RecordedRunner()
    spec = ImageSpec(size=[24, 40], mean=[0.1, 0.2, 0.3], std=[0.5, 0.6, 0.7], layout=layout, channel_order=order)
    images = [*frames(rng, 2), None]
    feeds = {"input_ids": np.zeros((3, 4), np.int64)}
    backend_with(runner).run_images(feeds, images, spec)
    [(method, args, kwargs)] = runner.calls
    assert method == "run_images"
    assert args == (feeds, "image", images, [0.1, 0.2, 0.3], [0.5, 0.6, 0.7])
    assert kwargs == dict(layout=layout, channel_order=order, height=24, width=40)


def test_tensorrt_backend_preprocesses_other_interpolations_on_the_host(rng):
    runner = RecordedRunner()
    spec = ImageSpec(size=[24, 40], interpolation="bicubic")
    images = [*frames(rng, 2), None]
    backend_with(runner).run_images({"input_ids": np.zeros((3, 4), np.int64)}, images, spec)
    [(method, (feeds,), _)] = runner.calls
    assert method == "run"
    np.testing.assert_array_equal(feeds["image"], preprocess_images(images, spec)[0])


# --- on a GPU with TensorRT -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trt():
    if not hasattr(_C, "EngineRunner"):
        pytest.skip("fusionrt was built without TensorRT: no _C.EngineRunner")
    if not fusionrt.cuda_available():
        pytest.skip("needs a CUDA GPU")
    return pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install fusionrt[trt], or JetPack)")


def image_echo_plan(trt, shape: tuple[int, int, int], max_batch: int) -> bytes:
    """An engine whose output ``echo`` is its float32 input ``image`` (batch, *shape): what was written
    into the input buffer, read back."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    image = network.add_input("image", trt.float32, (-1, *shape))
    echo = network.add_identity(image).get_output(0)
    echo.name = "echo"
    network.mark_output(echo)
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, *shape), (1, *shape), (max_batch, *shape))
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None, "TensorRT could not build the echo engine"
    return bytes(plan)


@pytest.mark.cuda
@pytest.mark.parametrize("cuda_graphs", [False, True])
@pytest.mark.parametrize(("layout", "order", "size"), [("NCHW", "RGB", (24, 40)), ("NHWC", "BGR", (33, 17))])
def test_frames_written_on_the_gpu_equal_the_cpu_op(trt, rng, cuda_graphs, layout, order, size):
    height, width = size
    shape = (3, height, width) if layout == "NCHW" else (height, width, 3)
    runner = _C.EngineRunner(image_echo_plan(trt, shape, max_batch=4), device=0, cuda_graphs=cuda_graphs)
    spec = ImageSpec(size=[height, width], mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], layout=layout,
                     channel_order=order)
    # New shapes, repeats (graph replays with new frames), growth and absent samples.
    for batch in (1, 3, 3, 1, 4, 2):
        images = frames(rng, batch)
        if batch > 2:
            images[1] = None
            images[2] = np.dstack([images[2], np.full(images[2].shape[:2], 255, np.uint8)])  # RGBA
        got = runner.run_images({}, "image", images, spec.mean, spec.std, layout=layout, channel_order=order,
                                height=height, width=width)["echo"]
        expected, _ = preprocess_images([None if i is None else np.ascontiguousarray(i[..., :3]) for i in images], spec)
        # Within 1/255 of a pixel value, in normalised units.
        np.testing.assert_allclose(got, expected, rtol=0, atol=1 / 255 / min(spec.std), err_msg=f"batch {batch}")
        if batch > 2:
            assert not got[1].any()  # absent: zeros, as the host path writes


@pytest.mark.cuda
def test_run_images_reports_bad_frames_and_feeds(trt, rng):
    runner = _C.EngineRunner(image_echo_plan(trt, (3, 16, 16), max_batch=2), device=0)
    args = dict(mean=[0.5] * 3, std=[0.5] * 3, height=16, width=16)
    with pytest.raises(ValueError, match=r"input 'image' has shape \(3, 3, 16, 16\), expected \(1\.\.2, 3, 16, 16\)"):
        runner.run_images({}, "image", frames(rng, 3), **args)
    with pytest.raises(ValueError, match=r"input 'image' has shape \(1, 3, 8, 16\)"):
        runner.run_images({}, "image", frames(rng, 1), **(args | dict(height=8)))
    with pytest.raises(TypeError, match=r"images\[0\] must be uint8"):
        runner.run_images({}, "image", [np.zeros((8, 8, 3), np.float32)], **args)
    with pytest.raises(ValueError, match=r"images\[1\] has 2 channels"):
        runner.run_images({}, "image", [frames(rng, 1)[0], np.zeros((8, 8, 2), np.uint8)], **args)
    with pytest.raises(ValueError, match="unknown input 'pixels'"):
        runner.run_images({}, "pixels", frames(rng, 1), **args)
    with pytest.raises(ValueError, match="feeds hold input 'image'"):
        runner.run_images({"image": np.zeros((1, 3, 16, 16), np.float32)}, "image", frames(rng, 1), **args)
    with pytest.raises(ValueError, match="layout is 'CHW'"):
        runner.run_images({}, "image", frames(rng, 1), **(args | dict(layout="CHW")))
    # After the refusals, a good call still runs and the host path still works.
    assert runner.run_images({}, "image", frames(rng, 2), **args)["echo"].shape == (2, 3, 16, 16)
    assert runner.run({"image": np.ones((1, 3, 16, 16), np.float32)})["echo"].min() == 1


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_predict_on_tensorrt_equals_the_host_path_on_the_same_engine(trt, bundle, rng, precision):
    session = fusionrt.load(bundle, backend="tensorrt", precision=precision)
    backend = session._backend
    on_gpu = []
    run_images = backend.run_images
    backend.run_images = lambda *args: on_gpu.append(len(args[1])) or run_images(*args)
    manifest = read_manifest(bundle)
    tokenizer = TextTokenizer(bundle / manifest.text.tokenizer, manifest.text.max_length)
    for batch in (1, 3, 1, 3):  # the engine's CUDA graphs replay for the repeats
        texts = ["a fine film", "dull", None][:batch]
        images = frames(rng, batch)
        if batch == 3:
            images[1] = None
        got = session.predict(text=texts, image=images)
        host = session.run(raw_feeds(manifest, tokenizer(texts), images))  # pre-processed by the CPU op
        np.testing.assert_allclose([p.score for p in got], host["score"], rtol=0, atol=2e-3 if precision == "fp16" else 1e-4)
    assert on_gpu == [1, 3, 1, 3]  # every predict made its images on the GPU
