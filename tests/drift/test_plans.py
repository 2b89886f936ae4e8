"""Statistics read by plan equal statistics read by parsing every payload (issue 19).

The worker slices the tensor bytes of payloads whose layout it has seen
(:class:`~modelops.drift.payload.PlannedParser`); for every kind of request
body here, HTTP and gRPC, good and bad, the window it builds must be the
same as parsing each payload whole, and the skips the same.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from modelops.drift.detectors import DetectorConfig
from modelops.drift.feeder import StatsFeeder
from modelops.drift.grpc_payload import model_infer_parser
from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.payload import http_parser
from modelops.drift.reference import build_reference

NF = 4


def _feeder() -> StatsFeeder:
    ref = build_reference(np.random.default_rng(0).normal(size=(2000, NF)), bins=8)
    mon = DriftMonitor(ref, DetectorConfig(), WindowConfig(size=1_000_000))
    return StatsFeeder(mon, DriftMetrics("m", ref.names))


def _binary(inputs: list[tuple[str, str, list[int], bytes]], extra: dict | None = None):
    doc = {"inputs": [
        {"name": n, "datatype": t, "shape": s, "parameters": {"binary_data_size": len(b)}}
        for n, t, s, b in inputs
    ], **(extra or {})}  # fmt: skip
    header = json.dumps(doc).encode()
    return header + b"".join(b for *_, b in inputs), http_parser(len(header), None)


def _grpc(inputs: list[tuple[str, str, list[int], bytes]], model: str = "m"):
    req = service_pb2.ModelInferRequest(model_name=model)
    for n, t, s, b in inputs:
        req.inputs.add(name=n, datatype=t, shape=s)
        req.raw_input_contents.append(b)
    return req.SerializeToString(), model_infer_parser("m")


def _json(x: np.ndarray) -> bytes:
    inp = {"name": "X", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
    return json.dumps({"inputs": [inp]}).encode()


def _payloads(rng: np.random.Generator) -> list:
    out = []
    for _ in range(30):
        x = rng.normal(size=(3, NF))
        f4, f8 = x.astype("<f4").tobytes(), x.astype("<f8").tobytes()
        ids = np.arange(3, dtype="<i8").tobytes()
        out += [
            _binary([("X", "FP32", [3, NF], f4)]),
            _binary([("ID", "INT64", [3], ids), ("X", "FP64", [3, NF], f8)]),
            _binary([("X", "FP32", [3, NF], f4[:-4])]),  # size does not fit the shape: skip
            _binary([("T", "BYTES", [1], b"\x03\x00\x00\x00abc"), ("X", "FP32", [3, NF], f4)]),
            _binary([(f"f{j}", "FP32", [3], x[:, j].astype("<f4").tobytes()) for j in range(NF)]),
            (_json(x), http_parser(None, None)),
            _grpc([("X", "FP32", [3, NF], f4)]),
            _grpc([("ID", "INT64", [3], ids), ("X", "FP64", [3, NF], f8)]),
            _grpc([("X", "FP32", [3, NF], f4)], model="other"),  # another model: skip
            _grpc([("X", "FP32", [2, NF], f4)]),  # shape does not fit the bytes: skip
        ]
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_batches_read_by_plan_equal_parsing_each_payload(seed):
    payloads = _payloads(np.random.default_rng(seed))
    whole, planned = _feeder(), _feeder()
    for payload, parse in payloads:
        whole.process(payload, parse)
    for i in range(0, len(payloads), 16):
        planned.process_batch(payloads[i : i + 16])
    a, b = whole.monitor.histograms(), planned.monitor.histograms()
    assert a["rows"] == b["rows"] > 0
    for fa, fb in zip(a["features"], b["features"], strict=True):
        assert fa["bins"] == fb["bins"] and fa["n"] == fb["n"]
        assert np.isclose(fa["sum"], fb["sum"]) and np.isclose(fa["sumsq"], fb["sumsq"])
    assert whole.skipped == planned.skipped and whole.processed == planned.processed
    # Plans were made and used: one per good layout, none for the bad ones.
    good = [p for p in planned._plans.values() if p is not None]
    assert len(good) == 6 and len(planned._plans) >= 8
