"""Edge inputs give one documented behaviour on every backend (``Session.run``'s docstring), never a
silent wrong answer: out-of-range token ids, attention masks that are not 0/1 or mark no token, batch
0, strided feeds, device strings a backend cannot use, the torch program's device move, and corrupt
tokenizers. Each test runs on every backend this host has (ONNX Runtime fp32 and int8, torch;
TensorRT skips with its reason); references are the contiguous input's answer, the other backend's
answer and numpy.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import fusionrt
from fusionrt import backends
from fusionrt.bundle import BundleError, sha256_file
from tiny_bundles import IMAGE_SIZE, TEXT_LENGTH, tiny_bundle

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

VOCAB = 30522  # tiny_bundles keeps all-MiniLM-L6-v2's vocabulary
#: (backend, precision) of every backend variant; TensorRT skips where it cannot run.
BACKENDS = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch", "fp32"), ("tensorrt", "fp32")]
IDS = [f"{backend}-{precision}" for backend, precision in BACKENDS]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The late-fusion bundle with every precision and class logits (shared with test_session)."""
    return tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8"))


@pytest.fixture(scope="module", params=BACKENDS, ids=IDS)
def session(request, bundle):
    backend, precision = request.param
    reason = backends.unavailable(backend, fusionrt.bundle.read_manifest(bundle, verify_hashes=False))
    if reason is not None:
        pytest.skip(f"the {backend} backend cannot run here: {reason}")
    return fusionrt.load(bundle, backend=backend, precision=precision)


@pytest.fixture(scope="module")
def reference(bundle):
    """ONNX Runtime fp32: the other backends' reference (torch is the export's own reference for it)."""
    return fusionrt.load(bundle, backend="onnxruntime")


def feeds(rng: np.random.Generator, batch: int = 3) -> dict[str, np.ndarray]:
    mask = np.ones((batch, TEXT_LENGTH), np.int64)
    mask[-1, TEXT_LENGTH // 2 :] = 0
    return {
        "input_ids": rng.integers(0, VOCAB, (batch, TEXT_LENGTH), dtype=np.int64),
        "attention_mask": mask,
        "image": rng.standard_normal((batch, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32),
        "presence": np.ones((batch, 2), bool),
    }


def assert_close_to_reference(session, got, reference_session, given) -> None:
    """fp32 backends agree with ONNX Runtime fp32 within the export's parity tolerance."""
    if session.precision != "fp32":
        return
    want = reference_session.run(given)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-4, err_msg=name)


# ---------------------------------------------------------------------------------------------- token ids


@pytest.mark.parametrize(("bad", "row", "column"), [(-1, 0, 3), (VOCAB, 1, 0), (2**62, 2, 15), (-(2**63), 0, 0)])
def test_out_of_range_token_ids_are_rejected(session, rng, bad, row, column):
    given = feeds(rng)
    given["input_ids"][row, column] = bad
    expected = rf"feed 'input_ids' has token id {bad} at \[{row}, {column}\], expected ids in \[0, {VOCAB}\)"
    with pytest.raises(ValueError, match=expected):
        session.run(given)
    # The same id in a row whose text is absent is rejected too: the embedding lookup runs on every row.
    given["presence"][row, 0] = False
    with pytest.raises(ValueError, match=expected):
        session.run(given)


def test_the_vocabulary_edges_are_accepted(session, reference, rng):
    given = feeds(rng)
    given["input_ids"][0, :2] = [0, VOCAB - 1]
    assert session.vocab_size == VOCAB
    assert_close_to_reference(session, session.run(given), reference, given)


# ------------------------------------------------------------------------------------------ attention mask


@pytest.mark.parametrize("value", [2, -1, 255])
def test_mask_values_other_than_0_and_1_are_rejected(session, rng, value):
    given = feeds(rng)
    given["attention_mask"][1, 4] = value
    with pytest.raises(ValueError, match=rf"feed 'attention_mask' has {value} at \[1, 4\], expected 0 \(padding\) or 1"):
        session.run(given)


def test_present_text_with_an_all_zero_mask_is_rejected(session, rng):
    given = feeds(rng)
    given["attention_mask"][1] = 0
    with pytest.raises(ValueError, match=r"row 1 has no 1 .* mark absent text with presence\[1, 0\] = False"):
        session.run(given)
    without_presence = {k: v for k, v in given.items() if k != "presence"}  # omitted: all present
    with pytest.raises(ValueError, match="row 1 has no 1"):
        session.run(without_presence)


def test_absent_text_may_have_an_all_zero_mask_and_backends_agree(session, reference, rng):
    given = feeds(rng)
    given["presence"][1, 0] = False
    ones = session.run(given)
    given["attention_mask"][1] = 0
    zeros = session.run(given)
    # Absent text's mask is ignored: the row answers as with a mask of ones (predict's absent text).
    for name in ones:
        np.testing.assert_allclose(zeros[name], ones[name], rtol=0, atol=1e-6, err_msg=name)
    assert_close_to_reference(session, zeros, reference, given)


# ------------------------------------------------------------------------------------------------- batch 0


def test_batch_0_returns_empty_outputs_of_the_graphs_shapes(session, rng):
    empty = {name: value[:0] for name, value in feeds(rng).items()}
    for given in (empty, {k: v for k, v in empty.items() if k != "presence"}):
        out = session.run(given)
        assert list(out) == list(session.output_names)
        for name, spec in session.manifest.outputs.items():
            want = tuple(0 if isinstance(d, str) else d for d in spec.shape)
            assert (out[name].shape, out[name].dtype) == (want, np.dtype(spec.dtype)), name
    assert out["logits"].shape == (0, 3)
    assert session.predict(text=[], image=[]) == []
    assert session.predict(text=[]) == []
    assert session.predict(image=np.zeros((0, 8, 8, 3), np.uint8)) == []


def test_batch_0_still_checks_names_dtypes_and_shapes(session, rng):
    empty = {name: value[:0] for name, value in feeds(rng).items()}
    with pytest.raises(TypeError, match="feed 'input_ids' is int32, expected int64"):
        session.run({**empty, "input_ids": empty["input_ids"].astype(np.int32)})
    with pytest.raises(ValueError, match="feed 'image' has batch 1, expected 0"):
        session.run({**empty, "image": np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)})


# ------------------------------------------------------------------------------------------------ strides


def strided_views(given: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The same values as non-contiguous numpy views: negative strides, every other row, transposed."""
    reversed_ = {k: np.ascontiguousarray(v[::-1])[::-1] for k, v in given.items()}
    every_other = {k: np.repeat(v, 2, axis=0)[::2] for k, v in given.items()}
    transposed = {k: np.ascontiguousarray(v.T).T for k, v in given.items()}
    return {"negative": reversed_, "every other row": every_other, "transposed": transposed}


def test_strided_numpy_feeds_answer_as_their_contiguous_copy(session, rng):
    given = feeds(rng)
    want = session.run(given)
    for kind, view in strided_views(given).items():
        assert not view["image"].flags.c_contiguous
        got = session.run(view)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=f"{kind}: {name}")


def test_strided_torch_feeds_answer_as_their_contiguous_copy(session, rng):
    given = feeds(rng)
    want = session.run(given)
    tensors = {k: torch.from_numpy(np.repeat(v, 2, axis=0))[::2] for k, v in given.items()}
    transposed = {k: torch.from_numpy(np.ascontiguousarray(v.T)).permute(*reversed(range(v.ndim))) for k, v in given.items()}
    for kind, view in (("every other row", tensors), ("transposed", transposed)):
        assert not view["image"].is_contiguous()
        got = session.run(view)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=f"{kind}: {name}")


def test_torch_tensor_ids_are_range_checked_too(session, rng):
    given = {k: torch.from_numpy(v) for k, v in feeds(rng).items()}
    given["input_ids"][2, 7] = -5
    with pytest.raises(ValueError, match=r"token id -5 at \[2, 7\]"):
        session.run(given)


# ------------------------------------------------------------------------------------------------ devices


@pytest.mark.parametrize("backend", ["auto", *backends.NAMES])
@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cuda:-1", "cuda:", "gpu:0", "cpu:1", ""])
def test_malformed_devices_are_rejected_before_the_bundle_is_read(tmp_path, backend, device):
    with pytest.raises(ValueError, match=rf"device is '{device}', expected 'cpu', 'cuda', 'cuda:N' \(N >= 0"):
        fusionrt.load(tmp_path / "no bundle here", backend=backend, device=device)


def no_gpu_for_torch() -> None:
    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here; these tests check the refusal without one")


def test_a_cuda_device_torch_cannot_use_is_refused_with_the_reason(bundle):
    no_gpu_for_torch()
    for device in ("cuda", "cuda:99"):
        with pytest.raises(RuntimeError, match=rf"the torch backend cannot run here: device '{device}' needs a CUDA device"):
            fusionrt.load(bundle, backend="torch", device=device)


def test_a_cuda_index_torch_does_not_have_is_refused(bundle):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the missing-GPU reason comes first (test above)")
    with pytest.raises(RuntimeError, match=r"device 'cuda:99' does not exist: torch sees \d+ CUDA device"):
        fusionrt.load(bundle, backend="torch", device="cuda:99")


def test_auto_considers_the_device_and_says_why_nothing_runs(bundle):
    no_gpu_for_torch()
    if backends.unavailable("onnxruntime", fusionrt.bundle.read_manifest(bundle), backends.RunOptions(device="cuda")) is None:
        pytest.skip("onnxruntime-gpu is installed: auto runs CUDA with ONNX Runtime")
    with pytest.raises(RuntimeError, match=r"no backend can run this bundle here: tensorrt: .*; onnxruntime: device 'cuda' "
                                           r"needs onnxruntime's CUDAExecutionProvider.*; torch: device 'cuda' needs a CUDA device"):
        fusionrt.load(bundle, device="cuda")


def test_backends_refuse_device_kinds_they_do_not_run_on(bundle):
    with pytest.raises(RuntimeError, match=r"the onnxruntime backend runs on 'cpu' / 'cuda' devices, got device 'meta'"):
        fusionrt.load(bundle, backend="onnxruntime", device="meta")
    with pytest.raises(RuntimeError, match=r"the tensorrt backend runs on 'cuda' devices, got device 'cpu'"):
        fusionrt.load(bundle, backend="tensorrt", device="cpu")
    # auto passes over backends that cannot use the device: only torch runs on meta.
    assert fusionrt.load(bundle, device="meta").backend == "torch"


def test_the_torch_program_moves_to_the_device(bundle, rng):
    """The meta device stands in for a GPU: the move (the pass that needed the missing import) runs,
    and every parameter, buffer and constant of the program lands there."""
    session = fusionrt.load(bundle, backend="torch", device="meta")
    assert (session.backend, session.device) == ("torch", "meta")
    module = session._backend._module
    tensors = [*module.parameters(), *module.buffers()]
    tensors += [v for m in module.modules() for v in vars(m).values() if isinstance(v, torch.Tensor)]
    assert len(tensors) > 10
    assert {t.device.type for t in tensors} == {"meta"}
    with pytest.raises(RuntimeError, match="the meta device holds shapes, not values"):
        session.run(feeds(rng))


# ---------------------------------------------------------------------------------------------- tokenizer


@pytest.fixture
def copy_of(bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def edit(root, change) -> None:
    """Edits the manifest with ``change`` and re-hashes the files, as a (hostile) bundle writer would."""
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    manifest["files"] = {name: sha256_file(root / name) for name in manifest["files"] if (root / name).exists()}
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("content", [b"not json", b"{}", b'{"model": 3}', b"[1, 2]", b"\xff\xfe", b""])
def test_a_corrupt_tokenizer_fails_load_naming_the_file_and_field(copy_of, content):
    (copy_of / "tokenizer.json").write_bytes(content)
    edit(copy_of, lambda manifest: None)
    with pytest.raises(BundleError, match=r"bundle file tokenizer.json \(manifest.text.tokenizer\) is not a valid tokenizers file"):
        fusionrt.load(copy_of, backend="onnxruntime")


def test_a_tokenizer_outside_the_bundle_is_refused(copy_of, tmp_path):
    outside = tmp_path / "elsewhere.json"
    shutil.copy(copy_of / "tokenizer.json", outside)
    (copy_of / "tokenizer.json").unlink()
    (copy_of / "tokenizer.json").symlink_to(outside)
    with pytest.raises(BundleError, match="leads outside the bundle"):
        fusionrt.load(copy_of, backend="onnxruntime")


def test_bundles_without_vocab_size_take_it_from_the_tokenizer_else_the_graph(copy_of, rng):
    edit(copy_of, lambda manifest: manifest["text"].pop("vocab_size"))
    assert fusionrt.load(copy_of, backend="onnxruntime").vocab_size == VOCAB
    (copy_of / "tokenizer.json").unlink()
    edit(copy_of, lambda manifest: None)
    session = fusionrt.load(copy_of, backend="onnxruntime")
    assert session.vocab_size == VOCAB  # the word-embedding table of model.onnx
    given = feeds(rng)
    given["input_ids"][0, 0] = -1
    with pytest.raises(ValueError, match="token id -1"):
        session.run(given)
    # Without a tokenizer, predict takes images only.
    assert session.predict(image=np.zeros((8, 8, 3), np.uint8)).sentiment in ("positive", "negative")
    with pytest.raises(ValueError, match="ships no tokenizer, so predict takes images only"):
        session.predict(text="hello")


@pytest.mark.parametrize("size", [0, -3])
def test_vocab_size_must_be_positive(copy_of, size):
    edit(copy_of, lambda manifest: manifest["text"].update(vocab_size=size))
    with pytest.raises(BundleError, match=rf"manifest.text.vocab_size is {size}, expected >= 1"):
        fusionrt.load(copy_of, backend="onnxruntime")


def test_the_exporter_records_the_vocabulary(bundle):
    assert fusionrt.bundle.read_manifest(bundle).text.vocab_size == VOCAB
