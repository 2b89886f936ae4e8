"""The v1beta1 schema and reference speak v1beta1: no v1alpha1-only field name or enum
spelling in the prose v1beta1 inherits (what `kubectl explain` and docs/api-v1beta1.md
show a v1beta1 user, who could not type those names)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from modelops.api.crd import BETA_KINDS, KINDS, V1BETA1, root_schema
from modelops.api.docs import api_reference
from modelops.api.v1beta1 import modeldeployment as beta_md
from modelops.api.v1beta1.wording import reword

ROOT = Path(__file__).resolve().parents[2]


def _properties(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        yield from node.get("properties", {})
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item)


def _descriptions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            else:
                yield from _descriptions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _descriptions(item)


@cache
def _alpha_only_names() -> frozenset[str]:
    """Field names v1alpha1 has and v1beta1 renamed or dropped (surgeTimeoutSeconds, …),
    computed from the two schemas."""
    alpha = {n for k in KINDS for n in _properties(root_schema(k))}
    beta = {n for k in BETA_KINDS.values() for n in _properties(root_schema(k, V1BETA1))}
    return frozenset(alpha - beta)


# v1alpha1 enum spellings that are no English word (so any whole-word use in prose is
# the enum): the drift methods and the autoscaling engines.
ALPHA_ENUM_WORDS = sorted({*beta_md.DRIFT_METHODS, *beta_md.ENGINES})


@cache
def _pattern() -> re.Pattern[str]:
    names = "|".join(sorted(_alpha_only_names()))
    words = "|".join(ALPHA_ENUM_WORDS)
    return re.compile(rf"(?<![\w.-])({names}|{words})(?![\w-])")


def _offending(text: str) -> list[str]:
    return sorted({m.group(1) for m in _pattern().finditer(text)})


def test_v1alpha1_only_names_exist_to_be_checked():
    # The check below is empty if the schemas stop differing; they differ by design.
    assert {"surgeTimeoutSeconds", "servedVersion", "cooldownSeconds"} <= _alpha_only_names()


@pytest.mark.parametrize("kind", sorted(BETA_KINDS))
def test_v1beta1_schema_prose_names_only_v1beta1_fields_and_spellings(kind: str):
    schema = root_schema(BETA_KINDS[kind], V1BETA1)
    found = {d[:80]: bad for d in _descriptions(schema) if (bad := _offending(d))}
    assert found == {}


def test_v1beta1_reference_names_only_v1beta1_fields_and_spellings():
    text = api_reference(V1BETA1)
    assert _offending(text) == []
    # And the generated file is what the code generates (make crds).
    assert (ROOT / "docs" / "api-v1beta1.md").read_text() == text


def test_v1alpha1_prose_is_untouched():
    """The rewording is v1beta1's: docs/api.md keeps naming v1alpha1's fields."""
    assert "surgeTimeoutSeconds" in api_reference()
    assert "surgeTimeoutSeconds" not in api_reference(V1BETA1)


@pytest.mark.parametrize(
    ("alpha", "beta"),
    [
        (
            "A pod found no node for longer than surgeTimeoutSeconds.",
            "A pod found no node for longer than spec.rollout.schedulingTimeout.",
        ),
        ("see spec.rollout.surgeTimeoutSeconds", "see spec.rollout.surgeTimeout"),
        ("(engine keda, minReplicas 0)", "(engine KEDA, minReplicas 0)"),
        ("For psi and js: a score; ks and ksz 0.001", "For PSI and JS: a score; KS and KSZ 0.001"),
        # A method's letters inside a file or module name are not the method.
        ("model.js or scripts/ks-run, psi-like", "model.js or scripts/ks-run, psi-like"),
    ],
)
def test_reword(alpha: str, beta: str):
    assert reword(alpha) == beta
