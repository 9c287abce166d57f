"""The bundle manifest: round trip, validation, hashes, atomic writes."""

from __future__ import annotations

import json

import pytest

from fusionrt.bundle import (
    FORMAT_VERSION,
    BundleError,
    ImageSpec,
    Manifest,
    OutputSpec,
    TensorSpec,
    TextSpec,
    Variant,
    hash_files,
    read_manifest,
    write_manifest,
)


def make_bundle(root, payload=b"onnx bytes"):
    (root / "model.onnx").write_bytes(payload)
    manifest = Manifest(
        model_name="late_tiny",
        strategy="late",
        config={"strategy": "late"},
        inputs={"input_ids": TensorSpec("int64", ["batch", 16]), "image": TensorSpec("float32", ["batch", 3, 32, 32])},
        outputs={"score": TensorSpec("float32", ["batch"], "sentiment in [-3, 3]")},
        text=TextSpec(max_length=16),
        image=ImageSpec(size=[32, 32]),
        output=OutputSpec(),
        variants={"fp32": Variant("model.onnx", metrics={"Has0_acc_2": 0.8})},
        files=hash_files(root, ["model.onnx"]),
        fusionrt_version="0.1.0",
    )
    write_manifest(root, manifest)
    return manifest


def test_manifest_round_trips(tmp_path):
    written = make_bundle(tmp_path)
    assert read_manifest(tmp_path) == written


def test_tampered_file_is_detected(tmp_path):
    make_bundle(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"other bytes")
    with pytest.raises(BundleError, match="model.onnx does not match its hash"):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path, verify_hashes=False).model_name == "late_tiny"


def test_missing_file_is_named(tmp_path):
    make_bundle(tmp_path)
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(BundleError, match="bundle file model.onnx is missing"):
        read_manifest(tmp_path)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="manifest.json is missing"):
        read_manifest(tmp_path)
    with pytest.raises(BundleError, match="not a directory"):
        read_manifest(tmp_path / "nowhere")


def edit_manifest(root, edit):
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    make_bundle(tmp_path)
    edit_manifest(tmp_path, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(BundleError, match="newer than this fusionrt reads"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("inputs"), "lacks the field 'inputs'"),
        (lambda d: d["variants"].pop("fp32"), "expected 'fp32'"),
        (lambda d: d["variants"].update(int4={"onnx": "x"}), "expected 'fp32' and optionally"),
        (lambda d: d["image"].update(colour="rgb"), "malformed"),
        (lambda d: d.update(format_version="1"), "format_version '1', expected an integer"),
    ],
)
def test_malformed_manifests_say_what_is_wrong(tmp_path, edit, message):
    make_bundle(tmp_path)
    edit_manifest(tmp_path, edit)
    with pytest.raises(BundleError, match=message):
        read_manifest(tmp_path)


def test_invalid_json(tmp_path):
    make_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(tmp_path)
