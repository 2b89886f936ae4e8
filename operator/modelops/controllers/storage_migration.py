"""Storage-version migration: rewrite every object in the CRD's storage version.

After an upgrade that makes v1beta1 the storage version, objects written
before it are still stored as v1alpha1 (the API server converts them on each
read, through the webhook). Writing each back unchanged makes the API server
store it as v1beta1 (an update re-encodes the object, and the bytes differ);
once all are rewritten, status.storedVersions of the CRD is set to the
storage version alone, so that a later release may stop serving v1alpha1.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from modelops.api import constants as c
from modelops.api.kinds import CUSTOM_RESOURCE_DEFINITION, Kind
from modelops.kube import Kube, errors
from modelops.kube.client import from_kubeconfig

log = logging.getLogger("modelops.migration")
DEFAULT_CRDS = (f"{c.MD_PLURAL}.{c.GROUP}", f"{c.TJ_PLURAL}.{c.GROUP}")


@dataclass(frozen=True)
class Migrated:
    crd: str
    storage_version: str
    objects: int
    stored_versions_before: tuple[str, ...]


def migrate(kube: Kube, crd_name: str) -> Migrated:
    """Rewrite every object of a CRD in its storage version, then trim storedVersions.

    Safe to repeat and to interrupt: storedVersions is trimmed only after every
    object listed was rewritten (an object created meanwhile is already stored
    in the storage version).
    """
    crd = kube.get(CUSTOM_RESOURCE_DEFINITION, None, crd_name)
    if crd is None:
        raise errors.NotFound("NotFound", f"CustomResourceDefinition {crd_name} not found", 404)
    spec = crd["spec"]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    before = tuple((crd.get("status") or {}).get("storedVersions") or ())
    if before == (storage,):
        return Migrated(crd_name, storage, 0, before)
    kind = Kind(
        f"{spec['group']}/{storage}",
        spec["names"]["kind"],
        spec["names"]["plural"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
    )
    items, _ = kube.list_objects(kind, None)
    count = 0
    for item in items:
        meta = item["metadata"]
        try:
            # An empty merge patch is an update with no change: the API server
            # re-encodes the object in the storage version and writes it.
            kube.merge_patch(kind, meta.get("namespace"), meta["name"], {})
        except errors.NotFound:
            continue  # deleted meanwhile
        count += 1
    kube.patch_status(CUSTOM_RESOURCE_DEFINITION, None, crd_name, {"storedVersions": [storage]})
    log.info("migrated %d %s to %s (storedVersions was %s)", count, crd_name, storage, before)
    return Migrated(crd_name, storage, count, before)


# -- `modelops migrate-storage` ------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "crd",
        nargs="*",
        default=list(DEFAULT_CRDS),
        help="CRDs to migrate (default: %(default)s)",
    )
    parser.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, then in-cluster")


def run(args: argparse.Namespace) -> int:
    kube = from_kubeconfig(args.kubeconfig)[0] if args.kubeconfig else Kube()
    for crd in args.crd:
        result = migrate(kube, crd)
        print(
            f"{crd}: {result.objects} objects rewritten as {result.storage_version}; "
            f"storedVersions {list(result.stored_versions_before)} -> [{result.storage_version}]"
        )
    return 0
