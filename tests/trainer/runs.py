"""Start `modelops train` as a pod would, and stop it the hard way."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTRYPOINT = "modelops.trainer.examples.tabular"
# The CI box has about one core's worth of CPU: one thread per worker keeps
# torch from waiting on its own descheduled threads (see trainer.launch).
BASE_ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NNODES")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    termination_log: Path

    def result(self) -> dict[str, Any]:
        """The JSON line rank 0 printed last."""
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no result line\nstdout:\n{self.stdout}\nstderr:\n{self.stderr[-4000:]}"
        return json.loads(lines[-1])


def train_argv(
    work: Path,
    *,
    dataset: str,
    output: str,
    checkpoint_dir: Path,
    nproc: int = 2,
    hparams: dict[str, str] | None = None,
    entrypoint: str = ENTRYPOINT,
) -> list[str]:
    argv = [
        sys.executable, "-m", "modelops.cli", "train",
        "--entrypoint", entrypoint,
        "--dataset", dataset,
        "--output", output,
        "--checkpoint-dir", str(checkpoint_dir),
        "--nproc-per-node", str(nproc),
        "--termination-log", str(work / "termination-log"),
        "--instance-kind", "cpu",
    ]  # fmt: skip
    for key, value in (hparams or {}).items():
        argv.append(f"--hp={key}={value}")
    return argv


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env.update(BASE_ENV)
    env.update(extra or {})
    return env


def run_train(
    work: Path, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> Run:
    work.mkdir(parents=True, exist_ok=True)
    (work / "termination-log").write_text("")
    completed = subprocess.run(
        argv, capture_output=True, text=True, env=environment(env), timeout=timeout
    )
    return Run(completed.returncode, completed.stdout, completed.stderr, work / "termination-log")


def start_train(work: Path, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a run in its own session (so the test can kill it all) with output in ``log``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "termination-log").write_text("")
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=environment(), start_new_session=True
        )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun puts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run's process group and every worker, as a node failure would."""
    workers = descendants(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "workers survived SIGKILL"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing
