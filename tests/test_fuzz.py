"""Bounded fuzzing of the untrusted-input doors: manifests and the compiled op entry points.

Hypothesis draws random structures, bytes, shapes, strides and dtypes. The contract under test: each
door either works (and then gives the reference answer) or raises one of its documented errors —
BundleError for bundles, ValueError / TypeError for the ops. Any other exception fails the test, and a
crash kills the run. Inputs that once broke a door stay below as ``@example`` regression cases.
The whole module runs in well under a minute; ``FUSIONRT_FUZZ_EXAMPLES`` scales it up for a longer hunt.
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fusionrt import _C
from fusionrt.bundle import BundleError, read_manifest
from fusionrt.graph_io import input_specs
from session_seed import SESSION_SEED
from test_bundle import make_bundle
from tiny_bundles import IMAGE_SIZE, TEXT_LENGTH, tiny_bundle

EXAMPLES = int(os.environ.get("FUSIONRT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # CI starts clean; regressions live in @example, not in a local database
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
OP_ERRORS = (ValueError, TypeError)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _paths(value, prefix=()):
    """Every key path into a JSON document, parents before children."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _mutated(document, data):
    """``document`` with one drawn subtree replaced by random JSON or deleted, or a key added."""
    document = copy.deepcopy(document)
    path = data.draw(st.sampled_from(list(_paths(document))[1:]), label="path")
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
    if action == "replace":
        parent[path[-1]] = data.draw(json_values, label="value")
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=12), label="key")] = data.draw(json_values, label="value")
    return document


@pytest.fixture(scope="module")
def valid_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_bundle")
    make_bundle(root)
    return root, json.loads((root / "manifest.json").read_text())


@hypothesis_seed(SESSION_SEED)
@FUZZ
@given(data=st.data())
def test_manifest_mutations_read_or_raise_bundle_error(valid_manifest, data):
    root, document = valid_manifest
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        document = _mutated(document, data)
    (root / "manifest.json").write_text(json.dumps(document))
    try:
        read_manifest(root)
    except BundleError:
        pass


@hypothesis_seed(SESSION_SEED)
@FUZZ
@given(content=st.binary(max_size=256) | json_values.map(lambda v: json.dumps(v).encode()))
@example(content=b"[" * 100_000)  # recursion in the JSON parser
@example(content=b"\xff\xfe")  # not UTF-8
def test_manifest_bytes_read_or_raise_bundle_error(valid_manifest, content):
    root, _ = valid_manifest
    (root / "manifest.json").write_bytes(content)
    with pytest.raises(BundleError):
        read_manifest(root)


# --- the compiled ops -----------------------------------------------------------------------------

FLOATS = [np.float32, np.float64, np.float16]
DTYPES = FLOATS + [np.int32, np.int64, np.bool_, np.uint8, np.complex64]


@st.composite
def arrays(draw, dtypes=DTYPES, min_dims=0, max_dims=5, max_side=6):
    """A random array, sometimes made non-contiguous or given negative strides."""
    dtype = draw(st.sampled_from(dtypes), label="dtype")
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side))
    array = draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False,
                                                                 allow_infinity=False, min_value=-4, max_value=4)
                            if np.dtype(dtype).kind == "f" else None))
    view = draw(st.sampled_from(["as is", "reversed", "transposed", "strided"]), label="view")
    if view == "reversed" and array.ndim:
        array = array[::-1]
    elif view == "transposed" and array.ndim >= 2:
        array = np.swapaxes(array, 0, -1)
    elif view == "strided" and array.ndim:
        array = np.repeat(array, 2, axis=0)[::2]
    return array


def _concat_layernorm_reference(inputs, weight, bias, eps):
    x = np.concatenate([np.asarray(a, np.float64) for a in inputs], axis=1)
    y = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


@st.composite
def concat_layernorm_inputs(draw):
    """Inputs that are often valid (so the kernel runs, on reversed and strided rows too), else random."""
    if draw(st.booleans(), label="random structure"):
        return (draw(st.lists(arrays(max_dims=3), max_size=5)), draw(st.none() | arrays(max_dims=2)),
                draw(st.none() | arrays(max_dims=2)), draw(st.floats() | st.just(1e-5)))
    dtype = draw(st.sampled_from(FLOATS), label="dtype")
    batch = draw(st.integers(0, 4))
    arity = draw(st.sampled_from([2, 3, 4] * 3 + [1, 5]), label="arity")
    widths = draw(st.lists(st.integers(0, 9), min_size=arity, max_size=arity), label="widths")
    elements = st.floats(-4, 4, width=16)
    inputs = [draw(hnp.arrays(dtype, (batch, w), elements=elements)) for w in widths]
    if inputs and draw(st.booleans(), label="reverse rows"):
        inputs[0] = np.ascontiguousarray(inputs[0][::-1])[::-1]
    features = sum(widths) + draw(st.sampled_from([0, 0, 0, 1]), label="feature error")
    weight = draw(st.none() | hnp.arrays(dtype, (features,), elements=elements))
    bias = draw(st.none() | hnp.arrays(dtype, (features,), elements=elements))
    eps = draw(st.sampled_from([1e-5, 1e-3] * 4 + [0.0, -1.0, float("inf"), float("nan")]), label="eps")
    return inputs, weight, bias, eps


@hypothesis_seed(SESSION_SEED)
@FUZZ
@given(case=concat_layernorm_inputs())
def test_concat_layernorm_answers_right_or_raises_a_documented_error(case):
    inputs, weight, bias, eps = case
    try:
        out = _C.fused_concat_layernorm(inputs, weight, bias, eps)
    except OP_ERRORS:
        return
    expected = _concat_layernorm_reference(inputs, weight, bias, eps)
    tolerance = 2e-2 if out.dtype == np.float16 else 1e-4
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=tolerance, atol=tolerance)


@st.composite
def attention_inputs(draw):
    """q, k, v (and a mask) that are often valid, so the kernel runs as well as the checks."""
    dtype = draw(st.sampled_from(FLOATS + [np.int32]), label="dtype")
    batch, heads, lq, lk = (draw(st.integers(0, 3)) for _ in range(4))
    head_dim = draw(st.sampled_from([1, 4, 8, 129]))
    elements = st.integers(-4, 4) if dtype == np.int32 else st.floats(-2, 2, width=16)

    def tensor(length):
        shape = draw(st.sampled_from([(batch, heads, length, head_dim), (batch, length, head_dim),
                                      (batch, heads, length + 1, head_dim)]), label="shape")
        return draw(hnp.arrays(dtype, shape, elements=elements))

    q, k, v = tensor(lq), tensor(lk), tensor(lk)
    if draw(st.booleans()):
        q = np.swapaxes(np.ascontiguousarray(np.swapaxes(q, -1, -2)), -1, -2) if q.ndim >= 2 else q
    mask = draw(st.none() | hnp.arrays(np.bool_, (batch, lk)) | arrays(max_dims=3))
    scale = draw(st.none() | st.floats(allow_nan=True, allow_infinity=True))
    return q, k, v, mask, scale


def _attention_reference(q, k, v, mask, scale):
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        logits = np.where(mask[:, None, None, :], logits, -np.inf)
    with np.errstate(invalid="ignore"):
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights = weights / weights.sum(-1, keepdims=True)
    return np.nan_to_num(weights) @ v


def _scores_fit_float(q, k, scale) -> bool:
    """Whether the kernel's float scores are finite (csrc/kernels/attention_math.h): q times
    scale · log2(e) (saturated at float's largest), and every base-2 score bounded by sum |q_i k_i|.
    Beyond that the float answer cannot match float64's, and the op's result is unspecified."""
    if scale is None or not np.isfinite(scale):  # 1/sqrt(d); inf and NaN propagate as the reference's
        return True
    largest = float(np.finfo(np.float32).max)
    factor = min(abs(scale) * np.log2(np.e), largest)
    q_scaled = np.abs(np.asarray(q, np.float64)) * factor
    bound = q_scaled @ np.swapaxes(np.abs(np.asarray(k, np.float64)), -1, -2)
    return bool(q_scaled.max() < largest and bound.max() < largest)


@hypothesis_seed(SESSION_SEED)
@FUZZ
@given(case=attention_inputs())
# A finite scale whose base-2 form (scale * log2 e) overflowed float: 0 * inf made the zero score NaN.
@example(case=(np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32),
               np.ones((1, 1, 1, 1), np.float32), None, 2.358657561961658e+38))
# Scores beyond float's range (q · scale · log2 e overflows; a base-2 score of 3.40289e38): outside the
# kernel's domain, where only "no crash, no undocumented error" is asked.
@example(case=(np.full((1, 1, 1, 1), 2, np.float32), np.zeros((1, 1, 1, 1), np.float32),
               np.ones((1, 1, 1, 1), np.float32), None, 1.179328780980829e+38))
@example(case=(np.full((1, 1, 1, 1), 2, np.float32), np.full((1, 1, 1, 1), -2, np.float32),
               np.zeros((1, 1, 1, 1), np.float32), None, -5.896643904904145e+37))
def test_attention_answers_right_or_raises_a_documented_error(case):
    q, k, v, mask, scale = case
    try:
        out = _C.multihead_attention(q, k, v, mask, scale)
    except OP_ERRORS:
        return
    if q.size == 0 or k.shape[2] == 0:
        assert out.shape == q.shape
        return
    if not _scores_fit_float(q, k, scale):
        return
    expected = _attention_reference(q, k, v, mask, scale)
    tolerance = 2e-2 if out.dtype == np.float16 else 1e-4
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=tolerance, atol=tolerance)


# --- Session.run and Session.predict --------------------------------------------------------------
# Random feed dicts and raw inputs on a tiny exported bundle (ONNX Runtime): a run either answers one
# row per sample or raises ValueError / TypeError / BundleError, never another exception or a crash.

SESSION_ERRORS = (ValueError, TypeError, BundleError)


@pytest.fixture(scope="module")
def fuzz_session(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import fusionrt

    return fusionrt.load(tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8")), backend="onnxruntime")


ID_EDGES = [-(2**63), -1, 0, 1, 30521, 30522, 2**31, 2**63 - 1]


@st.composite
def feed_dicts(draw, inputs):
    """Feeds that are often valid (so the graph runs), with drawn names, dtypes, shapes, strides, batch
    sizes, token ids and mask values changed."""
    batch = draw(st.sampled_from([1, 2, 3, 0]), label="batch")
    feeds = {}
    for name, spec in inputs.items():
        shape = tuple(batch if isinstance(d, str) else d for d in spec.shape)
        if spec.dtype == "bool":
            feeds[name] = draw(hnp.arrays(np.bool_, shape), label=name)
        elif spec.dtype == "int64":
            high = 30522 if name == "input_ids" else 2
            feeds[name] = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, high - 1)), label=name)
        else:
            feeds[name] = draw(hnp.arrays(np.float32, shape, elements=st.floats(-3, 3, width=32)), label=name)
    for _ in range(draw(st.integers(0, 3), label="changes")):
        name = draw(st.sampled_from(sorted(feeds) or ["image"]), label="target")
        change = draw(st.sampled_from(["ids", "mask", "empty row", "dtype", "shape", "stride", "drop", "extra",
                                       "object"]), label="change")
        value = feeds.get(name) if isinstance(feeds.get(name), np.ndarray) else None
        ids, mask = (feeds.get(n) if isinstance(feeds.get(n), np.ndarray) else None for n in ("input_ids", "attention_mask"))
        if change == "ids" and ids is not None and ids.size:
            ids = ids.copy()
            ids.flat[draw(st.integers(0, ids.size - 1))] = draw(st.sampled_from(ID_EDGES) | st.integers(-(2**63), 2**63 - 1))
            feeds["input_ids"] = ids
        elif change == "mask" and mask is not None and mask.size:
            mask = mask.copy()
            mask.flat[draw(st.integers(0, mask.size - 1))] = draw(st.sampled_from([-1, 2, 255, -(2**63)]))
            feeds["attention_mask"] = mask
        elif change == "empty row" and mask is not None and mask.ndim and mask.shape[0]:
            mask = mask.copy()
            mask[draw(st.integers(0, mask.shape[0] - 1))] = 0
            feeds["attention_mask"] = mask
        elif change == "dtype" and value is not None:
            feeds[name] = value.astype(draw(st.sampled_from(DTYPES)))
        elif change == "shape" and value is not None:
            shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4) | st.just(value.shape[:-1]))
            feeds[name] = np.zeros(shape, value.dtype)
        elif change == "stride" and value is not None and value.ndim:
            feeds[name] = draw(st.sampled_from([np.ascontiguousarray(value[::-1])[::-1], np.repeat(value, 2, axis=0)[::2],
                                                np.ascontiguousarray(value.T).T]))
        elif change == "drop":
            feeds.pop(name, None)
        elif change == "extra":
            feeds[draw(st.text(max_size=12), label="extra name")] = np.zeros(1, np.float32)
        elif change == "object":
            feeds[name] = draw(st.sampled_from([None, "text", 3, [[1, 2]], object()]))
    return feeds


def _valid_feeds(batch: int) -> dict[str, np.ndarray]:
    return {"input_ids": np.zeros((batch, TEXT_LENGTH), np.int64), "attention_mask": np.ones((batch, TEXT_LENGTH), np.int64),
            "image": np.zeros((batch, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32), "presence": np.ones((batch, 2), bool)}


@hypothesis_seed(SESSION_SEED)
@FUZZ
@given(feeds=feed_dicts(input_specs(TEXT_LENGTH, IMAGE_SIZE)))
# ONNX Runtime's Gather raised its own InvalidArgument for ids >= the vocabulary, and answered for negative ones.
@example(feeds={**_valid_feeds(1), "input_ids": np.full((1, TEXT_LENGTH), 30522, np.int64)})
@example(feeds={**_valid_feeds(2), "input_ids": np.full((2, TEXT_LENGTH), -1, np.int64)})
@example(feeds={**_valid_feeds(1), "attention_mask": np.zeros((1, TEXT_LENGTH), np.int64)})  # an all-masked softmax
@example(feeds=_valid_feeds(0))  # batch 0: empty outputs
@example(feeds={**_valid_feeds(1), "image": None})  # not an array
def test_run_answers_per_sample_or_raises_a_documented_error(fuzz_session, feeds):
    try:
        out = fuzz_session.run(feeds)
    except SESSION_ERRORS:
        return
    batch = feeds["image"].shape[0]  # it ran, so every feed fit the specs
    assert set(out) == set(fuzz_session.output_names)
    for name, value in out.items():
        assert value.shape[0] == batch, name
        assert np.isfinite(value).all(), name


image_arrays = hnp.arrays(
    st.sampled_from([np.uint8, np.uint16, np.float32, np.bool_, np.int64]),
    hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=9),
)
texts = st.none() | st.text(max_size=40) | st.integers() | st.binary(max_size=4)
images = st.none() | image_arrays | st.integers()


@hypothesis_seed(SESSION_SEED)
@FUZZ
@given(
    text=texts | st.lists(texts, max_size=3) | st.tuples(texts),
    image=images | st.lists(images, max_size=3),
)
@example(text=[], image=[])  # batch 0: []
@example(text=None, image=np.zeros((0, 4, 4, 3), np.uint8))  # an empty NHWC batch: []
@example(text="", image=None)  # the empty string tokenises to [CLS] [SEP]: a token, not an empty mask
@example(text=["ok", None], image=[None, np.zeros((0, 5, 3), np.uint8)])  # an image with no pixels
def test_predict_answers_per_sample_or_raises_a_documented_error(fuzz_session, text, image):
    try:
        out = fuzz_session.predict(text=text, image=image)
    except SESSION_ERRORS:
        return
    predictions = out if isinstance(out, list) else [out]
    for prediction in predictions:
        assert np.isfinite(prediction.score) and prediction.sentiment in ("positive", "negative")
