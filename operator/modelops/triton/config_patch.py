"""Apply a ModelDeployment's runtime settings to an existing ``config.pbtxt``.

A published model carries the config it was packaged with; the deployment
may ask for a different batch size, batching delay or instance layout. The
config is parsed with Triton's own ``ModelConfig`` protobuf schema (shipped in
tritonclient) so that any valid config -- not only ones modelops rendered --
can be patched without losing fields. Pure: text in, text out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Model formats of the ModelDeployment API and the configs that serve them.
_FORMAT_RUNTIMES: dict[str, set[str]] = {
    "torchscript": {"pytorch_libtorch", "pytorch", "python"},
    "onnx": {"onnxruntime_onnx", "onnxruntime"},
    "tensorrt": {"tensorrt_plan", "tensorrt"},
    "python": {"python"},
}


GPU_KINDS = ("gpu", "auto")


class ConfigError(ValueError):
    """The config text is not a valid Triton model configuration."""


@dataclass(frozen=True)
class RuntimeOverrides:
    """Settings to force into a config; None leaves the packaged value alone."""

    max_batch_size: int | None = None
    max_queue_delay_microseconds: int | None = None
    instance_count: int | None = None  # per GPU when gpus > 0
    gpus: int | None = None  # 0: run on CPU (KIND_CPU); >0: KIND_GPU
    # With gpus > 0: "gpu" writes KIND_GPU (Triton refuses to load without a CUDA
    # device: a missing device fails loudly); "auto" writes KIND_AUTO (on the GPUs
    # Triton sees, else on CPU), for nodes whose GPU resource has no CUDA device
    # behind it, such as the local real node's extended resource.
    gpu_kind: str = "gpu"

    def __post_init__(self) -> None:
        if self.gpu_kind not in GPU_KINDS:
            raise ValueError(f"gpu_kind must be one of {', '.join(GPU_KINDS)}")

    def is_empty(self) -> bool:
        return all(v is None for k, v in vars(self).items() if k != "gpu_kind")


def _parse(text: str) -> Any:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise ConfigError(f"invalid config.pbtxt: {err}") from None
    return config


def _render(config: Any) -> str:
    from google.protobuf import text_format

    return str(text_format.MessageToString(config))


def patch_config(text: str, overrides: RuntimeOverrides) -> str:
    """``text`` with ``overrides`` applied; returned unchanged if there are none."""
    if overrides.is_empty():
        return text
    config = _parse(text)
    if overrides.max_batch_size is not None:
        config.max_batch_size = overrides.max_batch_size
    if config.max_batch_size == 0:
        # Triton refuses a dynamic batcher on a model that does not batch.
        config.ClearField("dynamic_batching")
    elif overrides.max_queue_delay_microseconds is not None:
        config.dynamic_batching.max_queue_delay_microseconds = (
            overrides.max_queue_delay_microseconds
        )
    if overrides.instance_count is not None or overrides.gpus is not None:
        groups = list(config.instance_group)
        count = overrides.instance_count or (groups[0].count if groups else 1) or 1
        if overrides.gpus is not None:
            on_gpu = overrides.gpus > 0
        else:
            on_gpu = bool(groups) and groups[0].kind in (groups[0].KIND_GPU, groups[0].KIND_AUTO)
        del config.instance_group[:]
        group = config.instance_group.add()
        group.count = count
        if not on_gpu:
            group.kind = group.KIND_CPU
        elif overrides.gpu_kind == "auto":
            # The enum's zero value: config.pbtxt shows no kind, which Triton reads so.
            group.kind = group.KIND_AUTO
        else:
            group.kind = group.KIND_GPU
    return _render(config)


def config_runtime(text: str) -> str:
    """The platform, else the backend, a config names (``""`` when neither is set)."""
    config = _parse(text)
    return str(config.platform or config.backend)


def format_matches(text: str, model_format: str) -> bool:
    """Whether a config can serve a ModelDeployment ``format`` (``triton``: anything)."""
    allowed = _FORMAT_RUNTIMES.get(model_format)
    return allowed is None or config_runtime(text) in allowed
