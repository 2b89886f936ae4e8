"""Every Kubernetes object the docs show, and every sample, on the real API server.

Doc blocks (tests/docs/blocks.py says how each is read) go through a
server-side dry run: schema, CEL rules, strict field validation, defaulting,
without leaving anything behind. The samples of manifests/samples/ are applied
for real and read back. A failure names the file and line of the block.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from tests.docs.blocks import BASES, SAMPLES, Block, all_blocks, is_object
from tests.integration.invalid_modeldeployments import merge_patch
from tests.support.cluster import REPO, Cluster, fresh_namespace
from tests.support.operator import install

pytestmark = pytest.mark.cluster

APPLIED = [b for b in all_blocks() if not (b.marker and b.marker[0] == "not-applied")]


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    install(cluster)
    return cluster


@pytest.fixture(scope="module")
def docs_namespace(crds: Cluster) -> Iterator[str]:
    yield from fresh_namespace(crds)


def _dry_run(cluster: Cluster, namespace: str, objects: list[dict], where: str) -> None:
    proc = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict",
        "--field-manager=docs-test", "-n", namespace, "-f", "-",
        input=yaml.safe_dump_all(objects), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{where}: the API server refused it:\n{proc.stderr}"


def _base(kind: str, name: str) -> dict:
    return merge_patch(BASES[kind], {"metadata": {"name": name}})


@pytest.mark.parametrize("block", APPLIED, ids=lambda b: b.where)
def test_doc_block_is_accepted(crds: Cluster, docs_namespace: str, block: Block):
    docs = block.documents()
    kind = block.fragment_kind
    if kind is None:
        assert all(is_object(d) for d in docs), block.where
        _dry_run(crds, docs_namespace, docs, block.where)
        return
    if not block.is_status:
        _dry_run(crds, docs_namespace, [merge_patch(BASES[kind], docs[0])], block.where)
        return
    # A status example: onto a real object's status subresource, dry run.
    name = f"docs-status-{block.line}"
    crds.apply(_base(kind, name), docs_namespace)
    proc = crds.kubectl(
        "patch", kind.lower(), name, "-n", docs_namespace, "--subresource=status",
        "--type=merge", "--dry-run=server", "-p", json.dumps(docs[0]), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{block.where}: the API server refused it:\n{proc.stderr}"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_applies_for_real(crds: Cluster, namespace: str, sample):
    where = str(sample.relative_to(REPO))
    proc = crds.kubectl(
        "apply", "--server-side", "--validate=strict", "-n", namespace, "-f", str(sample),
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{where}: the API server refused it:\n{proc.stderr}"
    for doc in yaml.safe_load_all(sample.read_text()):
        if not is_object(doc):
            continue
        # In the sample's own version: kubectl's default is the preferred one, v1beta1.
        group, version = doc["apiVersion"].split("/")
        resource = f"{doc['kind'].lower()}s.{version}.{group}"
        live = crds.kubectl(
            "get", resource, doc["metadata"]["name"], "-n", namespace, "-o", "json"
        ).stdout
        stored = json.loads(live)
        # What the sample says is what is stored (defaults may add to it).
        assert merge_patch(stored["spec"], doc["spec"]) == stored["spec"], where
