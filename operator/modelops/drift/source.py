"""Load the reference the sidecar compares against, from a path or URI.

Accepted: a local path or ``file://`` URI, or ``http(s)://`` (fetched with the
standard library). Object-store URIs (``s3://``, ``gs://``, ``pvc://``) are
meant to be pulled into the pod by the init container that also pulls the
model, and passed here as a local path; they are refused with that advice.

What the file holds decides what happens: a ``.json`` reference (see
:mod:`modelops.drift.reference`) is used as is; a raw sample (``.npy``,
``.npz``, ``.csv``) is turned into a reference at start-up with ``bins``.
"""

from __future__ import annotations

import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from modelops.drift.reference import DEFAULT_BINS, Reference, ReferenceError, build_reference
from modelops.drift.sample import SAMPLE_SUFFIXES, read_sample


def _local_path(uri: str, workdir: Path) -> Path:
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] == ":\\"):
        return Path(urllib.parse.unquote(parsed.path) if scheme == "file" else uri)
    if scheme in ("http", "https"):
        name = Path(parsed.path).name or "reference.json"
        dest = workdir / name
        try:
            with urllib.request.urlopen(uri, timeout=60) as resp, dest.open("wb") as out:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
        except OSError as exc:
            raise ReferenceError(f"cannot fetch reference {uri}: {exc}") from exc
        return dest
    raise ReferenceError(
        f"reference URI scheme {scheme!r} is not read by the sidecar; pull it into the pod "
        "(as the model is pulled) and pass the local path"
    )


def load_reference(
    uri: str, bins: int = DEFAULT_BINS, features: Sequence[str] | None = None
) -> Reference:
    with tempfile.TemporaryDirectory(prefix="modelops-ref-") as tmp:
        path = _local_path(uri, Path(tmp))
        if not path.is_file():
            raise ReferenceError(f"reference {uri} not found")
        suffix = path.suffix.lower()
        if suffix in SAMPLE_SUFFIXES:
            data, names = read_sample(path, features)
            return build_reference(data, names, bins)
        ref = Reference.load(path)
    if features:
        missing = [f for f in features if f not in ref.names]
        if missing:
            raise ReferenceError(f"reference has no feature(s) {missing}")
        by_name = {f.name: f for f in ref.features}
        ref = Reference(tuple(by_name[f] for f in features), ref.n_samples, ref.created)
    return ref
