"""Triton model configuration: signature and runtime settings in, ``config.pbtxt`` text out.

Everything here is pure (no I/O) so the exact text Triton will read is unit-tested.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Triton data types and the spellings accepted for them (numpy / torch names,
# Triton's short names); the canonical value is Triton's `TYPE_*` name.
_DTYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "TYPE_BOOL": ("bool",),
    "TYPE_UINT8": ("uint8", "u8"),
    "TYPE_UINT16": ("uint16", "u16"),
    "TYPE_UINT32": ("uint32", "u32"),
    "TYPE_UINT64": ("uint64", "u64"),
    "TYPE_INT8": ("int8", "i8"),
    "TYPE_INT16": ("int16", "i16"),
    "TYPE_INT32": ("int32", "i32", "int"),
    "TYPE_INT64": ("int64", "i64", "long"),
    "TYPE_FP16": ("fp16", "float16", "half"),
    "TYPE_FP32": ("fp32", "float32", "float"),
    "TYPE_FP64": ("fp64", "float64", "double"),
    "TYPE_BF16": ("bf16", "bfloat16"),
    "TYPE_STRING": ("string", "bytes", "str"),
}
_DTYPES: dict[str, str] = {
    spelling: canonical
    for canonical, spellings in _DTYPE_ALIASES.items()
    for spelling in (canonical.lower(), canonical.removeprefix("TYPE_").lower(), *spellings)
}


def triton_dtype(value: str) -> str:
    """Canonical Triton ``TYPE_*`` name for ``value`` (``float32``, ``FP32``, ``TYPE_FP32``...)."""
    try:
        return _DTYPES[value.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown data type {value!r}; use one of {sorted(_DTYPE_ALIASES)}"
        ) from None


def wire_dtype(triton_type: str) -> str:
    """The KServe-v2 / tritonclient datatype for a ``TYPE_*`` name (``TYPE_FP32`` -> ``FP32``)."""
    canonical = triton_dtype(triton_type)
    return "BYTES" if canonical == "TYPE_STRING" else canonical.removeprefix("TYPE_")


class TensorSpec(BaseModel):
    """One input or output: name, Triton data type, dims without the batch dimension."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    dtype: str
    dims: tuple[int, ...] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ValueError(f"tensor name {value!r} must not contain whitespace")
        return value

    @field_validator("dtype")
    @classmethod
    def _canonical_dtype(cls, value: str) -> str:
        return triton_dtype(value)

    @field_validator("dims")
    @classmethod
    def _valid_dims(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d == 0 or d < -1 for d in value):
            raise ValueError(f"dims {list(value)} must be positive or -1 (variable)")
        return value

    @classmethod
    def parse(cls, text: str) -> TensorSpec:
        """Parse the command-line form ``NAME:DTYPE:DIMS``.

        E.g. ``x:fp32:4`` or ``img:uint8:3,-1,-1``; the name may itself contain colons.
        """
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[2]:
            raise ValueError(f"tensor {text!r} is not NAME:DTYPE:DIM[,DIM...]")
        name, dtype, dims = parts
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise ValueError(f"tensor {text!r}: dims must be integers") from None
        return cls(name=name, dtype=dtype, dims=shape)


class ModelSignature(BaseModel):
    """The tensors a model takes and returns, in the order its ``forward`` uses them."""

    model_config = ConfigDict(frozen=True)

    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ModelSignature:
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            names = [t.name for t in tensors]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind} names: {duplicates}")
        return self


class RuntimeSettings(BaseModel):
    """How Triton runs the model: batching and instances. Mirrors the ModelDeployment runtime."""

    model_config = ConfigDict(frozen=True)

    # 0 disables batching: tensors are then sent without a batch dimension.
    max_batch_size: int = Field(default=8, ge=0)
    dynamic_batching: bool = True
    max_queue_delay_microseconds: int = Field(default=100, ge=0)
    preferred_batch_sizes: tuple[int, ...] = ()
    instance_count: int = Field(default=1, ge=1)
    instance_kind: Literal["gpu", "cpu"] = "gpu"

    @model_validator(mode="after")
    def _batch_sizes_fit(self) -> RuntimeSettings:
        too_big = [s for s in self.preferred_batch_sizes if s < 1 or s > self.max_batch_size]
        if too_big:
            raise ValueError(
                f"preferred batch sizes {too_big} must be between 1 and "
                f"max_batch_size ({self.max_batch_size})"
            )
        return self


class Target(enum.StrEnum):
    """How Triton executes the model; also names the file(s) in each version directory."""

    LIBTORCH = "pytorch_libtorch"  # TorchScript on Triton's PyTorch backend (GPU images)
    PYTHON = "python"  # TorchScript wrapped in a python-backend model.py (any Triton)
    ONNX = "onnxruntime_onnx"  # ONNX Runtime backend


# Version-directory file Triton loads for each target.
MODEL_FILENAMES: Mapping[Target, str] = {
    Target.LIBTORCH: "model.pt",
    Target.PYTHON: "model.py",
    Target.ONNX: "model.onnx",
}

_SAFE_STRING = re.compile(r"[\\\"\n\r\t]")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(value: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + _SAFE_STRING.sub(lambda m: _ESCAPES[m.group()], value) + '"'


def _tensor_block(tensors: Sequence[TensorSpec]) -> list[str]:
    lines = []
    for i, t in enumerate(tensors):
        sep = "," if i < len(tensors) - 1 else ""
        dims = ", ".join(str(d) for d in t.dims)
        lines += [
            "  {",
            f"    name: {_quote(t.name)}",
            f"    data_type: {t.dtype}",
            f"    dims: [ {dims} ]",
            "  }" + sep,
        ]
    return lines


def render_config(
    name: str,
    signature: ModelSignature,
    runtime: RuntimeSettings,
    target: Target,
    parameters: Mapping[str, str] | None = None,
) -> str:
    """The ``config.pbtxt`` text for model ``name`` (protobuf text format)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid model name {name!r}")
    lines = [f"name: {_quote(name)}"]
    if target is Target.PYTHON:
        lines.append('backend: "python"')
    else:
        lines.append(f"platform: {_quote(target.value)}")
    lines.append(f"max_batch_size: {runtime.max_batch_size}")
    lines += ["input [", *_tensor_block(signature.inputs), "]"]
    lines += ["output [", *_tensor_block(signature.outputs), "]"]
    # Triton refuses a dynamic batcher on a model that does not batch.
    if runtime.dynamic_batching and runtime.max_batch_size > 0:
        lines.append("dynamic_batching {")
        if runtime.preferred_batch_sizes:
            sizes = ", ".join(str(s) for s in runtime.preferred_batch_sizes)
            lines.append(f"  preferred_batch_size: [ {sizes} ]")
        lines.append(f"  max_queue_delay_microseconds: {runtime.max_queue_delay_microseconds}")
        lines.append("}")
    kind = "KIND_GPU" if runtime.instance_kind == "gpu" else "KIND_CPU"
    lines += [
        "instance_group [",
        "  {",
        f"    count: {runtime.instance_count}",
        f"    kind: {kind}",
        "  }",
        "]",
    ]
    for key, value in sorted((parameters or {}).items()):
        lines += [
            "parameters {",
            f"  key: {_quote(key)}",
            f"  value: {{ string_value: {_quote(value)} }}",
            "}",
        ]
    return "\n".join(lines) + "\n"
