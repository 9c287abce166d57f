"""A Triton Inference Server model repository from a bundle: ``fusionrt triton BUNDLE --out REPO``.

Three layouts, by ``backend``:

* ``"python"`` (the default; runs on any Triton with the Python backend, Jetson's included): one model,
  ``NAME``, whose ``model.py`` wraps ``fusionrt.load`` on the bundle copied into it; fusionrt picks
  TensorRT where it can, ONNX Runtime otherwise (``runtime`` chooses).
* ``"onnxruntime"``: Triton's own ``onnxruntime_onnx`` backend runs the precision's ONNX Runtime graph
  (fp32 or int8), behind an ensemble ``NAME`` whose first step, ``NAME_preprocess`` (Python), tokenises
  and pre-processes images from the manifest.
* ``"tensorrt"``: the same ensemble over a ``tensorrt_plan`` model holding an engine ``fusionrt build``
  made on the serving GPU (``engine``). The engine's fusion plugins come from
  ``libfusionrt_plugins.so``, which the server loads as Triton documents for custom TensorRT plugins
  (``LD_PRELOAD``, or ``--backend-config=tensorrt,plugins=...``; see the README).

Every ``config.pbtxt`` comes from the manifest's input / output specs (:mod:`.config`). Clients talk to
``NAME`` alike in all three (:mod:`.protocol`).

Example:
    >>> write_repository("runs/late/bundle", "repo", name="late", max_batch_size=32)  # doctest: +SKIP
    ['late']
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..atomic import atomic_directory
from ..bundle import Manifest, bundle_file, read_manifest
from ..session import BACKENDS
from ..weights import check_graph_data, graph_data_files
from .config import ModelConfig, tensor
from .protocol import REQUEST_INPUTS, served_outputs

LAYOUTS = ("python", "onnxruntime", "tensorrt")
#: The version folder every generated model has.
VERSION = "1"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def model_name(manifest: Manifest, name: str | None) -> str:
    """The served model's name: ``name``, or the manifest's model name; checked to be a folder name."""
    name = name or manifest.model_name
    if not _NAME.match(name) or name in (".", ".."):
        raise ValueError(f"model name {name!r} is not usable as a Triton model name, expected letters, digits, '_', '.', '-'")
    return name


def _request_inputs() -> list[str]:
    return [tensor(name, dtype, dims, optional=True) for name, dtype, dims in REQUEST_INPUTS]


def _prediction_outputs(manifest: Manifest, dtype: str | None = None) -> list[str]:
    """The served prediction outputs as clients see them: scores ``(batch, 1)``, logits ``(batch, classes)``.

    No ``reshape``: the Python model answers in these shapes, and inside an ensemble tensors already
    have the shapes their producing model's ``dims`` give (the graph model's reshape is its own).
    """
    entries = []
    for name in served_outputs(list(manifest.outputs)):
        spec = manifest.outputs[name]
        entries.append(tensor(name, dtype or spec.dtype, [int(d) for d in spec.shape[1:]] or [1]))
    return entries


def _graph_files(root: Path, manifest: Manifest, precision: str) -> dict[str, Path]:
    """The ``precision`` variant's ONNX Runtime graph as ``model.onnx`` and the external-data files it
    reads, under their own names (Triton's ONNX Runtime backend reads them beside the graph). The graph
    may read only its variant's weights files, as everywhere (:func:`~fusionrt.weights.check_graph_data`)."""
    variant = manifest.variants[precision]
    graph = variant.onnxruntime_file
    check_graph_data(root, graph, variant.weights_files)
    files = {"model.onnx": bundle_file(root, graph, "the served graph")}
    for location in sorted(graph_data_files(root / graph)):
        files[location] = root / location
    return files


def _copy_bundle(bundle: Path, target: Path) -> None:
    """Copies the bundle. Not hard links: ONNX Runtime refuses external data files with several links
    (a hard-link attack, to it)."""
    shutil.copytree(bundle, target)


def _write_model(repo: Path, config: ModelConfig, files: dict[str, Path] | None = None,
                 bundle: Path | None = None) -> None:
    model = repo / config.name
    (model / VERSION).mkdir(parents=True)
    (model / "config.pbtxt").write_text(config.text())
    for name, source in (files or {}).items():
        shutil.copy2(source, model / VERSION / name)
    if bundle is not None:
        _copy_bundle(bundle, model / VERSION / "bundle")


def write_repository(
    bundle: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    max_batch_size: int = 32,
    instances: int = 1,
    precision: str = "fp32",
    backend: str = "python",
    runtime: str = "auto",
    engine: str | os.PathLike[str] | None = None,
    queue_delay_us: int = 1000,
    overwrite: bool = True,
) -> list[str]:
    """Writes a Triton model repository serving ``bundle`` to ``out`` (atomically: a reader never sees a
    half-written repository); returns the model names written, the one clients call first.

    Args:
        backend: the layout, one of :data:`LAYOUTS`.
        runtime: the fusionrt backend the Python model loads ("auto", "tensorrt", "onnxruntime", "torch").
        engine: the TensorRT engine file for ``backend="tensorrt"``.
        instances: model instances (Triton's ``instance_group`` count) of the model doing the inference.

    Raises:
        BundleError: the bundle is missing or malformed. ValueError: a bad option, naming it.
    """
    if backend not in LAYOUTS:
        raise ValueError(f"backend is {backend!r}, expected one of {list(LAYOUTS)}")
    if runtime not in BACKENDS:
        raise ValueError(f"runtime is {runtime!r}, expected one of {list(BACKENDS)}")
    if max_batch_size < 1 or instances < 1 or queue_delay_us < 0:
        raise ValueError(f"max_batch_size {max_batch_size} and instances {instances} must be >= 1, "
                         f"queue_delay_us {queue_delay_us} >= 0")
    root = Path(bundle)
    manifest = read_manifest(root, verify_hashes=True)  # the repository carries it: check every file now
    if precision not in manifest.variants:
        raise ValueError(f"bundle {root} has no {precision!r} variant; it has {sorted(manifest.variants)}")
    if backend == "tensorrt" and (engine is None or not Path(engine).is_file()):
        raise ValueError(f"backend 'tensorrt' needs engine=<an engine file `fusionrt build` made>, got {engine!r}")
    if backend != "tensorrt" and engine is not None:
        raise ValueError(f"engine is only used with backend 'tensorrt', got backend {backend!r}")
    name = model_name(manifest, name)
    template = Path(__file__).with_name("triton_model.py")
    common = dict(max_batch_size=max_batch_size, queue_delay_us=queue_delay_us)
    with atomic_directory(out, overwrite=overwrite) as repo:
        if backend == "python":
            config = ModelConfig(name, inputs=_request_inputs(), outputs=_prediction_outputs(manifest, "float32"),
                                 backend="python", instances=instances, **common,
                                 parameters=dict(handler="bundle", bundle="bundle", backend=runtime, precision=precision))
            _write_model(repo, config, {"model.py": template}, bundle=root)
            return [name]
        graph_inputs = [tensor(n, s.dtype, s.shape) for n, s in manifest.inputs.items()]
        graph_outputs = [tensor(n, s.dtype, s.shape) for n, s in manifest.outputs.items()]
        preprocess = ModelConfig(f"{name}_preprocess", inputs=_request_inputs(), outputs=graph_inputs,
                                 backend="python", instances=instances, **common,
                                 parameters=dict(handler="preprocess", bundle="bundle"))
        _write_model(repo, preprocess, {"model.py": template}, bundle=root)
        if backend == "onnxruntime":
            inference = ModelConfig(f"{name}_onnx", inputs=graph_inputs, outputs=graph_outputs,
                                    platform="onnxruntime_onnx", instances=instances, **common,
                                    default_model_filename="model.onnx")
            _write_model(repo, inference, _graph_files(root, manifest, precision))
        else:
            inference = ModelConfig(f"{name}_trt", inputs=graph_inputs, outputs=graph_outputs,
                                    platform="tensorrt_plan", instances=instances, instance_kind="KIND_GPU",
                                    **common, default_model_filename="model.plan")
            _write_model(repo, inference, {"model.plan": Path(engine)})
        # The ensemble answers with the graph's prediction outputs under their own names; the graph's
        # inputs travel as graph_<name>, since "image" already names the request's image bytes.
        served = served_outputs(list(manifest.outputs))
        ensemble = ModelConfig(
            name, inputs=_request_inputs(), outputs=_prediction_outputs(manifest),
            platform="ensemble", max_batch_size=max_batch_size, dynamic_batching=False,
            ensemble_steps=[
                (preprocess.name, {n: n for n, _, _ in REQUEST_INPUTS}, {n: f"graph_{n}" for n in manifest.inputs}),
                (inference.name, {n: f"graph_{n}" for n in manifest.inputs}, {n: n for n in served}),
            ])
        _write_model(repo, ensemble)
        return [name, preprocess.name, inference.name]


__all__ = ["LAYOUTS", "VERSION", "model_name", "write_repository"]
