"""answers_agree: stable vs candidate outputs, as the data plane decodes them."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.render.gating.agreement import answers_agree, argmax_agree, within_tolerance

PROBS = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], dtype=np.float32)


@pytest.mark.parametrize(
    ("stable", "candidate", "agree"),
    [
        (PROBS, PROBS, True),
        # Scores moved, decisions did not.
        (PROBS, np.array([[0.3, 0.4, 0.3], [0.5, 0.4, 0.1]], dtype=np.float32), True),
        # The second row changes class.
        (PROBS, np.array([[0.1, 0.7, 0.2], [0.3, 0.6, 0.1]], dtype=np.float32), False),
        # Logits instead of probabilities: same argmax.
        (PROBS, np.log(PROBS), True),
        # One row (1-D output).
        (np.array([0.2, 0.8]), np.array([0.4, 0.6]), True),
        (np.array([0.2, 0.8]), np.array([0.6, 0.4]), False),
        # A different shape (fewer classes, fewer rows) never agrees.
        (PROBS, PROBS[:, :2], False),
        (PROBS, PROBS[:1], False),
        # NaN from a broken candidate.
        (PROBS, np.full_like(PROBS, np.nan), False),
        # Integer class ids and BYTES labels compare by equality.
        (np.array(3), np.array(3), True),
        (
            np.array([b"fraud", b"ok"], dtype=object),
            np.array([b"fraud", b"ok"], dtype=object),
            True,
        ),
        (np.array([b"fraud", b"ok"], dtype=object), np.array([b"ok", b"ok"], dtype=object), False),
    ],
)
def test_argmax(stable, candidate, agree):
    assert argmax_agree(stable, candidate) is agree


@pytest.mark.parametrize(
    ("stable", "candidate", "tolerance", "agree"),
    [
        (np.array([100.0, 2.0]), np.array([100.9, 2.01]), 0.01, True),
        (np.array([100.0, 2.0]), np.array([101.1, 2.0]), 0.01, False),
        (np.array([100.0, 2.0]), np.array([101.1, 2.0]), 0.05, True),
        # Relative to the stable value's magnitude, sign included.
        (np.array([-50.0]), np.array([-50.4]), 0.01, True),
        (np.array([-50.0]), np.array([50.0]), 0.01, False),
        # Zero: a relative tolerance of ~0 means exactly zero.
        (np.array([0.0]), np.array([0.0]), 0.01, True),
        (np.array([0.0]), np.array([1e-6]), 0.01, False),
        # NaN agrees only with NaN; infinities with the same infinity.
        (np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), 0.01, True),
        (np.array([1.0]), np.array([np.nan]), 0.01, False),
        (np.array([np.inf]), np.array([np.inf]), 0.01, True),
        (np.array([np.inf]), np.array([-np.inf]), 0.01, False),
        (np.array([np.inf, 1.0]), np.array([np.inf, 1.0]), 0.01, True),
        # The difference overflows: not close, and no warning turned into an error.
        (np.array([1e308]), np.array([-1e308]), 0.01, False),
        (np.array([[1.0, 2.0]]), np.array([1.0, 2.0]), 0.01, False),
        # Integer outputs compare as numbers.
        (np.array([100, 200], dtype=np.int64), np.array([100, 201], dtype=np.int32), 0.01, True),
    ],
)
def test_relative_tolerance(stable, candidate, tolerance, agree):
    assert within_tolerance(stable, candidate, tolerance) is agree


def test_answers_compare_every_output_unless_one_is_named():
    stable = {"PROBS": PROBS, "EMBEDDING": np.ones(4)}
    same_class = {"PROBS": PROBS * 0.9 + 0.01, "EMBEDDING": np.zeros(4)}
    assert answers_agree(stable, same_class, mode="Argmax", output="PROBS")
    # All outputs: the embedding's argmax (all equal -> index 0) still matches...
    assert answers_agree(stable, same_class, mode="Argmax")
    # ...but not within a relative tolerance.
    assert not answers_agree(stable, same_class, mode="RelativeTolerance")
    assert answers_agree(
        stable, same_class, mode="RelativeTolerance", output="PROBS", tolerance=0.2
    )


def test_missing_or_extra_outputs_disagree():
    assert not answers_agree({"A": PROBS}, {"B": PROBS})
    assert not answers_agree({"A": PROBS}, {"A": PROBS, "B": PROBS})
    assert not answers_agree({"A": PROBS}, {}, output="A")
    assert not answers_agree({}, {})
    assert answers_agree({"A": PROBS}, {"A": PROBS, "B": PROBS}, output="A")


def test_default_tolerance_is_one_percent():
    stable = {"Y": np.array([10.0])}
    assert answers_agree(stable, {"Y": np.array([10.09])}, mode="RelativeTolerance")
    assert not answers_agree(stable, {"Y": np.array([10.11])}, mode="RelativeTolerance")


def test_unknown_mode_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown agreement mode"):
        answers_agree({"A": PROBS}, {"A": PROBS}, mode="Cosine")
