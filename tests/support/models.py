"""Tiny real models for tests (torch is imported only when a helper is called)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from modelops.triton.config import ModelSignature, TensorSpec

# The signature of the model script_linear() writes: y = W x + b, x in R^4, y in R^2.
LINEAR_SIGNATURE = ModelSignature(
    inputs=(TensorSpec(name="x", dtype="fp32", dims=(4,)),),
    outputs=(TensorSpec(name="y", dtype="fp32", dims=(2,)),),
)


def script_linear(path: Path, seed: int = 0) -> Any:
    """Save a TorchScript ``nn.Linear(4, 2)`` with seeded weights to ``path``; return it."""
    import torch

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        # torch 2.10+ deprecates TorchScript in favour of torch.export, but
        # TorchScript is what Triton's PyTorch backend loads.
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.script(torch.nn.Linear(4, 2).eval())
    path.parent.mkdir(parents=True, exist_ok=True)
    module.save(str(path))
    return module


def torch_reference(module: Any, inputs: Any) -> Any:
    """What the module computes for a numpy batch, as numpy (the expected Triton output)."""
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(inputs)).numpy()


DOUBLING_MODEL_PY = """\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            out = pb_utils.Tensor("OUTPUT", (x * 2).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
"""

DOUBLING_CONFIG = """\
backend: "python"
max_batch_size: 8
input [{ name: "INPUT", data_type: TYPE_FP32, dims: [ -1 ] }]
output [{ name: "OUTPUT", data_type: TYPE_FP32, dims: [ -1 ] }]
instance_group [{ count: 1, kind: KIND_CPU }]
"""


def write_doubling_model(
    repository: Path, name: str = "double", model_py: str | None = None
) -> Path:
    """A python-backend model (numpy only, loads in about a second): OUTPUT = 2 * INPUT.

    FP32, batched, any width. ``model_py`` replaces the model source (e.g. a broken one).
    """
    model_dir = repository / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(f'name: "{name}"\n' + DOUBLING_CONFIG)
    (model_dir / "1" / "model.py").write_text(
        model_py if model_py is not None else DOUBLING_MODEL_PY
    )
    return model_dir
