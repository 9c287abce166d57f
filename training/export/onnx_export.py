"""FusionModel -> ``torch.export`` program -> ONNX (standard ops or plugin nodes), with the checks export makes.

Example:
    >>> program, outputs = export_program(model, text_length=64)  # doctest: +SKIP
    >>> with decompose_once():  # both graphs from one decomposition of the program
    ...     write_onnx(program, "model.onnx", list(outputs), plugins=False)  # doctest: +SKIP
    ...     write_onnx(program, "model.plugins.onnx", list(outputs), plugins=True)  # doctest: +SKIP
    >>> check_parity(model, "model.onnx", text_length=64)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import onnx
import torch

import fusionrt.ops  # noqa: F401  registers torch.ops.fusionrt.*, which the models call
from fusionrt.graph_io import INPUT_NAMES
from fusionrt.onnx_ops import OPSET, translation_table

from .errors import ExportError
from .lowerings import ATEN_LOWERINGS

#: Largest |torch - ONNX Runtime| allowed on any fp32 output element.
PARITY_ATOL = 1e-4


def export_program(
    model: torch.nn.Module, text_length: int
) -> tuple[torch.export.ExportedProgram, dict[str, torch.Tensor]]:
    """``torch.export`` of an eval-mode model with a dynamic batch and a fixed text length.

    Returns the program and the model's outputs on the example inputs (their order is the graph's).
    """
    # Batch 2, not 1: torch.export specialises a dimension it sees as 1.
    example = model.example_inputs(batch=2, text_length=text_length)
    batch = torch.export.Dim("batch")
    dynamic = {name: {0: batch} for name in INPUT_NAMES}
    with torch.no_grad():
        outputs = model(*example)
        program = torch.export.export(model, example, dynamic_shapes=dynamic, strict=False)
    return program, outputs


def write_onnx(
    program: torch.export.ExportedProgram, path: str | os.PathLike[str], output_names: Sequence[str], plugins: bool
) -> None:
    """Writes ``program`` as ONNX at opset :data:`~fusionrt.onnx_ops.OPSET` and checks it (``full_check``).

    ``plugins`` lowers fusionrt ops to TensorRT plugin nodes instead of standard ONNX ops; aten ops
    whose default lowering ONNX Runtime cannot fuse get :data:`~.lowerings.ATEN_LOWERINGS`.
    """
    with _quiet_constant_folding():
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            opset_version=OPSET,
            input_names=list(INPUT_NAMES),
            output_names=list(output_names),
            custom_translation_table={**translation_table(plugins=plugins), **ATEN_LOWERINGS},
            verbose=False,
        )
    onnx_program.save(str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"{os.path.basename(path)} fails the ONNX checker: {error}") from error


#: Where ``torch.onnx.export`` decomposes a program for its registry (a private module: if it moves,
#: :func:`decompose_once` does nothing and every export decomposes as before).
_DECOMPOSER = ("torch.onnx._internal.exporter._fx_passes", "decompose_with_registry")


@contextlib.contextmanager
def decompose_once() -> Iterator[None]:
    """Within it, ``torch.onnx.export`` decomposes a program once per decomposition table and reuses the
    result (a copy each time, since the exporter edits the program it gets) for further graphs.

    Why: decomposition re-traces the whole program and is most of an export's time (11 of 15 s for a
    demo model here, where translating to ONNX takes 0.5 s), and the standard and plugin graphs of one
    model need the same decomposition: their translation tables implement the same fusionrt ops.
    """
    try:
        module = importlib.import_module(_DECOMPOSER[0])
        decompose: Callable[..., Any] = getattr(module, _DECOMPOSER[1])
        from torch.onnx._internal.exporter import _decomp  # same private package as the decomposer
        implemented = _decomp.get_onnx_implemented_overloads
    except (ImportError, AttributeError):
        yield
        return
    done: dict[tuple[int, frozenset], tuple[torch.export.ExportedProgram, torch.export.ExportedProgram]] = {}

    def reuse(program: torch.export.ExportedProgram, registry: Any) -> torch.export.ExportedProgram:
        key = (id(program), frozenset(implemented(registry)))
        if key not in done:  # the program is kept with its result, so its id is not reused meanwhile
            done[key] = (program, decompose(program, registry))
        return copy.deepcopy(done[key][1])

    setattr(module, _DECOMPOSER[1], reuse)
    try:
        yield
    finally:
        setattr(module, _DECOMPOSER[1], decompose)


@contextlib.contextmanager
def _quiet_constant_folding() -> Iterator[None]:
    """Silences onnxscript's constant folder, which warns for each node it tries and fails to evaluate
    (e.g. reshapes of the stride-0 placeholder rows) and leaves that node as it was: harmless, and the
    parity check below proves the graph right, but dozens of "Evaluation failed" lines per export."""
    folder = logging.getLogger("onnxscript.optimizer._constant_folding")
    level = folder.level
    folder.setLevel(logging.ERROR)
    try:
        yield
    finally:
        folder.setLevel(level)


def check_parity(
    model: torch.nn.Module,
    onnx_path: str | os.PathLike[str],
    text_length: int,
    batches: Sequence[int] = (1, 3),
    atol: float = PARITY_ATOL,
) -> float:
    """Runs ``model`` and the ONNX graph on ONNX Runtime (CPU) on fresh random inputs of each batch size.

    Returns the largest absolute difference over all outputs; raises :class:`ExportError` above ``atol``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in batches:
        inputs = model.example_inputs(batch=batch, text_length=text_length)
        with torch.no_grad():
            expected = model(*inputs)
        got = session.run(list(expected), {n: t.cpu().numpy() for n, t in zip(INPUT_NAMES, inputs)})
        for (name, want), have in zip(expected.items(), got):
            diff = float(np.max(np.abs(want.cpu().numpy() - have), initial=0.0))
            if not diff <= atol:  # also catches NaN
                raise ExportError(
                    f"{os.path.basename(onnx_path)}: output {name!r} differs from torch by {diff:.3g} at batch "
                    f"{batch}, expected <= {atol:g}"
                )
            worst = max(worst, diff)
    return worst
