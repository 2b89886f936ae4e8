"""v1alpha1 words in prose that v1beta1 shares, spelled as v1beta1 spells them.

Most v1beta1 descriptions are the v1alpha1 ones, inherited field by field
(derive.py), and the condition reasons are one table for both versions. Prose
written for v1alpha1 names its fields and enum values (`surgeTimeoutSeconds`,
`engine keda`, `psi`), which a v1beta1 reader cannot type. `reword` rewrites
that prose for the v1beta1 schema (what `kubectl explain` shows) and the
v1beta1 reference (docs/api-v1beta1.md); tests/unit/test_v1beta1_wording.py
checks that no v1alpha1-only name is left there.

The rewrites are phrases, most specific first, because one v1alpha1 field
became two: surgeTimeoutSeconds meant both the Direct rollout's switch to
in-place replacement (now surgeTimeout) and how long a pod may wait for a node
before the object is Stalled (now schedulingTimeout).
"""

from __future__ import annotations

import re
from typing import Any

from .modeldeployment import DRIFT_METHODS

# Waiting for a node is schedulingTimeout's; everything else surgeTimeoutSeconds said
# is surgeTimeout's.
_PHRASES: tuple[tuple[str, str], ...] = (
    ("within spec.rollout.surgeTimeoutSeconds", "within spec.rollout.schedulingTimeout"),
    ("longer than surgeTimeoutSeconds", "longer than spec.rollout.schedulingTimeout"),
    ("surgeTimeoutSeconds", "surgeTimeout"),
    ("needs engine keda", "needs engine KEDA"),
    ("engine keda", "engine KEDA"),
)
# Drift methods named in prose: v1alpha1 lowercase, v1beta1 CamelCase. Whole words
# only, and only where prose names a method (not "js" inside a file name).
_METHOD_WORDS = re.compile(r"(?<![\w./-])(" + "|".join(DRIFT_METHODS) + r")(?![\w-])")


def reword(text: str) -> str:
    """`text` with v1alpha1 field names and enum spellings as v1beta1 spells them."""
    for old, new in _PHRASES:
        text = text.replace(old, new)
    return _METHOD_WORDS.sub(lambda m: DRIFT_METHODS[m.group(1)], text)


def reword_schema(node: Any) -> Any:
    """A copy of a JSON schema whose every description is reworded."""
    if isinstance(node, dict):
        return {
            key: reword(value)
            if key == "description" and isinstance(value, str)
            else reword_schema(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [reword_schema(item) for item in node]
    return node
