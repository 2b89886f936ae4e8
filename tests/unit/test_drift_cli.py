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
        "psi",
        1000,
        0.0,
        8080,
        8090,
    )
    assert a.upstream == "http://127.0.0.1:8000" and a.threshold is None
    det = cli.detector_config(a)
    assert (det.method, det.threshold, det.min_drifted_features) == ("psi", 0.2, 1)


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


def test_run_reports_start_up_errors_with_exit_codes(tmp_path, caplog):
    assert cli.run(_parse([])) == 2  # no reference
    assert cli.run(_parse(["--reference", str(tmp_path / "missing.json")])) == 2
    ref = tmp_path / "ref.json"
    build_reference(np.random.default_rng(0).normal(size=(100, 2))).save(ref)
    assert cli.run(_parse(["--reference", str(ref), "--upstream", "https://x:1"])) == 2
    assert cli.run(_parse(["--reference", str(ref), "--method", "ks", "--threshold", "2"])) == 2


def test_small_windows_warn_for_psi(tmp_path, caplog):
    ref = build_reference(np.random.default_rng(0).normal(size=(10_000, 3)), bins=20)
    with caplog.at_level(logging.WARNING, logger="modelops.drift"):
        cli._warn_if_noisy(ref, cli.detector_config(_parse(["--window", "100"])), 100)
        assert "expect false alarms" in caplog.text
        caplog.clear()
        cli._warn_if_noisy(ref, cli.detector_config(_parse([])), 1000)
        cli._warn_if_noisy(ref, cli.detector_config(_parse(["--method", "ks"])), 50)
        assert caplog.text == ""
