"""Lean bundles: the graphs the targets need, each weight stored once.

After the exporter has written self-contained graphs (the fp16 and int8 conversions and the checks
read them whole), :func:`make_lean` drops the graphs no target runtime reads, moves each precision's
tensors into its one weights file (:func:`fusionrt.weights.pool_graphs`: the standard and plugin graph,
and the two int8 graphs where equal, share bytes; an int8 or fp16 tensor equal to an fp32 one is read
from the fp32 file, not stored again), and saves the torch program without weights: a
table inside it locates each of its tensors in the fp32 weights file, mostly at the very bytes of an
ONNX initializer (:mod:`fusionrt.backends.torch_state`).

Example:
    >>> variants = make_lean(root, variants, ("onnxruntime",), program=None)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from fusionrt.backends.torch_state import TABLE_FORMAT, TABLE_NAME
from fusionrt.bundle import WEIGHTS_FILES, Variant
from fusionrt.weights import Pool, pool_graphs


def make_lean(root: Path, variants: Mapping[str, Variant], targets: Sequence[str],
              program: torch.export.ExportedProgram | None, program_file: str) -> None:
    """Rewrites the bundle being built at ``root`` for ``targets`` (runtime names); sets each variant's
    ``weights`` and ``shared_weights``. ``program`` (saved to ``program_file``) only when "torch" is a target."""
    keep: set[str] = set()
    for variant in variants.values():
        if "tensorrt" in targets:
            keep.update(g for g in (variant.onnx, variant.plugins_onnx) if g is not None)
        if "onnxruntime" in targets:
            keep.add(variant.onnxruntime_file)
    pools: dict[str, Pool] = {}
    # fp32 first (PRECISIONS order): the other precisions read their tensors equal to fp32's from its file.
    for precision, variant in variants.items():
        graphs = [g for g in dict.fromkeys((variant.onnx, variant.plugins_onnx, variant.onnxruntime_onnx)) if g]
        for graph in graphs:
            if graph not in keep:
                (root / graph).unlink()
        kept = {g: root / g for g in graphs if g in keep}
        if kept or (precision == "fp32" and program is not None):
            variant.weights = WEIGHTS_FILES[precision]
            pools[precision] = pool_graphs(kept, root, variant.weights, shared=pools.get("fp32"))
            if pools[precision].reads_shared:
                variant.shared_weights = pools["fp32"].path.name
    if program is not None:
        save_program(program, root / program_file, pools["fp32"])


def save_program(program: torch.export.ExportedProgram, path: Path, pool: Pool) -> None:
    """Saves ``program`` to ``path`` with one-element placeholders for its tensors, whose bytes go to
    ``pool`` (where equal bytes, or their transpose, are there already, they are referenced, not added)."""
    groups = {"state_dict": program.state_dict, "constants": program.constants}
    saved = {group: dict(tensors) for group, tensors in groups.items()}
    table: dict = {"format": TABLE_FORMAT, "weights": pool.path.name, "state_dict": {}, "constants": {}}
    try:
        for group, tensors in groups.items():
            for name, tensor in list(tensors.items()):
                if not isinstance(tensor, torch.Tensor):
                    continue
                table[group][name] = _locate(tensor.detach(), pool)
                placeholder = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)
                tensors[name] = (torch.nn.Parameter(placeholder, requires_grad=False)
                                 if isinstance(tensor, torch.nn.Parameter) else placeholder)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No complete tensor found")
            torch.export.save(program, str(path), extra_files={TABLE_NAME: json.dumps(table, sort_keys=True)})
    finally:  # the caller's program keeps its weights
        for group, tensors in groups.items():
            tensors.update(saved[group])


def _locate(tensor: torch.Tensor, pool: Pool) -> dict:
    """The table entry of ``tensor``: its bytes in ``pool`` (found as they are, or transposed, else added)."""
    tensor = tensor.cpu().contiguous()
    entry = {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape), "transposed": False}
    data = tensor.numpy().tobytes()
    found = pool.find(data)
    if found is None and tensor.dim() == 2:
        # The ONNX exporter may keep a Linear weight as its transpose (folded into the MatMul's initializer).
        found = pool.find(tensor.T.contiguous().numpy().tobytes())
        entry["transposed"] = found is not None
    offset, _ = found if found is not None else pool.add(data)
    entry["offset"] = offset
    return entry
