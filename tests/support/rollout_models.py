"""Models for gated-rollout tests: a stable classifier and a candidate whose behaviour
a file next to it selects (agree, differ, error, slow <seconds>), both served by real
tritonserver processes through Triton's Python backend."""

from __future__ import annotations

from pathlib import Path

MODEL = "clf"
N_FEATURES = 20

CONFIG = f"""name: "{MODEL}"
backend: "python"
max_batch_size: 64
input [ {{ name: "INPUT0", data_type: TYPE_FP32, dims: [ {N_FEATURES} ] }} ]
output [ {{ name: "SCORES", data_type: TYPE_FP32, dims: [ 3 ] }} ]
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
"""

STABLE_PY = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("SCORES", x[:, :3].copy())]))
        return out
"""

CANDIDATE_PY = """
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils

MODE_FILE = os.path.join(os.path.dirname(__file__), "..", "mode")


def read_mode():
    with open(MODE_FILE) as f:
        return f.read().strip()


class TritonPythonModel:
    def execute(self, requests):
        mode = read_mode()
        if mode.startswith("slow"):
            # Sleep in steps: a test that resets the mode ends the backlog at once.
            deadline = time.monotonic() + float(mode.split()[1])
            while time.monotonic() < deadline and read_mode().startswith("slow"):
                time.sleep(0.05)
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()[:, :3]
            if mode == "error":
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("broken")))
                continue
            y = -x if mode == "differ" else x * 1.5 + 0.01
            y = pb_utils.Tensor("SCORES", y.astype(np.float32))
            out.append(pb_utils.InferenceResponse([y]))
        return out
"""


def write_repo(root: Path, version: str, code: str) -> Path:
    model = root / MODEL
    (model / version).mkdir(parents=True, exist_ok=True)
    (model / "config.pbtxt").write_text(CONFIG)
    (model / version / "model.py").write_text(code)
    (model / "mode").write_text("agree")
    return root
