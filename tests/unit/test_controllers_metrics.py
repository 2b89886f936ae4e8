"""The operator's condition metrics stay consistent when many threads export at once."""

from __future__ import annotations

import threading

from prometheus_client import generate_latest

from modelops.controllers import metrics


def _samples(name: str) -> dict[str, float]:
    out = {}
    for line in generate_latest().decode().splitlines():
        if line.startswith(name + "{"):
            head, value = line.rsplit(" ", 1)
            out[head] = float(value)
    return out


def test_concurrent_exports_keep_counts_and_series_consistent():
    kind = "ConcurrencyProbe"

    def worker(offset: int) -> None:
        for i in range(200):
            status = "True" if (i + offset) % 2 else "False"
            metrics.export_conditions(
                kind, "ns", f"r{offset}-{i % 50}", [{"type": "Ready", "status": status}]
            )

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    managed = {k: v for k, v in _samples("modelops_managed_resources").items() if kind in k}
    assert sum(managed.values()) == 8 * 50  # each resource counted once, whatever its status
    series = [k for k in _samples("modelops_resource_condition") if kind in k]
    assert len(series) == 8 * 50  # one Ready series per resource, stale ones removed

    for t in range(8):
        for i in range(50):
            metrics.forget(kind, "ns", f"r{t}-{i}")
    managed = {k: v for k, v in _samples("modelops_managed_resources").items() if kind in k}
    assert sum(managed.values()) == 0
    assert not [k for k in _samples("modelops_resource_condition") if kind in k]
