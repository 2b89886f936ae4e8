"""config.pbtxt rendering and the signature / runtime models (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelops.triton.config import (
    ModelSignature,
    RuntimeSettings,
    Target,
    TensorSpec,
    render_config,
    triton_dtype,
    wire_dtype,
)

SIG = ModelSignature(
    inputs=(TensorSpec(name="x", dtype="float32", dims=(4,)),),
    outputs=(TensorSpec(name="y", dtype="fp32", dims=(2,)),),
)


def test_python_target_renders_the_exact_config():
    text = render_config(
        "fraud",
        SIG,
        RuntimeSettings(max_batch_size=64, max_queue_delay_microseconds=250, instance_count=2),
        Target.PYTHON,
        {"torchscript_file": "model.pt"},
    )
    assert text == (
        'name: "fraud"\n'
        'backend: "python"\n'
        "max_batch_size: 64\n"
        "input [\n"
        "  {\n"
        '    name: "x"\n'
        "    data_type: TYPE_FP32\n"
        "    dims: [ 4 ]\n"
        "  }\n"
        "]\n"
        "output [\n"
        "  {\n"
        '    name: "y"\n'
        "    data_type: TYPE_FP32\n"
        "    dims: [ 2 ]\n"
        "  }\n"
        "]\n"
        "dynamic_batching {\n"
        "  max_queue_delay_microseconds: 250\n"
        "}\n"
        "instance_group [\n"
        "  {\n"
        "    count: 2\n"
        "    kind: KIND_GPU\n"
        "  }\n"
        "]\n"
        "parameters {\n"
        '  key: "torchscript_file"\n'
        '  value: { string_value: "model.pt" }\n'
        "}\n"
    )


@pytest.mark.parametrize(
    ("target", "line"),
    [
        (Target.LIBTORCH, 'platform: "pytorch_libtorch"'),
        (Target.ONNX, 'platform: "onnxruntime_onnx"'),
        (Target.PYTHON, 'backend: "python"'),
    ],
)
def test_target_selects_platform_or_backend(target, line):
    lines = render_config("m", SIG, RuntimeSettings(), target).splitlines()
    assert lines[1] == line
    assert not any(x.startswith(("platform", "backend")) for x in lines[2:])


def test_cpu_kind_and_preferred_batch_sizes():
    text = render_config(
        "m",
        SIG,
        RuntimeSettings(max_batch_size=16, preferred_batch_sizes=(4, 8), instance_kind="cpu"),
        Target.PYTHON,
    )
    assert "    kind: KIND_CPU\n" in text
    assert "  preferred_batch_size: [ 4, 8 ]\n" in text
    assert "parameters" not in text


def test_no_dynamic_batcher_without_batching():
    # Triton rejects dynamic_batching on a model with max_batch_size 0.
    assert "dynamic_batching" not in render_config(
        "m", SIG, RuntimeSettings(max_batch_size=0), Target.PYTHON
    )
    assert "dynamic_batching" not in render_config(
        "m", SIG, RuntimeSettings(dynamic_batching=False), Target.PYTHON
    )


def test_multiple_tensors_are_comma_separated_and_variable_dims_kept():
    sig = ModelSignature(
        inputs=(
            TensorSpec(name="a", dtype="int64", dims=(-1,)),
            TensorSpec(name="b", dtype="uint8", dims=(3, 224, 224)),
        ),
        outputs=(TensorSpec(name="out", dtype="float16", dims=(1,)),),
    )
    text = render_config("m", sig, RuntimeSettings(), Target.LIBTORCH)
    assert "    dims: [ -1 ]\n  },\n  {\n" in text
    assert "    data_type: TYPE_UINT8\n    dims: [ 3, 224, 224 ]\n  }\n]" in text
    assert "data_type: TYPE_FP16" in text


def test_strings_are_escaped():
    sig = ModelSignature(
        inputs=(TensorSpec(name='in"put', dtype="fp32", dims=(1,)),),
        outputs=(TensorSpec(name="out\\0", dtype="fp32", dims=(1,)),),
    )
    text = render_config("m", sig, RuntimeSettings(), Target.ONNX, {"k": "a\nb"})
    assert 'name: "in\\"put"' in text
    assert 'name: "out\\\\0"' in text
    assert 'string_value: "a\\nb"' in text


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_bad_model_names_are_refused(name):
    with pytest.raises(ValueError, match="invalid model name"):
        render_config(name, SIG, RuntimeSettings(), Target.PYTHON)


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("float32", "TYPE_FP32"),
        ("FP32", "TYPE_FP32"),
        ("TYPE_FP32", "TYPE_FP32"),
        ("float", "TYPE_FP32"),
        ("half", "TYPE_FP16"),
        ("bfloat16", "TYPE_BF16"),
        ("int64", "TYPE_INT64"),
        ("bool", "TYPE_BOOL"),
        ("bytes", "TYPE_STRING"),
    ],
)
def test_dtype_spellings(spelling, canonical):
    assert triton_dtype(spelling) == canonical


def test_wire_dtype():
    assert wire_dtype("float32") == "FP32"
    assert wire_dtype("TYPE_STRING") == "BYTES"


def test_unknown_dtype():
    with pytest.raises(ValueError, match="unknown data type 'complex64'"):
        triton_dtype("complex64")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x:fp32:4", TensorSpec(name="x", dtype="TYPE_FP32", dims=(4,))),
        ("img:uint8:3,-1,-1", TensorSpec(name="img", dtype="TYPE_UINT8", dims=(3, -1, -1))),
        ("input:0:float32:8", TensorSpec(name="input:0", dtype="TYPE_FP32", dims=(8,))),
    ],
)
def test_tensor_spec_parse(text, expected):
    assert TensorSpec.parse(text) == expected


@pytest.mark.parametrize("text", ["x", "x:fp32", "x:fp32:", "x:fp32:a", "x:fp32:0", "x:fp32:-2"])
def test_tensor_spec_parse_rejects(text):
    with pytest.raises(ValueError):
        TensorSpec.parse(text)


def test_signature_rejects_duplicates_and_empties():
    with pytest.raises(ValidationError, match="duplicate input names"):
        ModelSignature(inputs=(SIG.inputs[0], SIG.inputs[0]), outputs=SIG.outputs)
    with pytest.raises(ValidationError):
        ModelSignature(inputs=(), outputs=SIG.outputs)
    with pytest.raises(ValidationError, match="whitespace"):
        TensorSpec(name="a b", dtype="fp32", dims=(1,))


def test_runtime_settings_validation():
    with pytest.raises(ValidationError, match="preferred batch sizes"):
        RuntimeSettings(max_batch_size=8, preferred_batch_sizes=(16,))
    with pytest.raises(ValidationError):
        RuntimeSettings(instance_count=0)
    with pytest.raises(ValidationError):
        RuntimeSettings(instance_kind="tpu")
