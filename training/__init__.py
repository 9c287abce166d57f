"""fusionrt training world: data, models, trainer, metrics and export (PyTorch side)."""
