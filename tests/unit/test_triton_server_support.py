"""The local Triton helper's setup logic (no server is started here; see tests/triton)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from tests.support.triton_server import (
    STUB_NAME,
    TritonError,
    TritonInstall,
    TritonNotFoundError,
    TritonServer,
    find_tritonserver,
    free_ports,
    prepare_backend_directory,
)


def fake_install(tmp_path: Path, stub: bool = True) -> TritonInstall:
    root = tmp_path / "tritonserver"
    (root / "backends" / "python").mkdir(parents=True)
    (root / "backends" / "python" / "libtriton_python.so").write_bytes(b"so")
    (root / "backends" / "python" / "triton_python_backend_utils.py").write_text("")
    (root / "backends" / "other").mkdir()
    stub_file = root / "python_backend_stubs" / "3.11" / STUB_NAME
    stub_file.parent.mkdir(parents=True)
    stub_file.write_bytes(b"stub")
    return TritonInstall(
        root=root,
        binary=root / "bin" / "tritonserver",
        backends_dir=root / "backends",
        caches_dir=None,
        library_dirs=(Path("/py/lib"), root / "lib"),
        python_stub=stub_file if stub else None,
        python_bin_dir=Path("/venv/bin"),
    )


def test_backend_directory_gets_the_interpreter_stub_without_touching_the_install(tmp_path):
    install = fake_install(tmp_path)
    backends = prepare_backend_directory(install, tmp_path / "work")
    python = backends / "python"
    assert (python / STUB_NAME).resolve() == install.python_stub
    assert (python / "libtriton_python.so").resolve() == (
        install.backends_dir / "python" / "libtriton_python.so"
    )
    assert (backends / "other").resolve() == install.backends_dir / "other"
    assert not (install.backends_dir / "python" / STUB_NAME).exists()
    # Preparing again (a restart with the same work dir) is harmless.
    assert prepare_backend_directory(install, tmp_path / "work") == backends


def test_install_with_its_own_stub_uses_its_backend_directory(tmp_path):
    install = fake_install(tmp_path, stub=False)
    assert prepare_backend_directory(install, tmp_path / "work") == install.backends_dir
    assert not (tmp_path / "work").exists()


def test_environment_puts_libraries_and_interpreter_first(tmp_path):
    install = fake_install(tmp_path)
    env = install.environment({"LD_LIBRARY_PATH": "/other:/py/lib", "PATH": "/usr/bin", "X": "1"})
    assert env["LD_LIBRARY_PATH"].split(os.pathsep) == [
        "/py/lib",
        str(install.root / "lib"),
        "/other",
    ]
    assert env["PATH"].split(os.pathsep) == ["/venv/bin", "/usr/bin"]
    assert env["X"] == "1"
    assert install.environment({})["PATH"] == "/venv/bin"


def test_explicit_root_must_hold_an_executable(tmp_path):
    with pytest.raises(TritonNotFoundError, match="missing or not executable"):
        find_tritonserver(tmp_path)
    binary = tmp_path / "bin" / "tritonserver"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    install = find_tritonserver(tmp_path)
    assert install.python_stub is None  # NGC layout: the stub is already in backends/python
    assert install.backends_dir == tmp_path / "backends"


def test_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELOPS_TRITONSERVER_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(TritonNotFoundError, match="nowhere"):
        find_tritonserver()


def test_wheel_install_is_found_for_this_interpreter():
    install = find_tritonserver()
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert install.python_stub is not None
    assert install.python_stub.parent.name == pyver
    assert os.access(install.binary, os.X_OK)
    assert (install.backends_dir / "python" / "libtriton_python.so").is_file()


def test_free_ports_are_distinct():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    assert all(1024 < p < 65536 for p in ports)


def test_addresses_need_a_started_server(tmp_path):
    server = TritonServer(tmp_path, http_port=8000)
    with pytest.raises(TritonError, match="not been started"):
        _ = server.http_url
    server.stop()  # stopping a server that never started is a no-op
