"""The run's result as the operator reads it: one JSON line, also the pod's termination message.

Success (printed to stdout by rank 0 and written to the termination log)::

    {"outputVersion": 3, "outputUri": "s3://models/fraud", "model": "fraud",
     "resumedFromEpoch": 0,
     "metrics": {"loss": 0.21, "accuracy": 0.93, "valLoss": 0.23, "valAccuracy": 0.92,
                 "samplesPerSecond": 51234.5, "epochs": 5, "worldSize": 2}}

Failure (written to the termination log by the failing process)::

    {"error": {"reason": "AccessDenied", "message": "uploading s3://..."}}

Kubernetes keeps at most 4096 bytes of a termination message, so the
document is compact and metrics are flat numbers; the full history is in the
version's ``metrics.json``.

The same success document is kept as ``result.json`` in the checkpoint
directory: a pod that restarts after publishing (e.g. it was killed before
it could exit) reports that result again instead of publishing a second
version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from modelops.redact import redact

log = logging.getLogger(__name__)

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
RESULT_NAME = "result.json"
MAX_MESSAGE_BYTES = 4096


def default_termination_log() -> str:
    """The kubelet's termination-message file when this runs in a container, else ''."""
    path = DEFAULT_TERMINATION_LOG
    return path if os.path.exists(path) and os.access(path, os.W_OK) else ""


def success_document(
    version: int,
    output_uri: str,
    model: str,
    metrics: dict[str, float | int | None],
    resumed_from_epoch: int,
) -> dict[str, Any]:
    return {
        "outputVersion": version,
        "outputUri": output_uri,
        "model": model,
        "resumedFromEpoch": resumed_from_epoch,
        "metrics": {k: v for k, v in metrics.items() if v is not None},
    }


def error_document(reason: str, message: str) -> dict[str, Any]:
    # The message may quote the dataset or output URI; never with its credentials.
    return {"error": {"reason": reason, "message": redact(" ".join(message.split()))}}


def render_message(document: dict[str, Any]) -> str:
    """One compact JSON line that fits a termination message."""
    text = json.dumps(document, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) <= MAX_MESSAGE_BYTES:
        return text
    if "error" in document:
        error = document["error"]
        # Keep the reason; cut the message (a long stack of causes) to fit.
        room = MAX_MESSAGE_BYTES - len(render_message(error_document(error["reason"], "")))
        cut = error["message"].encode()[: max(room - 3, 0)].decode(errors="ignore") + "..."
        return json.dumps(error_document(error["reason"], cut), separators=(",", ":"))
    # A success document only grows with the output URI: drop it, the operator knows it.
    trimmed = {k: v for k, v in document.items() if k not in ("outputUri",)}
    return json.dumps(trimmed, separators=(",", ":"), sort_keys=True)


def write_termination_log(path: str, message: str) -> None:
    """Best effort: a missing or read-only file must not fail a finished training run."""
    if not path:
        return
    try:
        with open(path, "w") as handle:
            handle.write(redact(message))
    except OSError as err:
        log.warning("cannot write the termination message to %s: %s", path, err)


def read_result(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The result of a run that already published from this checkpoint directory."""
    path = checkpoint_dir / RESULT_NAME
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        log.warning("ignoring unreadable %s: %s", path, err)
        return None
    if not isinstance(document, dict) or not isinstance(document.get("outputVersion"), int):
        log.warning("ignoring %s: no outputVersion", path)
        return None
    return document


def save_result(checkpoint_dir: Path, document: dict[str, Any]) -> None:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=checkpoint_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, checkpoint_dir / RESULT_NAME)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
