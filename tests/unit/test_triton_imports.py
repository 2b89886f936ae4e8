"""The operator side of modelops.triton / modelops.storage must not import torch."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "modelops.triton.config",
    "modelops.modeldir.layout",
    "modelops.modeldir.repository",
    "modelops.triton.packaging",
    "modelops.commands.package_cli",
    "modelops.commands.pull_cli",
    "modelops.commands.pull",
    "modelops.storage.publish",
]


def test_no_torch_at_import():
    code = (
        "import importlib, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "heavy = sorted({'torch', 'pytriton', 'tritonclient'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
