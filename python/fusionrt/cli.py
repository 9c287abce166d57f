"""The ``fusionrt`` command line.

Example:
    $ fusionrt info
    $ fusionrt op-demo --batch 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from . import _C, build_info, cuda_available

# Pooled feature widths of the study's text + image backbone pairs.
STUDY_FEATURE_SIZES = {
    "bert-base + mobilenetv2": (768, 1280),
    "bert-base + vit-base": (768, 768),
    "minilm + mobilenetv2": (384, 1280),
}


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


def info() -> int:
    """Prints what this build of fusionrt contains and what it can use now."""
    print(json.dumps({"build": build_info(), "cuda_available": cuda_available()}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fusionrt`` console script."""
    parser = argparse.ArgumentParser(prog="fusionrt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="build facts and available devices")
    demo = commands.add_parser("op-demo", help="run the fused concat + LayerNorm op on built-in data")
    demo.add_argument("--batch", type=int, default=1)
    demo.add_argument("--repeats", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "info":
        return info()
    return op_demo(args.batch, args.repeats, args.seed)


if __name__ == "__main__":
    sys.exit(main())
