"""Splitting the torch program's FX graph into its text branch, image branch and head.

The same cut as :func:`~fusionrt.backends.onnxruntime.branches.split_graph` makes in the ONNX graph,
made in the graph of ``ExportedProgram.module()``: every node is labelled with the modalities (text
inputs, image input) it depends on, and the boundary is the text-only / image-only values that a node
depending on both consumes. Only nodes the outputs need count (the module's input guards read every
input and feed nothing). Every joining node must come from the model's ``fusion`` module (its
``nn_module_stack``), which is what makes the cut the late / intermediate / decision one.

Each part is a ``GraphModule`` holding only the nodes its outputs need, over the whole module's own
parameters (shared, not copied): the absent backbone's nodes are in no part that runs. Its forward takes
its inputs positionally, in :attr:`GraphPart.inputs` order, and returns a dict by output name.

Example:
    >>> parts = split_module(exported.module(), "late")  # doctest: +SKIP
    >>> parts.text_features, parts.image_features  # doctest: +SKIP
    (('where_1',), ('where_3',))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._optional import require
from ..graph_io import IMAGE, MODALITY_INPUTS, TEXT
from .onnxruntime.branches import SKIPPABLE, BranchGraphs, NotSplittableError


@dataclass(frozen=True)
class GraphPart:
    """One part of the split program: a ``GraphModule`` and the names of its positional inputs."""

    module: Any
    inputs: tuple[str, ...]

    def run(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Runs the part on the feeds it reads (others in ``feeds`` are ignored)."""
        return self.module(*(feeds[name] for name in self.inputs))


def split_module(module: Any, strategy: str) -> BranchGraphs:
    """Splits ``module`` (``ExportedProgram.module()`` of a ``strategy`` model) into text branch, image
    branch and head, each a :class:`GraphPart`.

    Raises:
        NotSplittableError: the strategy (or the graph) has no two branches that meet only in the fusion module.
    """
    if strategy not in SKIPPABLE:
        raise NotSplittableError(f"fusion strategy {strategy!r} has no branch that can be left out; only "
                                 f"{', '.join(SKIPPABLE)} have")
    torch = require("torch")
    graph = module.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    output = next(n for n in graph.nodes if n.op == "output")
    # The module returns a pytree (a dict by output name) of the output node's flat values.
    outputs = torch.utils._pytree.tree_unflatten(list(output.args[0]), module._out_spec)
    if not isinstance(outputs, dict):
        raise NotSplittableError(f"the program returns a {type(outputs).__name__}, expected a dict of outputs")
    live = _needed(outputs.values())
    modalities = _modalities(graph, live)
    text_features, image_features = _boundary(graph, live, modalities)
    text_outputs = tuple(o for o, node in outputs.items() if modalities[node] == {TEXT})
    image_outputs = tuple(o for o, node in outputs.items() if modalities[node] == {IMAGE})
    joint = {o: node for o, node in outputs.items() if o not in text_outputs + image_outputs}
    by_name = {n.name: n for n in graph.nodes}

    def branch(features: tuple[str, ...], own: tuple[str, ...]) -> GraphPart:
        return _extract(module, placeholders, (), {**{f: by_name[f] for f in features}, **{o: outputs[o] for o in own}})

    head = _extract(module, placeholders, [by_name[f] for f in text_features + image_features], joint)
    return BranchGraphs(branch(text_features, text_outputs), branch(image_features, image_outputs), head,
                       text_features, image_features, text_outputs, image_outputs)


def _needed(roots: Any, stop: frozenset[Any] = frozenset()) -> set[Any]:
    """The nodes ``roots`` are computed from (themselves included), not looking past the nodes in ``stop``."""
    needed: set[Any] = set()
    pending = list(roots)
    while pending:
        node = pending.pop()
        if node in needed:
            continue
        needed.add(node)
        if node not in stop:
            pending.extend(node.all_input_nodes)
    return needed


def _modalities(graph: Any, live: set[Any]) -> dict[Any, frozenset[str]]:
    """Per live node: the modalities it depends on. One pass, as FX graphs are in topological order."""
    own = {name: modality for modality, names in MODALITY_INPUTS.items() for name in names}
    labels: dict[Any, frozenset[str]] = {}
    for node in graph.nodes:
        if node not in live:
            continue
        if node.op == "placeholder":
            labels[node] = frozenset({own[node.target]} if node.target in own else ())
        else:
            labels[node] = frozenset().union(*(labels[n] for n in node.all_input_nodes))
    return labels


def _boundary(graph: Any, live: set[Any], modalities: dict[Any, frozenset[str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of the text-only and image-only nodes consumed by live nodes that depend on both
    modalities (in graph order); each such joining node must be in the ``fusion`` module."""
    both = frozenset({TEXT, IMAGE})
    sides: dict[str, list[str]] = {TEXT: [], IMAGE: []}
    for node in graph.nodes:
        if node not in live or node.op == "output" or modalities[node] != both:
            continue
        for value in node.all_input_nodes:
            side = modalities[value]
            if len(side) == 1:
                _check_in_fusion(node)
                names = sides[next(iter(side))]
                if value.name not in names:
                    names.append(value.name)
    if not sides[TEXT] or not sides[IMAGE]:
        raise NotSplittableError("the text and image inputs never meet in one node")
    return tuple(sides[TEXT]), tuple(sides[IMAGE])


def _check_in_fusion(node: Any) -> None:
    """A node joining the modalities outside the ``fusion`` module means the backbones interact before
    the fusion op, so the cut would not be the late / intermediate one. Nodes without the metadata are
    trusted as they are (as the ONNX split trusts nodes without name scopes)."""
    stack = node.meta.get("nn_module_stack")
    if stack is None:
        return
    paths = [str(entry[0]) for entry in stack.values()]
    if not any(path == "fusion" or path.startswith("fusion.") for path in paths):
        raise NotSplittableError(f"node {node.name!r} joins the modalities outside the fusion module "
                                 f"(module path {paths[-1] if paths else 'the top level'})")


def _extract(module: Any, placeholders: list[Any], starts: list[Any] | tuple[Any, ...],
             outputs: dict[str, Any]) -> GraphPart:
    """A GraphModule computing ``outputs`` (name -> node) from the ``starts`` nodes (made its first
    inputs) and the graph inputs they still need, holding only the nodes that needs."""
    torch = require("torch")
    needed = _needed(outputs.values(), stop=frozenset(starts))
    graph = torch.fx.Graph()
    env: dict[Any, Any] = {}
    for node in starts:
        env[node] = graph.placeholder(node.name)
        env[node].meta = dict(node.meta)
    inputs = [node.name for node in starts]
    for node in placeholders:
        if node in needed:
            env[node] = graph.node_copy(node, env.__getitem__)
            inputs.append(node.target)
    for node in module.graph.nodes:
        if node in needed and node not in env:
            env[node] = graph.node_copy(node, env.__getitem__)
    graph.output({name: env[node] for name, node in outputs.items()})
    return GraphPart(torch.fx.GraphModule(module, graph), tuple(inputs))
