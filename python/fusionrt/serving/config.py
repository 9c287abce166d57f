"""Triton model configurations (``config.pbtxt``) from a bundle's manifest, as protobuf text format.

Triton reads a model's ``config.pbtxt`` as text format of its ``inference.ModelConfig`` message. It is
written here from plain data, without the protobuf classes (they ship in ``tritonclient``, which the
deployment install does not need); the tests parse every file written with Triton's own message.

The batch axis: a manifest spec's leading ``"batch"`` axis becomes Triton's implicit batch dimension
(``max_batch_size`` > 0), so ``dims`` are the rest of the shape. A spec with no other axis (``score``,
shape ``["batch"]``) is ``dims: [1]`` with ``reshape { shape: [] }``: Triton's documented way to give a
batched model a per-sample scalar, which clients then see as ``(batch, 1)``.

Example:
    >>> print(tensor("score", "float32", ["batch"]))
    {
      name: "score"
      data_type: TYPE_FP32
      dims: [ 1 ]
      reshape { shape: [ ] }
    }
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..bundle import TensorSpec
from ..graph_io import BATCH

#: numpy dtype name (the manifest's spelling) -> Triton's DataType.
TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "float64": "TYPE_FP64",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
    "bytes": "TYPE_STRING",
}


def _quote(text: str) -> str:
    # JSON string escapes are valid protobuf text-format escapes for the characters we write.
    return json.dumps(text)


def _dims(values: Sequence[int]) -> str:
    return "[ " + ", ".join(str(int(v)) for v in values) + " ]" if values else "[ ]"


def spec_dims(name: str, spec: TensorSpec) -> tuple[list[int], bool]:
    """``(dims, reshaped)`` of manifest spec ``spec`` under Triton's implicit batch dimension:
    ``reshaped`` is True when the spec has only the batch axis (``dims`` is then ``[1]``)."""
    if not spec.shape or spec.shape[0] != BATCH:
        raise ValueError(f"manifest spec {name!r} has shape {spec.shape}, expected a leading {BATCH!r} axis")
    rest = spec.shape[1:]
    for axis in rest:
        if not isinstance(axis, int) or axis < 1:
            raise ValueError(f"manifest spec {name!r} has shape {spec.shape}, expected fixed sizes after {BATCH!r}")
    return ([1], True) if not rest else ([int(a) for a in rest], False)


def tensor(name: str, dtype: str, shape: Sequence[int | str], optional: bool = False) -> str:
    """One ``input`` / ``output`` entry: ``shape`` is the manifest's (leading ``"batch"``) or, without
    it, Triton's ``dims`` as they are (``-1`` for a variable axis)."""
    if dtype not in TRITON_DTYPES:
        raise ValueError(f"tensor {name!r} has dtype {dtype!r}, expected one of {list(TRITON_DTYPES)}")
    if shape and shape[0] == BATCH:
        dims, reshaped = spec_dims(name, TensorSpec(dtype, list(shape)))
    else:
        dims, reshaped = [int(d) for d in shape], False
    lines = [f"  name: {_quote(name)}", f"  data_type: {TRITON_DTYPES[dtype]}", f"  dims: {_dims(dims)}"]
    if reshaped:
        lines.append("  reshape { shape: [ ] }")
    if optional:
        lines.append("  optional: true")
    return "{\n" + "\n".join(lines) + "\n}"


@dataclass
class ModelConfig:
    """What a generated ``config.pbtxt`` says; :meth:`text` renders it.

    ``backend`` ("python") or ``platform`` ("onnxruntime_onnx", "tensorrt_plan", "ensemble") names the
    runtime; ``inputs`` / ``outputs`` are rendered :func:`tensor` entries; ``ensemble_steps`` are
    ``(model, {step input: ensemble tensor}, {step output: ensemble tensor})``.
    """

    name: str
    max_batch_size: int
    inputs: list[str]
    outputs: list[str]
    backend: str | None = None
    platform: str | None = None
    instances: int | None = None
    instance_kind: str = "KIND_CPU"
    dynamic_batching: bool = True
    queue_delay_us: int = 1000
    parameters: dict[str, str] = field(default_factory=dict)
    ensemble_steps: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    default_model_filename: str | None = None

    def text(self) -> str:
        """The ``config.pbtxt`` text."""
        out = [f"name: {_quote(self.name)}"]
        if self.backend:
            out.append(f"backend: {_quote(self.backend)}")
        if self.platform:
            out.append(f"platform: {_quote(self.platform)}")
        if self.default_model_filename:
            out.append(f"default_model_filename: {_quote(self.default_model_filename)}")
        out.append(f"max_batch_size: {int(self.max_batch_size)}")
        out.append("input [\n" + ",\n".join(self.inputs) + "\n]")
        out.append("output [\n" + ",\n".join(self.outputs) + "\n]")
        if self.dynamic_batching and self.platform != "ensemble":
            out.append(f"dynamic_batching {{ max_queue_delay_microseconds: {int(self.queue_delay_us)} }}")
        if self.instances is not None:
            out.append(f"instance_group [ {{ count: {int(self.instances)} kind: {self.instance_kind} }} ]")
        for key, value in self.parameters.items():
            out.append(f"parameters {{ key: {_quote(key)} value {{ string_value: {_quote(value)} }} }}")
        if self.ensemble_steps:
            steps = []
            for model, inputs, outputs in self.ensemble_steps:
                maps = [f"    input_map {{ key: {_quote(k)} value: {_quote(v)} }}" for k, v in inputs.items()]
                maps += [f"    output_map {{ key: {_quote(k)} value: {_quote(v)} }}" for k, v in outputs.items()]
                steps.append(f"  {{\n    model_name: {_quote(model)}\n    model_version: -1\n" + "\n".join(maps) + "\n  }")
            out.append("ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}")
        return "\n".join(out) + "\n"
