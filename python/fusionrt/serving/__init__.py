"""Serving bundles with NVIDIA Triton Inference Server.

=================  ======================================================================================
module             what it holds
=================  ======================================================================================
``repository``     :func:`write_repository`: a Triton model repository from a bundle (``fusionrt triton``)
``config``         ``config.pbtxt`` text from the manifest's input / output specs
``protocol``       the served model's inputs and outputs, and request decoding
``handlers``       what the served Python models do with a batch of requests (Triton-free)
``triton_model``   the Python backend's ``model.py`` (copied into the repository; imported by Triton)
``server``         starting and stopping ``tritonserver`` on free loopback ports (``fusionrt serve``)
=================  ======================================================================================

Only the standard library and numpy are imported here; the submodules import what they need.

Example:
    >>> from fusionrt.serving.repository import write_repository  # doctest: +SKIP
    >>> write_repository("bundle", "repo")  # doctest: +SKIP
    ['late_tiny']
"""
