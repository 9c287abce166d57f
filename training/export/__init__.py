"""Export of trained fusion models as fusionrt bundles (ONNX fp32 / plugins / fp16 / int8, torch.export).

Example:
    >>> from training.export import export_bundle
    >>> manifest = export_bundle(model, "bundle", model_name="late_mobilenetv2", tokenizer="tokenizer.json",
    ...                          text_max_length=64, calibration=train_loader)  # doctest: +SKIP
"""

from .bundle_writer import export_bundle
from .cli import cli_main, export_checkpoint
from .errors import ExportError

__all__ = ["ExportError", "cli_main", "export_bundle", "export_checkpoint"]
