"""Integration tests against real servers: tritonserver (nvidia-pytriton wheel), moto S3."""

from tests.support.s3 import s3_env, s3_server
from tests.support.triton import triton_factory, triton_install

__all__ = ["s3_env", "s3_server", "triton_factory", "triton_install"]
