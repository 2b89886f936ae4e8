"""`modelops drift-monitor` flags, environment variables and start-up errors."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest

from modelops.drift import cli
from modelops.drift.reference import build_reference


def _parse(argv, monkeypatch=None, env=None):
    if env:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults():
    a = _parse([])
    assert (a.method, a.window, a.window_seconds, a.port, a.admin_port) == (
        "ksz",  # issue 19: the default that finds 0.25 sigma, alpha over its life
        1000,
        0.0,
        8080,
        8090,
    )
    assert a.upstream == "http://127.0.0.1:8000" and a.threshold is None
    det = cli.detector_config(a)
    assert (det.method, det.threshold, det.min_drifted_features) == ("ksz", 0.001, 1)


@pytest.mark.parametrize(
    ("method", "field", "value"),
    [("psi", "psi_threshold", 0.3), ("js", "js_threshold", 0.07), ("ks", "ks_alpha", 0.01)],
)
def test_threshold_applies_to_the_chosen_method(method, field, value):
    det = cli.detector_config(_parse(["--method", method, "--threshold", str(value)]))
    assert getattr(det, field) == value and det.threshold == value


def test_environment_sets_defaults_and_flags_win(monkeypatch):
    env = {
        "MODELOPS_DRIFT_METHOD": "ks",
        "MODELOPS_DRIFT_WINDOW": "250",
        "MODELOPS_DRIFT_WINDOW_SECONDS": "30",
        "MODELOPS_DRIFT_FEATURES": "a, b",
        "MODELOPS_DRIFT_REFERENCE": "/ref.json",
    }
    a = _parse(["--window", "500"], monkeypatch, env)
    assert a.method == "ks" and a.window == 500 and a.window_seconds == 30.0
    assert a.features == ["a", "b"] and a.reference == "/ref.json"


@pytest.mark.parametrize(
    "argv",
    [
        ["--method", "chi2"],
        ["--window", "-1"],
        ["--sample-rate", "0"],
        ["--sample-rate", "1.5"],
        ["--confirm-windows", "0"],
        ["--port", "x"],
    ],
)
def test_invalid_flags_are_refused(argv):
    with pytest.raises(SystemExit):
        _parse(argv)


def test_invalid_environment_value_is_refused(monkeypatch):
    with pytest.raises(SystemExit):
        _parse([], monkeypatch, {"MODELOPS_DRIFT_WINDOW": "lots"})


def test_without_a_reference_the_sidecar_keeps_no_statistics():
    """A gated rollout's sidecar without drift detection: proxy and figures only."""
    proxy = cli.build_proxy(_parse([]))
    assert proxy.monitor.names == []
    assert proxy.feeder.sample_rate == 0.0
    assert proxy.monitor.summary("m")["score"] is None


def test_run_reports_start_up_errors_with_exit_codes(tmp_path, caplog):
    assert cli.run(_parse(["--reference", str(tmp_path / "missing.json")])) == 2
    ref = tmp_path / "ref.json"
    build_reference(np.random.default_rng(0).normal(size=(100, 2))).save(ref)
    assert cli.run(_parse(["--reference", str(ref), "--upstream", "https://x:1"])) == 2
    assert cli.run(_parse(["--reference", str(ref), "--method", "ks", "--threshold", "2"])) == 2


def test_small_windows_warn_for_psi(tmp_path, caplog):
    ref = build_reference(np.random.default_rng(0).normal(size=(10_000, 3)), bins=20)
    with caplog.at_level(logging.WARNING, logger="modelops.drift"):
        psi = ["--method", "psi"]
        cli._warn_if_noisy(ref, cli.detector_config(_parse([*psi, "--window", "100"])), 100)
        assert "expect false alarms" in caplog.text
        caplog.clear()
        cli._warn_if_noisy(ref, cli.detector_config(_parse(psi)), 1000)
        cli._warn_if_noisy(ref, cli.detector_config(_parse(["--method", "ks"])), 50)
        cli._warn_if_noisy(ref, cli.detector_config(_parse([])), 50)  # ksz: a p-value test
        assert caplog.text == ""


def test_limits_and_detection_guards_reach_the_proxy_and_detector(tmp_path, monkeypatch):
    # Defaults: the documented bound of 256 MiB is computed from these.
    d = _parse([])
    assert (d.max_clients, d.max_buffered_bytes, d.stats_queue_bytes, d.stats_max_bytes) == (
        256,
        64 << 20,
        16 << 20,
        1 << 20,
    )
    ref = tmp_path / "ref.json"
    build_reference(np.random.default_rng(0).normal(size=(500, 3))).save(ref)
    env = {"MODELOPS_DRIFT_MAX_CLIENTS": "12", "MODELOPS_DRIFT_IDLE_TIMEOUT": "7.5"}
    a = _parse(
        [
            "--reference", str(ref), "--max-buffered-bytes", "1000000",
            "--header-timeout", "2", "--body-timeout", "3", "--stats-max-bytes", "4096",
            "--stats-queue-bytes", "65536", "--stats-cpu", "0.2",
            "--min-finite", "50", "--max-nonfinite-fraction", "0.3",
        ],
        monkeypatch,
        env,
    )  # fmt: skip
    proxy = cli.build_proxy(a)
    c = proxy.config
    assert (c.max_clients, c.max_buffered_bytes, c.idle_timeout) == (12, 1_000_000, 7.5)
    assert (c.header_timeout, c.body_timeout) == (2.0, 3.0)
    f = proxy.feeder
    assert (f.max_payload_bytes, f.max_queue_bytes, f.cpu_share) == (4096, 65536, 0.2)
    det = proxy.monitor.detector
    assert (det.min_finite, det.max_nonfinite_fraction) == (50, 0.3)


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-clients", "0"],
        ["--header-timeout", "0"],
        ["--stats-cpu", "1.5"],
        ["--max-nonfinite-fraction", "1"],
        ["--min-finite", "0"],
    ],
)
def test_invalid_limits_are_refused(argv):
    with pytest.raises(SystemExit):
        _parse(argv)
