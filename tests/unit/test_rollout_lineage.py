"""Lineage entries for status.history, analysis verdict sentences, and rollout metrics."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from modelops.api.modeldeployment import ModelDeploymentStatus
from modelops.api.rollout import MAX_HISTORY, Analysis, EvalMetricGate
from modelops.drift.figures import LATENCY_BOUNDS
from modelops.render.gating import lineage
from modelops.render.gating.analysis import Result, evaluate, evaluate_eval_metric
from modelops.render.gating.inputs import ObservedFigures, VersionFigures
from modelops.render.gating.metrics import METRICS, PHASES, ROLLOUT_PHASE, rollout_samples

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)

TJ = {
    "apiVersion": "modelops.io/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "fraud-retrain-3", "namespace": "ml", "uid": "3f1c-uid"},
    "spec": {
        "dataset": {"uri": "s3://data/fraud/2026-12"},
        "hyperparameters": {"lr": "0.001", "epochs": "5"},
        "output": {"storageUri": "s3://models/fraud"},
    },
    "status": {"phase": "Succeeded", "outputVersion": "8", "metrics": {"loss": 0.021, "acc": 1}},
}


def test_source_from_a_training_job():
    source = lineage.source_from_training_job(TJ)
    assert source == {
        "kind": "TrainingJob",
        "trainingJob": {"name": "fraud-retrain-3", "uid": "3f1c-uid"},
        "hyperparametersDigest": lineage.hyperparameters_digest({"epochs": "5", "lr": "0.001"}),
        "datasetUri": "s3://data/fraud/2026-12",
        "metrics": {"acc": 1.0, "loss": 0.021},
    }
    assert source["hyperparametersDigest"].startswith("sha256:")
    assert len(source["hyperparametersDigest"]) == len("sha256:") + 64


def test_hyperparameters_digest_ignores_order_but_not_values():
    a = lineage.hyperparameters_digest({"lr": "0.001", "epochs": "5"})
    assert a == lineage.hyperparameters_digest({"epochs": "5", "lr": "0.001"})
    assert a != lineage.hyperparameters_digest({"epochs": "6", "lr": "0.001"})
    assert lineage.hyperparameters_digest(None) == lineage.hyperparameters_digest({})


def test_source_of_a_training_job_without_optional_parts():
    bare = {"metadata": {"name": "t"}, "spec": {}, "status": {}}
    source = lineage.source_from_training_job(bare)
    assert source["trainingJob"] == {"name": "t"}
    assert "datasetUri" not in source and "metrics" not in source


def test_manifest_digest():
    sums = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  1/model.pt\n"
    digest = lineage.manifest_digest(sums)
    assert digest.startswith("sha256:") and digest != lineage.manifest_digest(sums + b"x")


def test_history_entry_is_a_valid_status_entry():
    entry = lineage.history_entry(
        "8",
        lineage.source_from_training_job(TJ),
        outcome="Promoted",
        reason="analysis passed: agreement 0.99 >= minAgreement 0.95",
        now=NOW,
        checksum="sha256:" + "0" * 64,
        serving_since=NOW,
    )
    assert entry["servingSince"] == entry["decidedAt"] == "2026-12-01T03:00:00Z"
    parsed = ModelDeploymentStatus.model_validate({"history": [entry]})
    assert parsed.history and parsed.history[0].source.training_job.uid == "3f1c-uid"
    pinned = lineage.history_entry(
        "3", lineage.pinned_source(), outcome="RolledBack", reason="x", now=NOW
    )
    assert pinned["source"] == {"kind": "PinnedBySpec"} and "servingSince" not in pinned


def _entry(version: str, outcome: str = "Promoted") -> dict:
    return lineage.history_entry(
        version, lineage.latest_source(), outcome=outcome, reason="r", now=NOW
    )


def test_push_is_newest_first_and_bounded():
    history: list[dict] = []
    for v in range(1, MAX_HISTORY + 4):
        history = lineage.push(history, _entry(str(v)))
    assert len(history) == MAX_HISTORY
    assert [h["version"] for h in history[:3]] == [
        str(MAX_HISTORY + 3),
        str(MAX_HISTORY + 2),
        str(MAX_HISTORY + 1),
    ]
    assert history[-1]["version"] == "4"
    assert len(lineage.push(history, _entry("99"), limit=3)) == 3


def test_push_is_idempotent_for_the_same_decision():
    history = lineage.push(None, _entry("8"))
    assert lineage.push(history, _entry("8")) == history
    # A different outcome for the same version is a new event (e.g. promoted, later rolled
    # back after a retry with a changed spec).
    assert len(lineage.push(history, _entry("8", "RolledBack"))) == 2


def test_find_returns_the_newest_entry_of_a_version():
    history = [_entry("8", "RolledBack"), _entry("8"), _entry("7")]
    assert lineage.find(history, "8")["outcome"] == "RolledBack"
    assert lineage.find(history, "6") is None and lineage.find(history, None) is None


# --- verdict sentences ------------------------------------------------------------------


def _fig(
    cand: int, cand_err: int = 0, c_p99: float | None = 0.1, mirrored: int = 0, agreed: int = 0
):
    return ObservedFigures(
        stable=VersionFigures(cand * 9, 0, 0.1, 0, _at(cand * 9, 0.1)),
        candidate=VersionFigures(cand, cand_err, c_p99, 0, _at(cand, c_p99)),
        mirrored=mirrored,
        agreed=agreed,
    )


def _at(n: int, seconds: float | None) -> tuple[tuple[float, int], ...]:
    """A cumulative latency histogram of n requests that all took ``seconds``."""
    if seconds is None:
        return ()
    return tuple((b, n if seconds <= b else 0) for b in (*LATENCY_BOUNDS, float("inf")))


NO_ERR = {"maxErrorRateIncrease": None}  # one gate at a time
LATENCY = NO_ERR | {"maxLatencyP99Ratio": 2}


def _floor(mirrored: int, agreed: int, self_compared: int, self_agreed: int) -> ObservedFigures:
    return replace(
        _fig(mirrored, mirrored=mirrored, agreed=agreed),
        self_compared=self_compared,
        self_agreed=self_agreed,
    )


@pytest.mark.parametrize(
    ("analysis", "figures", "mirroring", "result", "text"),
    [
        (
            {},
            _fig(1000),
            False,
            Result.PASS,
            "increase 0 <= maxErrorRateIncrease 0.01 over 1000 requests (at most 0.0",
        ),
        # Clean, but 100 requests cannot show the increase is within 0.01 at 95%.
        ({}, _fig(100), False, Result.PENDING, "at 95% confidence) vs maxErrorRateIncrease"),
        ({}, _fig(300, cand_err=30), False, Result.FAIL, "increase 0.1 > maxErrorRateIncrease"),
        ({}, _fig(99), False, Result.PENDING, "99/100 requests (minRequests)"),
        (NO_ERR, _fig(100), False, Result.PASS, "100 requests >= minRequests 100"),
        (NO_ERR, _fig(5), False, Result.PENDING, "5/100 requests"),
        (NO_ERR | {"minRequests": 1}, _fig(1), False, Result.PASS, "1 requests >= minRequests 1"),
        # The latency gate is sequential too (sequential.quantile_ratio): as fast as
        # stable, 2000 requests show its p99 within 2x; 100 do not yet.
        (
            NO_ERR | {"maxLatencyP99Ratio": 2},
            _fig(2000, c_p99=0.1),
            False,
            Result.PASS,
            "ratio 1 <= maxLatencyP99Ratio 2 over 2000 requests (at most 1% of its requests",
        ),
        (
            NO_ERR | {"maxLatencyP99Ratio": 2},
            _fig(100, c_p99=0.1),
            False,
            Result.PENDING,
            "ratio 1 vs maxLatencyP99Ratio 2 over 100 requests: not decided yet (0% of its",
        ),
        # Every request slower than 2x stable's p99: a few suffice to fail, once stable's
        # own p99 is pinned down (about a thousand stable requests: 1% is a small share).
        (
            NO_ERR | {"maxLatencyP99Ratio": 2},
            _fig(200, c_p99=0.3),
            False,
            Result.FAIL,
            "ratio 3 > maxLatencyP99Ratio 2 over 200 requests (more than 1% of its requests "
            "slower than 2x stable's p99 (0.2s) at 95% confidence)",
        ),
        (
            NO_ERR | {"maxLatencyP99Ratio": 2},
            _fig(100, c_p99=0.3),
            False,
            Result.PENDING,
            "100% of its requests slower than 2x stable's p99; at most 1% may be",
        ),
        # Only the p99 bucket is known: a candidate in the stable p99's next bucket is not
        # shown to be beyond 2x (0.1 -> at most 0.25) on 100 requests.
        (
            NO_ERR | {"maxLatencyP99Ratio": 2},
            _fig(100, c_p99=0.21),
            False,
            Result.PENDING,
            "not decided yet",
        ),
        (
            NO_ERR | {"minAgreement": 0.9},
            _fig(1000, mirrored=1000, agreed=990),
            True,
            Result.PASS,
            "agreement 0.99 >= minAgreement 0.9 over 1000 mirrored requests (at least 0.9",
        ),
        (
            NO_ERR | {"minAgreement": 0.9},
            _fig(100, mirrored=100, agreed=50),
            True,
            Result.FAIL,
            "agreement 0.5 < minAgreement 0.9 over 100 mirrored",
        ),
        # Just below the limit on 100 requests: not evidence enough either way.
        (
            NO_ERR | {"minAgreement": 0.9},
            _fig(100, mirrored=100, agreed=89),
            True,
            Result.PENDING,
            "agreement 0.89 (beyond the noise floor between",
        ),
        # Agreement is only judged while mirroring; in canary steps it is not a gate.
        (NO_ERR | {"minAgreement": 0.9}, _fig(100, mirrored=100, agreed=0), False, Result.PASS, ""),
        (
            NO_ERR | {"minAgreement": 0.9},
            _fig(100, mirrored=40, agreed=40),
            True,
            Result.PENDING,
            "40/100 mirrored requests compared",
        ),
        # A non-deterministic model: stable agrees with itself only 90% of the time, so the
        # candidate's 85% is 5 points beyond the noise, within 1 - minAgreement.
        (
            NO_ERR | {"minAgreement": 0.9},
            _floor(4000, 3400, 4000, 3600),
            True,
            Result.PASS,
            "stable agrees with itself 0.9 over 4000 (noise floor)",
        ),
        # The same candidate with the floor unmeasured: 15 points of disagreement fail.
        (
            NO_ERR | {"minAgreement": 0.9},
            _fig(4000, mirrored=4000, agreed=3400),
            True,
            Result.FAIL,
            "noise floor not measured (taken as 0)",
        ),
        # A run of failures opened the stable side's circuit breaker: 5 requests are far
        # below minRequests, and the breaker withholds more, so minRequests is waived and
        # the sequential test judges the 5 failures (against a stable version answering).
        (
            {"minRequests": 20, "maxErrorRateIncrease": 0.05},
            replace(_fig(5, cand_err=5), sent=5, sent_failed=5, breaker_trips=1),
            False,
            Result.FAIL,
            "> maxErrorRateIncrease 0.05 over 5 requests",
        ),
        (
            {"minRequests": 20, "maxErrorRateIncrease": 0.05},
            replace(_fig(5, cand_err=5), sent=5, sent_failed=5, breaker_trips=1),
            False,
            Result.FAIL,
            "circuit breaker opened on the candidate 1x (5 of 5 requests sent to it failed",
        ),
        # A trip is not a verdict by itself: a noisy model whose stable version fails as
        # often (30%) can trip the breaker by chance; the sequential test decides.
        (
            {"minRequests": 20, "maxErrorRateIncrease": 0.05},
            replace(
                _fig(10, cand_err=5),
                stable=VersionFigures(900, 270, 0.1),
                sent=10,
                sent_failed=5,
                breaker_trips=1,
            ),
            False,
            Result.PENDING,
            "not decided yet",
        ),
        # Without enough stable traffic to compare with, a trip does not decide either.
        (
            {"minRequests": 20, "maxErrorRateIncrease": 0.05},
            replace(
                _fig(5, cand_err=5),
                stable=VersionFigures(3, 0, 0.1),
                sent=5,
                sent_failed=5,
                breaker_trips=1,
            ),
            False,
            Result.PENDING,
            "minRequests waived",
        ),
        # Without a run of failures, 5 requests wait for minRequests.
        (
            {"minRequests": 20, "maxErrorRateIncrease": 0.05},
            _fig(5, cand_err=1),
            False,
            Result.PENDING,
            "",
        ),
        # Figures that do not add up: no verdict at all.
        (
            {},
            replace(_fig(1000, cand_err=500), consistent=False, refused=("one side is wrong",)),
            False,
            Result.PENDING,
            "figures refused: one side is wrong",
        ),
    ],
)
def test_live_gates(analysis, figures, mirroring, result, text):
    verdict = evaluate(Analysis.model_validate(analysis), figures, mirroring=mirroring)
    assert verdict.result is result, verdict
    assert text in verdict.text


def test_min_requests_is_at_least_one():
    with pytest.raises(ValueError, match="minRequests"):
        Analysis.model_validate({"minRequests": 0})


def test_eval_metric_without_a_gate_or_a_training_job_is_not_judged():
    gate = EvalMetricGate(name="acc", direction="HigherIsBetter")
    assert evaluate_eval_metric(None, {"kind": "TrainingJob"}, None) is None
    assert evaluate_eval_metric(gate, {"kind": "PinnedBySpec"}, None) is None
    equal = evaluate_eval_metric(
        gate, {"kind": "TrainingJob", "metrics": {"acc": 0.9}}, {"metrics": {"acc": 0.9}}
    )
    assert equal is not None and equal.result is Result.PASS and "(equal;" in equal.text


# --- metrics ---------------------------------------------------------------------------


def test_rollout_samples_restate_the_status():
    status = {
        "phase": "Shadow",
        "candidate": "8",
        "step": 0,
        "mirrorPercent": 10,
        "canaryWeight": 0,
        "analysis": {
            "stable": {"requests": 4000, "errors": 4, "errorRate": 0.001, "latencyP99Seconds": 0.1},
            "candidate": {"requests": 412, "errors": 0, "errorRate": 0.0},
            "mirrored": 412,
            "agreement": 0.81,
        },
    }
    samples = {
        (m, tuple(sorted(labels.items()))): v
        for m, labels, v in rollout_samples("ml", "fraud", status)
    }
    ident = (("name", "fraud"), ("namespace", "ml"))

    def get(metric: str, **labels: str) -> float:
        return samples[(metric, tuple(sorted((*ident, *labels.items()))))]

    assert get(ROLLOUT_PHASE, phase="Shadow") == 1.0
    assert sum(get(ROLLOUT_PHASE, phase=p) for p in PHASES) == 1.0
    assert get("modelops_rollout_step") == 0.0
    assert get("modelops_rollout_traffic_percent", mode="mirror") == 10.0
    assert get("modelops_rollout_agreement") == 0.81
    assert get("modelops_rollout_error_rate", role="stable") == 0.001
    assert get("modelops_rollout_latency_p99_seconds", role="stable") == 0.1
    assert (
        "modelops_rollout_latency_p99_seconds",
        (*ident[:1], ("namespace", "ml"), ("role", "candidate")),
    ) not in samples
    for metric, _labels, _value in rollout_samples("ml", "fraud", status):
        assert metric in METRICS


def test_rollout_samples_without_status_say_idle():
    samples = rollout_samples("ml", "fraud", None)
    phases = {labels["phase"]: v for m, labels, v in samples if m == ROLLOUT_PHASE}
    assert phases["Idle"] == 1.0 and sum(phases.values()) == 1.0
    step = [v for m, _, v in samples if m == "modelops_rollout_step"]
    assert step == [-1.0]


# --- the metrics a version was published with (its sealed metrics.json) ------------------


def _sealed(data: bytes, name: str = "metrics.json") -> bytes:
    import hashlib

    return f"{'0' * 64}  model.pt\n{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


@pytest.mark.parametrize(
    ("data", "manifest", "expected"),
    [
        # The trainer's document: its flat summary under "metrics"; non-numbers dropped.
        (
            b'{"format": "modelops.trainer.metrics", "metrics": '
            b'{"valAccuracy": 0.9, "epochs": 5, "note": "x", "flag": true}}',
            None,
            {"valAccuracy": 0.9, "epochs": 5.0},
        ),
        (b'{"valAccuracy": 0.8}', None, {"valAccuracy": 0.8}),  # flat
        (b'{"valAccuracy": 0.8}', b"", None),  # the manifest does not seal it
        (b'{"valAccuracy": 0.8}', _sealed(b'{"valAccuracy": 0.1}'), None),  # altered since
        (b"[1, 2]", None, None),  # not an object
        (b"{not json", None, None),
        (b'{"valAccuracy": NaN}', None, None),
        (b'{"x": "' + b"a" * (300 * 1024) + b'"}', None, None),  # over the size cap
    ],
)
def test_recorded_metrics(data: bytes, manifest: bytes | None, expected):
    manifest = _sealed(data) if manifest is None else manifest
    assert lineage.recorded_metrics(manifest, data) == expected


def test_recorded_metrics_fill_a_source_without_its_own():
    published = {"valAccuracy": 0.9}
    assert lineage.with_recorded_metrics(None, published) == {
        "kind": "Latest",
        "metrics": published,
    }
    pinned = lineage.with_recorded_metrics({"kind": "PinnedBySpec"}, published)
    assert pinned == {"kind": "PinnedBySpec", "metrics": published}
    own = {"kind": "TrainingJob", "metrics": {"valAccuracy": 0.5}}
    assert lineage.with_recorded_metrics(own, published) == own
    assert lineage.with_recorded_metrics(None, None) is None
