"""Agreement of two versions' answers: owned by the data plane, re-exported here.

The sidecar compares mirrored answers (:mod:`modelops.drift.agreement`); the
gating core documents and tests the same functions under this name. render may
import drift (the sidecar never imports render: import-linter).
"""

from modelops.drift.agreement import (
    AGREEMENT_MODES,
    DEFAULT_TOLERANCE,
    answers_agree,
    argmax_agree,
    within_tolerance,
)

__all__ = [
    "AGREEMENT_MODES",
    "DEFAULT_TOLERANCE",
    "answers_agree",
    "argmax_agree",
    "within_tolerance",
]
