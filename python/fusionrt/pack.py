"""Which files each runtime reads, and ``fusionrt pack``: a device copy of a bundle for one runtime.

A full bundle serves TensorRT, ONNX Runtime and torch. A device needs one of them:
``fusionrt pack BUNDLE --for onnxruntime --out DIR`` copies the manifest, the tokenizer and the graphs
that runtime runs (every precision), and writes each precision's weights file again with only the
tensors those graphs read (the TensorRT-only int8 tensors leave an ONNX Runtime copy, for example),
each once: an int8 tensor equal to an fp32 one the copy keeps is read from the fp32 file, as in the
source, wherever the source stored it (so a copy of a format 3 bundle is as lean as a new export).
The copy's manifest lists what it ships and says which runtime it serves (``targets``); loading it for
another runtime names the missing files (:meth:`fusionrt.backends.base.BackendType.missing_files`).
Needs the deployment install only (numpy, onnx), never torch.

Example:
    >>> pack("runs/late/bundle", "onnxruntime", "/media/ship/late")  # doctest: +SKIP
    >>> fusionrt.load("/media/ship/late", backend="onnxruntime", precision="int8")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path

from . import backends
from .atomic import atomic_directory
from .backends.base import PACK_TARGETS
from .backends.options import RunOptions
from .bundle import (
    FORMAT_VERSION,
    PRECISIONS,
    RUNTIMES,
    WEIGHTS_FILES,
    BundleError,
    Manifest,
    bundle_file,
    hash_files,
    read_manifest,
    write_manifest,
)
from .weights import Pool, check_graph_data, pool_graphs


def runtime_files(manifest: Manifest, runtime: str) -> list[str]:
    """The bundle files ``runtime`` reads to run any of the manifest's precisions (weights files included),
    in a stable order: what a bundle serving ``runtime`` must ship, beside the manifest and tokenizer."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}, expected one of {list(RUNTIMES)}")
    names: dict[str, None] = {}
    for precision in manifest.variants:
        if backends.supports(runtime, precision):
            names.update(dict.fromkeys(backends.files(runtime, manifest, RunOptions(precision=precision))))
    return list(names)


def pack(bundle: str | os.PathLike[str], target: str, out: str | os.PathLike[str], overwrite: bool = False) -> Manifest:
    """Writes at ``out`` a copy of ``bundle`` that serves ``target`` ("tensorrt" or "onnxruntime") alone.

    The source is verified in full first (every file's hash, every graph's external data), so a copy
    never carries a corrupt file on. The copy is built beside ``out`` and renamed into place.

    Raises:
        ValueError: ``target`` is not a runtime ``pack`` makes copies for.
        BundleError: the source is not a valid bundle, or lacks the files ``target`` needs.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    if target not in PACK_TARGETS:
        raise ValueError(f"pack makes copies for {' / '.join(PACK_TARGETS)}, got {target!r} "
                         "(a torch program is exported with `python -m training.export ... --targets torch`)")
    root = Path(bundle)
    manifest = read_manifest(root)  # every hash: what is copied must be what was exported
    reason = backends.backend_type(target).missing_files(manifest, RunOptions(precision="fp32"))
    if reason is not None:
        raise BundleError(f"cannot pack {root} for {target}: {reason}")
    needed = runtime_files(manifest, target)
    lean = dataclasses.replace(manifest, targets=[target], files={}, format_version=FORMAT_VERSION,
                               variants={p: dataclasses.replace(v) for p, v in manifest.variants.items()})
    with atomic_directory(out, overwrite=overwrite) as staging:
        pools: dict[str, Pool] = {}
        # fp32 first (a manifest read back lists its variants by name): the other precisions share its file.
        for precision in sorted(lean.variants, key=PRECISIONS.index):
            variant = lean.variants[precision]
            graphs = [g for g in (variant.onnx, variant.plugins_onnx, variant.onnxruntime_onnx) if g in needed]
            for graph in graphs:
                check_graph_data(root, graph, variant.weights_files)
            variant.weights = variant.shared_weights = None
            if not graphs:
                continue
            # Each precision's weights file again, holding only what the copied graphs read.
            variant.weights = WEIGHTS_FILES[precision]
            pools[precision] = pool_graphs({g: bundle_file(root, g, g) for g in graphs}, staging, variant.weights,
                                           shared=pools.get("fp32"))
            if pools[precision].reads_shared:
                variant.shared_weights = pools["fp32"].path.name
        tokenizer = manifest.text.tokenizer
        if tokenizer in manifest.files:
            shutil.copyfile(bundle_file(root, tokenizer, "manifest.text.tokenizer"), staging / tokenizer)
        lean.files = hash_files(staging, [str(f.relative_to(staging)) for f in staging.rglob("*") if f.is_file()])
        write_manifest(staging, lean)
    return lean


def add_command(commands: argparse._SubParsersAction) -> None:
    """``fusionrt pack BUNDLE --for RUNTIME --out DIR`` on the console script's parser."""
    parser = commands.add_parser(
        "pack", help="make a device copy of a bundle with only what one runtime needs",
        description="Copies the manifest, tokenizer and the graphs RUNTIME runs (every precision), with each "
        "precision's weights once; the copy loads for that runtime alone.")
    parser.add_argument("bundle", help="bundle directory (a full bundle, or one that serves the runtime)")
    parser.add_argument("--for", dest="target", required=True, choices=PACK_TARGETS, help="the runtime to serve")
    parser.add_argument("--out", required=True, help="directory to write the copy to")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing directory at --out")


def command(args: argparse.Namespace) -> int:
    """Runs ``fusionrt pack`` and prints the copy's files and size as JSON."""
    manifest = pack(args.bundle, args.target, args.out, overwrite=args.overwrite)
    size = sum((Path(args.out) / name).stat().st_size for name in manifest.files)
    print(json.dumps({"bundle": args.out, "targets": manifest.targets, "files": sorted(manifest.files),
                      "bytes": size}, indent=2))
    return 0
