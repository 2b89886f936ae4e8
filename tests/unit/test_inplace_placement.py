"""The in-place placement decision (render/gating/placement.py) and its API fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelops.api.rollout import Rollout
from modelops.render.gating.placement import (
    PlacementChoice,
    PodMemory,
    choose_placement,
    sticky,
)

GiB = 1 << 30


def gpu_pod(name: str, total: int, used: int) -> PodMemory:
    return PodMemory(name, gpu_total=total * GiB, gpu_used=used * GiB)


def test_separate_when_asked() -> None:
    choice = choose_placement("Separate", candidate_bytes=1, reports=[gpu_pod("a", 80, 0)])
    assert choice == PlacementChoice("Separate", "spec.rollout.placement is Separate")


def test_fits_on_every_pod_goes_in_place_and_names_the_tightest() -> None:
    reports = [gpu_pod("a", 80, 20), gpu_pod("b", 80, 50)]
    choice = choose_placement("InPlace", candidate_bytes=20 * GiB, reports=reports)
    assert choice.placement == "InPlace" and not choice.wait
    # 20 GiB + 10% = 22 GiB needed; pod b has 30 GiB free, the least of the two.
    assert "22.0 GiB" in choice.reason and "30.0 GiB free in the GPU memory of pod b" in (
        choice.reason
    )


def test_one_pod_too_full_sends_it_separate_with_the_figures() -> None:
    reports = [gpu_pod("a", 80, 20), gpu_pod("b", 80, 70)]
    choice = choose_placement("InPlace", candidate_bytes=20 * GiB, reports=reports)
    assert choice.placement == "Separate"
    assert "pod b has 10.0 GiB free" in choice.reason and "22.0 GiB" in choice.reason


def test_headroom_is_what_tips_it() -> None:
    reports = [gpu_pod("a", 80, 58)]  # 22 GiB free
    fits = choose_placement("InPlace", candidate_bytes=20 * GiB, reports=reports)
    tight = choose_placement(
        "InPlace", candidate_bytes=20 * GiB, reports=reports, headroom_percent=11
    )
    assert fits.placement == "InPlace" and tight.placement == "Separate"


def test_bigger_than_half_the_gpu_never_goes_in_place_even_on_an_empty_gpu() -> None:
    choice = choose_placement("InPlace", candidate_bytes=41 * GiB, reports=[gpu_pod("a", 80, 0)])
    assert choice.placement == "Separate" and "bigger than half the GPU" in choice.reason


def test_host_memory_limit_is_checked_on_cpu_pods() -> None:
    pod = PodMemory("cpu-0", host_limit=4 * GiB, host_used=3 * GiB)
    small = choose_placement("InPlace", candidate_bytes=512 << 20, reports=[pod])
    big = choose_placement("InPlace", candidate_bytes=2 * GiB, reports=[pod])
    assert small.placement == "InPlace"
    assert big.placement == "Separate" and "free under its limit" in big.reason


def test_unknown_size_waits_for_the_pods_to_stage_it() -> None:
    choice = choose_placement("InPlace", candidate_bytes=None, reports=[gpu_pod("a", 80, 0)])
    assert choice.placement == "InPlace" and choice.wait
    assert "stage the candidate" in choice.reason


def test_no_memory_report_cannot_be_checked() -> None:
    choice = choose_placement("InPlace", candidate_bytes=GiB, reports=[])
    assert choice.placement == "Separate" and "no serving pod has reported" in choice.reason


def test_a_pod_that_could_not_stage_it_sends_it_separate() -> None:
    choice = choose_placement(
        "InPlace", candidate_bytes=None, reports=[], agent_error="pod p: StorageError: denied"
    )
    assert choice.placement == "Separate" and "could not stage it" in choice.reason


def test_wait_instead_of_separate_when_the_spec_says_so() -> None:
    choice = choose_placement(
        "InPlace", on_no_fit="Wait", candidate_bytes=30 * GiB, reports=[gpu_pod("a", 80, 70)]
    )
    assert choice.placement == "InPlace" and choice.wait
    assert choice.reason.startswith("waiting to run in place: GPU memory")


def test_needing_new_pods_always_goes_separate() -> None:
    choice = choose_placement(
        "InPlace",
        on_no_fit="Wait",
        candidate_bytes=GiB,
        reports=[gpu_pod("a", 80, 0)],
        restart_needed="runtime image changed",
    )
    assert choice.placement == "Separate" and not choice.wait
    assert "needs new pods (runtime image changed)" in choice.reason


def test_a_report_with_wrong_types_reads_as_unknown() -> None:
    pod = PodMemory.from_report(
        "p", {"gpuTotalBytes": "80", "gpuUsedBytes": -1, "hostLimitBytes": True}
    )
    assert pod == PodMemory("p")


def test_choice_is_sticky_for_the_same_candidate_but_not_a_wait() -> None:
    new = PlacementChoice("Separate", "InPlace not possible: x")
    kept = sticky({"candidate": "8", "placement": "InPlace", "placementReason": "fits"}, "8", new)
    assert kept == PlacementChoice("InPlace", "fits")
    assert sticky({"candidate": "7", "placement": "InPlace"}, "8", new) == new
    waiting = {"candidate": "8", "placement": "InPlace", "placementReason": "waiting to ..."}
    assert sticky(waiting, "8", new) == new


def test_api_fields_and_their_defaults() -> None:
    r = Rollout.model_validate(
        {"strategy": "Shadow", "shadow": {}, "placement": "InPlace", "inPlace": {}}
    )
    assert r.placement == "InPlace" and r.in_place is not None
    assert r.in_place.on_no_fit == "Separate" and r.in_place.memory_headroom_percent == 10
    # Unset placement is not serialized: the digest of existing specs does not change.
    assert "placement" not in Rollout().to_dict()
    with pytest.raises(ValidationError):
        Rollout.model_validate({"placement": "Elsewhere"})
