"""Run the built images with podman, as the pods would run them.

podman is Debian's (apt-get install podman); no daemon. Everything it keeps
(image store, run state, its config) lives under ~/.cache/modelops/podman so
nothing lands in /var/lib/containers. This machine has only cgroup v1 and no
systemd, hence cgroupfs and a file events log; the ulimits are explicit,
this machine's hard limits (podman's defaults are above them).

Every container runs like the rendered pods' containers: uid/gid 1000, all
capabilities dropped, no privilege escalation, read-only root filesystem
with a tmpfs /tmp (the pods' scratch emptyDir; HOME=/tmp in the image).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONTAINERS_CONF = """\
[containers]
# podman's defaults (nofile 1048576, nproc unlimited) are above this machine's hard
# limits, and raising one needs CAP_SYS_RESOURCE, which the sandbox lacks: nofile is
# this process's hard limit; nproc (counted per uid across the machine) a fixed 4096,
# ample for Triton's and torch's threads (runc is refused well below the host's limit).
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]
[engine]
# cgroup v1 only here, no systemd to delegate to.
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""

RUN_AS = "1000:1000"


def cache_dir() -> Path:
    return Path(os.environ.get("MODELOPS_CACHE", Path.home() / ".cache" / "modelops"))


@dataclass(frozen=True)
class Podman:
    root: Path

    @classmethod
    def create(cls) -> Podman:
        root = cache_dir() / "podman"
        (root / "storage").mkdir(parents=True, exist_ok=True)
        (root / "run").mkdir(parents=True, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        (root / "containers.conf").write_text(CONTAINERS_CONF.format(nofile=nofile))
        return cls(root)

    def argv(self, *args: str) -> list[str]:
        return [
            "podman",
            "--root", str(self.root / "storage"),
            "--runroot", str(self.root / "run"),
            "--tmpdir", str(self.root / "run"),
            "--storage-driver", "overlay",
            *args,
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.root / "containers.conf")}

    def run(
        self, *args: str, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=check,
        )

    def load(self, archive: str, ref: str) -> str:
        """Load the OCI archive unless the store already has this digest under ``ref``."""
        loaded = self.run("load", "--input", archive, timeout=600)
        if loaded.returncode != 0:
            raise RuntimeError(f"podman load {archive} failed: {loaded.stderr}")
        return ref

    def container(
        self,
        image: str,
        command: Sequence[str],
        *,
        volumes: Sequence[str] = (),
        env: dict[str, str] | None = None,
        network: str = "none",
        detach: bool = False,
        name: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        args = [
            "run", "--rm",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=512m,mode=1777",
            "--user", RUN_AS, "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--network", network, "--pull", "never",
        ]  # fmt: skip
        if detach:
            args.append("--detach")
        if name:
            args += ["--name", name]
        for volume in volumes:
            args += ["--volume", volume]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        # As a pod's command and args: command[0] replaces the image's entrypoint,
        # the rest its CMD.
        args += ["--entrypoint", json.dumps(list(command[:1]))]
        return self.run(*args, image, *command[1:], timeout=timeout)


def unusable_reason() -> str | None:
    """Why containers cannot run here, or None when podman runs one."""
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman)"
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install runc)"
    if os.geteuid() != 0:
        return "podman here runs rootful only (no subuid ranges / user namespaces for rootless)"
    probe = Podman.create().run("info", "--format", "{{.Host.CgroupManager}}", timeout=60)
    if probe.returncode != 0:
        return f"podman cannot start here: {probe.stderr.strip()[-500:]}"
    return None
