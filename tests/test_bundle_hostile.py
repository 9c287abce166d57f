"""A bundle is untrusted input: nothing outside it is read, every field is type-checked, every fault
gets one BundleError that names the file and the field."""

from __future__ import annotations

import json
import os

import pytest

from fusionrt.bundle import BundleError, read_manifest

from test_bundle import edit_manifest, make_bundle


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "bundle"
    root.mkdir()
    make_bundle(root)
    return root


OUTSIDE_PATHS = ["/etc/passwd", "../secret.onnx", "sub/../../secret.onnx", "..\\secret.onnx", "", "~/x.onnx"]


@pytest.mark.parametrize("name", OUTSIDE_PATHS)
@pytest.mark.parametrize(
    "field",
    ["variants.fp32.onnx", "variants.fp32.plugins_onnx", "variants.fp32.onnxruntime_onnx", "variants.fp32.weights",
     "variants.fp32.shared_weights", "torch_program", "text.tokenizer", "files"],
)
def test_paths_that_leave_the_bundle_are_refused(bundle, tmp_path, field, name):
    (tmp_path / "secret.onnx").write_bytes(b"not yours")

    def edit(data):
        if field == "files":
            data["files"][name] = "0" * 64
            return
        *parents, leaf = field.split(".")
        target = data
        for key in parents:
            target = target[key]
        target[leaf] = name

    edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=r"manifest\.\S* is .*expected a relative path inside the bundle"):
        read_manifest(bundle)


def test_a_listed_symlink_leading_out_is_refused(bundle, tmp_path):
    (tmp_path / "secret.onnx").write_bytes(b"not yours")
    os.symlink(tmp_path / "secret.onnx", bundle / "link.onnx")
    edit_manifest(bundle, lambda d: d["files"].update({"link.onnx": "0" * 64}))
    with pytest.raises(BundleError, match="leads outside the bundle"):
        read_manifest(bundle)
    with pytest.raises(BundleError, match="leads outside the bundle"):
        read_manifest(bundle, verify_hashes=False)


def test_a_symlinked_tokenizer_must_be_listed(bundle, tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    os.symlink(tmp_path / "tokenizer.json", bundle / "tokenizer.json")
    with pytest.raises(BundleError, match="text.tokenizer names 'tokenizer.json', which manifest.files does not list"):
        read_manifest(bundle)


@pytest.mark.parametrize("files", [None, {}, "model.onnx", ["model.onnx"]])
def test_a_manifest_without_its_file_list_is_refused(bundle, files):
    edit_manifest(bundle, lambda d: d.pop("files") if files is None else d.update(files=files))
    with pytest.raises(BundleError, match="manifest.files"):
        read_manifest(bundle)


def test_a_graph_the_files_do_not_list_is_refused(bundle):
    (bundle / "model.fp16.onnx").write_bytes(b"unhashed")
    edit_manifest(bundle, lambda d: d["variants"].update(fp16={"onnx": "model.fp16.onnx"}))
    with pytest.raises(BundleError, match="variants.fp16.onnx names 'model.fp16.onnx', which manifest.files does not list"):
        read_manifest(bundle)


@pytest.mark.parametrize("weights, shared", [
    ("model.weights", "model.weights"),  # its own file is not another precision's
    ("model.weights", "model.onnx"),  # a graph, no variant's weights file
    (None, "model.onnx"),
])
def test_shared_weights_must_be_another_variant_s_weights_file(bundle, weights, shared):
    edit_manifest(bundle, lambda d: d["variants"]["fp32"].update(weights=weights, shared_weights=shared))
    with pytest.raises(BundleError, match=rf"variants\.fp32\.shared_weights is '{shared}', expected another "
                                          r"variant's weights file, one of \[\]"):
        read_manifest(bundle, verify_hashes=False)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format_version=True), "format_version True, expected an integer"),
        (lambda d: d.update(format_version=0), "format_version 0, expected an integer >= 1"),
        (lambda d: d.update(model_name=7), r"manifest.model_name is a int \(7\), expected a string"),
        (lambda d: d["text"].update(max_length=True), "manifest.text.max_length is a bool"),
        (lambda d: d["text"].update(max_length=0), r"manifest.text.max_length is 0, expected >= 1"),
        (lambda d: d["text"].update(max_lenght=8), "unknown field 'max_lenght' \\(did you mean 'max_length'\\?\\)"),
        (lambda d: d["image"].update(std=[0.2, 0.0, 0.2]), r"manifest.image.std is .*expected every value > 0"),
        (lambda d: d["image"].update(std=[0.2, -1, 0.2]), "expected every value > 0"),
        (lambda d: d["image"].update(mean=[0.5]), "manifest.image.mean has 1 values, expected 3"),
        (lambda d: d["image"].update(size=[32]), r"manifest.image.size is \[32\]"),
        (lambda d: d["image"].update(size="32"), "manifest.image.size is a str"),
        (lambda d: d["image"].update(channel_order="CMYK"), "channel_order"),
        (lambda d: d["inputs"]["image"].update(dtype="float33"), "manifest.inputs.image.dtype is 'float33'"),
        (lambda d: d["inputs"]["image"].update(shape=["batch", -3, 32, 32]), r"shape\[1\] is -3"),
        (lambda d: d["inputs"].update(image=[1, 2]), "manifest.inputs.image is a list"),
        (lambda d: d["variants"]["fp32"].update(metrics={"acc": "high"}), "manifest.variants.fp32.metrics.acc is a str"),
        (lambda d: d["variants"].update(fp32="model.onnx"), "manifest.variants.fp32 is a str"),
        (lambda d: d.update(files={"model.onnx": 5}), "manifest.files.model.onnx is a int"),
        (lambda d: d["output"].update(score_range=[float("nan"), 3]), "expected a finite number"),
    ],
)
def test_every_field_is_type_checked(bundle, edit, message):
    edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=message):
        read_manifest(bundle)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[1, 2]", "manifest is a list, expected a JSON object"),
        (b"null", "manifest is a NoneType"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"format_version": 2}', "lacks the field"),
    ],
)
def test_undecodable_or_wrongly_shaped_json(bundle, content, message):
    (bundle / "manifest.json").write_bytes(content)
    with pytest.raises(BundleError, match=message):
        read_manifest(bundle)


def test_the_valid_bundle_still_reads(bundle):
    manifest = read_manifest(bundle)
    assert json.loads((bundle / "manifest.json").read_text())["model_name"] == manifest.model_name
