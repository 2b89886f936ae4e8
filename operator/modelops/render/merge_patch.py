"""The status write of either kind: a JSON merge patch from live status to derived status. Pure.

Generic (ModelDeployment and TrainingJob statuses alike), so that both planners
use it without one kind's modules depending on the other's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from modelops.api.conversion import to_v1beta1

# Owned by the operator framework, never by derive_status.
FOREIGN_KEYS = frozenset({"kopf"})


def status_patch(previous: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386) turning the live status into `desired`.

    Keys derive_status no longer sets become None (deleted), which a plain
    merge of `desired` would leave behind (e.g. servedVersion once no pod is
    ready). Empty when nothing changed: the controller then writes nothing.
    status.kopf is left alone.
    """
    return _diff(previous or {}, desired, top=True)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], *, top: bool = False) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new and not (top and key in FOREIGN_KEYS):
            patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = _diff(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            # Lists (conditions) are replaced whole, as merge patch does.
            patch[key] = value
    return patch


def apply_merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` with the JSON merge patch ``patch`` applied (RFC 7386); a new object."""
    out = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = apply_merge_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def storage_status_patch(read: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``patch``, made against the v1alpha1 object ``read``, as the same change to the
    object's status in the storage version (v1beta1).

    The operator reads v1alpha1 and writes status in the version objects are stored
    in, so the API server calls no conversion webhook for it (two calls per status
    patch otherwise, one each way). The status before and after the patch are both
    converted by api/conversion.py, so whatever the conversion does to a status
    (servedVersion, a string, is servedVersions, a list) is done the same way here,
    and the difference between the two is the patch.
    """
    before = to_v1beta1(read).get("status") or {}
    after = to_v1beta1(apply_merge_patch(read, {"status": dict(patch)})).get("status") or {}
    return _diff(before, after, top=True)
