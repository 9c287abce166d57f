"""An absent modality costs nothing on TensorRT: one engine per part of the split graph
(fusionrt.backends.tensorrt.absent). What needs no GPU is checked here (which graphs get engines, their
profiles, the part engines' cache keys); running them is checked where TensorRT and a GPU exist."""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
import fusionrt  # noqa: E402
from fusionrt.backends.tensorrt import unavailable_reason  # noqa: E402
from fusionrt.backends.tensorrt.absent import HEAD, PartEngineCache, part_graphs, part_inputs  # noqa: E402
from fusionrt.backends.tensorrt.engine_builder import profile_shapes  # noqa: E402
from fusionrt.backends.tensorrt.engine_cache import EngineCache, EngineKey  # noqa: E402
from fusionrt.graph_io import MODALITY_INPUTS  # noqa: E402
from tiny_bundles import random_feeds, tiny_bundle  # noqa: E402

SKIPPED = ("late", "intermediate", "decision")
ABSENT = {"text": [False, True], "image": [True, False]}
GPU = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0), "multiprocessor_count": 132,
       "total_memory": 81559 << 20}


@pytest.mark.parametrize("strategy", SKIPPED)
@pytest.mark.parametrize("graph", ["model.onnx", "model.plugins.onnx"])
def test_each_part_gets_an_engine_with_the_batch_profile(tmp_path_factory, strategy, graph, rng):
    bundle = tiny_bundle(tmp_path_factory, strategy)
    manifest = fusionrt.bundle.read_manifest(bundle)
    parts = part_graphs(onnx.load(str(bundle / graph)), strategy)
    assert set(parts) == {"text", "image", HEAD}
    specs = {part: part_inputs(model) for part, model in parts.items()}
    for modality, names in MODALITY_INPUTS.items():
        other = "image" if modality == "text" else "text"
        assert set(names) <= set(specs[modality]) and not set(names) & (set(specs[other]) | set(specs[HEAD]))
    # The head's inputs are the branches' features, at the widths the branches really output (run here
    # by ONNX Runtime on random feeds), and every engine input gets the 1 / opt / max batch profile.
    batch = 3
    feeds = random_feeds(manifest, batch, rng)
    features = {}
    for modality in MODALITY_INPUTS:
        if graph == "model.onnx":
            session = ort.InferenceSession(parts[modality].SerializeToString(), providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            features.update(zip(names, session.run(names, {n: feeds[n] for n in specs[modality]})))
    for name, (low, opt, high) in profile_shapes(specs[HEAD], 2, 8).items():
        assert (low[0], opt[0], high[0]) == (1, 2, 8)
        if name in features:
            assert features[name].shape == (batch, *high[1:])
            assert features[name].dtype == np.dtype(specs[HEAD][name].dtype)


def test_part_engines_never_replace_the_whole_engine_nor_each_other(tmp_path):
    def key(sha: str) -> EngineKey:
        return EngineKey.for_gpu(GPU, "10.3.0", "fp16", sha * 64, 8, fusionrt_version="0.1.0")

    whole = EngineCache(tmp_path)
    whole.store(key("a"), b"whole", "model.plugins.onnx", {})
    text, head = PartEngineCache(tmp_path, "text"), PartEngineCache(tmp_path, HEAD)
    # Same GPU, TensorRT, precision and batches, another graph: what the whole cache would call stale.
    text.store(key("b"), b"text part", "model.plugins.onnx (text part)", {})
    head.store(key("c"), b"head part", "model.plugins.onnx (head part)", {})
    assert whole.find(key("a")).read_bytes() == b"whole"
    assert text.find(key("b")).read_bytes() == b"text part" and head.find(key("c")).read_bytes() == b"head part"
    assert whole.stale(key("a")) == [] and text.stale(key("b")) == []
    assert len({whole.folder, text.folder, head.folder}) == 3
    assert text.timing_cache_path(key("b")) == whole.timing_cache_path(key("a"))  # one timing cache per GPU
    head.store(key("d"), b"new head", "model.plugins.onnx (head part)", {})  # a new graph replaces its own part
    assert head.find(key("c")) is None and head.find(key("d")).read_bytes() == b"new head"
    assert whole.find(key("a")) is not None and text.find(key("b")) is not None
    with pytest.raises(ValueError, match="part is 'audio'"):
        PartEngineCache(tmp_path, "audio")


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"TensorRT cannot run here: {unavailable_reason()}")
@pytest.mark.parametrize("strategy", SKIPPED)
def test_tensorrt_absent_path_gives_the_whole_engines_outputs(tmp_path_factory, strategy, rng):
    session = fusionrt.load(tiny_bundle(tmp_path_factory, strategy), backend="tensorrt")
    for absent, row in ABSENT.items():
        for batch in (1, 3, 8):
            feeds = random_feeds(session.manifest, batch, rng)
            feeds["presence"][:] = row
            out, ref = session.run(feeds), session._backend.run(feeds)
            assert set(out) == set(ref)
            for name in ref:
                np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=1e-5, err_msg=f"{absent} {batch} {name}")
        assert session._absent_path._plans[absent] is not None
