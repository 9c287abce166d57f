"""fusionrt.load / Session on tiny exported bundles: parity of backends, raw-input prediction, bundle
validation, feed validation, threads, precisions and backend choice."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fusionrt
from fusionrt.backends import tensorrt as tensorrt_backend
from fusionrt.bundle import FORMAT_VERSION, BundleError
from fusionrt.preprocessing import TextTokenizer, preprocess_images
from tiny_bundles import IMAGE_SIZE, TEXT_LENGTH, tiny_bundle

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

FULL = ("fp32", "fp16", "int8")
# Each strategy's export takes ~20 s of CPU; late (with every precision) is the quick suite's one export.
STRATEGIES = ["late", *(pytest.param(s, marks=pytest.mark.slow) for s in ("intermediate", "early", "hybrid", "decision"))]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The late-fusion bundle with every precision (and class logits)."""
    return tiny_bundle(tmp_path_factory, "late", FULL)


@pytest.fixture(scope="module")
def session(bundle):
    return fusionrt.load(bundle, backend="onnxruntime")


def random_feeds(rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    """Random graph inputs; the last sample's text is padded and the presence mask is mixed."""
    mask = np.ones((batch, TEXT_LENGTH), np.int64)
    mask[-1, TEXT_LENGTH // 2 :] = 0
    presence = rng.random((batch, 2)) < 0.7
    presence[0] = True
    return {
        "input_ids": rng.integers(0, 30522, (batch, TEXT_LENGTH), dtype=np.int64),
        "attention_mask": mask,
        "image": rng.standard_normal((batch, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32),
        "presence": presence,
    }


def images(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    return [rng.integers(0, 256, (40 + 3 * i, 50, 3), dtype=np.uint8) for i in range(count)]


# --------------------------------------------------------------------------------------- import, parity


def test_import_stays_light_until_a_backend_is_opened():
    heavy = ("torch", "onnxruntime", "onnx", "tensorrt", "tokenizers", "PIL")
    code = f"import sys, fusionrt; fusionrt.load, fusionrt.Session; print([m for m in sys.modules if m.split('.')[0] in {heavy!r}])"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_torch_and_onnxruntime_agree_for_every_strategy(strategy, tmp_path_factory, rng):
    path = tiny_bundle(tmp_path_factory, strategy, FULL if strategy == "late" else ("fp32",))
    ort_session = fusionrt.load(path, backend="onnxruntime")
    torch_session = fusionrt.load(path, backend="torch")
    assert (ort_session.backend, torch_session.backend) == ("onnxruntime", "torch")
    assert set(ort_session.output_names) == set(torch_session.output_names) == set(ort_session.manifest.outputs)
    for batch in (1, 3):
        feeds = random_feeds(rng, batch)
        expected = torch_session.run(feeds)
        got = ort_session.run(feeds)
        assert set(got) == set(expected)
        for name in expected:
            assert got[name].shape == expected[name].shape
            np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-4, err_msg=f"{strategy}: {name}")


@pytest.mark.slow
def test_decision_fusion_predicts_branch_scores(tmp_path_factory, rng):
    session = fusionrt.load(tiny_bundle(tmp_path_factory, "decision"))
    prediction = session.predict(text="fine", image=images(rng, 1)[0])
    assert prediction.score_text is not None and prediction.score_image is not None
    text_only = session.predict(text="fine")
    assert text_only.score == pytest.approx(text_only.score_text, abs=1e-5)  # only the present branch counts


# --------------------------------------------------------------------------------------------- predict


def test_predict_equals_run_on_independently_preprocessed_inputs(session, bundle, rng):
    texts, pictures = ["what a wonderful film", "dull and far too long"], images(rng, 2)
    manifest = session.manifest
    ids, mask, _ = TextTokenizer(bundle / manifest.text.tokenizer, manifest.text.max_length)(texts)
    pixels, _ = preprocess_images(pictures, manifest.image)
    expected = session.run({"input_ids": ids, "attention_mask": mask, "image": pixels})["score"]
    predictions = session.predict(text=texts, image=pictures)
    np.testing.assert_allclose([p.score for p in predictions], expected, rtol=0, atol=1e-6)
    for p in predictions:
        assert p.sentiment == ("positive" if p.score >= 0 else "negative")
        assert p.to_dict().keys() == {"score", "sentiment", "logits"} and len(p.logits) == 3


def test_batch_and_single_predictions_agree_with_missing_modalities(session, rng):
    texts = ["great acting", None, "terrible plot", "so so"]
    pictures = [*images(rng, 2), None, images(rng, 1)[0]]
    batch = session.predict(text=texts, image=pictures)
    singles = [session.predict(text=t, image=i) for t, i in zip(texts, pictures)]
    assert len(batch) == 4
    np.testing.assert_allclose([p.score for p in batch], [p.score for p in singles], rtol=0, atol=1e-5)


def test_a_missing_modality_is_the_presence_mask(session, rng):
    picture = images(rng, 1)[0]
    ids = np.zeros((1, TEXT_LENGTH), np.int64)
    pixels, _ = preprocess_images([picture], session.manifest.image)
    absent_text = {"input_ids": ids, "attention_mask": np.ones_like(ids), "image": pixels,
                   "presence": np.array([[False, True]])}
    assert session.predict(image=picture).score == pytest.approx(float(session.run(absent_text)["score"][0]), abs=1e-6)
    # An absent modality's content is ignored: any text marked absent predicts the same.
    other_text = {**absent_text, "input_ids": rng.integers(0, 30522, ids.shape, dtype=np.int64)}
    np.testing.assert_allclose(session.run(other_text)["score"], session.run(absent_text)["score"], rtol=0, atol=1e-6)


def test_predict_rejects_unpaired_inputs(session):
    with pytest.raises(ValueError, match="needs text, image or both"):
        session.predict()
    with pytest.raises(ValueError, match="got 2 texts and 1 images"):
        session.predict(text=["a", "b"], image=[None])
    with pytest.raises(ValueError, match="both as lists"):
        session.predict(text=["a", "b"], image=np.zeros((8, 8, 3), np.uint8))


# ------------------------------------------------------------------------------------ bundle validation


@pytest.fixture
def copy_of(bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_tampered_file_is_refused(copy_of):
    with open(copy_of / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="model.onnx does not match its hash"):
        fusionrt.load(copy_of)


def test_missing_file_is_named(copy_of):
    (copy_of / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="tokenizer.json is missing"):
        fusionrt.load(copy_of)


def edit_manifest(root, edit) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    edit(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_newer_format_is_refused(copy_of):
    edit_manifest(copy_of, lambda manifest: manifest.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(BundleError, match="newer than this fusionrt reads"):
        fusionrt.load(copy_of)


def test_no_bundle(tmp_path):
    with pytest.raises(BundleError, match="manifest.json is missing"):
        fusionrt.load(tmp_path)


# -------------------------------------------------------------------------------------- feed validation


def test_feed_errors_name_expected_and_got(session, rng):
    feeds = random_feeds(rng, 1)
    with pytest.raises(ValueError, match=r"feed 'image' has shape \(1, 3, 64, 64\), expected \(batch, 3, 32, 32\)"):
        session.run({**feeds, "image": np.zeros((1, 3, 64, 64), np.float32)})
    with pytest.raises(TypeError, match="feed 'input_ids' is int32, expected int64"):
        session.run({**feeds, "input_ids": feeds["input_ids"].astype(np.int32)})
    with pytest.raises(ValueError, match=r"unknown feed\(s\) \['images'\] and missing feed\(s\) \['image'\]; expected"):
        session.run({**{k: v for k, v in feeds.items() if k != "image"}, "images": feeds["image"]})
    with pytest.raises(ValueError, match="feed 'presence' has batch 2, expected 1"):
        session.run({**feeds, "presence": np.ones((2, 2), bool)})


def test_presence_may_be_omitted_and_torch_tensors_are_fed(session, rng):
    feeds = random_feeds(rng, 2)
    feeds["presence"][:] = True
    expected = session.run(feeds)["score"]
    without = {k: v for k, v in feeds.items() if k != "presence"}
    np.testing.assert_array_equal(session.run(without)["score"], expected)
    np.testing.assert_array_equal(session.run({k: torch.from_numpy(v) for k, v in feeds.items()})["score"], expected)


# ------------------------------------------------------------------------------------------- threads


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_concurrent_calls_equal_serial_calls(bundle, backend, rng):
    session = fusionrt.load(bundle, backend=backend)
    batches = [random_feeds(rng, 1 + i % 3) for i in range(8)]
    serial = [session.run(feeds)["score"] for feeds in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda feeds: session.run(feeds)["score"], batches))
    for want, got in zip(serial, concurrent):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------- precisions, backends


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_lower_precisions_load_and_stay_close(bundle, session, precision, rng):
    lower = fusionrt.load(bundle, backend="onnxruntime", precision=precision)
    assert lower.precision == precision
    feeds = random_feeds(rng, 4)
    # Random tiny weights are a worst case for quantisation; this checks the variant is the same model.
    np.testing.assert_allclose(lower.run(feeds)["score"], session.run(feeds)["score"], rtol=0, atol=0.5)


def test_unknown_or_absent_precisions_list_the_choices(bundle, copy_of):
    with pytest.raises(ValueError, match=r"unknown precision 'bf16', expected one of \['fp32', 'fp16', 'int8'\]"):
        fusionrt.load(bundle, precision="bf16")
    edit_manifest(copy_of, lambda manifest: manifest["variants"].pop("int8"))
    with pytest.raises(ValueError, match=r"has no 'int8' variant; it has \['fp16', 'fp32'\]"):
        fusionrt.load(copy_of, precision="int8")
    with pytest.raises(ValueError, match="the torch backend runs model.pt2 in fp32"):
        fusionrt.load(bundle, backend="torch", precision="fp16")


def test_auto_picks_onnxruntime_here_and_says_so(bundle, caplog):
    if tensorrt_backend.unavailable_reason() is None:
        pytest.skip("TensorRT, its Python package and a GPU are present: auto picks TensorRT")
    with caplog.at_level(logging.INFO, logger="fusionrt"):
        session = fusionrt.load(bundle)
    assert (session.backend, session.device, session.precision) == ("onnxruntime", "cpu", "fp32")
    assert "auto chose onnxruntime" in caplog.text and "tensorrt:" in caplog.text


def test_tensorrt_says_why_it_cannot_run(bundle):
    if tensorrt_backend.unavailable_reason() is None:
        pytest.skip("TensorRT, its Python package and a GPU are present: the backend runs (see test_tensorrt.py)")
    with pytest.raises(RuntimeError, match="the tensorrt backend cannot run here: .*TensorRT"):
        fusionrt.load(bundle, backend="tensorrt")
    if fusionrt.build_info()["tensorrt"] is None:
        with pytest.raises(RuntimeError, match="TensorRT support is not built into this fusionrt"):
            fusionrt.load(bundle, backend="tensorrt")


def test_unknown_backend_lists_the_backends(bundle):
    with pytest.raises(ValueError, match=r"unknown backend 'tflite', expected one of \['auto', 'tensorrt'"):
        fusionrt.load(bundle, backend="tflite")
