"""Builds a bundle's TensorRT engine and caches it in the bundle: ``fusionrt build BUNDLE``.

Which graph and which builder settings a precision needs depends on the TensorRT generation:

============  =============================================  ==========================================
precision     TensorRT 10 (JetPack 6)                        TensorRT 11+ (JetPack 7, strongly typed)
============  =============================================  ==========================================
fp32          fp32 graph                                     fp32 graph
fp16          fp32 graph + ``BuilderFlag.FP16`` (TensorRT    ``model.fp16.onnx``: the graph's types
              picks fp16 kernels where they are faster)      decide (no FP16 flag exists any more)
int8          ``model.int8.onnx`` (Q/DQ) + ``BuilderFlag.    ``model.int8.onnx``: Q/DQ nodes decide
              INT8``: explicit quantization, no calibrator
============  =============================================  ==========================================

The graph is the variant's ``plugins_onnx`` (fusion ops as fusionrt plugin nodes, served by
``libfusionrt_plugins.so``) when this fusionrt was built with TensorRT, else its standard ``onnx``.
The manifest's dynamic ``batch`` dim becomes one optimisation profile (1 / ``opt_batch`` /
``max_batch``). Builds reuse and update a timing cache beside the engines, and engines land in the
bundle's ``engines/`` folder keyed by GPU model (name, compute capability, SM count, memory), TensorRT
version, precision, batches, ONNX hash and fusionrt version (:mod:`fusionrt.backends.tensorrt.engine_cache`),
so a second call returns at once and a changed ONNX graph, GPU module or fusionrt rebuilds.

A lean bundle's graph keeps its weights in the variant's weights file (ONNX external data);
``parse_from_file`` reads it relative to the graph's folder, so the bundle is parsed where it lies
(trtexec ``--onnx=bundle/model.plugins.onnx`` does the same). The weights file's hash is part of the key.

Example:
    >>> path = build_engine("runs/late/bundle", precision="fp16", max_batch=8)  # doctest: +SKIP
    >>> runner = fusionrt._C.EngineRunner(path, device=0, cuda_graphs=True)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import _C, build_info
from ..._optional import require
from ...atomic import write_bytes_atomic
from ...bundle import PRECISIONS, BundleError, Manifest, TensorSpec, read_manifest, sha256_file
from ...graph_io import BATCH
from ...weights import check_graph_data
from .engine_cache import EngineCache, EngineKey, graph_sha256

log = logging.getLogger("fusionrt")

PLUGIN_LIBRARY = Path(_C.__file__).with_name("libfusionrt_plugins.so")


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the graph or build the engine; the message carries TensorRT's errors."""


@dataclass(frozen=True)
class BuildPlan:
    """The graph (bundle-relative) and builder settings for one precision on one TensorRT generation."""

    onnx: str
    strongly_typed: bool
    flags: tuple[str, ...]  # trt.BuilderFlag member names
    uses_plugins: bool


def release_version(version: str) -> str:
    """The dotted numeric release of a package version: ``"10.3.0.30"`` stays, ``"10.3.0.post1"`` -> ``"10.3.0"``."""
    match = re.match(r"\d+(\.\d+)*", version)
    if match is None:
        raise ValueError(f"TensorRT version {version!r} does not start with a release number")
    return match.group(0)


def trt_major(version: str) -> int:
    """``"10.3.0.30"`` -> 10."""
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise ValueError(f"TensorRT version {version!r} does not start with a major number") from None


def plan_build(manifest: Manifest, precision: str, trt_version: str, plugins: bool) -> BuildPlan:
    """Which graph to parse and which builder flags to set (see the module's table).

    ``plugins``: whether ``libfusionrt_plugins.so`` can be loaded, so a variant's ``plugins_onnx`` is usable.
    Raises :class:`~fusionrt.bundle.BundleError` when the bundle lacks the variant a precision needs.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision is {precision!r}, expected one of {list(PRECISIONS)}")
    strongly_typed = trt_major(trt_version) >= 11
    # TensorRT 10 makes fp16 from the fp32 graph with a flag; everything else needs its own graph.
    variant_name = "fp32" if precision == "fp16" and not strongly_typed else precision
    variant = manifest.variants.get(variant_name)
    if variant is None:
        raise BundleError(
            f"the bundle has no {variant_name} variant, which {precision} engines need on TensorRT {trt_version}; "
            f"it has {sorted(manifest.variants)} (re-export with --precisions ... {variant_name})"
        )
    use_plugins = plugins and variant.plugins_onnx is not None
    flags: tuple[str, ...] = () if strongly_typed or precision == "fp32" else (precision.upper(),)
    return BuildPlan(variant.plugins_onnx if use_plugins else variant.onnx, strongly_typed, flags, use_plugins)


def profile_shapes(
    inputs: dict[str, TensorSpec], opt_batch: int, max_batch: int
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """``{input: (min, opt, max)}`` shapes of the one optimisation profile: ``batch`` ranges over
    1 / ``opt_batch`` / ``max_batch``, every other dim is the manifest's fixed size."""
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f"batch range is opt {opt_batch} / max {max_batch}, expected 1 <= opt <= max")
    shapes = {}
    for name, spec in inputs.items():
        for dim in spec.shape:
            if isinstance(dim, str) and dim != BATCH:
                raise BundleError(
                    f"input {name!r} has the symbolic dim {dim!r}; only {BATCH!r} may be dynamic in an engine"
                )
            if not isinstance(dim, str) and dim < 0:
                raise BundleError(f"input {name!r} has the dim {dim}, expected a size or {BATCH!r}")
        shapes[name] = tuple(tuple(b if d == BATCH else d for d in spec.shape) for b in (1, opt_batch, max_batch))
    return shapes


def device_facts() -> dict[str, Any]:
    """``fusionrt._C.cuda_device_properties`` of the GPU TensorRT builds for: CUDA device 0 as this
    process sees it (name, compute capability, multiprocessor count, total memory; see
    :meth:`EngineKey.for_gpu`)."""
    return _C.cuda_device_properties(0)


def build_engine(
    bundle: str | os.PathLike[str],
    precision: str = "fp32",
    max_batch: int = 8,
    opt_batch: int = 1,
    workspace: int | None = None,
    rebuild: bool = False,
    verbose: bool = False,
) -> Path:
    """The bundle's engine for ``precision`` on this GPU and TensorRT: from the cache, or built and cached.

    Args:
        bundle: bundle directory (manifest and hashes validated).
        precision: "fp32", "fp16" or "int8" (see the module's table for what each needs).
        max_batch, opt_batch: the batch range the engine accepts, and the batch it is tuned for
            (1: latency on the edge).
        workspace: builder workspace limit in bytes; None leaves TensorRT's default (device memory).
        rebuild: build even when a valid engine is cached.
        verbose: TensorRT's verbose log on stderr.

    Engines are specific to the GPU model; TensorRT builds for CUDA device 0 as this process sees it
    (choose another with ``CUDA_VISIBLE_DEVICES``). Returns the engine's path. Raises BundleError for a bundle that lacks what the precision needs,
    EngineBuildError with TensorRT's messages when parsing or building fails, and ImportError naming
    the extra when the tensorrt package is missing.

    Example:
        >>> build_engine("bundle", precision="fp16").name  # doctest: +SKIP
        'orin-nvgpu_sm87_16sms_62841mib_trt10.3.0_fp16_b1-8_3f2a9c1d_fusionrt0.1.0.engine'
    """
    trt = require("tensorrt")
    trt_version = release_version(trt.__version__)
    root = Path(bundle)
    manifest = read_manifest(root)
    plan = plan_build(manifest, precision, trt_version, plugins=PLUGIN_LIBRARY.is_file())
    onnx_hash = manifest.files.get(plan.onnx) or sha256_file(root / plan.onnx)
    weights = next((v.weights_files for v in manifest.variants.values() if plan.onnx in (v.onnx, v.plugins_onnx)), ())
    if weights:
        # Checked before TensorRT's parser follows the graph's external data.
        check_graph_data(root, plan.onnx, weights)
        onnx_hash = graph_sha256(onnx_hash, [manifest.files[name] for name in weights])
    key = EngineKey.for_gpu(device_facts(), trt_version, precision, onnx_hash, max_batch, opt_batch,
                            fusionrt_version=build_info()["version"])
    return cached_or_built(trt, EngineCache(root), key, root / plan.onnx, plan,
                           profile_shapes(manifest.inputs, opt_batch, max_batch), plan.onnx, workspace, rebuild, verbose)


def cached_or_built(trt: Any, cache: EngineCache, key: EngineKey, onnx: Path, plan: BuildPlan, shapes: dict[str, Any],
                    source: str, workspace: int | None = None, rebuild: bool = False, verbose: bool = False) -> Path:
    """The engine ``cache`` holds for ``key``, or the one built from graph ``onnx`` as ``plan`` says (batch
    profile ``shapes``) and stored there, replacing stale ones; ``source`` names the graph in the cache's
    record. The one find / build / store sequence of the whole engine and of the absent path's part engines."""
    cached = cache.find(key)
    if cached is not None and not rebuild:
        return cached
    built_with = build_info()["tensorrt"]
    if built_with is not None and not key.trt_version.startswith(built_with):
        log.warning(
            "building with the tensorrt package %s, but fusionrt's runtime is built against TensorRT %s; "
            "its EngineRunner will refuse this engine", key.trt_version, built_with,
        )
    for stale in cache.stale(key):
        log.info("fusionrt: %s is stale (its ONNX graph or fusionrt version changed) and will be replaced",
                 stale.path.name)
    for legacy in cache.legacy(key):
        log.info("fusionrt: %s is stale (an older fusionrt's key, without the GPU's SM count and memory) and "
                 "will be replaced", legacy.with_suffix(".engine").name)
    engine = _build(trt, onnx, plan, shapes, cache.timing_cache_path(key), workspace, verbose)
    settings = {"strongly_typed": plan.strongly_typed, "flags": list(plan.flags), "plugins": plan.uses_plugins,
                "workspace": workspace}
    return cache.store(key, engine, source, settings)


def _load_plugins(trt: Any) -> None:
    specs = _C.plugin_specs()
    cln = specs["concat_layernorm"]
    registry = trt.get_plugin_registry()
    # A library registers once per process; loading it again would be refused.
    if registry.get_creator(cln["name"], cln["version"], specs["namespace"]) is None:
        if registry.load_library(str(PLUGIN_LIBRARY)) is None:
            raise EngineBuildError(f"TensorRT could not load the plugin library {PLUGIN_LIBRARY}")


def _recording_logger(trt: Any, verbose: bool) -> Any:
    """A trt.ILogger that prints like trt.Logger and keeps the errors for the exception message."""

    class RecordingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.threshold = trt.ILogger.Severity.VERBOSE if verbose else trt.ILogger.Severity.WARNING

        def log(self, severity: Any, message: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(message)
            if int(severity) <= int(self.threshold):
                print(f"[fusionrt][TensorRT {severity.name.lower()}] {message}", file=sys.stderr)

    return RecordingLogger()


def _build(trt: Any, onnx: Path, plan: BuildPlan, shapes: dict[str, Any], timing_cache: Path,
           workspace: int | None, verbose: bool) -> bytes:
    """Parses ``onnx`` and builds the serialised engine, reusing and updating ``timing_cache``."""
    if plan.uses_plugins:
        _load_plugins(trt)
    logger = _recording_logger(trt, verbose)

    def failure(what: str) -> EngineBuildError:
        return EngineBuildError(f"{what}: {'; '.join(logger.errors) or 'TensorRT logged no error'}")

    builder = trt.Builder(logger)
    # TensorRT 11 is strongly typed whatever the flags (its STRONGLY_TYPED flag is deprecated and ignored).
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx.name}: {errors or 'no parser error recorded'}")
    graph_inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    if graph_inputs != set(shapes):
        raise BundleError(f"{onnx.name} has inputs {sorted(graph_inputs)}, the manifest {sorted(shapes)}")

    config = builder.create_builder_config()
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    profile = builder.create_optimization_profile()
    for name, (min_shape, opt_shape, max_shape) in shapes.items():
        profile.set_shape(name, min_shape, opt_shape, max_shape)
    config.add_optimization_profile(profile)
    # A timing cache from another GPU or TensorRT cannot be here: its file name carries both.
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise failure(f"TensorRT could not build an engine from {onnx.name}")
    write_bytes_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)
