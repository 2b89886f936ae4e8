"""Run a rendered pod's container as a local process: the real command, args and env.

The local cluster's nodes are simulated, so its pods never run anything.
Tests that need the real program take the container spec the API server
stored (or the renderer produced) and start it here, mapping only what a
laptop cannot provide: the `modelops` entry point becomes this Python, env
values from the downward API are resolved from the pod's annotations, pod
DNS names become 127.0.0.1, and paths of the pod's volumes become local
directories.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_FIELD = re.compile(r"metadata\.(annotations|labels)\['([^']+)'\]")
VENV_BIN = str(Path(sys.executable).parent)


def resolve_env(
    container: Mapping[str, Any],
    annotations: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment as the kubelet would set it, then ``overrides``."""
    meta = {"annotations": annotations, "labels": labels or {}}
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"] or ""
            continue
        path = var["valueFrom"]["fieldRef"]["fieldPath"]
        match = _FIELD.fullmatch(path)
        assert match, f"unsupported downward API field {path}"
        env[var["name"]] = meta[match.group(1)][match.group(2)]
    env.update(overrides or {})
    return env


def local_argv(container: Mapping[str, Any]) -> list[str]:
    """command + args, with the image's `modelops` entry point as this Python's module."""
    command = list(container.get("command") or [])
    if command[:1] == ["modelops"]:
        command = [sys.executable, "-m", "modelops.cli", *command[1:]]
    return command + list(container.get("args") or [])


def start(
    container: Mapping[str, Any],
    annotations: Mapping[str, str],
    overrides: Mapping[str, str],
    *,
    cwd: Path,
    log: Path,
    extra_args: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the container's process; ``extra_args`` go right after the subcommand."""
    argv = local_argv(container)
    if extra_args:
        at = argv.index("modelops.cli") + 2 if "modelops.cli" in argv else len(argv)
        argv[at:at] = extra_args
    env = {
        # Only the basics of this process's environment: nothing of the test
        # runner's own distributed or cloud settings leaks in.
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        **resolve_env(container, annotations, overrides, labels),
    }
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
