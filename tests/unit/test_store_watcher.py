"""The store watcher against a real local model store: listing off the reconcile path,
digests of the manifests, back-off on failure."""

from __future__ import annotations

import threading
from pathlib import Path

from modelops.controllers.store_watcher import StoreWatcher, listable
from modelops.render.gating.lineage import manifest_digest


def publish(root: Path, version: int, manifest: bytes | None = b"abc  model.onnx\n") -> None:
    (root / str(version)).mkdir(parents=True)
    if manifest is not None:  # without it the version is still being written
        (root / str(version) / "SHA256SUMS").write_bytes(manifest)


def watcher_with_signal(**kw: float) -> tuple[StoreWatcher, threading.Event]:
    done = threading.Event()
    return StoreWatcher(on_ready=lambda key: done.set(), **kw), done  # type: ignore[arg-type]


def test_newest_complete_version_and_its_digest_are_listed_in_the_background(tmp_path: Path):
    publish(tmp_path, 1)
    publish(tmp_path, 2, b"def  model.onnx\n")
    publish(tmp_path, 3, None)  # incomplete: not a version yet
    watcher, done = watcher_with_signal(interval_s=3600)
    uri = f"file://{tmp_path}"
    try:
        assert watcher.view("ml", "m", uri, want=["1"]) is None  # never waits
        assert done.wait(5)
        view = watcher.view("ml", "m", uri, want=["1"])
        assert view is not None and view.newest == "2"
        assert view.digests == {
            "1": manifest_digest(b"abc  model.onnx\n"),
            "2": manifest_digest(b"def  model.onnx\n"),
        }
        # A version published by hand appears at the next listing.
        publish(tmp_path, 4, b"ghi  model.onnx\n")
        done.clear()
        watcher.interval_s = 0
        watcher.view("ml", "m", uri)
        assert done.wait(5)
        assert watcher.view("ml", "m", uri).newest == "4"  # type: ignore[union-attr]
    finally:
        watcher.close()


def test_a_failing_listing_backs_off_and_keeps_the_last_good_one(tmp_path: Path):
    calls = []
    boom = threading.Event()

    def opener(uri: str, env: object):
        calls.append(uri)
        boom.set()
        raise OSError("store unreachable")

    watcher = StoreWatcher(interval_s=1, max_backoff_s=3600, opener=opener)
    try:
        assert watcher.view("ml", "m", f"file://{tmp_path}") is None
        assert boom.wait(5)
        for _ in range(50):
            if watcher._entries[("ml", "m")].failures:
                break
            threading.Event().wait(0.02)
        # Backing off: asking again right away does not list again.
        watcher.view("ml", "m", f"file://{tmp_path}")
        threading.Event().wait(0.2)
        assert len(calls) == 1
    finally:
        watcher.close()


def test_claims_mounted_only_in_the_pods_are_not_listed():
    assert not listable("pvc://models/fraud")
    assert listable("s3://bucket/fraud") and listable("file:///models/fraud")
    assert StoreWatcher().view("ml", "m", "pvc://models/fraud") is None
