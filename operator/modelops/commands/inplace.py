"""The in-pod side of an in-place rollout: stage, load, promote and unload a candidate
version in the Triton that already serves the stable one.

Layout in the model repository Triton serves from (``--model-control-mode=explicit``,
``--load-model=<model>``, so nothing else loads on its own)::

    <repo>/<model>/config.pbtxt, <repo>/<model>/7/...             the stable model
    <repo>/<model>.candidate/config.pbtxt, .../8/...               the candidate

The candidate is fetched by the same puller as the init container
(:func:`modelops.commands.pull.pull_model`, under the sibling name), and its config
is rewritten by :func:`candidate_config` (its own name, a ``specific`` version policy
naming only the candidate, two priority levels). Why a sibling name rather than a
second version of ``<model>``: see :mod:`modelops.drift.inplace`.

- :func:`load_candidate`: ``POST /v2/repository/models/<model>.candidate/load``;
- :func:`promote`: the candidate becomes ``<model>``: the candidate is unloaded
  first (so two copies at most are ever loaded), its version directory and
  config move under ``<model>`` (a rename on the same filesystem), and
  ``<model>`` is loaded again: Triton loads the new version before it unloads
  the old one, so the model keeps serving; no process restarts;
- :func:`roll_back`: unload the candidate and remove its directory.

:func:`memory_report` reads what the fit check needs: GPU memory from Triton's
own metrics (``nv_gpu_memory_total_bytes`` / ``nv_gpu_memory_used_bytes``) and the
container's memory limit and usage from its cgroup.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modelops.modeldir.layout import CONFIG_NAME, parse_version_dir
from modelops.modeldir.repository import fsync_dir, write_file_atomic
from modelops.triton.config_patch import ConfigError, _parse, _render

CANDIDATE_SUFFIX = ".candidate"  # the same as modelops.drift.inplace.CANDIDATE_SUFFIX
SOURCE_CONFIG = "config.source.pbtxt"  # the candidate's config as published
PRIORITY_LEVELS = 2
LIVE_PRIORITY = 1
# Answers of Triton's repository API are small; anything bigger is not Triton.
_MAX_ANSWER = 4 * 1024 * 1024


class InPlaceError(RuntimeError):
    """Triton refused or did not finish a repository operation (the message says which)."""


def candidate_model(model: str) -> str:
    return model + CANDIDATE_SUFFIX


def candidate_config(text: str, model: str, version: int) -> str:
    """The candidate's config: its own name, only ``version`` loaded, and (for a
    batching model) two priority levels, live requests at the higher one."""
    config = _parse(text)
    config.name = candidate_model(model)
    del config.version_policy.specific.versions[:]
    config.version_policy.specific.versions.append(version)
    if config.max_batch_size > 0:
        # Priority needs the dynamic batcher (Triton refuses it without batching).
        config.dynamic_batching.priority_levels = PRIORITY_LEVELS
        config.dynamic_batching.default_priority_level = LIVE_PRIORITY
    return _render(config)


def promoted_config(text: str, model: str) -> str:
    """The candidate's published config as ``<model>``'s (its own name back)."""
    config = _parse(text)
    config.name = model
    return _render(config)


def stage_candidate(repository: Path, model: str, version: int, source_config: str) -> Path:
    """Rewrite the config of a candidate pulled to ``<repo>/<model>.candidate/<version>``
    (keeping the published one beside it for the promotion). Returns the model dir."""
    model_dir = repository / candidate_model(model)
    if not (model_dir / str(version)).is_dir():
        raise InPlaceError(f"{model_dir}/{version} is not there: pull it first")
    try:
        staged = candidate_config(source_config, model, version)
    except ConfigError as exc:
        raise InPlaceError(f"candidate config: {exc}") from exc
    write_file_atomic(model_dir / SOURCE_CONFIG, source_config.encode())
    write_file_atomic(model_dir / CONFIG_NAME, staged.encode())
    return model_dir


def pull_candidate(
    uri: str, repository: Path, model: str, version: int, **pull_kwargs: object
) -> tuple[Path, int]:
    """Fetch ``version`` from ``uri`` with the init container's puller under the
    candidate's name and stage it. Returns (model dir, bytes of the version's files)."""
    from modelops.commands.pull import pull_model

    result = pull_model(
        uri,
        repository=repository,
        model_name=candidate_model(model),
        version=str(version),
        **pull_kwargs,  # type: ignore[arg-type]
    )
    model_dir = Path(result.path)
    config = model_dir / CONFIG_NAME
    if not config.is_file():
        raise InPlaceError(f"{uri} version {version} has no {CONFIG_NAME}")
    stage_candidate(repository, model, version, config.read_text())
    return model_dir, result.bytes


def version_bytes(version_dir: Path) -> int:
    """Bytes of a version's files: a lower bound for the memory it needs once loaded."""
    return sum(p.stat().st_size for p in version_dir.rglob("*") if p.is_file())


# -- Triton's repository API -------------------------------------------------------------


def _post(url: str, path: str, doc: dict[str, object], timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(_MAX_ANSWER)
    except urllib.error.HTTPError as err:
        return err.code, err.read(_MAX_ANSWER)
    except (OSError, TimeoutError) as exc:
        raise InPlaceError(f"Triton at {url} is unreachable: {exc}") from exc


def _model_path(name: str, action: str) -> str:
    return f"/v2/repository/models/{urllib.parse.quote(name, safe='')}/{action}"


def _error(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:500].decode("utf-8", "replace")
    return str(doc.get("error", doc)) if isinstance(doc, dict) else str(doc)[:500]


def load(url: str, name: str, timeout: float = 600.0) -> None:
    """Load (or reload) model ``name``; returns once Triton answered (loaded or failed)."""
    status, body = _post(url, _model_path(name, "load"), {}, timeout)
    if status != 200:
        raise InPlaceError(f"Triton refused to load {name}: {_error(body)}")


def unload(url: str, name: str, timeout: float = 60.0) -> None:
    """Unload model ``name`` and wait until none of its versions is READY."""
    status, body = _post(
        url, _model_path(name, "unload"), {"parameters": {"unload_dependents": False}}, timeout
    )
    if status != 200:
        raise InPlaceError(f"Triton refused to unload {name}: {_error(body)}")
    deadline = time.monotonic() + timeout
    while name in ready_versions(url):
        if time.monotonic() > deadline:
            raise InPlaceError(f"{name} still loaded {timeout:g}s after its unload")
        time.sleep(0.05)


def ready_versions(url: str, timeout: float = 10.0) -> dict[str, list[str]]:
    """Model -> READY versions, from ``POST /v2/repository/index``."""
    status, body = _post(url, "/v2/repository/index", {}, timeout)
    if status != 200:
        raise InPlaceError(f"repository index: {_error(body)}")
    out: dict[str, list[str]] = {}
    for entry in json.loads(body):
        if isinstance(entry, dict) and entry.get("state") == "READY":
            out.setdefault(str(entry.get("name")), []).append(str(entry.get("version")))
    return out


def load_candidate(url: str, model: str) -> None:
    """Load the staged candidate; when Triton cannot, it is unloaded again (a model left
    UNAVAILABLE may hold what its failed instances took) and the error raised."""
    try:
        load(url, candidate_model(model))
    except InPlaceError:
        # The load's error is the one to report.
        with contextlib.suppress(InPlaceError):
            unload(url, candidate_model(model), timeout=30.0)
        raise


def roll_back(url: str, repository: Path, model: str) -> None:
    """Unload the candidate and remove it from the repository (the stable model is
    untouched)."""
    name = candidate_model(model)
    unload(url, name)
    _remove(repository / name)


def promote(url: str, repository: Path, model: str, version: int) -> None:
    """The candidate ``version`` becomes ``<model>``'s only version, in the same Triton.

    Order matters for memory: the candidate is unloaded first, then ``<model>``
    reloaded with the new version (Triton loads it before unloading the old one), so
    at most two copies are loaded at any time, as during the shadow."""
    cand_dir = repository / candidate_model(model)
    model_dir = repository / model
    src = cand_dir / str(version)
    if not src.is_dir():
        raise InPlaceError(f"{src} is not there: nothing to promote")
    source_config = (cand_dir / SOURCE_CONFIG).read_text()
    unload(url, candidate_model(model))
    dest = model_dir / str(version)
    if dest.exists():
        _remove(dest)
    os.rename(src, dest)
    fsync_dir(model_dir)
    old = [e for e in model_dir.iterdir() if (n := parse_version_dir(e.name)) and n != version]
    write_file_atomic(model_dir / CONFIG_NAME, promoted_config(source_config, model).encode())
    # Triton's default policy (latest 1) now names the new version; a config that pins
    # versions gets the promoted one only. Going back to a lower version (a promotion
    # rolled back after this pod promoted, drift/inplace_agent.py) hides the higher ones
    # from Triton first (a name that is not a number), restored if the reload fails.
    higher = [e for e in old if (parse_version_dir(e.name) or 0) > version]
    hidden = [(e, model_dir / f".hidden-{e.name}") for e in higher]
    for entry, away in hidden:
        os.rename(entry, away)
    load(url, model)
    ready = ready_versions(url).get(model, [])
    if str(version) not in ready:
        for entry, away in hidden:
            os.rename(away, entry)
        raise InPlaceError(f"{model} version {version} not READY after the reload: {ready}")
    for entry in [e for e in old if e not in higher] + [away for _, away in hidden]:
        _remove(entry)
    _remove(cand_dir)


def _remove(path: Path) -> None:
    if not path.exists():
        return
    hidden = path.parent / f".tmp-old-{path.name}-{os.getpid()}"
    os.rename(path, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


# -- what the fit check reads --------------------------------------------------------------

_METRIC = re.compile(r"^(nv_gpu_memory_(?:total|used)_bytes)\{([^}]*)\}\s+([0-9.eE+]+)$")


@dataclass(frozen=True)
class MemoryReport:
    """Memory of one pod, bytes; None where not known (no GPU, no cgroup limit)."""

    gpu_total: int | None = None
    gpu_used: int | None = None
    host_limit: int | None = None
    host_used: int | None = None

    def to_json(self) -> dict[str, int | None]:
        return {
            "gpuTotalBytes": self.gpu_total,
            "gpuUsedBytes": self.gpu_used,
            "hostLimitBytes": self.host_limit,
            "hostUsedBytes": self.host_used,
        }


def gpu_memory(metrics_text: str) -> tuple[int | None, int | None]:
    """(total, used) GPU memory, summed over the GPUs Triton reports; (None, None)
    without any (a CPU server)."""
    total = used = 0
    seen = False
    for line in metrics_text.splitlines():
        m = _METRIC.match(line.strip())
        if m is None:
            continue
        seen = True
        value = int(float(m.group(3)))
        if m.group(1).endswith("total_bytes"):
            total += value
        else:
            used += value
    return (total, used) if seen else (None, None)


def cgroup_memory(root: Path = Path("/sys/fs/cgroup")) -> tuple[int | None, int | None]:
    """(limit, usage) of this container's cgroup v2; limit None when unlimited."""
    try:
        limit_text = (root / "memory.max").read_text().strip()
        used = int((root / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None, None
    limit = None if limit_text == "max" else int(limit_text)
    return limit, used


def memory_report(
    metrics_url: str | None, cgroup_root: Path = Path("/sys/fs/cgroup")
) -> MemoryReport:
    gpu_total = gpu_used = None
    if metrics_url:
        try:
            with urllib.request.urlopen(metrics_url, timeout=5) as r:
                gpu_total, gpu_used = gpu_memory(r.read(_MAX_ANSWER).decode("utf-8", "replace"))
        except (OSError, TimeoutError):
            pass
    limit, used = cgroup_memory(cgroup_root)
    return MemoryReport(gpu_total, gpu_used, limit, used)
