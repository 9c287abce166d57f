"""The ``model.py`` of fusionrt's Triton Python-backend models (copied into the model repository).

Triton's Python backend imports this file in its stub process and calls ``initialize`` once per
instance and ``execute`` with the requests of one dynamic batch. The work is
:mod:`fusionrt.serving.handlers`'; this file only converts between Triton's tensors and numpy. The
model's ``parameters`` in ``config.pbtxt`` choose the handler ("bundle" or "preprocess"), and the
bundle folder (relative to the model version folder), backend, precision and threads.
"""

from __future__ import annotations

import json
import os

import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

from fusionrt.serving.handlers import BundleHandler, PreprocessHandler
from fusionrt.serving.protocol import REQUEST_INPUTS


class TritonPythonModel:
    """One instance of the served model."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        bundle = os.path.join(args["model_repository"], args["model_version"], params.get("bundle", "bundle"))
        if params.get("handler", "bundle") == "preprocess":
            self.handler = PreprocessHandler(bundle)
        else:
            threads = int(params["threads"]) if params.get("threads") else None
            self.handler = BundleHandler(bundle, backend=params.get("backend", "auto"),
                                         precision=params.get("precision", "fp32"), threads=threads)
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list) -> list:
        batch = []
        for request in requests:
            inputs = {}
            for name, _, _ in REQUEST_INPUTS:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is not None:
                    inputs[name] = tensor.as_numpy()
            batch.append(inputs)
        responses = []
        for answer in self.handler(batch):
            if isinstance(answer, Exception):
                error = pb_utils.TritonError(f"{type(answer).__name__}: {answer}")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
            else:
                tensors = [pb_utils.Tensor(name, answer[name]) for name in self.outputs]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
