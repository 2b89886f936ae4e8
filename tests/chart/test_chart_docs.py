"""Every Helm value the documentation names exists in charts/modelops/values.yaml.

The docs once sent people to `metrics.serviceMonitor` and `metrics.prometheusRule`,
values that never existed (Helm ignores an unknown `--set` path only when no
schema refuses it, and the reader of a README gets no error at all). This test
reads README.md, CHANGELOG.md, docs/*.md and the chart's README and checks each value path
named there: every `--set path=...` and every backticked dotted name that can
only be a chart value.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
import yaml

from tests.chart.helm import CHART
from tests.support.cluster import REPO

DOCS = sorted(
    [REPO / "README.md", REPO / "CHANGELOG.md", CHART / "README.md", *(REPO / "docs").glob("*.md")]
)
SET_FLAG = re.compile(r"--set(?:-string|-json)?[ =]([A-Za-z][\w.<>\[\]-]*)=")
BACKTICKED = re.compile(r"`([A-Za-z]\w*(?:\.[\w<>*-]+)+)(?:=[^`\s]*)?`")
# `metrics.json`, `result.json`: file names, not values.
FILE_SUFFIXES = {"json", "yaml", "yml", "md", "py", "txt", "lua", "pt", "npz", "pbtxt", "tpl"}


@cache
def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@cache
def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


@cache
def crd_spec_fields() -> frozenset[str]:
    """Top-level spec fields of both kinds: `resources.memory` in the training docs is
    a TrainingJob field, not the chart's `resources` value."""
    out = set()
    for path in (REPO / "crds").glob("modelops.io_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        out |= set(spec["properties"])
    return frozenset(out)


def declared(path: str) -> bool:
    """Whether values.yaml has `path`, or the longest prefix of it that values.yaml can
    have (a free-form map such as monitoring.labels) with the rest allowed by the schema."""
    node: Any = schema()
    value: Any = values()
    for segment in re.sub(r"\[\d+\]", "", path).split("."):
        properties = node.get("properties") or {}
        if segment == "*":  # `monitoring.*`: the prefix is a group of values
            return bool(properties)
        if segment in properties:
            node = properties[segment]
            if value is not None:  # not yet inside a free-form map: values.yaml has it
                if not isinstance(value, dict) or segment not in value:
                    return False
                value = value[segment]
            continue
        extra = node.get("additionalProperties", not properties)
        if extra is False:
            return False
        if extra is True or not extra.get("properties"):
            return True  # anything below a free-form map of plain values
        # A map of structured entries (alerts.<name>.for): check the entry's fields.
        node, value = extra, None
    return True


def named_value_paths() -> list[tuple[str, str]]:
    """(file, path) for every chart value path the docs name."""
    top = set(values())
    found = []
    for doc in DOCS:
        text = doc.read_text()
        rel = str(doc.relative_to(REPO))
        for path in SET_FLAG.findall(text):
            found.append((rel, path))
        for path in BACKTICKED.findall(text):
            head = path.split(".")[0]
            if path.rsplit(".", 1)[1] in FILE_SUFFIXES:
                continue
            if path.endswith((".k8s.io", ".x-k8s.io")):
                continue  # an API group (metrics.k8s.io), not a value path
            if head in top and head not in crd_spec_fields():
                found.append((rel, path))
    return sorted(set(found))


def test_the_scan_finds_the_value_paths_the_docs_use():
    # A scanner that matches nothing would pass forever.
    paths = {p for _, p in named_value_paths()}
    for expected in (
        "monitoring.enabled",
        "grafanaDashboard.enabled",
        "defaultImages.triton",
        "crds.keep",
        "rbac.tenantRoles",
        "monitoring.labels.release",
    ):
        assert expected in paths, expected


@pytest.mark.parametrize(("doc", "path"), named_value_paths())
def test_every_value_path_in_the_docs_exists_in_values_yaml(doc: str, path: str):
    assert declared(path), f"{doc} names the Helm value `{path}`, which values.yaml lacks"


@pytest.mark.parametrize(
    "path",
    ["metrics.serviceMonitor", "metrics.prometheusRule", "monitoring.grafana", "image.name"],
)
def test_paths_that_do_not_exist_are_caught(path: str):
    assert not declared(path)


def test_paths_below_free_form_maps_are_accepted():
    assert declared("monitoring.labels.release")
    assert declared("monitoring.prometheusRule.alerts.ModelDriftDetected.for")
    assert declared("podAnnotations.example")
    assert declared("monitoring.*") and not declared("replicaCount.*")
    assert not declared("monitoring.prometheusRule.alerts.ModelDriftDetected.silence")
