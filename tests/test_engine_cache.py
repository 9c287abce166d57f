"""fusionrt.backends.tensorrt.engine_cache: engine keys, file names, lookup, staleness and sidecar validation (pure
Python; GPUs are fabricated ``fusionrt._C.cuda_device_properties``)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fusionrt.backends.tensorrt.engine_cache import ENGINES_DIR, EngineCache, EngineCacheError, EngineKey, gpu_slug

HASH_A = "3f2a9c1d" + "a" * 56
HASH_B = "77aa00ff" + "b" * 56


#: What cudaGetDeviceProperties reports on two Jetson modules of one name.
AGX_ORIN_64GB = {"name": "Orin (nvgpu)", "compute_capability": (8, 7), "multiprocessor_count": 16,
                 "integrated": True, "total_memory": 62841 * 2**20 + 12345}
ORIN_NANO_8GB = AGX_ORIN_64GB | {"multiprocessor_count": 8, "total_memory": 7620 * 2**20}


def orin_key(**changes) -> EngineKey:
    key = EngineKey.for_gpu(AGX_ORIN_64GB, "10.3.0", "fp16", HASH_A, max_batch=8, fusionrt_version="0.1.0")
    return replace(key, **changes)


@pytest.fixture
def cache(tmp_path):
    return EngineCache(tmp_path)


def store(cache, key, engine=b"plan-bytes"):
    return cache.store(key, engine, "model.plugins.onnx", {"flags": ["FP16"]})


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Orin (nvgpu)", "orin-nvgpu"), ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"), ("  ", "gpu"),
     ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090")],
)
def test_gpu_slug(name, slug):
    assert gpu_slug(name) == slug


def test_key_from_device_properties():
    key = orin_key()
    assert (key.gpu_name, key.compute_capability, key.multiprocessors, key.memory_mib) == ("Orin (nvgpu)", (8, 7), 16, 62841)
    assert key.fusionrt_version == "0.1.0"


def test_file_names_carry_every_part_of_the_key():
    key = orin_key()
    assert key.engine_name == "orin-nvgpu_sm87_16sms_62841mib_trt10.3.0_fp16_b1-8_3f2a9c1d_fusionrt0.1.0.engine"
    assert key.sidecar_name == "orin-nvgpu_sm87_16sms_62841mib_trt10.3.0_fp16_b1-8_3f2a9c1d_fusionrt0.1.0.json"
    assert key.timing_cache_name == "orin-nvgpu_sm87_16sms_62841mib_trt10.3.0.timing.cache"
    names = {
        orin_key().engine_name,
        orin_key(gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0)).engine_name,
        orin_key(multiprocessors=8).engine_name,
        orin_key(memory_mib=30536).engine_name,
        orin_key(trt_version="11.1.0").engine_name,
        orin_key(precision="int8").engine_name,
        orin_key(max_batch=16).engine_name,
        orin_key(opt_batch=4).engine_name,
        orin_key(onnx_sha256=HASH_B).engine_name,
        orin_key(fusionrt_version="0.2.0").engine_name,
    }
    assert len(names) == 10


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
        ({"multiprocessors": 0}, "multiprocessors is 0, expected the GPU's SM count"),
        ({"multiprocessors": True}, "multiprocessors is True"),
        ({"memory_mib": "8GB"}, "memory_mib is '8GB', expected the GPU's total memory in MiB"),
        ({"fusionrt_version": ""}, "fusionrt_version is '', expected a package version"),
        ({"fusionrt_version": "../0.1"}, r"fusionrt_version is '\.\./0\.1'"),
    ],
)
def test_invalid_keys_say_what_is_wrong(changes, message):
    with pytest.raises(EngineCacheError, match=message):
        orin_key(**changes)


def test_device_properties_without_the_new_facts_say_what_to_do():
    old = {k: v for k, v in AGX_ORIN_64GB.items() if k != "multiprocessor_count"}
    with pytest.raises(EngineCacheError, match=r"lack \['multiprocessor_count'\].*rebuild it"):
        EngineKey.for_gpu(old, "10.3.0", "fp16", HASH_A, 8, fusionrt_version="0.1.0")


def test_key_fields_cannot_be_left_out():
    with pytest.raises(TypeError, match="multiprocessors"):
        EngineKey("Orin", (8, 7), "10.3.0", "fp16", HASH_A, 8)  # type: ignore[call-arg]


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


def test_modules_of_one_gpu_name_never_share_an_engine(cache):
    """An AGX Orin and an Orin Nano both report "Orin": their SM count and memory tell them apart, and
    a bundle on storage both mount keeps one engine for each."""
    agx = orin_key()
    nano = EngineKey.for_gpu(ORIN_NANO_8GB, "10.3.0", "fp16", HASH_A, max_batch=8, fusionrt_version="0.1.0")
    store(cache, agx, b"agx-plan")
    assert cache.find(nano) is None
    assert cache.stale(nano) == []  # another device's engine is not stale, only not ours
    store(cache, nano, b"nano-plan")
    assert cache.find(agx).read_bytes() == b"agx-plan" and cache.find(nano).read_bytes() == b"nano-plan"


def test_another_fusionrt_version_makes_the_entry_stale(cache):
    old = orin_key()
    store(cache, old)
    new = orin_key(fusionrt_version="0.2.0")
    assert cache.find(new) is None  # never reused: rebuilt
    assert [e.key for e in cache.stale(new)] == [old]
    store(cache, new, b"new-plan")
    assert [e.key for e in cache.entries()] == [new]
    assert not cache.engine_path(old).exists()


def legacy_entry(cache, **changes) -> str:
    """An entry as fusionrt 0.1.0 cached it: format 1, a key without SM count, memory or fusionrt version."""
    stem = "orin-nvgpu_sm87_trt10.3.0_fp16_b1-8_3f2a9c1d"
    key = {"gpu_name": "Orin (nvgpu)", "compute_capability": [8, 7], "trt_version": "10.3.0", "precision": "fp16",
           "onnx_sha256": HASH_A, "max_batch": 8, "opt_batch": 1, **changes}
    cache.folder.mkdir(exist_ok=True)
    (cache.folder / f"{stem}.engine").write_bytes(b"old-plan")
    (cache.folder / f"{stem}.json").write_text(json.dumps(
        {"format_version": 1, "key": key, "engine_bytes": 8, "onnx": "model.plugins.onnx", "build": {},
         "fusionrt_version": "0.1.0"}))
    return stem


def test_entries_an_older_fusionrt_cached_are_stale(cache):
    stem = legacy_entry(cache)
    key = orin_key()
    assert cache.find(key) is None and cache.entries() == []  # never used
    with pytest.raises(EngineCacheError, match="format_version 1, expected 2 .*stale, replaced by the next build"):
        cache.read(cache.folder / f"{stem}.json")
    assert cache.legacy(key) == [cache.folder / f"{stem}.json"]
    assert cache.legacy(orin_key(precision="fp32")) == []  # another target's replacement leaves it
    store(cache, key)
    assert sorted(p.name for p in cache.folder.iterdir()) == [key.engine_name, key.sidecar_name]


def test_legacy_entries_of_other_targets_stay(cache):
    legacy_entry(cache, max_batch=4)
    store(cache, orin_key())
    assert len(list(cache.folder.glob("*.engine"))) == 2


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
        (lambda d: d | {"format_version": 99}, "has format_version 99, expected 2"),
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
