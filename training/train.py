"""Train one experiment: ``python -m training.train --config FILE [--experiment NAME] [--data-root DIR] [--out DIR]``.

``FILE`` is an experiment config (e.g. ``training/configs/base_demo.yaml``), or a study config with
``--experiment`` naming one of its experiments (``--config training/configs/study_demo.yaml
--experiment demo_late_vit``): that experiment is resolved as the study resolves it (base config +
overrides) and trained into the study's run directory, where ``fusionrt study`` finds it.

Under ``torchrun --nproc_per_node N`` the same command trains with DistributedDataParallel. Running
it again on an unfinished run directory resumes from ``last.pt``. A finished run leaves in its
directory ``best.pt``, ``last.pt``, ``metrics.jsonl``, ``config.yaml`` and ``result.json`` (valid and
test metrics of the best epoch, parameters and FLOPs per branch).

Example:
    >>> result = train("training/configs/study_demo.yaml", experiment="demo_late_vit")  # doctest: +SKIP
    >>> result["test"]["Has0_acc_2"]  # doctest: +SKIP
    0.93
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from training import distributed
from training.evaluate import evaluate
from training.experiment import ExperimentConfig
from training.study_config import load_experiment
from training.trainer import BEST, Trainer, write_json

RESULT = "result.json"


def train(
    config: ExperimentConfig | str | os.PathLike[str],
    *,
    experiment: str | None = None,
    data_root: str | None = None,
    out: str | os.PathLike[str] | None = None,
    max_epochs_this_run: int | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) ``config`` and, once finished, scores its best checkpoint.

    Args:
        config: An :class:`ExperimentConfig`, or the path of a YAML / TOML experiment or study config.
        experiment: With a study config, the experiment to train (see
            :func:`training.study_config.load_experiment`).
        data_root: Replaces ``config.data.root`` (a MOSI root or ``"generated"``).
        out: Replaces ``config.output_dir``.
        max_epochs_this_run: Stop after this many epochs of this call (see :meth:`Trainer.fit`).

    Returns:
        ``result.json``'s content when the run finished; otherwise ``{"finished": False, "epoch": n}``.
    """
    if not isinstance(config, ExperimentConfig):
        config = load_experiment(config, experiment)
    elif experiment is not None:
        raise ValueError(f"experiment={experiment!r} picks from a study file; config is already an ExperimentConfig")
    if data_root is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=str(data_root)))
    if out is not None:
        config = dataclasses.replace(config, output_dir=str(out))
    trainer = Trainer(config)
    trainer.fit(max_epochs_this_run)
    if not trainer.finished:
        return {"name": config.name, "finished": False, "epoch": trainer.epoch}
    best = config.run_dir / BEST
    best_epoch = max((r["epoch"] for r in trainer.history if r["best"]), default=None)
    result = {
        "name": config.name,
        "finished": True,
        "model": config.model.name,
        "strategy": trainer.fusion.strategy,
        "modalities": config.data.modalities,
        "run_dir": str(config.run_dir),
        "checkpoint": str(best),
        "epochs_run": trainer.epoch,
        "best_epoch": best_epoch,
        "stopped_early": trainer.stopped,
        "train_seconds": round(sum(r["seconds"] for r in trainer.history), 1),
        "valid": evaluate(best, "valid"),
        "test": evaluate(best, "test"),
        "complexity": trainer.model.complexity(text_length=config.data.text_max_length),
    }
    if distributed.is_main_process():
        write_json(config.run_dir / RESULT, result)
    return result


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description="Train a fusionrt experiment (resumes an unfinished run).",
        epilog="examples:\n"
               "  python -m training.train --config training/configs/base_demo.yaml\n"
               "  python -m training.train --config training/configs/study_demo.yaml --experiment demo_late_vit",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, type=Path,
                        help="experiment config, or a study config with --experiment (.yaml / .toml)")
    parser.add_argument("--experiment", default=None, metavar="NAME",
                        help="with a study config: the experiment to train (its base config + overrides), "
                             "in the study's run directory")
    parser.add_argument("--data-root", default=None, help='MOSI root or "generated" (overrides data.root)')
    parser.add_argument("--out", type=Path, default=None, help="run directory (overrides output_dir)")
    args = parser.parse_args(argv)
    try:
        config = load_experiment(args.config, args.experiment)
    except (FileNotFoundError, ValueError) as err:  # a config mistake: say it, without a traceback
        parser.error(str(err))
    try:
        result = train(config, data_root=args.data_root, out=args.out)
        if distributed.is_main_process():
            test = result["test"]
            print(f"[{result['name']}] best epoch {result['best_epoch']}: test Has0_acc_2={test['Has0_acc_2']:.4f} "
                  f"MAE={test['MAE']:.4f} Corr={test['Corr']:.4f} -> {Path(result['run_dir']) / RESULT}")
    finally:
        distributed.teardown()


if __name__ == "__main__":
    main()
