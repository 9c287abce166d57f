"""The ``fusionrt`` command line.

Example:
    $ fusionrt info
    $ fusionrt info runs/late/bundle
    $ fusionrt predict runs/late/bundle --text "what a film" --image face.png --backend onnxruntime
    $ fusionrt export --help
    $ fusionrt study --config training/configs/study_demo.yaml
    $ fusionrt report reports/demo --device-results orin_nano.json
    $ fusionrt build runs/late/bundle --precision fp16
    $ fusionrt bench runs/late/bundle --batch 1,8 --json late.json
    $ fusionrt triton runs/late/bundle --out triton-repo --max-batch-size 32
    $ fusionrt serve runs/late/bundle --http-port 8000
    $ fusionrt op-demo --batch 8
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import _C, backends, build_info, cuda_available
from . import pack as pack_cli
from .bundle import PRECISIONS, read_manifest
from .serving import cli as serving_cli
from .session import load

# Pooled feature widths of the study's text + image backbone pairs.
STUDY_FEATURE_SIZES = {
    "bert-base + mobilenetv2": (768, 1280),
    "bert-base + vit-base": (768, 768),
    "minilm + mobilenetv2": (384, 1280),
}

# Subcommands that live in the repository's training package: (module, entry point taking argv).
TRAINING_COMMANDS = {"export": ("training.export", "cli_main"), "study": ("training.study", "main"),
                     "report": ("training.report_command", "main")}


def _percentiles_us(fn: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    for _ in range(max(10, repeats // 10)):  # warm caches and OpenMP threads
        fn()
    samples = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        samples[i] = time.perf_counter() - start
    p50, p90, p99 = np.percentile(samples * 1e6, [50, 90, 99])
    return float(p50), float(p90), float(p99)


def _layer_norm_reference(inputs: Sequence[np.ndarray], weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    x = np.concatenate(inputs, axis=1).astype(np.float64)
    x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    return x * weight + bias


def op_demo(batch: int, repeats: int, seed: int) -> int:
    """Runs fused concat + LayerNorm at the study's feature sizes; prints error and latency."""
    rng = np.random.default_rng(seed)
    print(f"fused concat + LayerNorm, batch {batch}, float32, CPU ({repeats} timed runs)")
    print(f"{'features':<36}{'max |err|':>11}{'fused p50/p99 us':>20}{'numpy p50/p99 us':>20}")
    for label, widths in STUDY_FEATURE_SIZES.items():
        inputs = [rng.standard_normal((batch, w), dtype=np.float32) for w in widths]
        weight = rng.standard_normal(sum(widths), dtype=np.float32)
        bias = rng.standard_normal(sum(widths), dtype=np.float32)
        out = np.empty((batch, sum(widths)), np.float32)
        _C.fused_concat_layernorm(inputs, weight, bias, 1e-5, out)
        error = np.abs(out - _layer_norm_reference(inputs, weight, bias)).max()
        fused = _percentiles_us(lambda: _C.fused_concat_layernorm(inputs, weight, bias, 1e-5, out), repeats)
        numpy = _percentiles_us(lambda: _layer_norm_reference(inputs, weight, bias), repeats)
        print(
            f"{label + ' ' + '+'.join(map(str, widths)):<36}{error:>11.2e}"
            f"{fused[0]:>11.1f}/{fused[2]:<8.1f}{numpy[0]:>11.1f}/{numpy[2]:<8.1f}"
        )
    return 0


def info(bundle: str | None = None) -> int:
    """Prints what this build of fusionrt contains and what it can use now; with ``bundle``, also the
    bundle's manifest summary (inputs, outputs, variants with their metrics) and which backends can run it."""
    facts: dict[str, object] = {"build": build_info(), "cuda_available": cuda_available()}
    if bundle is not None:
        manifest = read_manifest(bundle, verify_hashes=False)  # a summary; `fusionrt verify` hashes
        summary = manifest.to_dict()
        del summary["files"], summary["config"]  # hashes and the training config are not a summary
        facts = {
            "bundle": bundle,
            **summary,
            "backends": {name: why or "available" for name, why in backends.available(manifest).items()},
            **facts,
        }
    print(json.dumps(facts, indent=2))
    return 0


def verify(bundle: str) -> int:
    """Checks every file of ``bundle`` against the manifest's hashes (``load`` checks only the files its
    backend reads) and prints a JSON summary; a fault raises BundleError naming the file."""
    from .weights import check_bundle_data

    started = time.perf_counter()
    manifest = read_manifest(bundle, verify_hashes=True)
    graphs = check_bundle_data(bundle, manifest)  # external data stays in each variant's weights files
    size = sum((Path(bundle) / name).stat().st_size for name in manifest.files)
    print(json.dumps({"bundle": bundle, "verified": True, "files": len(manifest.files), "graphs": len(graphs),
                      "targets": manifest.targets, "bytes": size,
                      "seconds": round(time.perf_counter() - started, 3)}, indent=2))
    return 0


def predict(bundle: str, texts: list[str] | None, images: list[str] | None, backend: str, device: str | None,
            precision: str, videos: list[str] | None = None) -> int:
    """Prints the predictions for ``texts`` / ``images`` or ``videos`` (paired in order; either modality may be
    absent) as JSON. A video clip is sampled as the model's training sampled clips (the manifest's record)."""
    session = load(bundle, backend=backend, device=device, precision=precision)
    predictions = session.predict(text=texts, image=images, video=videos)
    print(json.dumps({
        "backend": session.backend,
        "device": session.device,
        "precision": session.precision,
        "predictions": [p.to_dict() for p in predictions],
    }, indent=2))
    return 0


def training_checkout(cwd: Path | None = None, package: Path | None = None) -> Path | None:
    """The root of the fusionrt checkout whose ``training`` package ``fusionrt export`` / ``study`` run,
    or None when there is none.

    ``training`` sits at the repository root, outside the wheel, and the console script's ``sys.path``
    holds its own folder, not the current directory (``python -m`` adds that). So look where a checkout
    can be: first the one this fusionrt runs from (an editable install: ``package``, default this
    package's folder, is ``<root>/python/fusionrt``), so the training code matches the deployment code;
    then the current directory (``cwd``, default the process's) and the folders above it.

    Example:
        >>> training_checkout()  # doctest: +SKIP
        PosixPath('/home/me/fusionrt')
    """
    package = Path(__file__).resolve().parent if package is None else package
    cwd = Path.cwd() if cwd is None else cwd
    for root in (package.parent.parent, cwd, *cwd.parents):
        # Both halves of the repository: a stray "training" folder elsewhere is not ours.
        if (root / "training" / "__init__.py").is_file() and (root / "python" / "fusionrt").is_dir():
            return root
    return None


def training_command(command: str, argv: Sequence[str]) -> int:
    """Delegates ``export`` / ``study`` to the repository's ``training`` package (not in the wheel),
    found on ``sys.path`` or in the checkout :func:`training_checkout` finds."""
    module, function = TRAINING_COMMANDS[command]
    try:
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as error:
            root = training_checkout() if error.name == "training" else None
            if root is None:
                raise
            sys.path.append(str(root))  # appended: nothing installed is shadowed by the checkout's folders
            importlib.invalidate_caches()
            loaded = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name in ("training", module):
            print(f"fusionrt {command} needs the training package, which is not part of the installed fusionrt: "
                  f"run it in a fusionrt checkout (its root or a folder below), or install fusionrt from one "
                  f"(pip install -e .)", file=sys.stderr)
        else:  # the checkout is there, a training dependency is not
            print(f"fusionrt {command} needs {error.name!r}, which is not installed: pip install 'fusionrt[train]' "
                  f"(in a checkout: pip install -e '.[train]')", file=sys.stderr)
        return 2
    return getattr(loaded, function)(list(argv))


def add_build_command(commands: argparse._SubParsersAction) -> None:
    """``fusionrt build BUNDLE``: the bundle's TensorRT engine for this GPU, built or from its cache."""
    build = commands.add_parser("build", help="build (or find cached) the bundle's TensorRT engine for this GPU")
    build.add_argument("bundle", help="bundle directory")
    build.add_argument("--precision", default="fp32", choices=PRECISIONS)
    build.add_argument("--max-batch", type=int, default=8, help="largest batch the engine accepts (default 8)")
    build.add_argument("--opt-batch", type=int, default=1, help="batch the engine is tuned for (default 1)")
    build.add_argument("--workspace-mib", type=int, default=None, help="builder workspace limit in MiB")
    build.add_argument("--rebuild", action="store_true", help="build even when a valid engine is cached")
    build.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")


def build(args: argparse.Namespace) -> int:
    """Builds (or finds) the engine and prints its path and key as JSON."""
    from .backends.tensorrt.engine_builder import build_engine
    from .backends.tensorrt.engine_cache import EngineCache

    workspace = None if args.workspace_mib is None else args.workspace_mib << 20
    path = build_engine(args.bundle, precision=args.precision, max_batch=args.max_batch, opt_batch=args.opt_batch,
                        workspace=workspace, rebuild=args.rebuild, verbose=args.verbose)
    entry = EngineCache(args.bundle).read(path.with_suffix(".json"))
    print(json.dumps({"engine": str(path), "key": entry.key.to_dict(), "onnx": entry.onnx, "build": entry.build},
                     indent=2))
    return 0


def add_bench_command(commands: argparse._SubParsersAction) -> None:
    """``fusionrt bench BUNDLE...``: latency, cold start, memory (and energy on a Jetson) as JSON."""
    bench = commands.add_parser(
        "bench", help="measure bundles' latency (graph and end to end), cold start and memory; JSON report",
        description="Measures each bundle in its own process: p50/p90/p99 and throughput of the graph alone "
        "and of raw text + images end to end, per batch size; cold start; peak host (and GPU) memory; on a "
        "Jetson the power mode, clocks and energy per inference. Needs only fusionrt[onnx].")
    bench.add_argument("bundles", nargs="+", metavar="BUNDLE", help="bundle directories")
    bench.add_argument("--backend", default="auto", choices=("auto", *backends.NAMES))
    bench.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the backend's)")
    bench.add_argument("--precision", default="fp32", choices=PRECISIONS)
    bench.add_argument("--batch", default="1,8", type=_batch_sizes, help="batch sizes, comma-separated (default 1,8)")
    bench.add_argument("--threads", type=int, default=None,
                       help="ONNX Runtime intra-op threads (default: physical cores)")
    bench.add_argument("--execution", default="auto", choices=backends.EXECUTIONS)
    bench.add_argument("--seconds", type=float, default=2.0, help="timed seconds per path and batch (default 2)")
    bench.add_argument("--image-size", default="480x640", type=_image_hw,
                       help="raw frame HxW fed end to end, before the bundle's resize (default 480x640)")
    bench.add_argument("--json", metavar="OUT", default=None, help="write the report here ('-': stdout)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive batch sizes like 1,8")
    return sizes


def _image_hw(text: str) -> tuple[int, int]:
    height, _, width = text.lower().partition("x")
    if not (height.isdigit() and width.isdigit() and int(height) > 0 and int(width) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 480x640 (height x width)")
    return int(height), int(width)


def bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Runs the benchmark, prints a table and writes the JSON report; 1 when a bundle failed."""
    from .benchmarks import report as bench_report
    from .benchmarks.runner import bench as run_bench, write_json

    if args.seconds <= 0:
        raise ValueError(f"--seconds is {args.seconds}, expected > 0")
    result = run_bench(args.bundles, backend=args.backend, device=args.device, precision=args.precision,
                       batches=args.batch, threads=args.threads, execution=args.execution,
                       seconds=args.seconds, image_hw=args.image_size, show_progress=not args.no_progress,
                       argv=["fusionrt", *argv])
    print(bench_report.table(result), file=sys.stderr if args.json == "-" else sys.stdout)
    if args.json is not None:
        write_json(result, args.json)
    return 1 if any(r["error"] is not None for r in result["results"]) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fusionrt`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in TRAINING_COMMANDS:  # they parse their own arguments (and --help)
        return training_command(argv[0], argv[1:])
    parser = argparse.ArgumentParser(prog="fusionrt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    info_parser = commands.add_parser("info", help="build facts and available devices; with a bundle, its summary")
    info_parser.add_argument("bundle", nargs="?", help="bundle directory")
    check = commands.add_parser("verify", help="check every file of a bundle against its manifest's hashes")
    check.add_argument("bundle", help="bundle directory")
    run = commands.add_parser("predict", help="predict sentiment from raw text and images with a bundle (JSON)")
    run.add_argument("bundle", help="bundle directory")
    run.add_argument("--text", action="append", help="text of a sample (repeat for a batch)")
    run.add_argument("--image", action="append", help="image file of a sample (repeat for a batch)")
    run.add_argument("--video", action="append", help="video clip of a sample, instead of --image (repeat for a batch)")
    run.add_argument("--backend", default="auto", choices=("auto", *backends.NAMES))
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the backend's)")
    run.add_argument("--precision", default="fp32", choices=PRECISIONS)
    commands.add_parser("export", help="export a trained model to a bundle (from a fusionrt checkout)", add_help=False)
    commands.add_parser("study", help="train, export, score and time a fusion study; write its report "
                        "(from a fusionrt checkout)", add_help=False)
    commands.add_parser("report", help="rebuild a study report with latency measured on target devices "
                        "(from a fusionrt checkout)", add_help=False)
    add_build_command(commands)
    add_bench_command(commands)
    pack_cli.add_command(commands)
    serving_cli.add_commands(commands)
    demo = commands.add_parser("op-demo", help="run the fused concat + LayerNorm op on built-in data")
    demo.add_argument("--batch", type=int, default=1)
    demo.add_argument("--repeats", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return info(args.bundle)
        if args.command == "verify":
            return verify(args.bundle)
        if args.command == "predict":
            if not args.text and not args.image and not args.video:
                parser.error("predict needs --text, --image or both (--video instead of --image)")
            return predict(args.bundle, args.text, args.image, args.backend, args.device, args.precision, args.video)
        if args.command == "build":
            return build(args)
        if args.command == "bench":
            return bench(args, argv)
        if args.command == "pack":
            return pack_cli.command(args)
        if args.command in ("triton", "serve"):
            return serving_cli.run(args)
    except (ValueError, RuntimeError, ImportError, OSError) as error:  # BundleError is a ValueError
        print(f"fusionrt {args.command}: error: {error}", file=sys.stderr)
        return 1
    return op_demo(args.batch, args.repeats, args.seed)


if __name__ == "__main__":
    sys.exit(main())
