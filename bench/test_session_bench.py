"""Session overhead: ``fusionrt`` Session.run against a bare ONNX Runtime ``InferenceSession.run`` on the
same model file, options and feeds; and the raw-input path (tokenise + preprocess + run).

Target: Session.run's p50 within 3 % of the bare session's at batch 1. Read the groups as one row per
path: ``pytest bench/test_session_bench.py --benchmark-only --benchmark-group-by=group``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusionrt
from tests.tiny_bundles import IMAGE_SIZE, TEXT_LENGTH, tiny_bundle

ort = pytest.importorskip("onnxruntime")
BATCHES = [1, 8]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return fusionrt.load(tiny_bundle(tmp_path_factory, "late"), backend="onnxruntime")


def _feeds(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {
        "input_ids": rng.integers(0, 30522, (batch, TEXT_LENGTH), dtype=np.int64),
        "attention_mask": np.ones((batch, TEXT_LENGTH), np.int64),
        "image": rng.standard_normal((batch, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32),
        "presence": np.ones((batch, 2), bool),
    }


def _bare(session: fusionrt.Session) -> ort.InferenceSession:
    """An InferenceSession on the same file with the options (and fusion choices) the backend makes, used directly."""
    from fusionrt.backends.onnxruntime.backend import inference_session, session_options

    model = session.path / session.manifest.variants[session.precision].onnx
    return inference_session(str(model), session_options(session._backend.threads), "cpu")


@pytest.mark.parametrize("batch", BATCHES)
def test_bare_inference_session(benchmark, session, batch):
    benchmark.group = f"onnxruntime run batch {batch}"
    bare, feeds = _bare(session), _feeds(batch)
    names = [o.name for o in bare.get_outputs()]
    benchmark(bare.run, names, feeds)


@pytest.mark.parametrize("batch", BATCHES)
def test_session_run(benchmark, session, batch):
    benchmark.group = f"onnxruntime run batch {batch}"
    benchmark(session.run, _feeds(batch))


@pytest.mark.parametrize("batch", BATCHES)
def test_session_predict_raw_inputs(benchmark, session, batch):
    benchmark.group = f"predict raw batch {batch}"
    rng = np.random.default_rng(batch)
    texts = ["what a wonderful, moving film"] * batch
    images = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(batch)]
    benchmark(session.predict, text=texts, image=images)
