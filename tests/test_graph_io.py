"""The graph I/O contract (fusionrt.graph_io): its names, and that exported graphs use exactly them."""

from __future__ import annotations

import dataclasses

import pytest

from fusionrt.bundle import read_manifest
from fusionrt.graph_io import (
    IMAGE,
    INPUT_NAMES,
    LOGITS,
    MODALITIES,
    MODALITY_INPUTS,
    OPTIONAL_INPUTS,
    OUTPUT_ROLES,
    PRESENCE,
    SCORE,
    TEXT,
    OutputRole,
    input_specs,
    output_name,
    output_role,
)
from tiny_bundles import IMAGE_SIZE, TEXT_LENGTH, tiny_bundle


def test_output_names_round_trip_through_their_roles():
    assert output_name(SCORE) == "score" and output_name(LOGITS, IMAGE) == "logits_image"
    assert set(OUTPUT_ROLES) == {"score", "logits", "score_text", "score_image", "logits_text", "logits_image"}
    for name, role in OUTPUT_ROLES.items():
        assert output_name(role.kind, role.branch) == name
        assert output_role(name) == role
    assert output_role("score_text").description == "sentiment score in output.score_range of the text branch alone"
    assert OutputRole(LOGITS).description == "class logits"


@pytest.mark.parametrize(
    ("kind", "branch", "message"),
    [("probability", None, "output kind is 'probability'"), (SCORE, "audio", "output branch is 'audio'")],
)
def test_output_name_rejects_what_the_contract_lacks(kind, branch, message):
    with pytest.raises(ValueError, match=message):
        output_name(kind, branch)


def test_output_role_rejects_unknown_names():
    with pytest.raises(ValueError, match="graph output 'score_audio' is not in the I/O contract"):
        output_role("score_audio")


def test_inputs_cover_each_modality_once():
    assert tuple(input_specs(8, 32)) == INPUT_NAMES
    owned = [name for m in MODALITIES for name in MODALITY_INPUTS[m]]
    assert len(owned) == len(set(owned)) and set(owned) | {PRESENCE} == set(INPUT_NAMES)
    assert input_specs(8, 32)[PRESENCE].shape == ["batch", len(MODALITIES)]
    assert set(OPTIONAL_INPUTS) == {PRESENCE}


@pytest.mark.parametrize(
    ("name", "precisions", "outputs"),
    [
        ("late", ("fp32", "fp16", "int8"), {output_name(SCORE), output_name(LOGITS)}),  # num_classes 3
        ("decision", ("fp32",), {output_name(SCORE, branch) for branch in (None, TEXT, IMAGE)}),
    ],
)
def test_exported_graphs_use_the_contracts_names(tmp_path_factory, name, precisions, outputs):
    onnx = pytest.importorskip("onnx")
    path = tiny_bundle(tmp_path_factory, name, precisions)
    manifest = read_manifest(path)
    assert manifest.inputs == input_specs(TEXT_LENGTH, IMAGE_SIZE)
    graph = onnx.load(str(path / "model.onnx")).graph
    assert tuple(i.name for i in graph.input) == INPUT_NAMES
    assert {o.name for o in graph.output} == set(manifest.outputs) == outputs
    for output, spec in manifest.outputs.items():
        assert spec.description == output_role(output).description


def test_predictions_carry_the_contracts_outputs():
    from fusionrt.session import PREDICTION_OUTPUTS, Prediction

    assert set(PREDICTION_OUTPUTS) <= {f.name for f in dataclasses.fields(Prediction)}
    assert all(name in OUTPUT_ROLES for name in PREDICTION_OUTPUTS)
