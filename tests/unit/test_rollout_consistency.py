"""Figures must add up before they are summed (render/gating/build_inputs.py) and
counters are cumulative per sidecar process within an epoch (render/gating/ledger.py)."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.render.gating.build_inputs import inconsistency, merge_figures
from modelops.render.gating.ledger import post

GOOD = {
    "epoch": "8.1",
    "sidecar": "s1",
    "requests": 100,
    "errors": 2,
    "clientErrors": 5,
    "latencyBuckets": {"0.1": 90, "1": 100, "+Inf": 100},
    "latencySum": 4.5,
    "mirrored": 20,
    "compared": 18,
    "agreed": 17,
    "notCompared": 1,
    "mirrorErrors": 1,
    "mirrorTimeouts": 1,
    "split": 10,
    "splitErrors": 2,
    "splitTimeouts": 0,
    "splitFallbacks": 3,
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"requests": -1}, "requests -1 is not a count"),
        ({"errors": 1.5}, "errors 1.5 is not a count"),
        ({"mirrored": True}, "mirrored True is not a count"),
        # Every counter of the /rollout document is checked, the breaker's trips included.
        ({"breakerTrips": -2}, "breakerTrips -2 is not a count"),
        ({"agreed": 19}, "agreed 19 > compared 18"),
        ({"compared": 20}, "compared 21 > mirrored 20"),  # compared + notCompared
        ({"mirrorErrors": 21}, "mirrorErrors 21 > mirrored 20"),
        ({"mirrorTimeouts": 2}, "mirrorTimeouts 2 > mirrorErrors 1"),
        # Every split call the candidate failed was answered here instead: a fallback.
        ({"splitErrors": 4}, "splitErrors 4 > splitFallbacks 3"),
        ({"splitTimeouts": 3}, "splitTimeouts 3 > splitErrors 2"),
        ({"errors": 96}, "errors 101 > requests 100"),  # with the 5 client errors
        ({"latencyBuckets": {"0.1": 90, "1": 80}}, "latencyBuckets is not cumulative at le=1"),
        ({"latencyBuckets": {"x": 1}}, "latencyBuckets has a bound that is not a number"),
        ({"latencySum": -1.0}, "latencySum -1.0 is not a duration"),
        ({"selfCompared": 3, "selfAgreed": 4}, "selfAgreed 4 > selfCompared 3"),
    ],
)
def test_a_document_that_does_not_add_up_is_refused(change: dict[str, Any], reason: str | None):
    assert inconsistency(GOOD | change) == reason


def test_an_older_sidecar_without_compared_counts_agreed_against_mirrored():
    assert inconsistency({"requests": 10, "mirrored": 5, "agreed": 5}) is None
    assert inconsistency({"requests": 10, "mirrored": 5, "agreed": 6}) == "agreed 6 > mirrored 5"


def test_refused_documents_are_never_summed():
    forged = GOOD | {"mirrored": 1000, "compared": 1000, "agreed": 5000}
    figures = merge_figures(
        {"stable-0": GOOD, "stable-forged": forged}, {"cand-0": {"requests": 30, "errors": 0}}
    )
    assert (figures.mirrored, figures.agreed) == (18, 17)
    assert figures.refused == ("stable pod stable-forged: agreed 5000 > compared 1000",)
    assert figures.consistent


def test_the_candidate_is_judged_from_both_sides():
    # The stable side sent 32 (20 mirrored, 10 split it answered, 2 split it failed) and
    # saw 3 fail; the candidate's own sidecar only counted the 29 that reached it.
    figures = merge_figures([GOOD], [{"requests": 29, "errors": 0}])
    assert figures.consistent
    assert (figures.candidate.requests, figures.candidate.errors) == (32, 3)
    assert (figures.sent, figures.sent_failed, figures.sent_timeouts) == (32, 3, 1)
    assert figures.split_fallbacks == 3
    # Its own count is taken when it is the larger one (a 5xx both sides counted).
    figures = merge_figures([GOOD], [{"requests": 40, "errors": 9}])
    assert (figures.candidate.requests, figures.candidate.errors) == (40, 9)


def test_split_calls_the_candidate_failed_are_not_part_of_split():
    """What a real stable sidecar reports when every split call fails (tests/drift/
    test_sidecar_protects_clients.py): split 0, splitErrors 5. Once read as a part of
    ``split``, that refused the stable pod's figures whole, and with them the stable
    side's requests and the breaker trip: a failing canary was never judged (#18)."""
    stable = {
        "requests": 40,
        "errors": 0,
        "split": 0,
        "splitErrors": 5,
        "splitTimeouts": 0,
        "splitFallbacks": 20,
        "breakerTrips": 1,
    }
    figures = merge_figures({"stable-0": stable}, {"cand-0": {"requests": 5, "errors": 5}})
    assert figures.refused == () and figures.consistent
    assert (figures.sent, figures.sent_failed, figures.breaker_trips) == (5, 5, 1)
    assert (figures.stable.requests, figures.candidate.errors) == (40, 5)


def test_client_errors_are_reported_apart_and_do_not_count_as_errors():
    figures = merge_figures([GOOD], [{"requests": 30, "errors": 0, "clientErrors": 12}])
    assert figures.stable.errors == 2 and figures.stable.client_errors == 5
    assert figures.candidate.errors == 3 and figures.candidate.client_errors == 12


def test_candidate_requests_far_below_what_the_stable_side_sent_are_inconsistent():
    stable = {"requests": 5000, "errors": 0, "mirrored": 1000, "compared": 1000, "agreed": 1000}
    # Slack: in-flight mirrors (16 per stable pod) + 20, or 10% of what was sent.
    ok = merge_figures([stable], [{"requests": 901, "errors": 0}])
    assert ok.consistent and not ok.refused
    bad = merge_figures([stable], [{"requests": 899, "errors": 0}])
    assert not bad.consistent
    assert "counted 899 requests but the stable side sent it 1000" in bad.refused[0]


def test_noise_floor_is_summed_when_the_sidecars_measure_it():
    with_floor = GOOD | {"selfCompared": 10, "selfAgreed": 9}
    figures = merge_figures([with_floor, with_floor], [{"requests": 60}])
    assert (figures.self_compared, figures.self_agreed) == (20, 18)
    assert figures.self_agreement == pytest.approx(0.9)
    assert merge_figures([GOOD], [{"requests": 30}]).self_agreement is None


# -- the ledger: per-sidecar baselines ---------------------------------------------------


def doc(sidecar: str | None, requests: int, epoch: str = "8.1", **more: Any) -> dict[str, Any]:
    out = {"epoch": epoch, "requests": requests, "errors": 0} | more
    if sidecar is not None:
        out["sidecar"] = sidecar
    return out


SLOTS = {"p": "b"}


def test_a_restarted_sidecar_keeps_what_it_counted_before_as_baseline():
    ledger = post({}, {"p": doc("s1", 50)}, SLOTS, "8.1").pods
    ledger = post(ledger, {"p": doc("s1", 80)}, SLOTS, "8.1").pods
    posted = post(ledger, {"p": doc("s2", 5)}, SLOTS, "8.1")  # restarted: a new id
    assert not posted.refused
    figures, slots = posted.effective("8.1")
    assert figures["p"]["requests"] == 85 and slots == {"p": "b"}
    assert posted.pods["p"].restarts == 1


def test_counters_going_backwards_within_one_sidecar_are_refused_and_the_last_good_kept():
    ledger = post({}, {"p": doc("s1", 80)}, SLOTS, "8.1").pods
    posted = post(ledger, {"p": doc("s1", 20)}, SLOTS, "8.1")
    assert posted.refused == {
        "p": "counters went backwards within sidecar s1: requests went from 80 to 20"
    }
    assert posted.effective("8.1")[0]["p"]["requests"] == 80


def test_an_older_sidecar_without_an_id_going_backwards_is_taken_as_a_restart():
    ledger = post({}, {"p": doc(None, 80)}, SLOTS, "8.1").pods
    posted = post(ledger, {"p": doc(None, 20)}, SLOTS, "8.1")
    assert not posted.refused
    assert posted.effective("8.1")[0]["p"]["requests"] == 100


def test_latency_buckets_are_added_across_restarts():
    one = doc("s1", 2, latencyBuckets={"0.1": 1, "+Inf": 2}, latencySum=0.3)
    two = doc("s2", 1, latencyBuckets={"0.1": 1, "+Inf": 1}, latencySum=0.05)
    ledger = post({}, {"p": one}, SLOTS, "8.1").pods
    figures = post(ledger, {"p": two}, SLOTS, "8.1").effective("8.1")[0]["p"]
    assert figures["latencyBuckets"] == {"0.1": 2, "+Inf": 3}
    assert figures["latencySum"] == pytest.approx(0.35)


def test_another_epoch_starts_from_zero_and_old_epoch_documents_are_left_out():
    ledger = post({}, {"p": doc("s1", 80)}, SLOTS, "8.1").pods
    # A sidecar that has not read the new attempt's settings yet still reports 8.1.
    posted = post(ledger, {"p": doc("s1", 90)}, SLOTS, "8.2")
    assert posted.pods == {}
    posted = post(posted.pods, {"p": doc("s1", 3, epoch="8.2")}, SLOTS, "8.2")
    assert posted.effective("8.2")[0]["p"]["requests"] == 3


def test_a_pod_that_went_away_keeps_its_figures_within_the_epoch():
    ledger = post({}, {"p": doc("s1", 80), "q": doc("s9", 7)}, {"p": "b", "q": "b"}, "8.1").pods
    posted = post(ledger, {"q": doc("s9", 9)}, {"q": "b"}, "8.1")
    figures, slots = posted.effective("8.1")
    assert figures["p"]["requests"] == 80 and figures["q"]["requests"] == 9
    assert slots == {"p": "b", "q": "b"}


def test_only_owner_checked_pods_enter_the_ledger():
    posted = post({}, {"p": doc("s1", 80), "stranger": doc("x", 1000)}, SLOTS, "8.1")
    assert set(posted.pods) == {"p"}
