"""Served (Triton, HTTP and gRPC) against in-process ``Session.predict``: throughput and per-request
p50 / p99 latency at batch 1, one client at a time and with 32 concurrent clients.

Each path runs as one block of requests (never interleaved with another path), after a warm-up. Every
request is one sample: random text and a random uint8 HWC image (sent as ``image_array``, so the
server and the in-process loop do the same pre-processing work). Needs the serve environment
(``make serve-env``) and tritonclient (the dev extra).

Usage:
    .venv/bin/python bench/serving_latency.py BUNDLE [--requests 400] [--clients 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import fusionrt
from fusionrt.serving import server as triton
from fusionrt.serving.repository import write_repository

WORDS = ["great", "film", "awful", "boring", "wonderful", "plot", "the", "acting", "was", "not"]
MODEL = "bench"


def samples(count: int, size: int, seed: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(" ".join(rng.choice(WORDS, rng.integers(3, 12))), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            for _ in range(count)]


def timed_block(name: str, call, work: list, clients: int) -> dict:
    """Runs ``call(sample)`` over ``work`` with ``clients`` threads; returns throughput and latency stats."""
    for sample in work[: max(8, clients)]:  # warm-up: sessions, connections, threads
        call(sample)
    latencies = np.empty(len(work))
    progress = tqdm(total=len(work), desc=name, leave=False, file=sys.stderr)
    lock = threading.Lock()

    def one(i: int) -> None:
        start = time.perf_counter()
        call(work[i])
        latencies[i] = time.perf_counter() - start
        with lock:
            progress.update()

    started = time.perf_counter()
    if clients == 1:
        for i in range(len(work)):
            one(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(len(work))))
    wall = time.perf_counter() - started
    progress.close()
    p50, p99 = np.percentile(latencies * 1e3, [50, 99])
    return dict(path=name, clients=clients, requests=len(work), throughput_per_s=round(len(work) / wall, 1),
                p50_ms=round(float(p50), 2), p99_ms=round(float(p99), 2))


def client_call(protocol: str, url: str):
    """A function sending one sample; each thread keeps its own client (tritonclient's are not shared)."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    module = httpclient if protocol == "http" else grpcclient
    local = threading.local()

    def call(sample: tuple[str, np.ndarray]) -> None:
        if not hasattr(local, "client"):
            local.client = module.InferenceServerClient(url)
        text, image = sample
        t = module.InferInput("text", [1, 1], "BYTES")
        t.set_data_from_numpy(np.array([[text.encode()]], dtype=object))
        i = module.InferInput("image_array", [1, *image.shape], "UINT8")
        i.set_data_from_numpy(image[None])
        local.client.infer(MODEL, [t, i])

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    work = samples(args.requests, args.image_size, seed=0)
    session = fusionrt.load(args.bundle, backend="onnxruntime")

    def in_process(sample: tuple[str, np.ndarray]) -> None:
        session.predict(text=sample[0], image=sample[1])

    rows = [timed_block("in-process Session.predict", in_process, work, 1),
            timed_block("in-process Session.predict", in_process, work, args.clients)]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        write_repository(args.bundle, repo, name=MODEL, max_batch_size=args.clients, instances=args.instances,
                         runtime="onnxruntime")
        with triton.running(repo) as server:
            for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
                for clients in (1, args.clients):
                    rows.append(timed_block(f"Triton {protocol}", client_call(protocol, url), work, clients))
    print(f"{'path':<30}{'clients':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for row in rows:
        print(f"{row['path']:<30}{row['clients']:>8}{row['throughput_per_s']:>10}{row['p50_ms']:>10}{row['p99_ms']:>10}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
