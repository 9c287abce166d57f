"""Splitting a late / intermediate fusion graph into its two independent backbone branches and the head.

Late and intermediate fusion run a text backbone and a vision backbone that share nothing until the
fusion op joins their features, so the two can run at the same time. :func:`split_graph` cuts the
ONNX graph there with ``onnx.utils.Extractor``:

* text branch: ``input_ids``, ``attention_mask`` (+ ``presence``) -> the text feature tensor(s),
* image branch: ``image`` (+ ``presence``) -> the image feature tensor(s),
* head: both features (+ ``presence``) -> the graph's outputs.

The boundary is found from the graph itself: every tensor is labelled with the modalities (text
inputs, image input) it depends on, and the boundary is the text-only / image-only tensors that a node
depending on both consumes. For the exported models that is exactly the fusion op's inputs (the
placeholder-filled pooled features entering FusionrtConcatLayerNorm, or Concat + LayerNormalization),
which :func:`split_graph` checks against the nodes' torch module paths (``fusion.*``).

Example:
    >>> graphs = split_bundle("runs/late_mobilenetv2/bundle")  # doctest: +SKIP
    >>> graphs.text_features, graphs.image_features  # doctest: +SKIP
    (('where_1',), ('where_3',))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._optional import require
from ...bundle import read_manifest, verify_files
from ...graph_io import IMAGE, MODALITY_INPUTS, TEXT
from ...weights import check_graph_data

#: Graph inputs per modality; ``presence`` belongs to neither (each part that reads it gets it).
TEXT_INPUTS = frozenset(MODALITY_INPUTS[TEXT])
IMAGE_INPUTS = frozenset(MODALITY_INPUTS[IMAGE])

#: Strategies whose backbones meet only at the fusion op.
SPLITTABLE = ("late", "intermediate")
#: Strategies whose branches can be cut for an absent modality (:mod:`.absent`): the concurrent ones,
#: and decision fusion, whose branch graph outputs (``score_text``, ...) then come from the branches.
SKIPPABLE = (*SPLITTABLE, "decision")
_WHY_NOT = {
    "early": "its backbones' token streams meet in a joint attention stack that holds most of the compute",
    "hybrid": "its late features and its early joint attention stack both join the backbones",
    "decision": "each branch ends in its own head and graph outputs, there is no single fusion op to cut at",
}


class NotSplittableError(ValueError):
    """The graph has no two independent branches that meet only at the fusion op."""


@dataclass(frozen=True)
class BranchGraphs:
    """The three parts of a split graph and the boundary tensor names: ``onnx.ModelProto`` each from
    :func:`split_graph`, :class:`~fusionrt.backends.torch_split.GraphPart` each from
    :func:`~fusionrt.backends.torch_split.split_module` (the same cut in the torch program).

    ``text_outputs`` / ``image_outputs``: graph outputs that one branch computes alone (decision
    fusion's per-branch predictions); the branch graph outputs them after its features. Empty for
    late / intermediate fusion, whose every output comes from the head.
    """

    text: Any
    image: Any
    head: Any
    text_features: tuple[str, ...]
    image_features: tuple[str, ...]
    text_outputs: tuple[str, ...] = ()
    image_outputs: tuple[str, ...] = ()


def check_splittable(strategy: str) -> None:
    """Raises :class:`NotSplittableError` unless fusion ``strategy`` has two independent branches."""
    if strategy not in SPLITTABLE:
        why = _WHY_NOT.get(strategy, "it is not a strategy fusionrt knows")
        raise NotSplittableError(
            f"fusion strategy {strategy!r} is not splittable into concurrent branches: {why}; "
            f"only {', '.join(SPLITTABLE)} are"
        )


def split_graph(model: Any, strategy: str, *, branch_outputs: bool = False) -> BranchGraphs:
    """Splits the fp32 ``onnx.ModelProto`` of a ``strategy`` model into text branch, image branch and head.

    ``branch_outputs`` True also splits decision fusion, whose graph outputs include each branch's own
    prediction: those become outputs of their branch (:attr:`BranchGraphs.text_outputs`).

    Raises:
        NotSplittableError: the strategy (or the graph) has no two branches that meet only at the fusion op.
    """
    if not (branch_outputs and strategy in SKIPPABLE):
        check_splittable(strategy)
    onnx = require("onnx")
    graph = model.graph
    graph_inputs = [i.name for i in graph.input]
    missing = (TEXT_INPUTS | IMAGE_INPUTS) - set(graph_inputs)
    if missing:
        raise NotSplittableError(f"the graph has inputs {graph_inputs}, it lacks {sorted(missing)}")
    modalities, inputs_of = _dependencies(graph)
    text_features, image_features, joins = _boundary(graph, modalities)
    outputs = tuple(o.name for o in graph.output)
    text_outputs = tuple(o for o in outputs if modalities[o] == {TEXT})
    image_outputs = tuple(o for o in outputs if modalities[o] == {IMAGE})
    if (text_outputs or image_outputs) and not branch_outputs:
        raise NotSplittableError(f"graph output {(text_outputs + image_outputs)[0]!r} does not depend on both modalities")
    joint_outputs = tuple(o for o in outputs if o not in text_outputs + image_outputs)
    _check_joins_are_fusion_op(joins)
    extractor = onnx.utils.Extractor(model)

    def part(outputs: tuple[str, ...], reads: frozenset[str], boundary: tuple[str, ...] = ()) -> Any:
        # The part's graph inputs: the boundary tensors it starts from, then the graph inputs it reads.
        needed = set().union(*(inputs_of[name] for name in outputs)) & reads
        return extractor.extract_model([*boundary, *(n for n in graph_inputs if n in needed)], list(outputs))

    neither = frozenset(graph_inputs) - TEXT_INPUTS - IMAGE_INPUTS  # presence
    head = part(joint_outputs, neither, text_features + image_features)

    def branch(features: tuple[str, ...], own: tuple[str, ...], reads: frozenset[str]) -> Any:
        return part(tuple(dict.fromkeys(features + own)), reads | neither)

    return BranchGraphs(
        branch(text_features, text_outputs, TEXT_INPUTS), branch(image_features, image_outputs, IMAGE_INPUTS), head,
        text_features, image_features, text_outputs, image_outputs,
    )


def split_bundle(path: str | os.PathLike[str], precision: str = "fp32") -> BranchGraphs:
    """:func:`split_graph` of the ONNX file of ``precision`` in the bundle at ``path`` (manifest validated)."""
    onnx = require("onnx")
    root = Path(path)
    manifest = read_manifest(root, verify_hashes=False)
    check_splittable(manifest.strategy)
    if precision not in manifest.variants:
        raise ValueError(f"bundle {root} has no {precision!r} variant; it has {sorted(manifest.variants)}")
    variant = manifest.variants[precision]
    graph = variant.onnxruntime_file
    # The one graph it reads (and its weights file), not the whole bundle; its external data checked
    # before onnx.load follows it.
    verify_files(root, manifest, [graph, *variant.weights_files])
    check_graph_data(root, graph, variant.weights_files)
    return split_graph(onnx.load(str(root / graph)), manifest.strategy)


def _dependencies(graph: Any) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Per tensor: the modalities ("text", "image") and the graph inputs it depends on.

    One pass suffices because ONNX requires a graph's nodes in topological order.
    """
    inputs_of: dict[str, frozenset[str]] = {i.name: frozenset({i.name}) for i in graph.input}
    none: frozenset[str] = frozenset()
    for node in graph.node:
        # Constants and initializers depend on no input.
        needed = none.union(*(inputs_of.get(name, none) for name in node.input if name))
        for name in node.output:
            inputs_of[name] = needed
    modalities = {
        name: frozenset(m for m, group in ((TEXT, TEXT_INPUTS), (IMAGE, IMAGE_INPUTS)) if needed & group)
        for name, needed in inputs_of.items()
    }
    return modalities, inputs_of


def _boundary(
    graph: Any, modalities: dict[str, frozenset[str]]
) -> tuple[tuple[str, ...], tuple[str, ...], list[Any]]:
    """The text-only and image-only tensors consumed by nodes that depend on both modalities (in graph
    order), and those joining nodes."""
    both = frozenset({TEXT, IMAGE})
    text: list[str] = []
    image: list[str] = []
    joins = []
    for node in graph.node:
        if not node.output or modalities[node.output[0]] != both:
            continue
        for name in node.input:
            side = modalities.get(name, frozenset())
            target = text if side == {TEXT} else image if side == {IMAGE} else None
            if target is not None:
                joins.append(node)
                if name not in target:
                    target.append(name)
    for output in graph.output:
        if not modalities[output.name]:
            raise NotSplittableError(f"graph output {output.name!r} depends on neither modality")
    if not text or not image:
        raise NotSplittableError("the text and image inputs never meet in one node")
    return tuple(text), tuple(image), joins


def _check_joins_are_fusion_op(joins: list[Any]) -> None:
    """Every node that joins the modalities must come from the model's ``fusion`` module.

    The exporter records each node's torch module path (``pkg.torch.onnx.name_scopes``); a join outside
    ``fusion.*`` would mean the backbones interact before the fusion op, so the cut would not be the
    late / intermediate one. Nodes without that metadata are trusted as they are.
    """
    for node in joins:
        scopes = {p.key: p.value for p in node.metadata_props}.get("pkg.torch.onnx.name_scopes")
        if scopes is not None and "'fusion'" not in scopes:
            raise NotSplittableError(
                f"node {node.name!r} joins the modalities outside the fusion module (module path {scopes})"
            )
