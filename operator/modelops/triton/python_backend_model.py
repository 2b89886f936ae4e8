"""Triton python-backend model that serves a TorchScript file with torch.

Packaging copies this file verbatim as ``<version>/model.py``; it runs inside
Triton's python-backend stub, never in the operator. Everything it needs comes
from the model's ``config.pbtxt``: the input/output names and types, and the
``torchscript_file`` parameter naming the TorchScript file beside it.

Inputs are passed to the module positionally in config order; a tensor result
maps to the single output, a tuple/list to the outputs in order, a dict by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by the stub


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        # torch is imported here, not at module import, so a missing torch is
        # reported as this model's load error with the message below.
        import torch

        self._torch = torch
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        # args["model_repository"] is this model's directory, not the repository root.
        version_dir = Path(args["model_repository"]) / args["model_version"]
        if args.get("model_instance_kind") == "GPU":
            self._device = torch.device(f"cuda:{args['model_instance_device_id']}")
        else:
            self._device = torch.device("cpu")
        module_path = version_dir / params.get("torchscript_file", "model.pt")
        self._module = torch.jit.load(str(module_path), map_location=self._device).eval()
        self._inputs = [t["name"] for t in config["input"]]
        self._outputs = [
            (t["name"], pb_utils.triton_string_to_numpy(t["data_type"])) for t in config["output"]
        ]
        self._batching = int(config.get("max_batch_size", 0)) > 0

    def execute(self, requests: list[Any]) -> list[Any]:
        arrays = [
            [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self._inputs]
            for r in requests
        ]
        try:
            if self._batching and len(requests) > 1 and _same_item_shapes(arrays):
                # The dynamic batcher handed over several requests: run them as
                # one batch (that is what batching is for) and split the result.
                sizes = [a[0].shape[0] for a in arrays]
                joined = [np.concatenate(column) for column in zip(*arrays, strict=True)]
                outputs = self._run(joined)
                bounds = np.cumsum(sizes)[:-1]
                split = [np.split(o, bounds) for o in outputs]
                results = [[parts[i] for parts in split] for i in range(len(requests))]
            else:
                results = [self._run(a) for a in arrays]
        except Exception as err:
            error = pb_utils.TritonError(f"{type(err).__name__}: {err}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor(name, value.astype(dtype, copy=False))
                    for (name, dtype), value in zip(self._outputs, result, strict=True)
                ]
            )
            for result in results
        ]

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        # Triton's buffers are read-only; torch wants to own writable memory.
        tensors = [
            torch.from_numpy(a if a.flags.writeable else a.copy()).to(self._device) for a in inputs
        ]
        with torch.inference_mode():
            result = self._module(*tensors)
        if isinstance(result, dict):
            result = [result[name] for name, _ in self._outputs]
        elif not isinstance(result, list | tuple):
            result = [result]
        if len(result) != len(self._outputs):
            raise ValueError(
                f"model returned {len(result)} outputs, config has {len(self._outputs)}"
            )
        return [r.detach().cpu().numpy() for r in result]

    def finalize(self) -> None:
        self._module = None


def _same_item_shapes(arrays: list[list[np.ndarray]]) -> bool:
    """Whether all requests' tensors agree on every dimension but the batch one."""
    first = arrays[0]
    return all(
        a.shape[1:] == f.shape[1:]
        for request in arrays[1:]
        for a, f in zip(request, first, strict=True)
    )
