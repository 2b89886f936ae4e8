"""The drift-monitor sidecar in front of the real tritonserver (nvidia-pytriton's binary).

One Triton per module; sidecars run as a subprocess (``python -m modelops.cli
drift-monitor``, as in the pod) or in-process where a test needs to reach
into the proxy (draining the statistics queue). The drift tests run over
HTTP and over gRPC (raw_input_contents and typed contents alternately);
the gRPC passthrough itself is tested in test_sidecar_grpc.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from modelops.drift.detectors import METHODS
from tests.drift.conftest import (
    MODEL,
    N_FEATURES,
    Inferer,
    Sidecar,
    drift_doc,
    http_get,
    http_post,
    metric_value,
)

pytestmark = [pytest.mark.triton, pytest.mark.timeout(180)]


def _client(url: str) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(url.removeprefix("http://"), concurrency=1)


def _infer(client, x: np.ndarray, binary: bool = True, **kw) -> np.ndarray:
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x.astype(np.float32), binary_data=binary)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)
    return client.infer(MODEL, [inp], outputs=[out], **kw).as_numpy("OUTPUT0")


def _json_infer_body(x: np.ndarray, dtype: str = "FP32", shape=None) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "shape": list(shape or x.shape),
                    "datatype": dtype,
                    "data": x.reshape(-1).tolist(),
                }
            ]
        }
    ).encode()


# Detection tests count every row: the statistics worker's CPU budget (which
# drops samples when the shared test machine is busy) is lifted for them.
NO_CPU_BUDGET = ("--stats-cpu", "1")


def _sidecar_args(triton, reference_path, *extra: str) -> list[str]:
    return [
        "--reference", str(reference_path), "--upstream", triton.http_url,
        "--grpc-upstream", triton.grpc_url, "--model", MODEL, *NO_CPU_BUDGET, *extra,
    ]  # fmt: skip


# The drift tests run over both protocols the sidecar proxies.
PROTOCOLS = ["http", "grpc"]


# -- passthrough -------------------------------------------------------------------


def test_inference_through_sidecar_equals_direct(triton, sidecar_subprocess):
    url, admin, _ = sidecar_subprocess("--model", MODEL, "--window", "100")
    rng = np.random.default_rng(0)
    direct, via = _client(triton.http_url), _client(url)
    for batch in (1, 7, 64):
        x = rng.normal(size=(batch, N_FEATURES)).astype(np.float32)
        for binary in (True, False):
            a = _infer(direct, x, binary)
            b = _infer(via, x, binary)
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(b[:, 0], x.sum(axis=1), rtol=1e-5)
    # Compressed requests and responses pass through too (and are still inspected).
    x = rng.normal(size=(5, N_FEATURES)).astype(np.float32)
    np.testing.assert_array_equal(
        _infer(via, x, request_compression_algorithm="gzip", response_compression_algorithm="gzip"),
        _infer(direct, x),
    )
    # 3 batch sizes x 2 encodings + the compressed one
    expected_rows = 2 * (1 + 7 + 64) + 5
    doc = _wait_samples(admin, expected_rows)
    assert doc["samples"]["skipped"] == 0 and doc["samples"]["dropped"] == 0
    assert doc["window"]["evaluations"] == expected_rows // 100


def _wait_samples(admin: str, n: int, timeout: float = 10) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        doc = drift_doc(admin)
        if doc["samples"]["total"] >= n or time.monotonic() > deadline:
            assert doc["samples"]["total"] == n, doc["samples"]
            return doc
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("GET", "/v2"),
        ("GET", f"/v2/models/{MODEL}"),
        ("GET", f"/v2/models/{MODEL}/versions/1"),
        ("GET", f"/v2/models/{MODEL}/ready"),
        ("GET", f"/v2/models/{MODEL}/config"),
        ("POST", "/v2/repository/index"),
        ("GET", "/v2/models/no_such_model"),
        ("GET", "/v2/models/no_such_model/config"),
        ("GET", "/v2/systemsharedmemory/status"),
        ("GET", "/not/a/triton/path"),
    ],
)
def test_control_endpoints_pass_through(triton, reference_path, method, path):
    with Sidecar(_sidecar_args(triton, reference_path)) as sc:
        for _ in range(2):
            if method == "GET":
                direct = http_get(triton.http_url + path)
                via = http_get(sc.url + path)
            else:
                direct = http_post(triton.http_url + path, b"{}")[:2]
                via = http_post(sc.url + path, b"{}")[:2]
            assert via == direct


def test_tritonclient_control_calls_through_sidecar(triton, sidecar_subprocess):
    url, _, _ = sidecar_subprocess()
    c, d = _client(url), _client(triton.http_url)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    assert c.get_server_metadata() == d.get_server_metadata()
    assert c.get_model_metadata(MODEL) == d.get_model_metadata(MODEL)
    assert c.get_model_config(MODEL) == d.get_model_config(MODEL)
    assert c.get_model_repository_index() == d.get_model_repository_index()
    stats = c.get_inference_statistics(MODEL)
    assert stats["model_stats"][0]["name"] == MODEL


# -- metrics ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_and_sidecar_metrics_move(triton, sidecar_subprocess, protocol):
    # 50-row windows are far too small for PSI (noise alone scores ~0.4); KS copes.
    started = sidecar_subprocess("--model", MODEL, "--method", "ks", "--window", "50")
    url, admin, _ = started

    def triton_success() -> float:
        return metric_value(
            http_get(triton.metrics_url)[1].decode(), "nv_inference_request_success", model=MODEL
        )

    before = triton_success()
    infer = Inferer(protocol, url, started.grpc_url)
    rng = np.random.default_rng(1)
    for _ in range(12):
        infer(rng.normal(size=(10, N_FEATURES)))
    assert triton_success() - before == 12
    _wait_samples(admin, 120)
    text = http_get(admin + "/metrics")[1].decode()
    if protocol == "http":
        count = metric_value(text, "modelops_proxy_requests_total", code="200", endpoint="infer")
        timed = metric_value(
            text, "modelops_proxy_request_duration_seconds_count", endpoint="infer"
        )
    else:  # the gRPC relay counts calls by method (status codes travel end to end)
        count = timed = metric_value(
            text, "modelops_proxy_grpc_requests_total", method="ModelInfer"
        )
    assert count == timed == 12
    assert metric_value(text, "modelops_drift_samples_total", model=MODEL) == 120
    assert metric_value(text, "modelops_drift_evaluations_total", model=MODEL) == 2
    assert metric_value(text, "modelops_drift_evaluation_duration_seconds_count", model=MODEL) == 2
    assert metric_value(text, "modelops_drift_last_evaluation_timestamp_seconds", model=MODEL) > 0
    assert metric_value(text, "modelops_drift_detected", model=MODEL) == 0
    assert metric_value(text, "modelops_drift_dropped_samples_total", model=MODEL) == 0
    # One score series per (reference feature, method), whatever the traffic.
    series = [ln for ln in text.splitlines() if ln.startswith("modelops_drift_feature_score{")]
    assert len(series) == N_FEATURES * len(METHODS)  # psi, ks, js and ksz
    assert "_created" not in text


# -- drift detection ---------------------------------------------------------------------


def _send_windows(infer, rng, windows: int, window: int, shift: float = 0.0, feature: int = 7):
    batch = 100
    for _ in range(windows * window // batch):
        x = rng.normal(size=(batch, N_FEATURES))
        x[:, feature] += shift
        infer(x)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stationary_then_shifted_traffic_subprocess_psi(triton, sidecar_subprocess, protocol):
    """100 stationary windows: no alarm. A 0.5 sigma shift in f7: alarm within two windows."""
    window = 1000
    started = sidecar_subprocess(
        "--model", MODEL, "--method", "psi", "--threshold", "0.2", "--window", str(window),
        *NO_CPU_BUDGET,
    )  # fmt: skip
    url, admin, _ = started
    client = Inferer(protocol, url, started.grpc_url)
    rng = np.random.default_rng(7)
    _send_windows(client, rng, 100, window)
    doc = _wait_samples(admin, 100 * window)
    assert doc["window"]["evaluations"] == 100
    assert doc["drifted"] is False and doc["since"] is None
    text = http_get(admin + "/metrics")[1].decode()
    assert metric_value(text, "modelops_drift_detected", model=MODEL) == 0
    assert metric_value(text, "modelops_drift_evaluations_total", model=MODEL) == 100
    assert doc["score"] < 0.1

    for i in range(2):
        _send_windows(client, rng, 1, window, shift=0.5)
        doc = _wait_samples(admin, (101 + i) * window)
        if doc["drifted"]:
            break
    assert doc["drifted"] is True
    assert doc["drifted_features"] == ["f7"]
    assert doc["since"] is not None
    f7 = next(f for f in doc["features"] if f["name"] == "f7")
    assert f7["drifted"] and f7["psi"] > 0.2 and f7["mean_shift"] == pytest.approx(0.5, abs=0.1)
    assert doc["score"] == f7["score"] == f7["psi"]
    text = http_get(admin + "/metrics")[1].decode()
    assert metric_value(text, "modelops_drift_detected", model=MODEL) == 1
    assert metric_value(text, "modelops_drift_drifted_features_ratio", model=MODEL) == 0.05
    assert (
        metric_value(text, "modelops_drift_feature_score", feature="f7", method="psi") == f7["psi"]
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ks_detection_in_process_json_requests(triton, reference_path, protocol):
    """Same scenario with KS, plain JSON requests and one-row requests (over ``protocol``),
    in-process sidecar."""
    window = 500
    args = _sidecar_args(triton, reference_path, "--method", "ks", "--window", str(window))
    with Sidecar(args) as sc:
        rng = np.random.default_rng(8)
        alarms = 0
        for _ in range(100):
            for _ in range(2):  # max_batch_size is 256
                x = rng.normal(size=(window // 2, N_FEATURES))
                status, _, _ = http_post(
                    f"{sc.url}/v2/models/{MODEL}/infer", _json_infer_body(x.astype(np.float32))
                )
                assert status == 200
            sc.drain()
            alarms += drift_doc(sc.admin_url)["drifted"]
        assert alarms == 0
        infer = Inferer(protocol, sc.url, sc.grpc_url)
        for _ in range(2 * window):  # one row per request, 0.5 sigma shift in f3
            x = rng.normal(size=(1, N_FEATURES))
            x[0, 3] += 0.5
            infer(x)
        sc.drain()
        doc = drift_doc(sc.admin_url)
        assert doc["window"]["evaluations"] == 102
        assert doc["drifted"] is True and doc["drifted_features"] == ["f3"]
        assert doc["method"] == "ks" and doc["threshold"] == 0.001
        f3 = next(f for f in doc["features"] if f["name"] == "f3")
        assert f3["ks_pvalue"] < 0.001 / N_FEATURES and doc["score"] == f3["ks"]


# -- bad requests ---------------------------------------------------------------------------


def test_bad_requests_get_tritons_errors_and_the_sidecar_keeps_serving(triton, sidecar_subprocess):
    url, admin, proc = sidecar_subprocess("--model", MODEL, "--max-body-bytes", "20000")
    infer = f"/v2/models/{MODEL}/infer"
    x = np.ones((2, N_FEATURES), dtype=np.float32)
    cases = {
        "malformed JSON": b'{"inputs": [ {"name": ',
        "not an object": b"[1, 2, 3]",
        "wrong dtype": _json_infer_body(x, dtype="INT32"),
        "wrong shape": _json_infer_body(x[:, :19]),
        "shape/data mismatch": _json_infer_body(x, shape=[3, N_FEATURES]),
        "unknown input": json.dumps(
            {"inputs": [{"name": "NOPE", "shape": [1], "datatype": "FP32", "data": [1]}]}
        ).encode(),
        "empty body": b"",
    }
    for name, body in cases.items():
        direct = http_post(triton.http_url + infer, body)
        via = http_post(url + infer, body)
        # Triton's own status and error, unchanged. (Triton 2.51 answers 500, not
        # 400, when it cannot parse the JSON; the proxy does not second-guess it.)
        assert via[:2] == direct[:2], name
        assert via[0] in (400, 500), (name, via)
        assert "error" in json.loads(via[1]), name

    status, body, _ = http_post(url + "/v2/models/no_such_model/infer", _json_infer_body(x))
    assert (status, body) == http_post(
        triton.http_url + "/v2/models/no_such_model/infer", _json_infer_body(x)
    )[:2]
    assert status in (400, 404)

    big = np.ones((256, N_FEATURES), dtype=np.float32)
    status, body, _ = http_post(url + infer, _json_infer_body(big))  # ~26 kB as JSON
    assert status == 413 and "proxy limit" in json.loads(body)["error"]

    # Binary body whose header lies about its length.
    status, _, _ = http_post(
        url + infer, b'{"inputs": []}', {"Inference-Header-Content-Length": "9999"}
    )
    assert status == 400

    # Still serving, and none of the failed requests reached the drift window.
    np.testing.assert_allclose(_infer(_client(url), x)[:, 0], x.sum(axis=1))
    doc = _wait_samples(admin, 2)
    assert doc["samples"]["skipped"] == 0
    assert proc.poll() is None
    text = http_get(admin + "/metrics")[1].decode()
    assert metric_value(text, "modelops_proxy_requests_total", code="413", endpoint="infer") == 1
    errors = sum(
        metric_value(text, "modelops_proxy_requests_total", code=c, endpoint="infer")
        for c in ("400", "404", "500")
    )
    assert errors == len(cases) + 2


def test_triton_down_gives_502_not_a_crash(triton, sidecar_subprocess):
    from tests.support.triton_server import free_port

    url, admin, proc = sidecar_subprocess(upstream=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(InferenceServerException) as err:
        _infer(_client(url), np.ones((1, N_FEATURES)))
    assert "unreachable" in str(err.value)
    status, body = http_get(url + "/v2/health/ready")
    assert status == 502 and "unreachable" in json.loads(body)["error"]
    assert http_get(admin + "/healthz")[0] == 200
    assert proc.poll() is None


def test_subprocess_flags_and_clean_shutdown(triton, sidecar_subprocess):
    _, admin, proc = sidecar_subprocess("--method", "js", "--threshold", "0.05", "--window", "7")
    doc = drift_doc(admin)
    assert (doc["method"], doc["threshold"], doc["window"]["size"]) == ("js", 0.05, 7)
    assert doc["model"] == ""
    proc.terminate()
    assert proc.wait(10) == 0
    assert "shutting down" in proc.stderr.read()
