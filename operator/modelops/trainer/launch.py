"""Start the training workers under torchrun (no torch import here: the launcher stays light).

In a TrainingJob pod the operator sets, per pod (one pod per node)::

    NNODES, NODE_RANK (else JOB_COMPLETION_INDEX), NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT

With MASTER_ADDR set, torchrun uses the static rendezvous at that address
(node rank 0 hosts it). Without it -- a single node, e.g. a laptop or a
test -- torchrun's standalone rendezvous picks a free local port.

CPU threads: inside a container ``os.cpu_count()`` is the node's core count,
not the pod's CPU limit, and torch sizes its thread pool from it. Unless
OMP_NUM_THREADS is set, the launcher gives each worker an equal share of the
container's CPU quota (cgroup ``cpu.max``), at least one thread; a pool
larger than the CPU time available makes every parallel region wait on
descheduled threads.

The launcher stays the parent of torchrun and forwards SIGTERM/SIGINT to
it, so deleting the pod stops the workers cleanly (torchrun passes the
signal on to them).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

DIST_ENV = ("RANK", "WORLD_SIZE")
_NPROC_WORDS = {"auto", "cpu", "gpu"}
_FORWARDED = (signal.SIGTERM, signal.SIGINT)
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


class LaunchError(ValueError):
    """The torchrun environment is inconsistent (e.g. several nodes but no MASTER_ADDR)."""


@dataclass(frozen=True)
class Topology:
    nnodes: int
    nproc_per_node: str  # a count, or torchrun's auto / cpu / gpu
    node_rank: int
    master_addr: str | None  # None: single node, standalone rendezvous
    master_port: int


def in_worker(env: Mapping[str, str]) -> bool:
    """Whether torchrun (or another launcher) already made this process a rank."""
    return all(name in env for name in DIST_ENV)


def _int_env(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise LaunchError(f"{name}={text!r} is not an integer") from None
    if value < minimum:
        raise LaunchError(f"{name}={value} must be >= {minimum}")
    return value


def topology_from_env(env: Mapping[str, str], nproc_per_node: str | None = None) -> Topology:
    nproc = (nproc_per_node or env.get("NPROC_PER_NODE", "") or "1").strip()
    if not (re.fullmatch(r"[1-9][0-9]*", nproc) or nproc in _NPROC_WORDS):
        raise LaunchError(f"processes per node {nproc!r}: a positive integer, auto, cpu or gpu")
    nnodes = _int_env(env, "NNODES", 1, 1)
    # An Indexed Job's completion index is the node rank when NODE_RANK is not wired in.
    rank_var = "NODE_RANK" if env.get("NODE_RANK", "").strip() else "JOB_COMPLETION_INDEX"
    node_rank = _int_env(env, rank_var, 0, 0)
    master_addr = env.get("MASTER_ADDR", "").strip() or None
    master_port = _int_env(env, "MASTER_PORT", 29500, 1)
    if nnodes > 1 and master_addr is None:
        raise LaunchError(f"NNODES={nnodes} needs MASTER_ADDR (the address of node rank 0)")
    if node_rank >= nnodes:
        raise LaunchError(f"node rank {node_rank} is outside NNODES={nnodes}")
    return Topology(nnodes, nproc, node_rank, master_addr, master_port)


def torchrun_command(
    topology: Topology, worker_args: Sequence[str], python: str = sys.executable
) -> list[str]:
    """``python -m torch.distributed.run ... -m modelops.cli train <worker_args>``."""
    command = [python, "-m", "torch.distributed.run", "--nproc-per-node", topology.nproc_per_node]
    if topology.master_addr is None:
        command.append("--standalone")
    else:
        command += [
            "--nnodes", str(topology.nnodes),
            "--node-rank", str(topology.node_rank),
            "--master-addr", topology.master_addr,
            "--master-port", str(topology.master_port),
        ]  # fmt: skip
    # Restarts are the Job's business (backoffLimit): a new pod resumes from the checkpoint.
    command += ["--max-restarts", "0", "-m", "modelops.cli", "train", *worker_args]
    return command


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` (``"400000 100000"`` -> 4.0; ``"max ..."``: None)."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cpu_budget(cpu_max: Path = CGROUP_CPU_MAX) -> float:
    """CPUs this container may use: the cgroup quota, capped by the CPUs it may run on."""
    available = float(len(os.sched_getaffinity(0)))
    try:
        quota = parse_cpu_max(cpu_max.read_text())
    except OSError:
        quota = None
    return min(available, quota) if quota is not None else available


def threads_per_worker(budget: float, nproc_per_node: str) -> int:
    """An equal share of ``budget`` CPUs per local worker, at least one."""
    workers = int(nproc_per_node) if nproc_per_node.isdigit() else 1
    return max(1, int(budget // max(workers, 1)))


def worker_environment(
    topology: Topology, env: Mapping[str, str], budget: float | None = None
) -> dict[str, str]:
    """``env`` plus OMP_NUM_THREADS for the workers, unless the user set it."""
    result = dict(env)
    if "OMP_NUM_THREADS" not in result:
        share = threads_per_worker(
            cpu_budget() if budget is None else budget, topology.nproc_per_node
        )
        result["OMP_NUM_THREADS"] = str(share)
    return result


def run_torchrun(command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``command``, forwarding termination signals; its exit status (128+N if signalled)."""
    process = subprocess.Popen(list(command), env=None if env is None else dict(env))

    def forward(signum: int, _frame: FrameType | None) -> None:
        process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def environment_summary(env: Mapping[str, str] = os.environ) -> str:
    names = ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT")
    return " ".join(f"{n}={env[n]}" for n in names if n in env) or "single node (standalone)"
