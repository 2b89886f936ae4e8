"""Run the real ``tritonserver`` binary that ships inside the ``nvidia-pytriton`` wheel.

Tests (and ``make dev``) use this to serve models on the CPU with the same
server the operator deploys, without Docker. ``nvidia-pytriton`` 0.7.0 carries
Triton Inference Server **2.51.0** (the server of NGC release 24.10) with only
the ``python`` backend; there is no libtorch or onnxruntime backend in the
wheel, so TorchScript models are served here through the python-backend
wrapper that :mod:`modelops.triton.packaging` generates.

Three things make the wheel's server runnable outside pytriton:

* The server and backend libraries are bundled in ``nvidia_pytriton.libs``
  (auditwheel); the binary finds them through its RPATH, but
  ``libtriton_python.so`` is loaded from our own backend directory (below), so
  that directory goes on ``LD_LIBRARY_PATH``.
* The wheel carries one python-backend stub per Python minor version under
  ``python_backend_stubs/X.Y/``. The python backend launches the stub it finds
  *next to* ``libtriton_python.so`` (or in the model directory), so each server
  gets a private backend directory of symlinks whose ``python/`` holds the
  stub matching the running interpreter. The wheel itself is never modified.
* The stub embeds Python by linking ``libpython3.X.so.1.0``: the running
  interpreter's ``LIBDIR`` goes first on ``LD_LIBRARY_PATH`` so that it binds
  this interpreter's libpython and not a system copy with the same soname.
  Then the embedded interpreter locates its prefix by searching ``PATH`` for
  ``python3``; putting this interpreter's ``bin`` directory first on ``PATH``
  makes it pick up the virtual environment (``pyvenv.cfg``) and therefore its
  site-packages (numpy, torch) -- this is also how pytriton does it.

Test and dev tooling, so it lives here and not in the package: the runtime
image lays out the same backend directory once, at build time
(hack/images/triton-layout.sh), and runs the plain ``tritonserver``.

Set ``MODELOPS_TRITONSERVER_ROOT`` (or pass ``root=``) to use a Triton
installed with the NGC image layout (``bin/``, ``lib/``, ``backends/``) instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

ROOT_ENV = "MODELOPS_TRITONSERVER_ROOT"
STUB_NAME = "triton_python_backend_stub"
# What nvidia-pytriton 0.7.0 ships; a running server reports its own in .server_version.
WHEEL_TRITON_VERSION = "2.51.0"

ModelControl = Literal["none", "poll", "explicit"]
# How tritonserver reports a port it could not bind (2.51: "Socket 'host:port' already in use").
_BUSY_PORT = re.compile(r"Socket '[^']*:(\d+)' already in use")


class TritonError(RuntimeError):
    """Base class for failures of the local Triton helper."""


class TritonNotFoundError(TritonError):
    """No usable tritonserver installation was found."""


class TritonStartError(TritonError):
    """tritonserver exited or never became ready; the message carries its log tail."""


@dataclass(frozen=True)
class TritonInstall:
    """Where a tritonserver installation keeps its pieces."""

    root: Path
    binary: Path
    backends_dir: Path
    caches_dir: Path | None
    # Directories the server, its backends and the python stub load libraries from.
    library_dirs: tuple[Path, ...]
    # Stub to place beside libtriton_python.so; None when the install already has one there.
    python_stub: Path | None
    # Directory whose `python3` the stub's embedded interpreter should resolve to.
    python_bin_dir: Path

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Process environment for tritonserver, derived from ``base`` (default: os.environ)."""
        env = dict(os.environ if base is None else base)
        env["LD_LIBRARY_PATH"] = _prepend_paths(self.library_dirs, env.get("LD_LIBRARY_PATH"))
        env["PATH"] = _prepend_paths((self.python_bin_dir,), env.get("PATH"))
        return env


def _prepend_paths(first: Sequence[Path], rest: str | None) -> str:
    parts = [str(p) for p in first]
    if rest:
        parts.extend(p for p in rest.split(os.pathsep) if p and p not in parts)
    return os.pathsep.join(parts)


def _interpreter_library_dirs() -> list[Path]:
    """The running interpreter's libpython directory, if it has a shared libpython."""
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and (Path(libdir) / soname).exists():
        return [Path(libdir)]
    return []


def find_tritonserver(root: str | Path | None = None) -> TritonInstall:
    """Locate tritonserver: ``root`` or $MODELOPS_TRITONSERVER_ROOT, else the pytriton wheel.

    Raises TritonNotFoundError with the reason when nothing usable is found.
    """
    explicit = root if root is not None else os.environ.get(ROOT_ENV)
    install = _install_from_root(Path(explicit)) if explicit else _install_from_wheel()
    if not os.access(install.binary, os.X_OK):
        raise TritonNotFoundError(f"{install.binary} is missing or not executable")
    return install


def _install_from_root(root: Path) -> TritonInstall:
    # NGC image layout (/opt/tritonserver): the python backend there already
    # has its stub, built against the image's system Python.
    return TritonInstall(
        root=root,
        binary=root / "bin" / "tritonserver",
        backends_dir=root / "backends",
        caches_dir=(root / "caches") if (root / "caches").is_dir() else None,
        library_dirs=tuple([*_interpreter_library_dirs(), root / "lib"]),
        python_stub=None,
        python_bin_dir=Path(sys.executable).parent,
    )


def _install_from_wheel() -> TritonInstall:
    # find_spec on a top-level package does not import it (pytriton's import is slow).
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotFoundError(
            f"nvidia-pytriton is not installed in {sys.prefix}; install it or set {ROOT_ENV}"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "tritonserver"
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / pyver / STUB_NAME
    if not stub.is_file():
        available = sorted(p.name for p in (root / "python_backend_stubs").glob("*"))
        raise TritonNotFoundError(
            f"nvidia-pytriton has no python-backend stub for Python {pyver} (has {available})"
        )
    libpython = _interpreter_library_dirs()
    if not libpython:
        raise TritonNotFoundError(
            f"the python-backend stub needs a shared libpython{pyver}, and {sys.executable} "
            "was built without one (--enable-shared)"
        )
    # A wheel install keeps the bundled libraries beside the package; an
    # editable pytriton checkout keeps them inside the tritonserver tree.
    bundled = [package.parent / "nvidia_pytriton.libs", root / "external_libs", root / "lib"]
    return TritonInstall(
        root=root,
        binary=root / "bin" / "tritonserver",
        backends_dir=root / "backends",
        caches_dir=(root / "caches") if (root / "caches").is_dir() else None,
        library_dirs=tuple([*libpython, *(d for d in bundled if d.is_dir())]),
        python_stub=stub,
        python_bin_dir=Path(sys.executable).parent,
    )


def prepare_backend_directory(install: TritonInstall, work_dir: Path) -> Path:
    """A backend directory for ``install`` whose python backend has the right stub.

    Returns the install's own directory when it needs no stub; otherwise builds
    ``work_dir/backends`` out of symlinks into the install.
    """
    if install.python_stub is None:
        return install.backends_dir
    backends = work_dir / "backends"
    backends.mkdir(parents=True, exist_ok=True)
    for entry in install.backends_dir.iterdir():
        target = backends / entry.name
        if entry.name != "python":
            _symlink(entry, target)
            continue
        target.mkdir(exist_ok=True)
        for item in entry.iterdir():
            _symlink(item, target / item.name)
        # The stub is an executable: glibc resolves its $ORIGIN RPATH through
        # the symlink, so it still finds the wheel's bundled libraries.
        _symlink(install.python_stub, target / STUB_NAME)
    return backends


def _symlink(source: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        return
    link.symlink_to(source)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that were free a moment ago (the OS may reuse them)."""
    # All sockets stay bound until every port is chosen, so the ports differ.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    return free_ports(1, host)[0]


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


class TritonServer:
    """A tritonserver process serving ``model_repository``; use it as a context manager.

    Ports left as None are picked free. ``start()`` returns once
    ``/v2/health/ready`` answers 200 (with the default ``model_control="none"``
    that means every model in the repository loaded), or raises
    TritonStartError carrying the end of the server log. ``stop()`` sends
    SIGTERM, then SIGKILL to the whole process group (the server and its
    python-backend stubs) after ``stop_timeout`` seconds.

    Addresses, after start: ``http_url`` (``http://host:port``, for plain HTTP
    clients), ``http_address`` and ``grpc_url`` (``host:port``, the form
    tritonclient.http / tritonclient.grpc expect), ``metrics_url``
    (``http://host:port/metrics``).
    """

    def __init__(
        self,
        model_repository: str | Path,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        extra_args: Sequence[str] = (),
        *,
        host: str = "127.0.0.1",
        model_control: ModelControl = "none",
        load_models: Sequence[str] = (),
        install: TritonInstall | None = None,
        work_dir: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        exit_timeout_secs: int = 5,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.host = host
        self.model_control: ModelControl = model_control
        self.load_models = tuple(load_models)
        self.extra_args = tuple(extra_args)
        self.install = install
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.exit_timeout_secs = exit_timeout_secs
        self._requested_ports = (http_port, grpc_port, metrics_port)
        self._ports: tuple[int, int, int] | None = None
        self._env_base = env
        self._work_dir_arg = Path(work_dir) if work_dir is not None else None
        self._work_dir: Path | None = None
        self._owns_work_dir = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self.server_version: str | None = None

    # -- addresses ---------------------------------------------------------

    def _port(self, index: int) -> int:
        if self._ports is None:
            raise TritonError("the server has not been started")
        return self._ports[index]

    @property
    def http_port(self) -> int:
        return self._port(0)

    @property
    def grpc_port(self) -> int:
        return self._port(1)

    @property
    def metrics_port(self) -> int:
        return self._port(2)

    @property
    def http_address(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        if self._work_dir is None:
            raise TritonError("the server has not been started")
        return self._work_dir / "tritonserver.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self, tail_lines: int | None = None) -> str:
        """The server log so far (the last ``tail_lines`` lines if given)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, TritonError):
            return ""
        if tail_lines is None:
            return text
        return "\n".join(text.splitlines()[-tail_lines:])

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        if self._proc is not None:
            raise TritonError("the server is already started")
        install = self.install or find_tritonserver()
        self.install = install
        if self._work_dir_arg is not None:
            self._work_dir = self._work_dir_arg
            self._work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._work_dir = Path(tempfile.mkdtemp(prefix="modelops-triton-"))
            self._owns_work_dir = True
        backends = prepare_backend_directory(install, self._work_dir)
        # Picking a free port and binding it later races with other processes;
        # when a port we picked ourselves was taken meanwhile, try new ones.
        explicit = {p for p in self._requested_ports if p is not None}
        attempts = 3 if None in self._requested_ports else 1
        for attempt in range(attempts):
            picked = iter(free_ports(self._requested_ports.count(None), self.host))
            http, grpc, metrics = (
                p if p is not None else next(picked) for p in self._requested_ports
            )
            self._ports = (http, grpc, metrics)
            self._spawn(install, backends)
            try:
                self._wait_ready()
                return self
            except TritonStartError as err:
                busy = _BUSY_PORT.search(self._attempt_log())
                lost_race = busy is not None and int(busy.group(1)) not in explicit
                self._terminate()
                if not (lost_race and attempt + 1 < attempts):
                    raise err from None
        raise AssertionError("unreachable")

    def _argv(self, install: TritonInstall, backends: Path) -> list[str]:
        argv = [
            str(install.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--model-control-mode={self.model_control}",
            f"--exit-timeout-secs={self.exit_timeout_secs}",
        ]
        if install.caches_dir is not None:
            argv.append(f"--cache-directory={install.caches_dir}")
        argv.extend(f"--load-model={name}" for name in self.load_models)
        argv.extend(self.extra_args)
        return argv

    def _spawn(self, install: TritonInstall, backends: Path) -> None:
        assert self._work_dir is not None
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- closed in _terminate
        self._log_offset = self._log.tell()
        self._log.write(f"--- modelops: starting {self._argv(install, backends)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self._argv(install, backends),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=install.environment(self._env_base),
            cwd=self._work_dir,
            # Own process group: stop() can then reach the python-backend stubs too.
            start_new_session=True,
        )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.http_url}/v2/health/ready"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise TritonStartError(self._failure(f"tritonserver exited with code {code}"))
            with contextlib.suppress(OSError):
                status, _ = _http_get(url, timeout=1.0)
                if status == 200:
                    break
                # Endpoints open only after the initial load, so a server that
                # answers but is not ready has models that failed to load; with
                # polling or explicit control it would stay up unready forever.
                failed = self._failed_models()
                if failed:
                    raise TritonStartError(self._failure(f"models failed to load: {failed}"))
            if time.monotonic() > deadline:
                raise TritonStartError(
                    self._failure(f"tritonserver not ready after {self.startup_timeout:.0f}s")
                )
            time.sleep(0.1)
        with contextlib.suppress(OSError, ValueError):
            _, body = _http_get(f"{self.http_url}/v2", timeout=2.0)
            self.server_version = str(json.loads(body).get("version"))

    def _failed_models(self) -> list[str]:
        """``name:version (reason)`` for every model Triton marks UNAVAILABLE."""
        request = urllib.request.Request(
            f"{self.http_url}/v2/repository/index", data=b"{}", method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=2.0) as resp:
                index = json.loads(resp.read())
        except (OSError, ValueError):
            return []
        return [
            f"{m.get('name')}:{m.get('version', '?')} ({m.get('reason', '')})"
            for m in index
            if m.get("state") == "UNAVAILABLE"
        ]

    def _attempt_log(self) -> str:
        """The log written since the latest spawn."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self._log_offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def _failure(self, what: str) -> str:
        return f"{what}; log {self.log_path}:\n{self.log_text(tail_lines=40)}"

    def wait_model_ready(
        self, model: str, version: str | int | None = None, timeout: float = 30.0
    ) -> None:
        """Block until Triton reports ``model`` (optionally one version) ready."""
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                raise TritonStartError(self._failure("tritonserver exited"))
            with contextlib.suppress(OSError):
                if _http_get(f"{self.http_url}{path}/ready", timeout=1.0)[0] == 200:
                    return
            time.sleep(0.1)
        raise TritonStartError(self._failure(f"model {model} not ready after {timeout:.0f}s"))

    def stop(self) -> None:
        """Stop the server and its stubs; idempotent."""
        self._terminate()
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._owns_work_dir = False

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid)
                    proc.wait()
            # Stubs orphaned by a crashed or killed server are still in its group.
            _kill_group(proc.pid)
        if self._log is not None:
            self._log.close()
            self._log = None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
