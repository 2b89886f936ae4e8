"""A real-node container's cgroups, read from this machine.

The real node's kubelet (hack/node/node.sh) uses the cgroupfs driver on cgroup
v1 under its own root (``/modelops-<cluster>``), so a container's cgroup is
``/sys/fs/cgroup/<controller>/modelops-<cluster>/kubepods[/<qos>]/pod<uid>/<id>``.
Tests and benchmarks read it to see what the kernel saw: CPU time charged to
the container (``cpuacct.usage``), its memory peak and limit, and the host pids
of its processes (to kill one as a crash would, from outside: a container's
init ignores SIGKILL sent from inside its own pid namespace).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

CGROUP_FS = Path("/sys/fs/cgroup")


def container_id(pod: Any, container: str) -> str:
    """The runtime's id of ``container`` in ``pod`` (a kubernetes client V1Pod)."""
    for cs in pod.status.container_statuses or []:
        if cs.name == container and cs.container_id:
            return cs.container_id.split("://", 1)[-1]
    raise AssertionError(f"container {container} of {pod.metadata.name} has no id yet")


def container_cgroup(pod: Any, container: str, controller: str) -> Path:
    """The directory of ``container``'s cgroup under ``controller`` (e.g. cpu,cpuacct)."""
    cid = container_id(pod, container)
    root = CGROUP_FS / controller
    # The QoS level (guaranteed pods sit directly under kubepods) and the root name
    # are the kubelet's; the pod uid and container id make the match unique.
    matches = list(root.glob(f"modelops-*/kubepods/**/pod{pod.metadata.uid}/{cid}"))
    if not matches:
        raise AssertionError(f"no {controller} cgroup for {container} ({cid[:12]}) under {root}")
    return matches[0]


def cpuacct_usage(pod: Any, container: str) -> Path:
    """The file with the CPU time (ns) charged to the container since it started (all
    its processes). The cpuacct controller is mounted alone or with cpu."""
    controller = "cpuacct" if (CGROUP_FS / "cpuacct" / "cpuacct.usage").exists() else "cpu,cpuacct"
    return container_cgroup(pod, container, controller) / "cpuacct.usage"


def cpu_seconds(pod: Any, container: str) -> float:
    """CPU time charged to the container since it started (all its processes)."""
    return int(cpuacct_usage(pod, container).read_text()) / 1e9


def memory(pod: Any, container: str) -> dict[str, int]:
    """The container's memory limit, current usage and peak (bytes), from the kernel."""
    base = container_cgroup(pod, container, "memory")
    return {
        "limit": int((base / "memory.limit_in_bytes").read_text()),
        "usage": int((base / "memory.usage_in_bytes").read_text()),
        "peak": int((base / "memory.max_usage_in_bytes").read_text()),
        "rss": _stat(base, "total_rss"),
    }


def _stat(base: Path, key: str) -> int:
    for line in (base / "memory.stat").read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def host_pids(pod: Any, container: str) -> list[int]:
    """Host pids of the container's processes, the container's init first."""
    procs = container_cgroup(pod, container, "pids") / "cgroup.procs"
    if not procs.exists():
        procs = cpuacct_usage(pod, container).parent / "cgroup.procs"
    return sorted(int(p) for p in procs.read_text().split())


def kill_container_init(pod: Any, container: str) -> int:
    """SIGKILL the container's main process from the host, as the kernel's OOM killer or
    a crash would end it; returns the host pid killed."""
    pids = host_pids(pod, container)
    # The init is the process whose pid in its own namespace is 1 (NSpid's last field).
    pid = next((p for p in pids if _ns_pid(p) == 1), pids[0])
    os.kill(pid, signal.SIGKILL)
    return pid


def _ns_pid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except OSError:
        return None
    return None
