"""Applying deployment runtime settings to a packaged config.pbtxt (pure)."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from modelops.triton.config import (
    ModelSignature,
    RuntimeSettings,
    Target,
    TensorSpec,
    render_config,
)
from modelops.triton.config_patch import (
    ConfigError,
    RuntimeOverrides,
    config_runtime,
    format_matches,
    patch_config,
)

SIG = ModelSignature(
    inputs=(TensorSpec(name="x", dtype="fp32", dims=(4,)),),
    outputs=(TensorSpec(name="y", dtype="fp32", dims=(2,)),),
)
PACKAGED = render_config(
    "fraud",
    SIG,
    RuntimeSettings(max_batch_size=8, max_queue_delay_microseconds=100, instance_count=1),
    Target.PYTHON,
    {"torchscript_file": "model.pt"},
)


def parse(text: str) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse(text, config)
    return config


def test_rendered_configs_parse_with_tritons_schema():
    for target in Target:
        config = parse(render_config("m", SIG, RuntimeSettings(), target))
        assert config.name == "m"
        assert [i.name for i in config.input] == ["x"]
        assert list(config.output[0].dims) == [2]


def test_no_overrides_returns_text_unchanged():
    assert patch_config(PACKAGED, RuntimeOverrides()) == PACKAGED


def test_batching_and_gpu_instances():
    patched = parse(
        patch_config(
            PACKAGED,
            RuntimeOverrides(
                max_batch_size=64, max_queue_delay_microseconds=500, instance_count=2, gpus=1
            ),
        )
    )
    assert patched.max_batch_size == 64
    assert patched.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.count, g.kind) for g in patched.instance_group] == [
        (2, model_config_pb2.ModelInstanceGroup.KIND_GPU)
    ]
    # Everything else survives the round trip.
    assert patched.backend == "python"
    assert patched.parameters["torchscript_file"].string_value == "model.pt"
    assert [i.name for i in patched.input] == ["x"]


def test_zero_gpus_means_cpu_and_count_is_kept():
    packaged = render_config("m", SIG, RuntimeSettings(instance_count=3), Target.PYTHON)
    patched = parse(patch_config(packaged, RuntimeOverrides(gpus=0)))
    assert [(g.count, g.kind) for g in patched.instance_group] == [
        (3, model_config_pb2.ModelInstanceGroup.KIND_CPU)
    ]


def test_disabling_batching_drops_the_dynamic_batcher():
    patched = parse(
        patch_config(PACKAGED, RuntimeOverrides(max_batch_size=0, max_queue_delay_microseconds=9))
    )
    assert patched.max_batch_size == 0
    assert not patched.HasField("dynamic_batching")


def test_delay_alone_keeps_batch_size():
    patched = parse(patch_config(PACKAGED, RuntimeOverrides(max_queue_delay_microseconds=7)))
    assert patched.max_batch_size == 8
    assert patched.dynamic_batching.max_queue_delay_microseconds == 7


def test_invalid_config_is_reported():
    with pytest.raises(ConfigError, match=r"invalid config\.pbtxt"):
        patch_config("max_batch_size: lots", RuntimeOverrides(max_batch_size=1))


@pytest.mark.parametrize(
    ("target", "fmt", "ok"),
    [
        (Target.PYTHON, "torchscript", True),
        (Target.LIBTORCH, "torchscript", True),
        (Target.ONNX, "onnx", True),
        (Target.ONNX, "torchscript", False),
        (Target.LIBTORCH, "onnx", False),
        (Target.PYTHON, "python", True),
        (Target.LIBTORCH, "tensorrt", False),
        (Target.ONNX, "triton", True),
    ],
)
def test_format_matches(target, fmt, ok):
    text = render_config("m", SIG, RuntimeSettings(), target)
    assert format_matches(text, fmt) is ok


def test_config_runtime():
    assert config_runtime(PACKAGED) == "python"
    assert config_runtime('backend: "onnxruntime"') == "onnxruntime"
    assert config_runtime("max_batch_size: 1") == ""


def test_auto_gpu_kind_writes_kind_auto_for_gpu_pods_only():
    """KIND_AUTO: Triton places the instances on the GPUs it sees, else on CPU."""
    auto = parse(
        patch_config(PACKAGED, RuntimeOverrides(instance_count=2, gpus=1, gpu_kind="auto"))
    )
    assert [(g.count, g.kind) for g in auto.instance_group] == [
        (2, model_config_pb2.ModelInstanceGroup.KIND_AUTO)
    ]
    cpu = parse(patch_config(PACKAGED, RuntimeOverrides(gpus=0, gpu_kind="auto")))
    assert [g.kind for g in cpu.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    # The kind alone changes nothing (it only qualifies gpus > 0).
    assert patch_config(PACKAGED, RuntimeOverrides(gpu_kind="auto")) == PACKAGED
    with pytest.raises(ValueError, match="gpu_kind"):
        RuntimeOverrides(gpus=1, gpu_kind="tpu")
