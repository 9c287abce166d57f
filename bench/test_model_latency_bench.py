"""Latency of whole models through ``Session.run``: each fusion strategy of the study × backend/precision
× batch (1 and 8), on CPU here and on the GPU with TensorRT where it is built in.

The models are the demo study's experiments (``training/configs/study_demo.yaml``: MiniLM's first 2 layers and
small MobileNetV2 / ViT backbones at 64 px, 16 tokens) with random weights, since latency does not
depend on them. Each is exported once, with fp32, fp16 and int8 variants, into the pytest cache
(``.pytest_cache/d/fusionrt-bench-bundles/``) under a key of its config and fusionrt's version, and reused by
later runs; the first run exports (tens of seconds per model).

Groups read as one row per backend/precision:
``pytest bench/test_model_latency_bench.py --benchmark-only --benchmark-group-by=group``
gives groups ``model late_mobilenetv2 batch 1`` with rows ``…[late_mobilenetv2-batch1-onnxruntime/fp32]``,
``…[late_mobilenetv2-batch1-torch/fp32]``, …
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import fusionrt
from fusionrt import backends
from fusionrt.bundle import read_manifest
from tests.tiny_bundles import export_random_bundle, random_feeds

torch = pytest.importorskip("torch")
from training.study_config import load_experiment  # noqa: E402
from training.models import FusionModel  # noqa: E402

DEMO_STUDY = Path(__file__).resolve().parents[1] / "training" / "configs" / "study_demo.yaml"
MODELS = ["late_mobilenetv2", "intermediate_mobilenetv2", "early_mobilenetv2",
          "late_vit", "intermediate_vit", "early_vit", "hybrid_mobilenetv2"]
PRECISIONS = ("fp32", "fp16", "int8")  # fp16: the graph TensorRT 11 builds fp16 engines from
BATCHES = [1, 8]
# backend/precision pairs; each skips where its backend cannot run or the bundle lacks the precision.
VARIANTS = ["onnxruntime/fp32", "onnxruntime/int8", "torch/fp32", "tensorrt/fp32", "tensorrt/fp16", "tensorrt/int8"]


def _export(cache: Path, model_name: str) -> Path:
    """The bundle of ``model_name``'s demo experiment with random weights: from ``cache``, or exported into it."""
    experiment = load_experiment(DEMO_STUDY, f"demo_{model_name}")
    config = experiment.fusion_config()
    config = dataclasses.replace(config, text=dataclasses.replace(config.text, pretrained=False))
    text_length = experiment.data.text_max_length
    facts = [dataclasses.asdict(config), text_length, PRECISIONS, fusionrt.__version__]
    key = json.dumps(facts, sort_keys=True, default=str)
    path = cache / f"{model_name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if not (path / "manifest.json").exists():
        torch.manual_seed(0)
        model = FusionModel(config).eval()
        try:
            export_random_bundle(path, model, model_name, text_length, PRECISIONS)
        except Exception as error:  # noqa: BLE001 - any exporter failure; the retry without int8 re-raises
            # int8 needs ONNX Runtime's quantiser, which fails on some graphs; the other variants are
            # still worth timing, and the int8 rows then skip for want of the variant.
            warnings.warn(f"{model_name}: exporting {PRECISIONS} failed ({type(error).__name__}: {error}); "
                          "exporting without int8", stacklevel=1)
            export_random_bundle(path, model, model_name, text_length, tuple(p for p in PRECISIONS if p != "int8"))
    return path


@pytest.fixture(scope="session")
def model_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``model_bundle(name)``: the cached bundle of a demo model, exported on first request in this session."""
    # Without pytest's cache (-p no:cacheprovider) the bundles last for this session only.
    cache_plugin = getattr(request.config, "cache", None)
    cache = cache_plugin.mkdir("fusionrt-bench-bundles") if cache_plugin else tmp_path_factory.mktemp("bundles")
    bundles: dict[str, Path] = {}

    def get(model_name: str) -> Path:
        if model_name not in bundles:
            bundles[model_name] = _export(cache, model_name)
        return bundles[model_name]

    return get


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("batch", BATCHES, ids=lambda batch: f"batch{batch}")
@pytest.mark.parametrize("model", MODELS)
def test_model_latency(benchmark, model_bundle, model, batch, variant):
    backend, precision = variant.split("/")
    path = model_bundle(model)
    manifest = read_manifest(path)
    reason = backends.unavailable(backend, manifest)
    if reason is not None:
        pytest.skip(f"{backend}: {reason}")
    if precision not in manifest.variants:
        pytest.skip(f"the bundle has no {precision} variant (see the export warning)")
    session = fusionrt.load(path, backend=backend, precision=precision)
    feeds = random_feeds(manifest, batch, np.random.default_rng(batch))
    for _ in range(3):  # warm-up: first runs allocate, pick kernels, capture CUDA graphs
        session.run(feeds)
    benchmark.group = f"model {model} batch {batch}"
    benchmark.extra_info.update(model=model, batch=batch, backend=backend, precision=precision, device=session.device)
    benchmark(session.run, feeds)
