"""``fusionrt triton`` (write a Triton model repository) and ``fusionrt serve`` (run one), registered
by :mod:`fusionrt.cli`.

Example:
    $ fusionrt triton runs/late/bundle --out triton-repo --max-batch-size 32 --instances 2
    $ fusionrt triton runs/late/bundle --out triton-repo --backend onnxruntime --precision int8
    $ fusionrt serve runs/late/bundle --http-port 8000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ..bundle import MANIFEST_NAME, PRECISIONS, read_manifest
from ..session import BACKENDS
from .repository import LAYOUTS, model_name, write_repository

#: Where ``fusionrt serve`` keeps the repositories it writes (one per bundle and options).
CACHE_VARIABLE = "FUSIONRT_SERVE_CACHE"


def _repository_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument("--name", default=None, help="model name clients call (default: the manifest's model name)")
    parser.add_argument("--max-batch-size", type=int, default=32, help="largest dynamic batch (default 32)")
    parser.add_argument("--instances", type=int, default=1, help="model instances (Triton instance_group count)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--runtime", default="auto", choices=BACKENDS,
                        help="the fusionrt backend the Python model loads (default auto: TensorRT where it can run)")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Registers ``triton`` and ``serve``."""
    triton = commands.add_parser("triton", help="write a Triton Inference Server model repository for a bundle")
    _repository_options(triton)
    triton.add_argument("--out", required=True, help="repository folder to write (replaced atomically)")
    triton.add_argument("--backend", default="python", choices=LAYOUTS,
                        help="python: one Python-backend model wrapping fusionrt.load; onnxruntime / tensorrt: "
                             "Triton's own backend behind a pre-processing ensemble")
    triton.add_argument("--engine", default=None, help="TensorRT engine file (`fusionrt build`) for --backend tensorrt")
    serve = commands.add_parser("serve", help="serve a bundle with Triton Inference Server (Ctrl-C stops it)")
    _repository_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    serve.add_argument("--http-port", type=int, default=8000, help="0: any free port")
    serve.add_argument("--grpc-port", type=int, default=8001, help="0: any free port")
    serve.add_argument("--metrics-port", type=int, default=8002, help="0: any free port")
    serve.add_argument("--env", default=None, help="virtualenv with nvidia-pytriton (default: see fusionrt.serving.server)")


def _repository_kwargs(args: argparse.Namespace) -> dict:
    return dict(name=args.name, max_batch_size=args.max_batch_size, instances=args.instances,
                precision=args.precision, runtime=args.runtime)


def cache_root() -> Path:
    """``$FUSIONRT_SERVE_CACHE``, else ``$XDG_CACHE_HOME/fusionrt/triton`` (``~/.cache/fusionrt/triton``)."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fusionrt" / "triton"


def cached_repository(bundle: str, options: dict) -> Path:
    """The repository serving ``bundle`` with ``options``, written on first use. Keyed by the manifest
    (which holds every file's hash) and the options, so a changed bundle gets a new one."""
    key = hashlib.sha256((Path(bundle) / MANIFEST_NAME).read_bytes() + json.dumps(options, sort_keys=True).encode())
    repo = cache_root() / key.hexdigest()[:16]
    if not repo.is_dir():
        write_repository(bundle, repo, **options)
    return repo


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def accept_stop_signals() -> None:
    """Makes Ctrl-C (SIGINT) and SIGTERM raise KeyboardInterrupt in this process, whatever its launcher
    left: a background job of a non-interactive shell starts with SIGINT ignored, and a signal mask
    that blocks them is inherited across exec (a test runner's, say), which would leave ``fusionrt
    serve`` and the tritonserver it starts deaf to the stop they document. Call it before starting
    children: they inherit the unblocked mask, and default handling where this one has a handler."""
    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    for stop in stops:
        signal.signal(stop, _interrupt)


def wait_interruptibly(process: subprocess.Popen, poll_seconds: float = 0.2) -> int:
    """``process.wait()`` that a signal handler of this process always interrupts.

    A blocking wait sleeps in ``waitpid``, which a signal only interrupts when the kernel delivers it
    to the main thread; it may pick any thread that does not block it (numpy's BLAS workers, say),
    and then the Python handler (Ctrl-C's KeyboardInterrupt) runs only once the child has exited.
    Waiting in short slices lets the main thread run it within ``poll_seconds``.
    """
    while True:
        try:
            return process.wait(timeout=poll_seconds)
        except subprocess.TimeoutExpired:
            continue


def run(args: argparse.Namespace) -> int:
    """Runs ``triton`` or ``serve``."""
    if args.command == "triton":
        names = write_repository(args.bundle, args.out, backend=args.backend, engine=args.engine,
                                 **_repository_kwargs(args))
        print(json.dumps({"repository": str(args.out), "models": names, "call": names[0]}, indent=2))
        return 0
    from . import server as triton
    from .server import free_ports

    accept_stop_signals()
    repo = cached_repository(args.bundle, _repository_kwargs(args))
    wanted = [args.http_port, args.grpc_port, args.metrics_port]
    spare = iter(free_ports(wanted.count(0)))
    ports = tuple(port or next(spare) for port in wanted)
    running = triton.start(repo, env=args.env, ports=ports, host=args.host,  # type: ignore[arg-type]
                           log=repo.with_name(repo.name + ".log"))
    try:  # from here on a Ctrl-C (or a service manager's SIGTERM), whenever it comes, stops the server
        name = model_name(read_manifest(args.bundle, verify_hashes=False), args.name)
        print(json.dumps({"model": name, "repository": str(repo), "http": f"{args.host}:{running.http_port}",
                          "grpc": f"{args.host}:{running.grpc_port}",
                          "metrics": f"http://{args.host}:{running.metrics_port}/metrics", "log": str(running.log)},
                         indent=2), flush=True)
        print("serving; Ctrl-C stops", file=sys.stderr, flush=True)
        code = wait_interruptibly(running.process)
        print(f"tritonserver exited with code {code}; its log ends:\n{running.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr, flush=True)
        return 0
    finally:
        running.stop()
