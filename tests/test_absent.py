"""An absent modality costs nothing (fusionrt.absent): the present branch and the head alone give the
whole graph's outputs, on every strategy's tiny bundle, for both absent modalities and mixed presence."""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
import fusionrt  # noqa: E402
from fusionrt.absent import absent_modality  # noqa: E402
from fusionrt.backends.onnxruntime.branches import NotSplittableError, split_bundle, split_graph  # noqa: E402
from fusionrt.graph_io import MODALITY_INPUTS  # noqa: E402
from tiny_bundles import random_feeds, tiny_bundle  # noqa: E402

SKIPPED = ("late", "intermediate", "decision")
WHOLE = ("early", "hybrid")
ABSENT = {"text": [False, True], "image": [True, False]}  # a row of presence with that modality absent


@pytest.fixture(scope="module", params=SKIPPED + WHOLE)
def bundle(request, tmp_path_factory):
    return tiny_bundle(tmp_path_factory, request.param)


def whole_graph(path, feeds: dict[str, np.ndarray], graph: str = "model.onnx") -> dict[str, np.ndarray]:
    """The reference: the bundle's whole graph in a plain ONNX Runtime session (today's behaviour)."""
    session = ort.InferenceSession(str(path / graph), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def assert_same(out: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    assert set(out) == set(ref)
    for name in ref:
        assert out[name].dtype == ref[name].dtype and out[name].shape == ref[name].shape, name
        np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("absent", ["text", "image"])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_a_modality_absent_throughout_gives_the_whole_graphs_outputs(bundle, absent, batch, rng):
    session = fusionrt.load(bundle, backend="onnxruntime")
    feeds = random_feeds(session.manifest, batch, rng)
    feeds["presence"][:] = ABSENT[absent]
    assert_same(session.run(feeds), whole_graph(bundle, feeds))
    plans = session._absent_path._plans if session._absent_path is not None else {}
    if session.manifest.strategy in SKIPPED:
        plan = plans[absent]
        assert plan is not None
        # The backbone of the absent modality is in no part that ran: the present branch reads none of
        # its inputs, and the head reads only the branches' features (and presence).
        assert not set(plan.present.inputs) & set(MODALITY_INPUTS[absent])
        assert not set(plan.head.inputs) & {n for names in MODALITY_INPUTS.values() for n in names}
    else:
        assert session._absent_path is None  # early / hybrid: the whole graph runs


def test_mixed_presence_and_both_absent_run_the_whole_graph(bundle, rng):
    session = fusionrt.load(bundle, backend="onnxruntime")
    feeds = random_feeds(session.manifest, 6, rng)
    feeds["presence"][:] = [[True, True], [False, True], [True, False], [True, True], [False, True], [True, False]]
    assert_same(session.run(feeds), whole_graph(bundle, feeds))
    if session._absent_path is not None:
        assert session._absent_path._plans == {}  # no branch was split off for a mixed batch


def test_predict_with_one_modality_matches_the_whole_graph(bundle, rng):
    """``predict(text=None)`` / ``predict(image=None)``: the raw-input path a user takes."""
    session = fusionrt.load(bundle, backend="onnxruntime")
    height, width = session.manifest.image.size
    images = list(rng.integers(0, 256, (3, height + 5, width + 2, 3), dtype=np.uint8))
    texts = ["what a film", "not for me", "it was fine I guess"]
    for text, image in ((None, images), (texts, None)):
        got = session.predict(text=text, image=image)
        # The same batch with the whole graph: one sample of each modality present keeps presence mixed.
        mixed_text = (text or [None] * 3) + ["x"]
        mixed_image = (image or [None] * 3) + [images[0]]
        if text is None:
            mixed_text[-1] = None
        else:
            mixed_image[-1] = None
        ref = session.predict(text=mixed_text, image=mixed_image)[:3]
        np.testing.assert_allclose([p.score for p in got], [p.score for p in ref], rtol=0, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_lower_precisions_skip_too(tmp_path_factory, precision, rng):
    bundle = tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8"))
    session = fusionrt.load(bundle, backend="onnxruntime", precision=precision)
    graph = session.manifest.variants[precision].onnxruntime_file
    for absent in ABSENT:
        feeds = random_feeds(session.manifest, 4, rng)
        feeds["presence"][:] = ABSENT[absent]
        assert_same(session.run(feeds), whole_graph(bundle, feeds, graph))
        assert session._absent_path._plans[absent] is not None


def test_decision_fusion_splits_only_for_absence(tmp_path_factory):
    bundle = tiny_bundle(tmp_path_factory, "decision")
    model = onnx.load(str(bundle / "model.onnx"))
    with pytest.raises(NotSplittableError, match="'decision' is not splittable"):
        split_graph(model, "decision")
    graphs = split_graph(model, "decision", branch_outputs=True)
    assert "score_text" in graphs.text_outputs and "score_image" in graphs.image_outputs
    assert {o.name for o in graphs.text.graph.output} >= set(graphs.text_outputs)
    assert "score" in {o.name for o in graphs.head.graph.output}
    assert split_bundle(tiny_bundle(tmp_path_factory, "late")).text_outputs == ()


def test_a_branch_that_reads_absent_inputs_is_not_skipped(tmp_path_factory, rng, monkeypatch):
    """If an absent sample's branch output were not one row for all, the whole graph must run."""
    from fusionrt.backends.onnxruntime import absent as ort_absent

    bundle = tiny_bundle(tmp_path_factory, "late")
    session = fusionrt.load(bundle, backend="onnxruntime")
    real = ort_absent._Part.run

    def varying(self, feeds):  # the absent branch's rows differ, as a branch reading its inputs would
        out = real(self, feeds)
        return {k: v + np.arange(v.shape[0], dtype=v.dtype).reshape(-1, *[1] * (v.ndim - 1)) for k, v in out.items()}

    feeds = random_feeds(session.manifest, 2, rng)
    feeds["presence"][:] = ABSENT["image"]
    monkeypatch.setattr(ort_absent._Part, "run", varying)
    assert session._absent_path.run(feeds, "image") is None  # the plan is built (and refused) here
    monkeypatch.setattr(ort_absent._Part, "run", real)
    assert session._absent_path._plans == {"image": None}
    assert_same(session.run(feeds), whole_graph(bundle, feeds))


def test_absent_modality_reads_presence_columns():
    assert absent_modality(None) is None
    assert absent_modality(np.array([[False, True]] * 3)) == "text"
    assert absent_modality(np.array([[True, False]] * 2)) == "image"
    assert absent_modality(np.array([[True, True], [False, True]])) is None
    assert absent_modality(np.array([[False, False]])) is None  # both absent: nothing to run alone
