"""Pytest fixtures that run the real tritonserver from the nvidia-pytriton wheel.

Register with ``pytest_plugins = ["tests.support.triton"]`` in the top-level
conftest, or import the fixtures into a directory's conftest. Typical use,
one server per test module::

    @pytest.fixture(scope="module")
    def triton(triton_factory, tmp_path_factory):
        repo = tmp_path_factory.mktemp("repo")
        ...  # write models into repo
        return triton_factory(repo)

The server log of every server stays under pytest's temporary directory
(``<basetemp>/triton-*/tritonserver.log``) so a failed run can be read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.triton_server import TritonInstall, TritonServer, find_tritonserver

TritonFactory = Callable[..., TritonServer]


@pytest.fixture(scope="session")
def triton_install() -> TritonInstall:
    """The tritonserver installation; errors (not skips) when it is missing."""
    return find_tritonserver()


@pytest.fixture(scope="module")
def triton_factory(
    triton_install: TritonInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonFactory]:
    """Start servers with ``triton_factory(model_repository, **TritonServer kwargs)``.

    Every server started through it is stopped when the module finishes.
    """
    servers: list[TritonServer] = []

    def start(model_repository: str | Path, **kwargs: Any) -> TritonServer:
        kwargs.setdefault("work_dir", tmp_path_factory.mktemp("triton"))
        server = TritonServer(model_repository, install=triton_install, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.stop()
