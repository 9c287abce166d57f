"""Where an ONNX Runtime graph spends its time, and how close it runs to the GEMM throughput ORT itself
reaches at the model's own GEMM shapes (issue 16, item 2).

For one graph at batch 1 it prints:

* ONNX Runtime's profiler time per op type (the graph as ORT optimised it: fused and quantized ops
  under the names ORT runs them as);
* the model's GEMM work: every MatMul / Gemm / Conv of the graph as written, with the shapes one
  unoptimised run records (a convolution counts as its im2col GEMM, groups as a batch of GEMMs), in
  GOP (2 x multiply-adds);
* the references: those same GEMMs run as the int8 ops ONNX Runtime's int8 graph uses (uint8
  activations x int8 weights: ``MatMulInteger``, ``QLinearConv`` with the convolution's attributes),
  all of them in one graph, and the weight GEMMs alone in another, timed in the same process in blocks
  alternating with the graph's own (and the fp32 graph's);
* achieved GOP/s of each, the reference's time over the graph's (the share of the graph's time its
  GEMMs alone would take in int8: the rest is what item 2 cuts), and the graph's GOP/s over the weight
  GEMMs' (issue 16's measure, which also counts the CNN's and attention's slower GEMMs against the graph).

Usage::

    python bench/ort_profile.py BUNDLE [--precision int8] [--threads N] [--blocks 5] [--runs 20]
    python bench/ort_profile.py --graph model.int8.ort.onnx        # random batch-1 feeds from the graph
    FUSIONRT_BENCH_PAPER=1 python bench/ort_profile.py --export late_mobilenetv2 /tmp/late  # export, then profile

Times are per run at batch 1; read the ratio, measured in one process with alternating blocks, rather
than absolute times on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

#: Op types of the graph as written whose shapes define the model's GEMM work (ONNX Runtime's int8 graph
#: writes its weight MatMuls with their biases as MatMulIntegerToFloat, and each self-attention, its q / k / v
#: projection and both products, as one QAttention).
GEMM_OPS = ("MatMul", "Gemm", "Conv", "MatMulIntegerToFloat", "QAttention")
#: Op types as ORT runs them (after its fusions) whose kernels are GEMMs: the graph's GEMM work runs in
#: these. QAttention and Attention also run their softmax, which the reference does not count.
KERNEL_GEMM_OPS = frozenset({
    "MatMul", "FusedMatMul", "Gemm", "Conv", "FusedConv", "NchwcConv", "MatMulInteger", "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul", "MatMulNBits", "QLinearMatMul", "QGemm", "QLinearConv", "QAttention", "Attention",
})
#: ORT's profiler reports kernels with this suffix on their event names.
KERNEL_EVENT = "_kernel_time"


@dataclass(frozen=True)
class Gemm:
    """One GEMM of the model: ``batch`` products of (m x k) by (k x n); ``kind`` says where it comes from
    ("weight" MatMul / Gemm, "activation" MatMul of two activations, "conv"). A convolution counts as
    its im2col GEMM (groups as a batch) and keeps its input and weight shapes and attributes in ``conv``,
    so that the reference runs it as a convolution."""

    kind: str
    batch: int
    m: int
    k: int
    n: int
    conv: tuple[tuple[int, ...], tuple[int, ...], tuple[onnx.AttributeProto, ...]] | None = None

    @property
    def ops(self) -> int:
        """Operations (2 x multiply-adds)."""
        return 2 * self.batch * self.m * self.k * self.n


def _options(threads: int, level: ort.GraphOptimizationLevel, profile_dir: str | None = None) -> ort.SessionOptions:
    """The backend's latency options (sequential, ``threads`` intra-op threads) at optimisation ``level``."""
    from fusionrt.backends.onnxruntime.backend import session_options

    options = session_options(threads)
    options.graph_optimization_level = level
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(profile_dir) / "profile")
    return options


def _session(model: str | bytes, options: ort.SessionOptions) -> ort.InferenceSession:
    """A CPU session as the backend opens one (without the fusions it turns off on this host)."""
    from fusionrt.backends.onnxruntime.backend import inference_session

    return inference_session(model, options, "cpu")


def _kernel_events(
    graph: str | os.PathLike[str], feeds: Mapping[str, np.ndarray], threads: int, runs: int,
    level: ort.GraphOptimizationLevel,
) -> list[dict]:
    """ORT profiler kernel events of ``runs`` runs (after two warm-up runs, which are dropped)."""
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as scratch:
        session = _session(str(graph), _options(threads, level, scratch))
        for _ in range(2):
            session.run(None, dict(feeds))
        for _ in range(runs):
            session.run(None, dict(feeds))
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith(KERNEL_EVENT)]
    per_run = len(kernels) // (runs + 2)
    return kernels[2 * per_run:]  # every run executes the same kernels in the same order


def op_type_times(
    graph: str | os.PathLike[str], feeds: Mapping[str, np.ndarray], threads: int, runs: int = 20
) -> dict[str, tuple[float, int]]:
    """ms per run and kernel count per run of each op type ORT runs for ``graph`` (fully optimised)."""
    events = _kernel_events(graph, feeds, threads, runs, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    time_us: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for event in events:
        op = event["args"]["op_name"]
        time_us[op] += event["dur"]
        count[op] += 1
    return {op: (time_us[op] / runs / 1e3, count[op] // runs) for op in sorted(time_us, key=time_us.get, reverse=True)}


def _dims(shape: list[dict]) -> list[list[int]]:
    """The profiler's ``input_type_shape`` list ([{"float": [1, 64, 768]}, ...]) as lists of dims."""
    return [next(iter(entry.values())) for entry in shape]


def model_gemms(graph: str | os.PathLike[str], feeds: Mapping[str, np.ndarray]) -> list[Gemm]:
    """The GEMMs of ``graph`` as written (MatMul, Gemm, Conv; float or behind DequantizeLinear; and
    MatMulIntegerToFloat), with the shapes of one unoptimised run."""
    model = onnx.load(str(graph), load_external_data=False)
    initializer_dims = {i.name: list(i.dims) for i in model.graph.initializer}
    weights = set(initializer_dims)
    producers = {out: node for node in model.graph.node for out in node.output}

    def is_weight(tensor: str) -> bool:  # an initializer, or one behind a DequantizeLinear
        node = producers.get(tensor)
        return tensor in weights or (node is not None and node.op_type == "DequantizeLinear" and node.input[0] in weights)

    nodes = {node.name: node for node in model.graph.node if node.op_type in GEMM_OPS}
    events = _kernel_events(graph, feeds, threads=1, runs=1, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    gemms = []
    for event in events:
        op, args = event["args"]["op_name"], event["args"]
        if op not in GEMM_OPS:
            continue
        name = event["name"][: -len(KERNEL_EVENT)]
        # The profiler omits the initializers a kernel pre-packed (MatMul, Gemm weights): the shapes of
        # the first input and the output give the GEMM; a Conv's weight shape comes from the graph.
        shapes = _dims(args["input_type_shape"])
        a, out = shapes[0], _dims(args["output_type_shape"])[0]
        if op == "Conv":  # weight [Cout, Cin / groups, kh, kw]; output [N, Cout, H, W]
            b = initializer_dims.get(nodes[name].input[1]) or shapes[1]
            groups = a[1] // b[1]
            conv = (tuple(a), tuple(b), tuple(nodes[name].attribute))
            gemms.append(Gemm("conv", out[0] * groups, int(np.prod(out[2:])), int(np.prod(b[1:])), b[0] // groups, conv))
        elif op == "QAttention":  # input [B, S, Cin], weight [Cin, 3 C]: the projection, then per head q kᵀ and p v
            batch, tokens, width = a
            columns = initializer_dims[nodes[name].input[1]][1]
            heads = next(x.i for x in nodes[name].attribute if x.name == "num_heads")
            size = columns // 3 // heads
            gemms += [Gemm("weight", 1, batch * tokens, width, columns),
                      Gemm("activation", batch * heads, tokens, size, tokens),
                      Gemm("activation", batch * heads, tokens, tokens, size)]
        else:  # k from sizes, so transposed operands (Gemm's transA / transB) need no attributes
            n = out[-1]
            rows = int(np.prod(out)) // n
            batch = int(np.prod(out[:-2])) if len(out) > 2 else 1
            kind = "weight" if any(map(is_weight, nodes[name].input[:2])) else "activation"
            gemms.append(Gemm(kind, batch, rows // batch, int(np.prod(a)) // rows, n))
    return gemms


def reference_graph(gemms: list[Gemm], int8: bool = True) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A graph of one op per GEMM of ``gemms``, each reading a graph input of its shape, and feeds for it.

    ``int8``: the ops ONNX Runtime's int8 graph runs its GEMMs with (uint8 activations x int8 weights):
    ``MatMulInteger`` for MatMuls and Gemms, ``QLinearConv`` with the convolution's own attributes.
    Otherwise float ``MatMul`` and ``Conv``: the fp32 graph's GEMMs alone, the other end of the ratio.
    """
    rng = np.random.default_rng(0)
    nodes, inputs, outputs, initializers, feeds = [], [], [], [], {}

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(onnx.numpy_helper.from_array(value, name))
        return name

    def weights(shape: list[int]) -> np.ndarray:
        # 7-bit weights: x86 without VNNI multiplies u8 x s8 pairs into saturating int16 sums, which full
        # 8-bit weights can overflow; the values do not change the time, and the products stay exact.
        return rng.integers(-64, 64, shape, dtype=np.int8) if int8 else rng.standard_normal(shape, np.float32)

    def graph_input(shape: list[int]) -> str:
        name = "a_" + "x".join(map(str, shape))
        if name not in feeds:
            feeds[name] = rng.integers(0, 256, shape, dtype=np.uint8) if int8 else rng.standard_normal(shape, np.float32)
            element = onnx.TensorProto.UINT8 if int8 else onnx.TensorProto.FLOAT
            inputs.append(onnx.helper.make_tensor_value_info(name, element, shape))
        return name

    if int8 and any(g.conv for g in gemms):  # QLinearConv's scales and zero points
        scale, zero_u8, zero_s8 = (constant("scale", np.float32(0.01)), constant("zero_u8", np.uint8(128)),
                                   constant("zero_s8", np.int8(0)))
    for i, gemm in enumerate(gemms):
        weight = f"w{i}"
        if gemm.conv is not None:
            shape_x, shape_w, attributes = gemm.conv
            constant(weight, weights(list(shape_w)))
            x = graph_input(list(shape_x))
            node = onnx.helper.make_node(
                *(("QLinearConv", [x, scale, zero_u8, weight, scale, zero_s8, scale, zero_u8]) if int8
                  else ("Conv", [x, weight])), [f"y{i}"], name=f"gemm{i}")
            node.attribute.extend(attributes)
        else:
            batched = [gemm.batch] if gemm.batch > 1 else []
            constant(weight, weights([*batched, gemm.k, gemm.n]))
            node = onnx.helper.make_node("MatMulInteger" if int8 else "MatMul",
                                         [graph_input([*batched, gemm.m, gemm.k]), weight], [f"y{i}"], name=f"gemm{i}")
        nodes.append(node)
        element = (onnx.TensorProto.UINT8 if gemm.conv else onnx.TensorProto.INT32) if int8 else onnx.TensorProto.FLOAT
        outputs.append(onnx.helper.make_tensor_value_info(f"y{i}", element, None))
    graph = onnx.helper.make_graph(nodes, "gemm_reference", inputs, outputs, initializers)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), feeds


def alternating_blocks(
    calls: Mapping[str, Callable[[], object]], blocks: int, runs: int
) -> dict[str, list[float]]:
    """ms per call of each of ``calls``, timed in blocks of ``runs`` calls, the calls' blocks alternating
    (A-block, B-block, A-block, ...) so that a slow spell of a shared machine hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up: first runs allocate and pick kernels
        for _ in range(3):
            call()
    for _ in range(blocks):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(runs):
                call()
            times[name].append((time.perf_counter() - start) / runs * 1e3)
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """The ratio of two paths' times taken round by round: ``numerator[i] / denominator[i]`` for the blocks
    of round ``i`` of :func:`alternating_blocks`, summarised as median, min and max. Blocks of one round
    run seconds apart and see the same state of a shared machine, so the spread of these ratios says how
    far its noise moves the ratio, which the ratio of two medians alone does not show."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"paired_ratio needs the same number of blocks on both sides, got {len(numerator)} "
                         f"and {len(denominator)}")
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def gemm_kernel_share(per_op: Mapping[str, tuple[float, int]]) -> float:
    """The share of the profiled kernel time (:func:`op_type_times`) spent in GEMM kernels
    (:data:`KERNEL_GEMM_OPS`)."""
    total = sum(ms for ms, _ in per_op.values())
    if total <= 0:
        raise ValueError("the profile has no kernel time")
    return sum(ms for op, (ms, _) in per_op.items() if op in KERNEL_GEMM_OPS) / total


def report(graph: str | os.PathLike[str], feeds: Mapping[str, np.ndarray], threads: int, blocks: int = 5,
           runs: int = 20, fp32_graph: str | os.PathLike[str] | None = None) -> dict:
    """Profiles ``graph`` and times it against the int8 GEMM reference at its shapes (and against
    ``fp32_graph`` when given); prints the table and returns its figures."""
    per_op = op_type_times(graph, feeds, threads, runs)
    gemms = model_gemms(graph, feeds)
    # The references: every GEMM of the model in int8 (convolutions and attention's products included);
    # the weight GEMMs alone, the transformer-shaped products at which int8 kernels run fastest; and,
    # beside an fp32 graph, every GEMM in float, what the fp32 graph would take without the rest.
    weight = [g for g in gemms if g.kind == "weight"]
    references = {"reference": (gemms, True), "weight reference": (weight, True)}
    if fp32_graph is not None:
        references["fp32 reference"] = (gemms, False)
    options = _options(threads, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    graphs = {"graph": graph, **({"fp32": fp32_graph} if fp32_graph is not None else {})}
    sessions = {name: _session(str(path), options) for name, path in graphs.items()}
    feeds_of = {name: dict(feeds) for name in sessions}
    ops = {name: sum(g.ops for g in gemms) for name in sessions}
    for name, (subset, int8) in references.items():
        if subset:
            model, feeds_of[name] = reference_graph(subset, int8)
            sessions[name] = _session(model.SerializeToString(), options)
            ops[name] = sum(g.ops for g in subset)
    # Each reference's block right after the graph's, so that every pair in a round runs close together.
    order = ["graph", *references, "fp32"]
    calls = {name: (lambda s=sessions[name], f=feeds_of[name]: s.run(None, f)) for name in order if name in sessions}
    times = alternating_blocks(calls, blocks, runs)
    medians = {name: statistics.median(t) for name, t in times.items()}
    figures = {
        "graph": str(graph), "threads": threads, "gemm_gop": ops["graph"] / 1e9, "load_average": os.getloadavg(),
        "ms": {name: {"min": min(t), "median": medians[name]} for name, t in times.items()},
        "gop_s": {name: ops[name] / medians[name] / 1e6 for name in medians},
        "op_types": {op: {"ms": ms, "kernels": n} for op, (ms, n) in per_op.items()},
    }
    # Time ratio against every GEMM; throughput ratio against the weight GEMMs' rate (issue 16's measure).
    figures["of_reference"] = medians["reference"] / medians["graph"]
    figures["of_reference_paired"] = paired_ratio(times["reference"], times["graph"])
    # The gap split in two: the graph's GEMM kernels against the reference running the same work, and
    # the rest. The profiler's overhead is spread over kernels in proportion, so its shares carry over to
    # the unprofiled median. of_reference cannot pass gemm_kernels["of_reference"] by cutting the rest alone.
    share = gemm_kernel_share(per_op)
    gemm_ms = share * medians["graph"]
    figures["gemm_kernels"] = {"share": share, "ms": gemm_ms, "of_reference": medians["reference"] / gemm_ms}
    if "weight reference" in medians:
        figures["of_weight_reference"] = figures["gop_s"]["graph"] / figures["gop_s"]["weight reference"]
    if "fp32" in medians:
        figures["fp32_over_graph"] = medians["fp32"] / medians["graph"]
        # The ceiling of that speed-up were nothing but GEMMs left in either graph.
        figures["fp32_gemms_over_int8_gemms"] = medians["fp32 reference"] / medians["reference"]
    _print(figures, gemms)
    return figures


def _print(figures: dict, gemms: list[Gemm]) -> None:
    profiled = sum(v["ms"] for v in figures["op_types"].values())
    print(f"{figures['graph']}  ({figures['threads']} threads, load average "
          f"{' '.join(f'{x:.2f}' for x in figures['load_average'])})")
    print(f"  {'op type (as ORT runs it)':34s} {'ms/run':>8s} {'share':>6s} {'kernels':>8s}")
    for op, v in figures["op_types"].items():
        print(f"  {op:34s} {v['ms']:8.3f} {v['ms'] / profiled:6.1%} {v['kernels']:8d}")
    print(f"  {'(profiled kernels)':34s} {profiled:8.3f}")
    by_kind: dict[str, int] = defaultdict(int)
    for gemm in gemms:
        by_kind[gemm.kind] += gemm.ops
    kinds = ", ".join(f"{kind} {ops / 1e9:.2f}" for kind, ops in sorted(by_kind.items()))
    print(f"  GEMM work: {figures['gemm_gop']:.2f} GOP ({kinds}) in {len(gemms)} GEMMs")
    for name, t in figures["ms"].items():
        print(f"  {name:16s} min {t['min']:8.3f} ms  median {t['median']:8.3f} ms  {figures['gop_s'][name]:7.1f} GOP/s")
    paired = figures["of_reference_paired"]
    print(f"  reference time / graph time (share of the graph's time its GEMMs need): {figures['of_reference']:.1%}"
          f" (round by round: median {paired['median']:.1%}, {paired['min']:.1%}-{paired['max']:.1%})")
    kernels = figures["gemm_kernels"]
    print(f"  GEMM kernels: {kernels['share']:.1%} of the profile (~{kernels['ms']:.1f} ms); reference time / their time: "
          f"{kernels['of_reference']:.1%} (the most the share above reaches by cutting what is not GEMM)")
    if "of_weight_reference" in figures:
        print(f"  graph GOP/s / weight-GEMM reference GOP/s: {figures['of_weight_reference']:.1%}")
    if "fp32_over_graph" in figures:
        print(f"  fp32 / graph time: {figures['fp32_over_graph']:.2f}x (GEMMs alone, fp32 / int8 reference: "
              f"{figures['fp32_gemms_over_int8_gemms']:.2f}x)")


def graph_feeds(graph: str | os.PathLike[str], batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds for ``graph``'s inputs at ``batch`` (symbolic dims); ids below 1000, masks all ones."""
    rng = np.random.default_rng(seed)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    feeds = {}
    for value in session.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in value.shape]
        if value.type == "tensor(bool)":
            feeds[value.name] = np.ones(shape, bool)
        elif value.type == "tensor(int64)":
            feeds[value.name] = (np.ones(shape, np.int64) if "mask" in value.name
                                 else rng.integers(0, 1000, shape, dtype=np.int64))
        else:
            feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def export_study_bundle(name: str, path: Path) -> None:
    """Exports study model ``name`` (:func:`paper_size.study_model`: paper size under
    ``FUSIONRT_BENCH_PAPER=1``) with random weights to ``path``: fp32 and int8, ONNX Runtime's files
    only, int8 calibrated on 32 random samples (latency does not depend on the values)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: bench and training
    from bench.paper_size import TEXT_LENGTH, study_model
    from training.export import ExportSettings, export_bundle
    from training.models.text_encoder import default_text_source

    model = study_model(name)
    generator = torch.Generator().manual_seed(0)
    calibration = [dict(zip(("input_ids", "attention_mask", "image", "presence"),
                            model.example_inputs(8, TEXT_LENGTH, generator=generator))) for _ in range(4)]
    settings = ExportSettings(text_max_length=TEXT_LENGTH, precisions=("fp32", "int8"), calibration_samples=32,
                              calibration_method="minmax", targets=("onnxruntime",))
    export_bundle(model, path, model_name=name, tokenizer=f"{default_text_source()}/tokenizer.json",
                  settings=settings, calibration=calibration)


def main(argv: list[str] | None = None) -> None:
    from fusionrt.backends.onnxruntime.backend import physical_cores

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("bundle", nargs="?", type=Path, help="bundle directory")
    where.add_argument("--graph", type=Path, help="an ONNX file instead of a bundle (random batch-1 feeds)")
    where.add_argument("--export", nargs=2, metavar=("MODEL", "BUNDLE"),
                       help="export study model MODEL with random weights to BUNDLE first, then profile it")
    parser.add_argument("--fp32", type=Path, help="with --graph: the fp32 graph to time beside it")
    parser.add_argument("--precision", default="int8", help="the bundle's variant (default int8)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="runs per block and profiled runs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    threads = args.threads or physical_cores()
    if args.export is not None:
        args.bundle = Path(args.export[1])
        export_study_bundle(args.export[0], args.bundle)
    if args.bundle is not None:
        from fusionrt.bundle import read_manifest
        from fusionrt.feeds import random_feeds

        manifest = read_manifest(args.bundle)
        if args.precision not in manifest.variants:
            sys.exit(f"{args.bundle} has variants {sorted(manifest.variants)}, not {args.precision!r}")
        graph = args.bundle / manifest.variants[args.precision].onnxruntime_file
        fp32 = args.bundle / manifest.variants["fp32"].onnxruntime_file if args.precision != "fp32" else None
        feeds = random_feeds(manifest, batch=1)
    else:
        graph, fp32, feeds = args.graph, args.fp32, graph_feeds(args.graph)
    figures = report(graph, feeds, threads, args.blocks, args.runs, fp32)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
