"""Building the decision's inputs: candidate pods from pod objects, figures from sidecars."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelops.render.gating.build_inputs import (
    candidate_pods,
    histogram_quantile,
    merge_figures,
    merge_version,
)
from tests.unit.test_render_fixtures import GPU_MESSAGE, NOW, crash, pod


def _cand(name: str, **kw):
    return pod(name, version="8", template_hash="5c4b7d9e8", **kw)


def test_candidate_pods_counts_only_the_candidate_version():
    pods = [
        pod("fraud-a"),  # stable version 3
        pod("fraud-b"),
        _cand("fraud-c"),
        _cand("fraud-d", loading=True),
        _cand("fraud-e", terminating=True),
    ]
    got = candidate_pods(pods, model_version="8", desired=2)
    assert (got.desired, got.ready, got.problem, got.unschedulable) == (2, 1, None, None)


def test_candidate_pods_report_the_longest_wait_for_a_node():
    pods = [
        _cand("fraud-c", unschedulable=GPU_MESSAGE, unschedulable_for=30),
        _cand("fraud-d", unschedulable="other message", unschedulable_for=300),
    ]
    got = candidate_pods(pods, model_version="8", desired=2)
    assert got.unschedulable == "other message"
    assert got.unschedulable_since == NOW - timedelta(seconds=300)
    assert got.ready == 0


def test_candidate_pods_report_a_problem_that_will_not_heal():
    got = candidate_pods(
        [_cand("fraud-c", triton=crash("OOMKilled", 137))], model_version="8", desired=1
    )
    assert got.problem is not None
    assert got.problem.startswith("CrashLoopBackOff: pod fraud-c: container triton keeps crashing")


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ({"0.1": 50, "0.2": 100, "+Inf": 100}, 0.5, 0.1),
        ({"0.1": 0, "0.2": 100, "+Inf": 100}, 0.99, 0.199),
        ({"0.1": 90, "0.5": 99, "1": 100, "+Inf": 100}, 0.99, 0.5),
        ({"0.1": 90, "0.5": 95, "+Inf": 100}, 0.99, 0.5),  # in +Inf: the largest finite bound
        ({"0.1": 0, "+Inf": 0}, 0.99, None),
        ({}, 0.99, None),
    ],
)
def test_histogram_quantile(buckets, q, expected):
    got = histogram_quantile(q, buckets)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_figures_are_summed_over_pods_and_p99_comes_from_summed_buckets():
    stable = [
        {
            "requests": 900,
            "errors": 1,
            "latencyBuckets": {"0.1": 900, "+Inf": 900},
            "mirrored": 90,
            "agreed": 88,
        },
        {
            "requests": 100,
            "errors": 0,
            "latencyBuckets": {"0.1": 100, "+Inf": 100},
            "mirrored": 10,
            "agreed": 10,
        },
    ]
    # One slow candidate pod: 20 of 100 requests above 0.5 s. Averaging per-pod p99s would
    # hide it; the merged histogram does not.
    candidate = [
        {
            "requests": 80,
            "errors": 0,
            "latencyBuckets": {"0.1": 80, "0.5": 80, "1": 80, "+Inf": 80},
        },
        {"requests": 20, "errors": 2, "latencyBuckets": {"0.1": 0, "0.5": 0, "1": 20, "+Inf": 20}},
    ]
    figures = merge_figures(stable, candidate)
    assert (figures.stable.requests, figures.stable.errors) == (1000, 1)
    assert (figures.candidate.requests, figures.candidate.errors) == (100, 2)
    assert (figures.mirrored, figures.agreed) == (100, 98)
    assert figures.stable.latency_p99_s == pytest.approx(0.099)
    assert figures.candidate.latency_p99_s == pytest.approx(0.975)
    assert merge_version([]).latency_p99_s is None
