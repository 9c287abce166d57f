"""An absent modality costs nothing on the torch backend: the present branch and the head, cut from the
exported program's FX graph (fusionrt.backends.torch_split), give the whole program's outputs, and the
absent backbone's ops are never dispatched."""

from __future__ import annotations

import operator

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fusionrt  # noqa: E402
from fusionrt.backends import torch_split  # noqa: E402
from fusionrt.backends.onnxruntime.branches import NotSplittableError  # noqa: E402
from tiny_bundles import random_feeds, tiny_bundle  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

SKIPPED = ("late", "intermediate", "decision")
WHOLE = ("early", "hybrid")
ABSENT = {"text": [False, True], "image": [True, False]}  # a row of presence with that modality absent
#: An op only that modality's backbone dispatches: the token embedding lookup, a 2-D convolution.
BACKBONE_OP = {"text": torch.ops.aten.embedding.default, "image": torch.ops.aten.conv2d.default}


@pytest.fixture(scope="module", params=SKIPPED + WHOLE)
def session(request, tmp_path_factory) -> fusionrt.Session:
    """One session per strategy (loading a program takes seconds); tests that need a fresh absent path
    load their own."""
    return fusionrt.load(tiny_bundle(tmp_path_factory, request.param), backend="torch")


def whole_program(session: fusionrt.Session, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reference: the whole exported program (today's behaviour), bypassing the absent path."""
    return session._backend.run({name: torch.from_numpy(value) for name, value in feeds.items()})


def assert_same(out: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    assert set(out) == set(ref)
    for name in ref:
        assert out[name].dtype == ref[name].dtype and out[name].shape == ref[name].shape, name
        assert out[name].flags.c_contiguous, name
        np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=1e-5, err_msg=name)


class DispatchedOps(TorchDispatchMode):
    """Records every aten op dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[object] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("absent", ["text", "image"])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_a_modality_absent_throughout_gives_the_whole_programs_outputs(session, absent, batch, rng):
    feeds = random_feeds(session.manifest, batch, rng)
    feeds["presence"][:] = ABSENT[absent]
    assert_same(session.run(feeds), whole_program(session, feeds))
    if session.manifest.strategy in SKIPPED:
        assert session._absent_path._plans[absent] is not None
    else:
        assert session._absent_path is None  # early / hybrid: the whole program runs


@pytest.mark.parametrize("absent", ["text", "image"])
def test_the_absent_backbone_is_not_run(session, absent, rng):
    """Every aten op a call dispatches is recorded: the absent backbone's own op never is (the whole
    program dispatches it for the same feeds, so the check can fail)."""
    if session.manifest.strategy not in SKIPPED:
        pytest.skip(f"{session.manifest.strategy} fusion runs the whole program")
    feeds = random_feeds(session.manifest, 2, rng)
    feeds["presence"][:] = ABSENT[absent]
    session.run(feeds)  # builds the plan (which runs the absent branch once, for its row)
    with DispatchedOps() as whole:
        whole_program(session, feeds)
    with DispatchedOps() as skipped:
        out = session.run(feeds)
    present = "image" if absent == "text" else "text"
    assert BACKBONE_OP[absent] in whole.ops and BACKBONE_OP[present] in whole.ops
    assert BACKBONE_OP[absent] not in skipped.ops
    assert BACKBONE_OP[present] in skipped.ops
    assert len(skipped.ops) < len(whole.ops)
    assert_same(out, whole_program(session, feeds))


def test_mixed_presence_and_both_absent_run_the_whole_program(session, rng):
    plans = dict(session._absent_path._plans) if session._absent_path is not None else None
    feeds = random_feeds(session.manifest, 7, rng)
    feeds["presence"][:] = [[True, True], [False, True], [True, False], [True, True], [False, True], [True, False],
                            [False, False]]
    assert_same(session.run(feeds), whole_program(session, feeds))
    feeds["presence"][:] = False
    assert_same(session.run(feeds), whole_program(session, feeds))
    if session._absent_path is not None:
        assert session._absent_path._plans == plans  # no branch was cut for these batches


def test_predict_with_one_modality_matches_the_onnx_runtime_path(tmp_path_factory, rng):
    """``predict(image=None)`` on torch and on ONNX Runtime (an independent runtime): both skip the
    image backbone, and agree."""
    pytest.importorskip("onnxruntime")
    bundle = tiny_bundle(tmp_path_factory, "late")
    texts = ["what a film", "not for me", "it was fine I guess"]
    scores = {b: [p.score for p in fusionrt.load(bundle, backend=b).predict(text=texts, image=None)]
              for b in ("torch", "onnxruntime")}
    np.testing.assert_allclose(scores["torch"], scores["onnxruntime"], rtol=0, atol=1e-5)


def test_the_parts_hold_only_their_modalitys_nodes(tmp_path_factory):
    session = fusionrt.load(tiny_bundle(tmp_path_factory, "decision"), backend="torch")
    parts = torch_split.split_module(session._backend._module, "decision")
    assert parts.text.inputs == ("input_ids", "attention_mask", "presence")
    assert parts.image.inputs == ("image", "presence")
    assert set(parts.head.inputs) >= set(parts.text_features + parts.image_features)
    assert not set(parts.head.inputs) & {"input_ids", "attention_mask", "image"}
    assert (parts.text_outputs, parts.image_outputs) == (("score_text",), ("score_image",))
    for part, foreign in ((parts.text, "vision_encoder"), (parts.image, "text_encoder")):
        paths = {str(p) for node in part.module.graph.nodes for p, *_ in (node.meta.get("nn_module_stack") or {}).values()}
        assert not any(p.startswith(foreign) for p in paths)
        # The parts hold the whole program's weights themselves, not copies.
        whole = session._backend._module
        for node in part.module.graph.nodes:
            if node.op == "get_attr":
                attribute = operator.attrgetter(node.target)
                assert attribute(part.module) is attribute(whole), node.target
    with pytest.raises(NotSplittableError, match="'early' has no branch"):
        torch_split.split_module(session._backend._module, "early")


def test_a_branch_that_reads_absent_inputs_is_not_skipped(tmp_path_factory, rng, monkeypatch):
    """If an absent sample's branch output were not one row for all, the whole program must run."""
    session = fusionrt.load(tiny_bundle(tmp_path_factory, "late"), backend="torch")
    real = torch_split.GraphPart.run

    def varying(self, feeds):  # the absent branch's rows differ, as a branch reading its inputs would
        out = real(self, feeds)
        return {k: v + torch.arange(v.shape[0], dtype=v.dtype).reshape(-1, *[1] * (v.ndim - 1)) for k, v in out.items()}

    feeds = random_feeds(session.manifest, 2, rng)
    feeds["presence"][:] = ABSENT["text"]
    monkeypatch.setattr(torch_split.GraphPart, "run", varying)
    assert session._absent_path.plan("text") is None  # built (and refused) here
    monkeypatch.setattr(torch_split.GraphPart, "run", real)
    assert session._absent_path._plans == {"text": None}
    assert_same(session.run(feeds), whole_program(session, feeds))
