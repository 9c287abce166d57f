"""The ONNX Runtime backend: one ``InferenceSession`` per Session, tuned for batch-1 latency.

Threads: intra-op = physical cores the process may use (hyper-threads add contention, not speed,
to the small GEMMs these models run), inter-op 1 with sequential execution (the graphs are chains;
parallel branches would only fight the intra-op pool). ``run`` pre-resolves output names and does
nothing per call beyond ``InferenceSession.run``, which is thread-safe.

``execution="parallel"`` instead lets ONNX Runtime run independent nodes (late / intermediate fusion's
two backbones) at once: ORT_PARALLEL, 2 inter-op threads, the cores split between them. The
``"branches"`` mode (two sessions on two threads) is :mod:`fusionrt.backends.onnxruntime.branched`.

Example:
    >>> backend = OnnxRuntimeBackend(Path("bundle/model.onnx"), manifest, "cpu", threads=None)  # doctest: +SKIP
    >>> backend.run({"input_ids": ids, "attention_mask": mask, "image": image, "presence": presence})  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..._optional import require
from ...bundle import BundleError, Manifest
from ...weights import check_graph_data
from .fusions import slow_fusions

ort = require("onnxruntime")


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (Linux ``/proc/cpuinfo``; else all CPUs)."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    try:
        blocks = Path("/proc/cpuinfo").read_text().strip().split("\n\n")
    except OSError:
        return max(1, len(allowed))
    cores = set()
    for block in blocks:
        info = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        info = {key.strip(): value.strip() for key, value in info.items()}
        if int(info.get("processor", -1)) in allowed:
            # ARM (Jetson) lists no core ids: there each processor is a core.
            cores.add((info.get("physical id"), info.get("core id", info.get("processor"))))
    return max(1, len(cores) or len(allowed))


def provider_for(device: str) -> tuple[str, dict[str, Any]]:
    """The execution provider and its options for ``device`` ("cpu", "cuda", "cuda:1")."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return "CPUExecutionProvider", {}
    if kind == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                f"device {device!r} needs onnxruntime's CUDAExecutionProvider (pip install onnxruntime-gpu); "
                f"this onnxruntime has {ort.get_available_providers()}"
            )
        return "CUDAExecutionProvider", {"device_id": int(index or 0)}
    raise ValueError(f"device {device!r} is not supported by onnxruntime, expected 'cpu', 'cuda' or 'cuda:N'")


def session_options(intra_threads: int, parallel: bool = False, spinning: bool = True) -> ort.SessionOptions:
    """Session options tuned for latency: all graph optimisations, ``intra_threads`` intra-op threads, and
    sequential execution or (``parallel``) ORT_PARALLEL with 2 inter-op threads, one per fusion branch.
    ``spinning`` False makes idle intra-op threads sleep at once instead of spinning for the next op:
    for sessions that share the cores with another running session (concurrent branches)."""
    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = 2 if parallel else 1
    return options


def inference_session(model: str | bytes, options: ort.SessionOptions, device: str) -> ort.InferenceSession:
    """An ``InferenceSession`` of ``model`` (a path or the serialized graph) on ``device``, without the
    graph fusions whose fused kernel is slower on this host (:func:`~.fusions.slow_fusions`)."""
    provider = provider_for(device)
    return ort.InferenceSession(model, options, providers=[provider], disabled_optimizers=list(slow_fusions(provider[0])))


def check_graph(model: Path, manifest: Manifest) -> None:
    """Refuses ``model`` (a variant's ONNX file in its bundle) unless its external data stays in its
    variant's weights file (:func:`~fusionrt.weights.check_graph_data`): whoever opens the graph (a
    Session in any execution mode, the execution calibration) calls this before following that data."""
    variant = next((v for v in manifest.variants.values() if v.onnxruntime_file == model.name), None)
    check_graph_data(model.parent, model.name, variant.weights_files if variant else ())


class OnnxRuntimeBackend:
    """Runs one ONNX file of a bundle with ONNX Runtime, sequentially or with ORT_PARALLEL (``execution``)."""

    name = "onnxruntime"

    def __init__(
        self, model: Path, manifest: Manifest, device: str, threads: int | None, execution: str = "sequential"
    ) -> None:
        if execution not in ("sequential", "parallel"):
            raise ValueError(f"OnnxRuntimeBackend runs 'sequential' or 'parallel', got execution {execution!r}")
        cores = threads or physical_cores()
        parallel = execution == "parallel"
        # Parallel: the two inter-op threads each run one branch's nodes, so each gets half the cores.
        options = session_options(max(1, cores // 2) if parallel else cores, parallel)
        self.device = device
        self.execution = execution
        self.threads = cores
        check_graph(model, manifest)
        self._session = inference_session(str(model), options, device)
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        graph_inputs = [i.name for i in self._session.get_inputs()]
        if set(graph_inputs) != set(manifest.inputs) or set(self.output_names) != set(manifest.outputs):
            raise BundleError(
                f"{model.name} has inputs {graph_inputs} and outputs {list(self.output_names)}, expected "
                f"{list(manifest.inputs)} and {list(manifest.outputs)} (the manifest's)"
            )
        self._output_list = list(self.output_names)

    @staticmethod
    def dtype(name: str) -> np.dtype:
        """The numpy dtype called ``name``."""
        return np.dtype(name)

    def adopt(self, value: Any) -> np.ndarray:
        """A numpy view of ``value``: numpy as is, CPU torch tensors and other DLPack producers without a copy."""
        if isinstance(value, np.ndarray):
            return value
        if hasattr(value, "__dlpack__"):
            try:
                return np.from_dlpack(value)
            except (BufferError, RuntimeError, TypeError) as error:
                raise TypeError(
                    f"the onnxruntime backend on {self.device} takes host memory; got a "
                    f"{type(value).__name__} it cannot view ({error})"
                ) from None
        return np.asarray(value)

    def run(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Runs the graph; returns every graph output by name."""
        return dict(zip(self.output_names, self._session.run(self._output_list, feeds)))
