"""Concurrent branches: graph splitting (fusionrt.backends.onnxruntime.branches) and the ONNX Runtime execution modes."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
import fusionrt  # noqa: E402
from fusionrt.backends.onnxruntime.branches import NotSplittableError, split_bundle, split_graph  # noqa: E402
from fusionrt.backends.onnxruntime.execution import (  # noqa: E402
    CALIBRATION_FILE,
    SETTLE_CALLS,
    TIMED_CALLS,
    _interleaved,
    choose_execution,
)
from tiny_bundles import random_feeds, tiny_bundle  # noqa: E402

SPLITTABLE = ("late", "intermediate")
MODES = ("parallel", "branches")


@pytest.fixture(scope="module", params=SPLITTABLE)
def bundle(request, tmp_path_factory):
    return tiny_bundle(tmp_path_factory, request.param)


def _run(graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {i.name: feeds[i.name] for i in session.get_inputs()})))


def test_branches_and_head_reproduce_the_full_graph(bundle, rng):
    graphs = split_bundle(bundle)
    assert {i.name for i in graphs.text.graph.input} >= {"input_ids", "attention_mask"}
    assert "image" not in {i.name for i in graphs.text.graph.input}
    assert {i.name for i in graphs.image.graph.input} - {"presence"} == {"image"}
    feeds = random_feeds(fusionrt.load(bundle, backend="onnxruntime").manifest, 3, rng)
    feeds["presence"][1] = [True, False]  # a missing modality goes through the placeholder fill
    full = _run(onnx.load(str(bundle / "model.onnx")), feeds)
    features = {**feeds, **_run(graphs.text, feeds), **_run(graphs.image, feeds)}
    head = _run(graphs.head, features)
    assert set(head) == set(full)
    for name in full:
        np.testing.assert_allclose(head[name], full[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("strategy", ["early", "hybrid"])
def test_strategies_without_independent_branches_are_not_splittable(bundle, strategy):
    with pytest.raises(NotSplittableError, match=f"{strategy!r} is not splittable"):
        split_graph(onnx.load(str(bundle / "model.onnx")), strategy)


@pytest.mark.parametrize("mode", MODES)
def test_every_execution_mode_matches_sequential(bundle, mode, rng):
    sequential = fusionrt.load(bundle, backend="onnxruntime", execution="sequential")
    session = fusionrt.load(bundle, backend="onnxruntime", execution=mode)
    assert session._backend.execution == mode
    for batch in (1, 4):
        feeds = random_feeds(session.manifest, batch, rng)
        want, got = sequential.run(feeds), session.run(feeds)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5)


def test_branches_mode_is_thread_safe(bundle, rng):
    session = fusionrt.load(bundle, backend="onnxruntime", execution="branches")
    sequential = fusionrt.load(bundle, backend="onnxruntime", execution="sequential")
    feeds = [random_feeds(session.manifest, 2, rng) for _ in range(16)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(session.run, feeds))
    for got, batch in zip(results, feeds):
        np.testing.assert_allclose(got["score"], sequential.run(batch)["score"], rtol=0, atol=1e-5)


def test_execution_errors(bundle):
    with pytest.raises(ValueError, match="unknown execution"):
        fusionrt.load(bundle, backend="onnxruntime", execution="fast")
    with pytest.raises(ValueError, match="ONNX Runtime mode"):
        fusionrt.load(bundle, backend="torch", execution="branches")


def test_choose_execution_records_the_fastest_mode_for_auto(bundle):
    result = choose_execution(bundle, repeats=2, margin=0.0)
    assert set(result["latency_ms"]) == {"sequential", *MODES}
    assert result["mode"] == min(result["latency_ms"], key=result["latency_ms"].get)
    assert result["speedup_vs_sequential"] >= 1
    assert set(result["branch_ms"]) == {"text", "image"}
    assert result["slower_branch_ms"] == max(result["branch_ms"].values()) > 0
    best = result["latency_ms"][result["mode"]]
    assert result["ratio_to_slower_branch"] == pytest.approx(best / result["slower_branch_ms"])
    assert (bundle / CALIBRATION_FILE).exists()
    assert fusionrt.load(bundle, backend="onnxruntime")._backend.execution == result["mode"]
    (bundle / CALIBRATION_FILE).unlink()  # the other tests' "auto" stays sequential


@pytest.mark.parametrize("repeats", [1, TIMED_CALLS, 2 * TIMED_CALLS + 1])
def test_modes_are_timed_in_settled_bursts_visited_in_turn(repeats):
    """Every timed burst follows untimed calls of the same mode (another mode's spinning ONNX Runtime
    threads must not land in its timings), modes alternate burst by burst, each gets ``repeats``."""
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    times = _interleaved(runs, repeats)
    assert {name: len(t) for name, t in times.items()} == {"a": repeats, "b": repeats}
    bursts = [calls[i] for i in range(len(calls)) if i == 0 or calls[i] != calls[i - 1]]
    assert bursts == ["a", "b"] * (len(bursts) // 2)
    run_lengths = [len(list(g)) for _, g in itertools.groupby(calls)]
    assert all(SETTLE_CALLS < n <= SETTLE_CALLS + TIMED_CALLS for n in run_lengths)
    assert len(calls) == 2 * repeats + SETTLE_CALLS * len(run_lengths)


def test_choose_execution_keeps_sequential_unless_clearly_faster(bundle):
    # With margin 1 a mode would have to take less than no time to replace sequential.
    assert choose_execution(bundle, repeats=1, margin=1.0, record=False)["mode"] == "sequential"


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 7, 16])
def test_branch_threads_split_the_cores_by_cost(threads, rng):
    from fusionrt.backends.onnxruntime.branched import branch_threads

    assert branch_threads(threads) == ((1, 1) if threads == 1 else (threads // 2, threads - threads // 2))
    previous = 0
    for ratio in sorted(rng.uniform(0.01, 100, 20)):  # text cost / image cost, rising
        text, image = branch_threads(threads, (float(ratio), 1.0))
        assert text >= 1 and image >= 1
        assert text + image == max(threads, 2)  # all cores, never more (one each on one core)
        assert text >= previous  # a dearer text branch never gets fewer cores
        previous = text
        if threads >= 2:  # as close to proportional as whole cores allow
            assert abs(text - threads * ratio / (ratio + 1)) <= 0.5 or text in (1, threads - 1)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        branch_threads(0)
    with pytest.raises(ValueError, match="branch costs must be > 0"):
        branch_threads(4, (0.0, 1.0))


@pytest.mark.parametrize(("threads", "costs", "split"), [(1, None, (1, 1)), (2, (50.0, 1.0), (1, 1)),
                                                         (4, None, (2, 2)), (8, (30.0, 10.0), (6, 2))])
def test_branch_sessions_get_their_share_of_the_cores_and_do_not_spin(bundle, threads, costs, split):
    """What ONNX Runtime is given: the branches' intra-op threads sum to the cores, no pool spins (so a
    finished branch yields its cores to the other), the head runs on the calling thread."""
    from fusionrt.backends.onnxruntime.branched import BranchedOnnxRuntimeBackend

    session = fusionrt.load(bundle, backend="onnxruntime")
    model = bundle / session.manifest.variants["fp32"].onnxruntime_file
    from fusionrt.backends.onnxruntime.branched import branch_threads

    backend = BranchedOnnxRuntimeBackend(model, session.manifest, "cpu", threads, branch_threads(threads, costs))
    for part, expected in ((backend._text, split[0]), (backend._image, split[1]), (backend._head, 1)):
        options = part.session.get_session_options()
        assert options.intra_op_num_threads == expected
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


@pytest.mark.parametrize(("branches_ms", "expected"), [(12.0, "sequential"), (9.9, "sequential"), (8.0, "branches")])
def test_choose_execution_picks_sequential_unless_branches_are_faster(bundle, monkeypatch, branches_ms, expected):
    """The decision on given timings (sequential 10 ms, branches' text 6 ms and image 2 ms alone): branches
    only when more than the margin faster; its core split by those costs is recorded and deployed."""
    from fusionrt.backends.onnxruntime import execution
    from fusionrt.backends.onnxruntime.branched import branch_threads
    from fusionrt.backends.options import RunOptions

    timings = {"sequential": 10.0, "parallel": 11.0, "branches": branches_ms, "text_branch": 6.0, "image_branch": 2.0}
    monkeypatch.setattr(execution, "_interleaved", lambda runs, repeats: {n: [timings[n]] * repeats for n in runs})
    options = RunOptions(threads=4)
    try:
        result = choose_execution(bundle, repeats=3, options=options)
        assert result["mode"] == expected
        assert result["branch_threads"] == dict(zip(("text", "image"), branch_threads(4, (6.0, 2.0)))) == {
            "text": 3, "image": 1}
        loaded = fusionrt.load(bundle, backend="onnxruntime", threads=4)
        assert loaded._backend.execution == expected
        if expected == "branches":
            assert loaded._backend._text.threads == 3 and loaded._backend._image.threads == 1
    finally:
        (bundle / CALIBRATION_FILE).unlink(missing_ok=True)  # the other tests' "auto" stays sequential


def test_a_recorded_split_without_a_thread_per_branch_is_a_bundle_error(bundle, monkeypatch):
    import json

    from fusionrt.backends.onnxruntime import execution
    from fusionrt.backends.options import RunOptions
    from fusionrt.bundle import BundleError

    timings = {"sequential": 10.0, "parallel": 11.0, "branches": 5.0, "text_branch": 4.0, "image_branch": 4.0}
    monkeypatch.setattr(execution, "_interleaved", lambda runs, repeats: {n: [timings[n]] * repeats for n in runs})
    try:
        choose_execution(bundle, repeats=1, options=RunOptions(threads=4))
        records = json.loads((bundle / CALIBRATION_FILE).read_text())
        for record in records.values():
            record["branch_threads"] = {"text": 0, "image": 4}
        (bundle / CALIBRATION_FILE).write_text(json.dumps(records))
        with pytest.raises(BundleError, match=r"branch_threads is \{'text': 0, 'image': 4\}, expected text and image >= 1"):
            fusionrt.load(bundle, backend="onnxruntime", threads=4)
    finally:
        (bundle / CALIBRATION_FILE).unlink(missing_ok=True)
