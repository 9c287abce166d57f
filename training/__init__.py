"""fusionrt's training world (PyTorch side): from data to a bundle.

==========================  ============================================================================
module                      what it holds
==========================  ============================================================================
``data/``                   CMU-MOSI (SDK ``.csd`` files, raw layouts, frames) and the generated sample set
``models/``                 fusion strategies, operators and encoders, picked by name from tables
``experiment``, ``configs``  an experiment's config; ``configs/`` holds a base per size and the studies
``trainer``, ``train``       the training loop (checkpoints, resume, DDP) and its command
``checkpoint``, ``loaders``  the one way to read a checkpoint and to build data loaders
``metrics``                 CMU-MOSI's metrics (MMSA definitions)
``export/``                 a trained model to a bundle (:class:`~training.export.ExportSettings`)
``study``, ``report``       the fusion study in one command and its report
``tables``, ``checks``      name tables and the wording of config checks
==========================  ============================================================================

The fused ops this side trains with live in the deployment package (``fusionrt.ops``), and the graph
I/O names in ``fusionrt.graph_io``, so training and deployment share one definition of each.
"""
