"""fusionrt.backends.tensorrt.engine_cache: engine keys, file names, lookup, staleness and sidecar validation (pure Python)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fusionrt.backends.tensorrt.engine_cache import ENGINES_DIR, EngineCache, EngineCacheError, EngineKey, gpu_slug

HASH_A = "3f2a9c1d" + "a" * 56
HASH_B = "77aa00ff" + "b" * 56


def orin_key(**changes) -> EngineKey:
    key = EngineKey("Orin (nvgpu)", (8, 7), "10.3.0", "fp16", HASH_A, max_batch=8)
    return replace(key, **changes)


@pytest.fixture
def cache(tmp_path):
    return EngineCache(tmp_path)


def store(cache, key, engine=b"plan-bytes"):
    return cache.store(key, engine, "model.plugins.onnx", {"flags": ["FP16"]}, "0.1.0")


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Orin (nvgpu)", "orin-nvgpu"), ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"), ("  ", "gpu"),
     ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090")],
)
def test_gpu_slug(name, slug):
    assert gpu_slug(name) == slug


def test_file_names_carry_every_part_of_the_key():
    key = orin_key()
    assert key.engine_name == "orin-nvgpu_sm87_trt10.3.0_fp16_b1-8_3f2a9c1d.engine"
    assert key.sidecar_name == "orin-nvgpu_sm87_trt10.3.0_fp16_b1-8_3f2a9c1d.json"
    assert key.timing_cache_name == "orin-nvgpu_sm87_trt10.3.0.timing.cache"
    names = {
        orin_key().engine_name,
        orin_key(gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0)).engine_name,
        orin_key(trt_version="11.1.0").engine_name,
        orin_key(precision="int8").engine_name,
        orin_key(max_batch=16).engine_name,
        orin_key(opt_batch=4).engine_name,
        orin_key(onnx_sha256=HASH_B).engine_name,
    }
    assert len(names) == 7


def test_key_round_trips_through_json():
    key = orin_key(opt_batch=2)
    assert EngineKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"precision": "bf16"}, "precision is 'bf16'"),
        ({"onnx_sha256": "abc"}, "onnx_sha256 is 'abc', expected 64 lowercase hex digits"),
        ({"trt_version": "ten"}, "trt_version is 'ten'"),
        ({"compute_capability": (8,)}, r"compute_capability is \(8,\)"),
        ({"gpu_name": ""}, "gpu_name is ''"),
        ({"max_batch": 0}, "batch range is opt 1 / max 0"),
        ({"opt_batch": 9}, "batch range is opt 9 / max 8"),
    ],
)
def test_invalid_keys_say_what_is_wrong(changes, message):
    with pytest.raises(EngineCacheError, match=message):
        orin_key(**changes)


def test_store_then_find(cache, tmp_path):
    key = orin_key()
    assert cache.find(key) is None
    path = store(cache, key)
    assert path == tmp_path / ENGINES_DIR / key.engine_name
    assert path.read_bytes() == b"plan-bytes"
    assert cache.find(key) == path
    entry = cache.read(tmp_path / ENGINES_DIR / key.sidecar_name)
    assert (entry.key, entry.engine_bytes, entry.onnx, entry.build) == (key, 10, "model.plugins.onnx", {"flags": ["FP16"]})
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_other_targets_are_separate_entries(cache):
    store(cache, orin_key())
    assert cache.find(orin_key(precision="fp32")) is None
    assert cache.find(orin_key(trt_version="10.3.1")) is None
    assert cache.find(orin_key(max_batch=4)) is None


def test_changed_onnx_makes_the_entry_stale_and_storing_replaces_it(cache):
    old = orin_key()
    store(cache, old)
    new = orin_key(onnx_sha256=HASH_B)
    assert cache.find(new) is None
    assert [e.key for e in cache.stale(new)] == [old]
    store(cache, orin_key(precision="fp32"))  # another target: never stale for `new`
    store(cache, new, b"new-plan")
    assert cache.find(old) is None and not cache.engine_path(old).exists()
    assert cache.find(new).read_bytes() == b"new-plan"
    assert sorted(e.key.precision for e in cache.entries()) == ["fp16", "fp32"]


def test_engine_without_sidecar_is_an_interrupted_build(cache):
    key = orin_key()
    cache.folder.mkdir()
    cache.engine_path(key).write_bytes(b"half")
    assert cache.find(key) is None
    assert cache.entries() == []


def sidecar(cache, key):
    return cache.folder / key.sidecar_name


def test_truncated_engine_is_refused(cache):
    key = orin_key()
    store(cache, key)
    cache.engine_path(key).write_bytes(b"plan")
    with pytest.raises(EngineCacheError, match="has 4 bytes, its sidecar says 10"):
        cache.read(sidecar(cache, key))
    assert cache.find(key) is None


def test_missing_engine_is_refused(cache):
    key = orin_key()
    store(cache, key)
    cache.engine_path(key).unlink()
    with pytest.raises(EngineCacheError, match="has no engine file"):
        cache.read(sidecar(cache, key))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: "not json{", "is unreadable"),
        (lambda d: [1, 2], "is a list, expected a JSON object"),
        (lambda d: d | {"format_version": 99}, "has format_version 99, expected 1"),
        (lambda d: {k: v for k, v in d.items() if k != "engine_bytes"}, "lacks the field 'engine_bytes'"),
        (lambda d: d | {"key": d["key"] | {"precision": "fp64"}}, "precision is 'fp64'"),
        (lambda d: d | {"key": d["key"] | {"colour": "red"}}, "engine key is malformed"),
        (lambda d: d | {"key": d["key"] | {"max_batch": 4}}, "describes .*_b1-4_.*json, not itself"),
    ],
)
def test_bad_sidecars_say_what_is_wrong(cache, edit, message):
    key = orin_key()
    store(cache, key)
    path = sidecar(cache, key)
    edited = edit(json.loads(path.read_text()))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(EngineCacheError, match=message):
        cache.read(path)
    assert cache.find(key) is None
    assert cache.entries() == []


def test_remove(cache):
    key = orin_key()
    store(cache, key)
    cache.remove(key)
    assert cache.find(key) is None and not cache.engine_path(key).exists()
    cache.remove(key)  # absent: no error
