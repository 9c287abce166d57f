"""Score a training checkpoint on one fold: ``python -m training.evaluate --checkpoint FILE --fold test``.

Writes ``{"checkpoint", "fold", "data_root", "num_samples", "metrics"}`` as JSON (default
``<checkpoint dir>/eval_<fold>.json``) and prints the metrics.

Example:
    >>> metrics = evaluate("runs/demo_late_mobilenetv2/best.pt", "test")  # doctest: +SKIP
    >>> metrics["Has0_acc_2"]  # doctest: +SKIP
    0.93
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from training import distributed
from training.checkpoint import data_from_checkpoint, experiment_from_checkpoint, load_checkpoint, model_from_checkpoint
from training.data.mosi import FOLDS
from training.loaders import dataset_root, fold_loader, load_tokenizer, resolve_tokenizer
from training.trainer import autocast, predict, score_metrics, write_json


def evaluate(
    checkpoint: str | os.PathLike[str],
    fold: str = "test",
    *,
    data_root: str | None = None,
    batch_size: int | None = None,
    out: str | os.PathLike[str] | None = None,
) -> dict[str, float]:
    """Metrics (:func:`training.metrics.mosi_metrics` and the loss) of ``checkpoint`` on ``fold``.

    Args:
        checkpoint: A ``best.pt`` / ``last.pt`` written by the trainer.
        fold: ``train``, ``valid`` or ``test``.
        data_root: Another MOSI root (or ``"generated"``) than the one the run was trained on.
        batch_size: Overrides the run's batch size.
        out: Where to write the JSON report (not written when ``None``).
    """
    if fold not in FOLDS:
        raise ValueError(f"fold is {fold!r}, expected one of {FOLDS}")
    ckpt = load_checkpoint(checkpoint)
    experiment = experiment_from_checkpoint(ckpt)
    data = data_from_checkpoint(ckpt, root=data_root, batch_size=batch_size)
    device = distributed.setup()
    model = model_from_checkpoint(ckpt).to(device)
    root = dataset_root(data)
    tokenizer = load_tokenizer(resolve_tokenizer(data, model.config.text))
    loader = fold_loader(data, fold, tokenizer, root, shuffle=False, seed=experiment.seed)
    amp, _ = autocast(device, experiment.optim.amp)
    preds, labels = predict(model, loader, device, amp)
    metrics = score_metrics(preds, labels, experiment.optim.loss)
    if out is not None and distributed.is_main_process():
        report = {"checkpoint": str(checkpoint), "fold": fold, "data_root": str(root), "num_samples": len(preds),
                  "metrics": metrics}
        write_json(Path(out), report)
    return metrics


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Score a fusionrt training checkpoint on a MOSI fold.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="best.pt or last.pt of a run")
    parser.add_argument("--fold", default="test", choices=FOLDS)
    parser.add_argument("--data-root", default=None, help='MOSI root or "generated" (default: the run\'s)')
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default: <checkpoint dir>/eval_<fold>.json)")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else args.checkpoint.parent / f"eval_{args.fold}.json"
    try:
        metrics = evaluate(args.checkpoint, args.fold, data_root=args.data_root, batch_size=args.batch_size, out=out)
        if distributed.is_main_process():
            print(json.dumps(metrics, indent=2))
            print(f"wrote {out}")
    finally:
        distributed.teardown()


if __name__ == "__main__":
    main()
