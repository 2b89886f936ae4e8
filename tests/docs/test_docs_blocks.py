"""Without a cluster: every YAML block of the docs parses and is an object, a marked
fragment or marked as not applied; the chart's kubeVersion is the one docs/install.md
states."""

from __future__ import annotations

import pytest
import yaml

from tests.docs.blocks import BASES, REPO, all_blocks, blocks, is_object

BLOCKS = all_blocks()


def test_the_sweep_finds_the_blocks_it_should():
    assert len(BLOCKS) >= 5
    assert {b.path.name for b in BLOCKS} >= {"keda.md", "rollouts.md", "training.md"}


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_each_block_is_an_object_or_says_what_it_is(block):
    try:
        docs = block.documents()
    except yaml.YAMLError as err:
        raise AssertionError(f"{block.where}: not YAML: {err}") from None
    assert docs, f"{block.where}: empty block"
    if block.marker is None:
        assert all(is_object(d) for d in docs), (
            f"{block.where}: not a complete Kubernetes object; mark it "
            "<!-- fragment-of: Kind --> or <!-- not-applied: reason -->"
        )
    elif block.marker[0] == "fragment-of":
        assert block.fragment_kind in BASES, f"{block.where}: unknown kind {block.marker[1]}"
        assert len(docs) == 1 and isinstance(docs[0], dict), f"{block.where}: one mapping"
    else:
        assert block.marker[1], f"{block.where}: not-applied needs a reason"


def test_not_applied_blocks_stay_few():
    skipped = [b.where for b in BLOCKS if b.marker and b.marker[0] == "not-applied"]
    assert len(skipped) <= 3, skipped


def test_markers_are_read_from_the_line_before_the_block(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "text\n<!-- fragment-of: ModelDeployment status -->\n```yaml\nstatus: {}\n```\n"
        "\n```yaml\napiVersion: v1\nkind: ConfigMap\n```\n"
    )
    first, second = blocks(doc)
    assert (first.fragment_kind, first.is_status, first.line) == ("ModelDeployment", True, 3)
    assert second.marker is None and second.line == 7


def test_chart_kube_version_is_the_documented_minimum():
    chart = yaml.safe_load((REPO / "charts" / "modelops" / "Chart.yaml").read_text())
    install = (REPO / "docs" / "install.md").read_text()
    assert f'`kubeVersion: "{chart["kubeVersion"]}"`' in install
    minimum = chart["kubeVersion"].removeprefix(">=").split(".")[:2]
    assert "| " + ".".join(minimum) in install  # the first row of the versions table
