"""MODELOPS_GPU_INSTANCE_KIND, the operator's setting for GPU resources without a
CUDA device behind them: gpu by default, auto when asked, anything else refused
at start naming the variable."""

from __future__ import annotations

import pytest

from modelops.controllers.operator import gpu_instance_kind


def test_default_is_gpu_and_auto_is_taken():
    assert gpu_instance_kind({}) == "gpu"
    assert gpu_instance_kind({"MODELOPS_GPU_INSTANCE_KIND": ""}) == "gpu"
    assert gpu_instance_kind({"MODELOPS_GPU_INSTANCE_KIND": " auto "}) == "auto"


def test_an_unknown_kind_stops_the_operator_naming_the_variable():
    with pytest.raises(SystemExit, match="MODELOPS_GPU_INSTANCE_KIND"):
        gpu_instance_kind({"MODELOPS_GPU_INSTANCE_KIND": "cpu"})
