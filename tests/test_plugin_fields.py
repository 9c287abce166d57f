"""Field parsing and shape rules of the ops' TensorRT plugins, and the op contracts, run without TensorRT.

The plugin creators and the plugins call the same C++ (the op contracts, csrc/ops/*_contract.cpp)
that fusionrt._C exposes here; fields are (name, numpy array) pairs, the array's dtype standing for
nvinfer1::PluginFieldType.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusionrt import _C

SPEC = _C.plugin_specs()["concat_layernorm"]
FIELD = SPEC["fields"]
UNKNOWN = -1  # a size TensorRT does not know until runtime


def fields(eps=1e-5, num_inputs=2, has_weight=1, has_bias=1):
    return [
        (FIELD["eps"], np.float32([eps])),
        (FIELD["num_inputs"], np.int32([num_inputs])),
        (FIELD["has_weight"], np.int32([has_weight])),
        (FIELD["has_bias"], np.int32([has_bias])),
    ]


def replaced(name, value):
    return [(n, value if n == FIELD[name] else v) for n, v in fields()]


@pytest.mark.parametrize("num_inputs", [2, 3, 4])
@pytest.mark.parametrize(("has_weight", "has_bias"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_valid_fields(num_inputs, has_weight, has_bias):
    config = _C.parse_concat_layernorm_fields(fields(1e-3, num_inputs, has_weight, has_bias))
    assert config == {
        "eps": pytest.approx(1e-3),
        "num_inputs": num_inputs,
        "has_weight": bool(has_weight),
        "has_bias": bool(has_bias),
        "nb_node_inputs": num_inputs + has_weight + has_bias,
    }


def test_field_order_does_not_matter():
    assert _C.parse_concat_layernorm_fields(fields()[::-1]) == _C.parse_concat_layernorm_fields(fields())


@pytest.mark.parametrize(("num_inputs", "has_weight", "has_bias"), [(2, False, False), (4, True, True), (3, True, False)])
def test_serialised_fields_parse_back(num_inputs, has_weight, has_bias):
    serialised = _C.concat_layernorm_plugin_fields(2e-5, num_inputs, has_weight, has_bias)
    assert [name for name, _ in serialised] == [FIELD[k] for k in ("eps", "num_inputs", "has_weight", "has_bias")]
    assert [value.dtype for _, value in serialised] == [np.float32, np.int32, np.int32, np.int32]
    assert [value.dtype.name for _, value in serialised] == list(SPEC["field_types"].values())
    config = _C.parse_concat_layernorm_fields(serialised)
    assert (config["eps"], config["num_inputs"], config["has_weight"], config["has_bias"]) == (
        pytest.approx(2e-5), num_inputs, has_weight, has_bias)


@pytest.mark.parametrize("name", ["eps", "num_inputs", "has_weight", "has_bias"])
def test_missing_field(name):
    incomplete = [(n, v) for n, v in fields() if n != FIELD[name]]
    with pytest.raises(ValueError, match=f"missing field '{FIELD[name]}' for {SPEC['name']}"):
        _C.parse_concat_layernorm_fields(incomplete)


def test_empty_fields_name_the_first_missing_one():
    with pytest.raises(ValueError, match=f"missing field '{FIELD['eps']}'"):
        _C.parse_concat_layernorm_fields([])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("eps", np.float64([1e-5]), "field 'eps' has type float64, expected float32"),
        ("eps", np.float16([1e-3]), "field 'eps' has type float16, expected float32"),
        ("eps", 1e-5, "field 'eps' has type float64, expected float32"),  # a Python float is a double
        ("num_inputs", np.int64([2]), "field 'num_inputs' has type int64, expected int32"),
        ("num_inputs", np.float32([2]), "field 'num_inputs' has type float32, expected int32"),
        ("has_weight", np.int8([1]), "field 'has_weight' has type int8, expected int32"),
        ("has_bias", np.bytes_(b"1"), "field 'has_bias' has type char, expected int32"),
    ],
)
def test_wrong_type(name, value, message):
    with pytest.raises(ValueError, match=message):
        _C.parse_concat_layernorm_fields(replaced(name, value))


@pytest.mark.parametrize("length", [0, 2])
def test_wrong_length(length):
    with pytest.raises(ValueError, match=f"field 'num_inputs' has {length} values, expected 1"):
        _C.parse_concat_layernorm_fields(replaced("num_inputs", np.full(length, 2, np.int32)))


@pytest.mark.parametrize("num_inputs", [-1, 0, 1, 5, 2**31 - 1])
def test_num_inputs_out_of_range(num_inputs):
    with pytest.raises(ValueError, match=f"field 'num_inputs' is {num_inputs}, expected 2 to 4"):
        _C.parse_concat_layernorm_fields(fields(num_inputs=num_inputs))


@pytest.mark.parametrize("name", ["has_weight", "has_bias"])
@pytest.mark.parametrize("flag", [-1, 2])
def test_flag_not_boolean(name, flag):
    with pytest.raises(ValueError, match=f"field '{FIELD[name]}' is {flag}, expected 0 or 1"):
        _C.parse_concat_layernorm_fields(replaced(name, np.int32([flag])))


@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan"), float("inf")])
def test_eps_not_positive_and_finite(eps):
    with pytest.raises(ValueError, match="field 'eps' is .*, expected a finite value > 0"):
        _C.parse_concat_layernorm_fields(fields(eps=eps))


def test_unknown_field():
    with pytest.raises(ValueError, match="unknown field 'epsilon' for FusionrtConcatLayerNorm, expected 'eps', "):
        _C.parse_concat_layernorm_fields([*fields(), ("epsilon", np.float32([1e-5]))])


def test_duplicate_field():
    with pytest.raises(ValueError, match="field 'eps' is given twice"):
        _C.parse_concat_layernorm_fields([*fields(), (FIELD["eps"], np.float32([1e-5]))])


def test_dtype_without_field_type():
    with pytest.raises(TypeError, match="field 'eps' has numpy dtype uint16, which has no TensorRT plugin field type"):
        _C.parse_concat_layernorm_fields(replaced("eps", np.uint16([1])))


# --- shape rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("widths", "has_weight", "has_bias"),
    [((3, 5), 1, 1), ((1, 1, 1, 1), 0, 0), ((768, 512, 64), 1, 0), ((16, 8), 0, 1)],
)
def test_output_shape_is_batch_by_total_width(widths, has_weight, has_bias):
    total = sum(widths)
    shapes = [[7, w] for w in widths] + [[total]] * (has_weight + has_bias)
    assert _C.concat_layernorm_output_shape(fields(1e-5, len(widths), has_weight, has_bias), shapes) == (7, total)


def test_output_shape_with_sizes_unknown_at_build_time():
    f = fields(num_inputs=3)
    assert _C.concat_layernorm_output_shape(f, [[UNKNOWN, 4], [UNKNOWN, 2], [UNKNOWN, 1], [7], [7]]) == (UNKNOWN, 7)
    # The batch is known as soon as one input knows it.
    assert _C.concat_layernorm_output_shape(f, [[UNKNOWN, 4], [3, 2], [UNKNOWN, 1], [7], [7]]) == (3, 7)
    # An unknown width makes the total unknown, and weight/bias lengths cannot be checked yet.
    assert _C.concat_layernorm_output_shape(f, [[2, 4], [2, UNKNOWN], [2, 1], [99], [UNKNOWN]]) == (2, UNKNOWN)


@pytest.mark.parametrize(
    ("has_weight", "has_bias", "count", "expected"),
    [(1, 1, 2, "expected 4 inputs \\(2 tensors, weight, bias\\), got 2"),
     (0, 0, 3, "expected 2 inputs \\(2 tensors\\), got 3"),
     (1, 0, 4, "expected 3 inputs \\(2 tensors, weight\\), got 4")],
)
def test_input_count_follows_has_weight_and_has_bias(has_weight, has_bias, count, expected):
    shapes = [[2, 3]] * 2 + [[6]] * (count - 2)
    with pytest.raises(ValueError, match=expected):
        _C.concat_layernorm_output_shape(fields(has_weight=has_weight, has_bias=has_bias), shapes)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ([[2, 3, 1], [2, 3], [6], [6]], r"inputs\[0\] has shape \(2, 3, 1\), expected 2 dims \(batch, features\)"),
        ([[2, 3], [6], [6], [6]], r"inputs\[1\] has shape \(6,\), expected 2 dims"),
        ([[2, 3], [4, 3], [6], [6]], r"inputs\[1\] batch is 4, expected 2"),
        ([[2, 3], [2, 0], [3], [3]], r"inputs\[1\] has 0 features, expected > 0"),
        ([[2, 3], [2, 3], [5], [6]], r"weight length is 5, expected 6 \(the total features of the inputs\)"),
        ([[2, 3], [2, 3], [6], [1, 6]], r"bias has shape \(1, 6\), expected 1 dim"),
        ([[2, UNKNOWN], [2, 3], [UNKNOWN, 6], [6]], r"weight has shape \(\?, 6\), expected 1 dim"),
    ],
)
def test_shape_mismatch(shapes, message):
    with pytest.raises(ValueError, match=message):
        _C.concat_layernorm_output_shape(fields(), shapes)


# --- FusionrtMultiheadAttention -------------------------------------------------------------------

MHA = _C.plugin_specs()["multihead_attention"]
MHA_FIELD = MHA["fields"]


def mha_fields(scale=0.125, has_mask=1):
    return [(MHA_FIELD["scale"], np.float32([scale])), (MHA_FIELD["has_mask"], np.int32([has_mask]))]


def mha_replaced(name, value):
    return [(n, value if n == MHA_FIELD[name] else v) for n, v in mha_fields()]


def mha_shapes(batch=2, heads=4, lq=5, lk=7, head_dim=16, mask=True):
    qkv = [[batch, heads, lq, head_dim], [batch, heads, lk, head_dim], [batch, heads, lk, head_dim]]
    return qkv + ([[batch, lk]] if mask else [])


@pytest.mark.parametrize("has_mask", [0, 1])
@pytest.mark.parametrize("scale", [0.125, 1.0, -0.5, 0.0])  # the exporter writes the resolved scale as it is
def test_attention_valid_fields(scale, has_mask):
    config = _C.parse_multihead_attention_fields(mha_fields(scale, has_mask))
    assert config == {"scale": pytest.approx(scale), "has_mask": bool(has_mask), "nb_node_inputs": 3 + has_mask}
    assert _C.parse_multihead_attention_fields(mha_fields(scale, has_mask)[::-1]) == config


@pytest.mark.parametrize("has_mask", [False, True])
def test_attention_serialised_fields_parse_back(has_mask):
    serialised = _C.multihead_attention_plugin_fields(0.3, has_mask)
    assert [name for name, _ in serialised] == [MHA_FIELD["scale"], MHA_FIELD["has_mask"]]
    assert [value.dtype for _, value in serialised] == [np.float32, np.int32]
    assert [value.dtype.name for _, value in serialised] == list(MHA["field_types"].values())
    config = _C.parse_multihead_attention_fields(serialised)
    assert (config["scale"], config["has_mask"]) == (pytest.approx(0.3), has_mask)


@pytest.mark.parametrize("name", ["scale", "has_mask"])
def test_attention_missing_field(name):
    incomplete = [(n, v) for n, v in mha_fields() if n != MHA_FIELD[name]]
    with pytest.raises(ValueError, match=f"missing field '{MHA_FIELD[name]}' for {MHA['name']}"):
        _C.parse_multihead_attention_fields(incomplete)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("scale", np.float64([0.125]), "field 'scale' has type float64, expected float32"),
        ("scale", 0.125, "field 'scale' has type float64, expected float32"),
        ("scale", np.int32([1]), "field 'scale' has type int32, expected float32"),
        ("has_mask", np.int64([1]), "field 'has_mask' has type int64, expected int32"),
        ("has_mask", np.float32([1]), "field 'has_mask' has type float32, expected int32"),
        ("scale", np.float32([0.1, 0.2]), "field 'scale' has 2 values, expected 1"),
        ("has_mask", np.zeros(0, np.int32), "field 'has_mask' has 0 values, expected 1"),
    ],
)
def test_attention_wrong_type_or_length(name, value, message):
    with pytest.raises(ValueError, match=message):
        _C.parse_multihead_attention_fields(mha_replaced(name, value))


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -float("inf")])
def test_attention_scale_not_finite(scale):
    with pytest.raises(ValueError, match="field 'scale' is .*, expected a finite value"):
        _C.parse_multihead_attention_fields(mha_fields(scale=scale))


@pytest.mark.parametrize("flag", [-1, 2])
def test_attention_has_mask_not_boolean(flag):
    with pytest.raises(ValueError, match=f"field 'has_mask' is {flag}, expected 0 or 1"):
        _C.parse_multihead_attention_fields(mha_fields(has_mask=flag))


def test_attention_unknown_and_duplicate_fields():
    with pytest.raises(ValueError, match="unknown field 'eps' for FusionrtMultiheadAttention, expected 'scale', 'has_mask'"):
        _C.parse_multihead_attention_fields([*mha_fields(), ("eps", np.float32([1e-5]))])
    with pytest.raises(ValueError, match="field 'has_mask' is given twice"):
        _C.parse_multihead_attention_fields([*mha_fields(), (MHA_FIELD["has_mask"], np.int32([0]))])


@pytest.mark.parametrize("has_mask", [0, 1])
@pytest.mark.parametrize(("lq", "lk", "head_dim"), [(1, 1, 1), (5, 7, 16), (197, 32, 64), (3, 0, 128)])
def test_attention_output_shape_is_q_shape(has_mask, lq, lk, head_dim):
    shapes = mha_shapes(3, 2, lq, lk, head_dim, mask=has_mask)
    assert _C.multihead_attention_output_shape(mha_fields(has_mask=has_mask), shapes) == (3, 2, lq, head_dim)


def test_attention_output_shape_with_sizes_unknown_at_build_time():
    f = mha_fields()
    dynamic = [[UNKNOWN, 4, UNKNOWN, 8], [UNKNOWN, 4, UNKNOWN, 8], [UNKNOWN, 4, UNKNOWN, 8], [UNKNOWN, UNKNOWN]]
    assert _C.multihead_attention_output_shape(f, dynamic) == (UNKNOWN, 4, UNKNOWN, 8)
    # A size is known as soon as one input knows it; Lq only from q.
    assert _C.multihead_attention_output_shape(
        f, [[UNKNOWN, 4, UNKNOWN, 8], [UNKNOWN, 4, 7, 8], [UNKNOWN, 4, UNKNOWN, 8], [3, UNKNOWN]]
    ) == (3, 4, UNKNOWN, 8)


@pytest.mark.parametrize(
    ("has_mask", "count", "expected"),
    [(1, 3, r"expected 4 inputs \(q, k, v, key_padding_mask\), got 3"),
     (0, 4, r"expected 3 inputs \(q, k, v\), got 4"),
     (0, 2, r"expected 3 inputs \(q, k, v\), got 2")],
)
def test_attention_input_count_follows_has_mask(has_mask, count, expected):
    shapes = (mha_shapes(mask=True) + [[2, 7]])[:count]
    with pytest.raises(ValueError, match=expected):
        _C.multihead_attention_output_shape(mha_fields(has_mask=has_mask), shapes)


@pytest.mark.parametrize("head_dim", [129, 256, 0])
def test_attention_bad_head_dim(head_dim):
    with pytest.raises(ValueError, match=f"head_dim is {head_dim}, expected 1 to 128"):
        _C.multihead_attention_output_shape(mha_fields(), mha_shapes(head_dim=head_dim))


@pytest.mark.parametrize(
    ("index", "shape", "message"),
    [
        (0, [2, 4, 5], r"q has shape \(2, 4, 5\), expected 4 dims \(batch, heads, Lq, head_dim\)"),
        (1, [2, 4, 7, 16, 1], r"k has shape \(2, 4, 7, 16, 1\), expected 4 dims \(batch, heads, Lk, head_dim\)"),
        (1, [3, 4, 7, 16], r"k batch is 3, expected 2"),
        (2, [2, 8, 7, 16], r"v heads is 8, expected 4"),
        (1, [2, 4, 7, 32], r"k head_dim is 32, expected 16"),
        (2, [2, 4, 6, 16], r"v length is 6, expected 7 \(the length of k\)"),
        (3, [2, 6], r"key_padding_mask keys is 6, expected 7 \(the length of k and v\)"),
        (3, [1, 7], r"key_padding_mask batch is 1, expected 2"),
        (3, [2, 1, 7], r"key_padding_mask has shape \(2, 1, 7\), expected 2 dims \(batch, Lk\)"),
    ],
)
def test_attention_shape_mismatch(index, shape, message):
    shapes = mha_shapes()
    shapes[index] = shape
    with pytest.raises(ValueError, match=message):
        _C.multihead_attention_output_shape(mha_fields(), shapes)


def test_attention_mismatch_found_once_sizes_are_known():
    # At build time the batches are unknown; at runtime a differing one is reported.
    shapes = [[UNKNOWN, 4, 5, 16], [UNKNOWN, 4, 7, 16], [UNKNOWN, 4, 7, 16], [UNKNOWN, 7]]
    assert _C.multihead_attention_output_shape(mha_fields(), shapes)[0] == UNKNOWN
    with pytest.raises(ValueError, match="v batch is 3, expected 2"):
        _C.multihead_attention_output_shape(mha_fields(), [[2, 4, 5, 16], [2, 4, 7, 16], [3, 4, 7, 16], [2, 7]])


# --- the op contracts as _C exposes them -------------------------------------------------------------


def test_contracts_name_the_plugins_and_their_limits():
    contracts = _C.op_contracts()
    assert contracts["concat_layernorm"]["plugin"] == SPEC and contracts["multihead_attention"]["plugin"] == MHA
    assert (contracts["concat_layernorm"]["min_inputs"], contracts["concat_layernorm"]["max_inputs"]) == (2, 4)
    assert contracts["multihead_attention"]["max_head_dim"] == 128
    for contract in contracts.values():
        assert contract["dtypes"] == ["float32", "float16", "bfloat16", "float64"]


def test_contract_input_counts_are_the_field_parsers():
    contract = _C.op_contracts()["concat_layernorm"]
    for num_inputs in (contract["min_inputs"], contract["max_inputs"]):
        assert _C.parse_concat_layernorm_fields(fields(num_inputs=num_inputs))["num_inputs"] == num_inputs
    for num_inputs in (contract["min_inputs"] - 1, contract["max_inputs"] + 1):
        with pytest.raises(ValueError, match=f"field 'num_inputs' is {num_inputs}"):
            _C.parse_concat_layernorm_fields(fields(num_inputs=num_inputs))


def evaluate(rule, shapes):
    """The contract's declarative output rule, as fusionrt.ops applies it to symbolic sizes."""
    out = []
    for input_dim, first, count in rule:
        last = len(shapes) if count is None else first + count
        out.append(sum(shape[input_dim] for shape in shapes[first:last]))
    return tuple(out)


@pytest.mark.parametrize("seed", range(5))
def test_contract_output_rules_give_the_plugin_shapes(seed):
    rng = np.random.default_rng(seed)
    contracts = _C.op_contracts()
    batch, widths = int(rng.integers(1, 9)), [int(w) for w in rng.integers(1, 99, size=rng.integers(2, 5))]
    shapes = [[batch, w] for w in widths]
    assert evaluate(contracts["concat_layernorm"]["output_shape"], shapes) == _C.concat_layernorm_output_shape(
        fields(num_inputs=len(widths), has_weight=0, has_bias=0), shapes)
    qkv = mha_shapes(*(int(n) for n in rng.integers(1, 9, size=4)), head_dim=int(rng.integers(1, 129)), mask=False)
    assert evaluate(contracts["multihead_attention"]["output_shape"], qkv) == _C.multihead_attention_output_shape(
        mha_fields(has_mask=0), qkv)
