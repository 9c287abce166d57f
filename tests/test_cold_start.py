"""Cold start: load() hash-checks the files its backend reads and no others; read_manifest (and
`fusionrt verify`) checks them all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import fusionrt
from fusionrt import backends, bundle
from fusionrt.backends import RunOptions
from fusionrt.bundle import BundleError, read_manifest

from tiny_bundles import tiny_bundle

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8"))


@pytest.fixture
def copy(source, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(source, target)
    return target


def _tamper(path: Path) -> None:
    with open(path, "ab") as file:
        file.write(b"\0")


@pytest.fixture
def hashed(monkeypatch):
    """The bundle files hashed while the test runs."""
    names: list[str] = []
    real = bundle.sha256_file
    monkeypatch.setattr(bundle, "sha256_file", lambda path: (names.append(Path(path).name), real(path))[1])
    return names


@pytest.mark.parametrize("precision, graph", [("fp32", "model.onnx"), ("int8", "model.int8.ort.onnx")])
def test_load_hashes_only_what_its_backend_reads(source, hashed, precision, graph):
    manifest = read_manifest(source, verify_hashes=False)
    assert hashed == []
    fusionrt.load(source, backend="onnxruntime", precision=precision, execution="sequential")
    # The graph, the weights files it reads its tensors from (int8's own and the fp32 one), and the tokenizer.
    assert sorted(hashed) == sorted([graph, *manifest.variants[precision].weights_files, manifest.text.tokenizer])
    assert len(manifest.files) > len(hashed) + 2  # the other runtimes' graphs were left unread


def test_another_runtimes_damaged_graph_does_not_stop_this_one(copy, rng):
    _tamper(copy / "model.pt2")
    _tamper(copy / "model.int8.onnx")  # TensorRT's int8 graph; ONNX Runtime runs model.int8.ort.onnx
    session = fusionrt.load(copy, backend="onnxruntime", precision="int8")
    assert session.predict(text="fine", image=rng.integers(0, 256, (20, 30, 3), dtype="uint8")).sentiment
    with pytest.raises(BundleError, match="model.pt2 does not match its hash"):
        fusionrt.load(copy, backend="torch")
    with pytest.raises(BundleError, match="does not match its hash"):
        read_manifest(copy)  # what `fusionrt verify` runs: every file


def test_a_damaged_graph_of_its_own_is_refused(copy):
    _tamper(copy / "model.int8.ort.onnx")
    with pytest.raises(BundleError, match="model.int8.ort.onnx does not match its hash"):
        fusionrt.load(copy, backend="onnxruntime", precision="int8")


def test_a_damaged_tokenizer_is_refused(copy):
    _tamper(copy / "tokenizer.json")
    with pytest.raises(BundleError, match="tokenizer.json does not match its hash"):
        fusionrt.load(copy, backend="onnxruntime")


def test_branch_splitting_hashes_only_its_graph(source, hashed):
    pytest.importorskip("onnx")
    from fusionrt.backends.onnxruntime.branches import split_bundle

    split_bundle(source, "int8")
    assert hashed == ["model.int8.ort.onnx", "model.int8.weights", "model.weights"]


def test_each_backend_names_the_files_it_reads(source):
    manifest = read_manifest(source, verify_hashes=False)
    fp16, fp32, int8 = (manifest.variants[p] for p in ("fp16", "fp32", "int8"))
    assert backends.files("onnxruntime", manifest, RunOptions(precision="int8")) == (
        int8.onnxruntime_file, "model.int8.weights", "model.weights")
    assert backends.files("torch", manifest, RunOptions()) == (manifest.torch_program, fp32.weights)
    # TensorRT builds fp16 from the fp16 graph (TensorRT 11) or the fp32 graph plus a flag (10), with or
    # without plugin nodes: every candidate is checked.
    expected = {fp16.onnx, fp32.onnx, fp32.plugins_onnx, fp16.plugins_onnx, *fp16.weights_files, fp32.weights} - {None}
    assert set(backends.files("tensorrt", manifest, RunOptions(precision="fp16"))) == expected
    for name in ("onnxruntime", "torch", "tensorrt"):
        assert set(backends.files(name, manifest, RunOptions())) <= set(manifest.files)
