"""Export of trained fusion models as fusionrt bundles (ONNX fp32 / plugins / fp16 / int8, torch.export).

Example:
    >>> from training.export import ExportSettings, export_bundle
    >>> settings = ExportSettings(text_max_length=64)
    >>> manifest = export_bundle(model, "bundle", model_name="late_mobilenetv2", tokenizer="tokenizer.json",
    ...                          settings=settings, calibration=train_loader)  # doctest: +SKIP
"""

from .bundle_writer import export_bundle
from .cli import cli_main, export_checkpoint
from .errors import ExportError
from .settings import ExportSettings

__all__ = ["ExportError", "ExportSettings", "cli_main", "export_bundle", "export_checkpoint"]
