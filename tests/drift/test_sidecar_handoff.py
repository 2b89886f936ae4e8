"""The statistics side costs the hot path one enqueue per request, nothing more (issue 19).

An in-process sidecar in front of the real Triton serves 1,000 tritonclient
infer requests (binary tensors, HTTP, from 8 threads); the statistics worker
must be woken by the clock, not by requests, and take the requests' bodies in
batches, while every row still reaches the window. The worker's counters are
what it does per wake-up, so they show any per-request hand-off: 1,000
requests handed over one by one would give 1,000 batches.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.drift.conftest import MODEL, N_FEATURES, Sidecar, grpc_client, grpc_infer

pytestmark = [pytest.mark.triton, pytest.mark.timeout(180)]

REQUESTS = 1000
CLIENTS = 8


def test_statistics_take_batches_woken_by_the_clock_not_by_requests(triton, reference_path):
    args = [
        "--reference", str(reference_path), "--upstream", triton.http_url, "--model", MODEL,
        "--stats-cpu", "1", "--window", "100000",
    ]  # fmt: skip
    with Sidecar(args) as sc:
        assert sc.proxy is not None
        feeder = sc.proxy.feeder
        rng = np.random.default_rng(3)
        batches = [rng.normal(size=(2, N_FEATURES)).astype(np.float32) for _ in range(REQUESTS)]

        def send(xs: list[np.ndarray]) -> None:
            client = httpclient.InferenceServerClient(sc.url.removeprefix("http://"))
            for x in xs:
                inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                client.infer(MODEL, [inp])
            client.close()

        sc.drain()
        wakeups0, batches0 = feeder.wakeups, feeder.batches
        t0 = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(send, [batches[k::CLIENTS] for k in range(CLIENTS)]))
        sc.drain()
        elapsed = time.monotonic() - t0
        wakeups, handoffs = feeder.wakeups - wakeups0, feeder.batches - batches0

        # Complete statistics: every row of every request, none dropped or skipped.
        assert sc.proxy.monitor.total_samples == 2 * REQUESTS
        assert feeder.dropped == 0 and not feeder.skipped
        # Woken by the clock: at most one wake-up per poll period (plus the two ends).
        assert wakeups <= elapsed / feeder.poll_seconds + 3, (wakeups, elapsed)
        # Hand-offs are batches: far fewer than requests.
        assert handoffs <= wakeups
        assert handoffs * 4 < REQUESTS, (handoffs, elapsed)
        # One request shape, one JSON header read: the other bodies were sliced.
        assert len(feeder._plans) == 1 and next(iter(feeder._plans.values())) is not None


def test_grpc_calls_are_handed_over_in_batches_too(triton, reference_path):
    """The same for gRPC ModelInfer: one code path behind both protocols (the relay
    offers each message to the same feeder), so the same bounds hold."""
    args = [
        "--reference", str(reference_path), "--upstream", triton.http_url, "--model", MODEL,
        "--grpc-upstream", triton.grpc_url, "--stats-cpu", "1", "--window", "100000",
    ]  # fmt: skip
    with Sidecar(args) as sc:
        assert sc.proxy is not None
        feeder = sc.proxy.feeder
        rng = np.random.default_rng(4)
        batches = [rng.normal(size=(2, N_FEATURES)).astype(np.float32) for _ in range(REQUESTS)]

        def send(xs: list[np.ndarray]) -> None:
            client = grpc_client(sc.grpc_url)
            for x in xs:
                grpc_infer(client, x)
            client.close()

        sc.drain()
        wakeups0, batches0 = feeder.wakeups, feeder.batches
        t0 = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(send, [batches[k::CLIENTS] for k in range(CLIENTS)]))
        sc.drain()
        elapsed = time.monotonic() - t0
        wakeups, handoffs = feeder.wakeups - wakeups0, feeder.batches - batches0

        assert sc.proxy.monitor.total_samples == 2 * REQUESTS
        assert feeder.dropped == 0 and not feeder.skipped
        assert wakeups <= elapsed / feeder.poll_seconds + 3, (wakeups, elapsed)
        assert handoffs <= wakeups
        assert handoffs * 4 < REQUESTS, (handoffs, elapsed)
