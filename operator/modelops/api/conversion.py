"""Conversion between modelops.io/v1alpha1 and v1beta1 (both kinds), and ConversionReview.

Pure functions on plain dicts, as the API server sends objects to the
conversion webhook. Two layers:

- `_up` / `_down`: the field mapping (enum spellings, durations, renames,
  servedVersion string <-> list). Neither can be lossless alone: v1beta1 has
  fields v1alpha1 lacks (pod controls, schedulingTimeout, cpuLimit), and
  v1alpha1 has spellings v1beta1 normalises (a former-default runtime.image,
  which v1alpha1 reads as unset; "3, 4" as servedVersion; 60 and "1m"/"60s").
- `to_v1beta1` / `to_v1alpha1`: lossless, as Kubernetes' own conversions are.
  What the target version cannot hold is kept in an annotation of the
  converted object (ALPHA_FIELDS on a v1beta1 object, BETA_FIELDS on a
  v1alpha1 one) as a list of [path, value] ([path] alone: the field was
  absent). Converting back restores each saved field only when it is
  consistent with what the object now says (restoring it changes nothing
  visible in the object's own version), so an edit made through the other
  version always wins over a stale saved value.

Conversion never raises on a value it cannot map (e.g. an enum spelling from
a future version): the value passes unchanged and the API server's schema of
the target version decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from . import constants as c
from . import durations
from .v1beta1 import modeldeployment as beta_md

V1ALPHA1 = "v1alpha1"
V1BETA1 = "v1beta1"
VERSIONS = (V1ALPHA1, V1BETA1)
# On a v1beta1 object: v1alpha1 fields the conversion to v1beta1 normalised away.
ALPHA_FIELDS = f"{c.GROUP}/v1alpha1-fields"
# On a v1alpha1 object: v1beta1 fields with no v1alpha1 home.
BETA_FIELDS = f"{c.GROUP}/v1beta1-fields"

Obj = dict[str, Any]
Path = tuple[str, ...]


class ConversionError(ValueError):
    """The object cannot be converted (not a modelops object, or an unknown version)."""


# --- small dict helpers -------------------------------------------------------------


def _clone(value: Any) -> Any:
    """A deep copy of JSON data; through the C JSON codec, several times faster than
    copy.deepcopy (which dominated the conversion's cost, bench/api/conversion.py)."""
    return json.loads(json.dumps(value))


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _sub(obj: Obj, *path: str) -> Obj | None:
    """The dict at path, or None when absent or not a dict."""
    node = _get(obj, *path)
    return node if isinstance(node, dict) else None


def _rename(node: Obj | None, old: str, new: str, fn: Callable[[Any], Any]) -> None:
    """node[new] = fn(node.pop(old)); a value fn refuses (ValueError) stays under old."""
    if node is None or old not in node:
        return
    try:
        value = fn(node[old])
    except (ValueError, TypeError, ArithmeticError):
        return
    del node[old]
    node[new] = value


def _map(node: Obj | None, key: str, table: Mapping[str, str]) -> None:
    if node is not None and isinstance(node.get(key), str):
        node[key] = table.get(node[key], node[key])


def _inverse(table: Mapping[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


_FORMATS_DOWN = _inverse(beta_md.FORMATS)
_ENGINES_DOWN = _inverse(beta_md.ENGINES)
_METRIC_TYPES_DOWN = _inverse(beta_md.METRIC_TYPES)
_DRIFT_METHODS_DOWN = _inverse(beta_md.DRIFT_METHODS)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def _seconds(value: Any) -> str:
    return durations.format_seconds(_int(value))


def _microseconds(value: Any) -> str:
    return durations.format_microseconds(_int(value))


# --- the field mapping --------------------------------------------------------------


def _tj_spec_up(spec: Obj | None) -> None:
    if spec is None:
        return
    _rename(spec, "activeDeadlineSeconds", "activeDeadline", _seconds)
    _rename(spec, "ttlSecondsAfterFinished", "ttlAfterFinished", _seconds)
    image = spec.get("image")
    if isinstance(image, str) and image in c.FORMER_DEFAULT_TRAINER_IMAGES:
        del spec["image"]  # v1alpha1 reads it as unset; v1beta1 keeps every value it holds


def _tj_spec_down(spec: Obj | None) -> None:
    if spec is None:
        return
    _rename(spec, "activeDeadline", "activeDeadlineSeconds", durations.whole_seconds)
    _rename(spec, "ttlAfterFinished", "ttlSecondsAfterFinished", durations.whole_seconds)
    _drop_pod_controls(spec)
    _drop(_sub(spec, "resources"), "cpuLimit")
    _drop(spec, "volumeMounts")
    _env_down(spec)


def _drop(node: Obj | None, *keys: str) -> None:
    if node is not None:
        for key in keys:
            node.pop(key, None)


def _drop_pod_controls(spec: Obj) -> None:
    _drop(spec, "imagePullSecrets", "volumes")
    _drop(_sub(spec, "scheduling"), "affinity", "topologySpreadConstraints")


def _env_down(node: Obj | None) -> None:
    """v1alpha1 env is literal values only: entries read from a Secret/ConfigMap go."""
    if node is None or not isinstance(node.get("env"), list):
        return
    node["env"] = [e for e in node["env"] if not (isinstance(e, dict) and "valueFrom" in e)]


def _md_up(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is not None:
        _map(_sub(spec, "model"), "format", beta_md.FORMATS)
        runtime = _sub(spec, "runtime")
        image = _get(runtime or {}, "image")
        if isinstance(image, str) and image in c.FORMER_DEFAULT_TRITON_IMAGES:
            del runtime["image"]  # type: ignore[index]
        _rename(
            _sub(spec, "runtime", "dynamicBatching"),
            "maxQueueDelayMicroseconds",
            "maxQueueDelay",
            _microseconds,
        )
        scaling = _sub(spec, "autoscaling")
        _map(scaling, "engine", beta_md.ENGINES)
        _map(_sub(spec, "autoscaling", "metric"), "type", beta_md.METRIC_TYPES)
        _rename(scaling, "cooldownSeconds", "cooldown", _seconds)
        _rename(scaling, "scaleDownStabilizationSeconds", "scaleDownStabilization", _seconds)
        rollout = _sub(spec, "rollout")
        if rollout is not None and "surgeTimeoutSeconds" in rollout:
            # One v1alpha1 field meant both; v1beta1 splits them, same value.
            _rename(rollout, "surgeTimeoutSeconds", "surgeTimeout", _seconds)
            if "surgeTimeout" in rollout:
                rollout["schedulingTimeout"] = rollout["surgeTimeout"]
        _map(_sub(spec, "driftMonitor"), "method", beta_md.DRIFT_METHODS)
        _tj_spec_up(_sub(spec, "driftMonitor", "retrain", "trainingJobTemplate"))
    status = _sub(obj, "status")
    served = _get(status or {}, "servedVersion")
    if isinstance(served, str):
        del status["servedVersion"]  # type: ignore[index]
        versions = [v.strip() for v in served.split(",") if v.strip()]
        status["servedVersions"] = [{"version": v} for v in versions]  # type: ignore[index]


def _md_down(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is not None:
        _map(_sub(spec, "model"), "format", _FORMATS_DOWN)
        _rename(
            _sub(spec, "runtime", "dynamicBatching"),
            "maxQueueDelay",
            "maxQueueDelayMicroseconds",
            durations.whole_microseconds,
        )
        _drop(_sub(spec, "runtime"), "volumeMounts")
        _env_down(_sub(spec, "runtime"))
        _drop(_sub(spec, "resources"), "cpuLimit")
        scaling = _sub(spec, "autoscaling")
        _map(scaling, "engine", _ENGINES_DOWN)
        _map(_sub(spec, "autoscaling", "metric"), "type", _METRIC_TYPES_DOWN)
        _rename(scaling, "cooldown", "cooldownSeconds", durations.whole_seconds)
        _rename(
            scaling,
            "scaleDownStabilization",
            "scaleDownStabilizationSeconds",
            durations.whole_seconds,
        )
        rollout = _sub(spec, "rollout")
        _rename(rollout, "surgeTimeout", "surgeTimeoutSeconds", durations.whole_seconds)
        _drop(rollout, "schedulingTimeout")
        _map(_sub(spec, "driftMonitor"), "method", _DRIFT_METHODS_DOWN)
        _tj_spec_down(_sub(spec, "driftMonitor", "retrain", "trainingJobTemplate"))
        _drop_pod_controls(spec)
        _drop(spec, "podMetadata")
    status = _sub(obj, "status")
    served = _get(status or {}, "servedVersions")
    if isinstance(served, list) and all(
        isinstance(v, dict) and isinstance(v.get("version"), str) for v in served
    ):
        del status["servedVersions"]  # type: ignore[index]
        status["servedVersion"] = ",".join(v["version"] for v in served)  # type: ignore[index]


def _tj_up(obj: Obj) -> None:
    _tj_spec_up(_sub(obj, "spec"))


def _tj_down(obj: Obj) -> None:
    _tj_spec_down(_sub(obj, "spec"))


_UP: dict[str, Callable[[Obj], None]] = {c.MD_KIND: _md_up, c.TJ_KIND: _tj_up}
_DOWN: dict[str, Callable[[Obj], None]] = {c.MD_KIND: _md_down, c.TJ_KIND: _tj_down}


def _mapped(obj: Mapping[str, Any], table: dict[str, Callable[[Obj], None]], version: str) -> Obj:
    out = _clone(dict(obj))
    fn = table.get(out.get("kind", ""))
    if fn is None:
        raise ConversionError(f"not a modelops kind: {out.get('kind')!r}")
    fn(out)
    group = str(out.get("apiVersion", c.API_VERSION)).rpartition("/")[0] or c.GROUP
    out["apiVersion"] = f"{group}/{version}"
    return out


def _up(obj: Mapping[str, Any]) -> Obj:
    return _mapped(obj, _UP, V1BETA1)


def _down(obj: Mapping[str, Any]) -> Obj:
    return _mapped(obj, _DOWN, V1ALPHA1)


# --- what a conversion loses, kept in an annotation ---------------------------------

_MISSING = object()


def _diff(source: Any, target: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """(path, source's value or _MISSING) wherever target differs from source."""
    if isinstance(source, dict) and isinstance(target, dict):
        out: list[tuple[Path, Any]] = []
        for key in sorted(set(source) | set(target)):
            if path == () and key in ("metadata", "apiVersion"):
                continue
            if key not in source:
                out.append(((*path, key), _MISSING))
            elif key not in target:
                out.append(((*path, key), source[key]))
            else:
                out.extend(_diff(source[key], target[key], (*path, key)))
        return out
    return [] if source == target else [(path, source)]


def _paths(source: Any, target: Any) -> set[Path]:
    return {path for path, _ in _diff(source, target)}


def _apply(obj: Obj, path: Path, value: Any) -> Obj:
    out = _clone(obj)
    node = out
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            if value is _MISSING:
                return out
            child = node[key] = {}
        node = child
    if value is _MISSING:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = _clone(value)
    return out


def _encode(entries: list[tuple[Path, Any]]) -> str:
    return json.dumps(
        [[list(p)] if v is _MISSING else [list(p), v] for p, v in entries],
        separators=(",", ":"),
        sort_keys=True,
    )


def _decode(text: Any) -> list[tuple[Path, Any]]:
    """Saved entries; a damaged annotation is ignored (it only ever adds detail)."""
    try:
        raw = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    out: list[tuple[Path, Any]] = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, list) or not 1 <= len(entry) <= 2:
            continue
        path = entry[0]
        if not isinstance(path, list) or not path or not all(isinstance(k, str) for k in path):
            continue
        out.append((tuple(path), entry[1] if len(entry) == 2 else _MISSING))
    return out


def _take_annotation(obj: Obj, key: str) -> Any:
    """Remove annotation `key` from obj (in place); its value, or None."""
    annotations = _get(obj, "metadata", "annotations")
    if not isinstance(annotations, dict) or key not in annotations:
        return None
    value = annotations.pop(key)
    if not annotations:
        del obj["metadata"]["annotations"]
    return value


def _put_annotation(obj: Obj, key: str, value: str) -> None:
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[key] = value


def _convert(
    obj: Mapping[str, Any],
    forward: Callable[[Mapping[str, Any]], Obj],
    back: Callable[[Mapping[str, Any]], Obj],
    incoming: str,
    outgoing: str,
) -> Obj:
    """forward(obj), restoring what `incoming` saved and saving in `outgoing` what it loses."""
    source = _clone(dict(obj))
    source.setdefault("metadata", {})
    saved = _decode(_take_annotation(source, incoming))
    _take_annotation(source, outgoing)  # stale: recomputed below
    out = forward(source)
    for path, value in saved:
        candidate = _apply(out, path, value)
        # Restored only when consistent with the source: the way back to the source's
        # version must not differ from the source anywhere it did not already (a saved
        # value that an edit through the source's version has since replaced loses).
        if _paths(source, back(candidate)) <= _paths(source, back(out)):
            out = candidate
    lost = _diff(source, back(out))
    if lost:
        _put_annotation(out, outgoing, _encode(lost))
    return out


def version_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("apiVersion", "")).rpartition("/")[2]


def to_v1beta1(obj: Mapping[str, Any]) -> Obj:
    """The v1beta1 form of a v1alpha1 (or v1beta1) object; lossless."""
    if version_of(obj) == V1BETA1:
        return _clone(dict(obj))
    if version_of(obj) != V1ALPHA1:
        raise ConversionError(f"unknown version {obj.get('apiVersion')!r}")
    return _convert(obj, _up, _down, BETA_FIELDS, ALPHA_FIELDS)


def to_v1alpha1(obj: Mapping[str, Any]) -> Obj:
    """The v1alpha1 form of a v1beta1 (or v1alpha1) object; lossless."""
    if version_of(obj) == V1ALPHA1:
        return _clone(dict(obj))
    if version_of(obj) != V1BETA1:
        raise ConversionError(f"unknown version {obj.get('apiVersion')!r}")
    return _convert(obj, _down, _up, ALPHA_FIELDS, BETA_FIELDS)


def convert(obj: Mapping[str, Any], desired_api_version: str) -> Obj:
    """obj in `desired_api_version` (group/version); the group is kept as the object's."""
    version = desired_api_version.rpartition("/")[2]
    if version == V1BETA1:
        return to_v1beta1(obj)
    if version == V1ALPHA1:
        return to_v1alpha1(obj)
    raise ConversionError(f"unknown version {desired_api_version!r}")


# --- apiextensions.k8s.io/v1 ConversionReview ---------------------------------------

MAX_OBJECTS = 10_000


def review(body: Mapping[str, Any]) -> Obj:
    """The ConversionReview response to a request, as the API server expects it.

    A failure is a response with status Failure and a message (the API server
    passes it to the client), never an exception.
    """
    request = body.get("request") if isinstance(body, Mapping) else None
    request = request if isinstance(request, Mapping) else {}
    uid = request.get("uid", "")
    response: Obj = {"uid": uid}
    try:
        desired = request.get("desiredAPIVersion")
        objects = request.get("objects")
        if not isinstance(desired, str) or not isinstance(objects, list):
            raise ConversionError("request needs desiredAPIVersion and objects")
        if len(objects) > MAX_OBJECTS:
            raise ConversionError(f"more than {MAX_OBJECTS} objects in one request")
        converted = []
        for item in objects:
            if not isinstance(item, Mapping):
                raise ConversionError("objects must be objects")
            converted.append(convert(item, desired))
        response["convertedObjects"] = converted
        response["result"] = {"status": "Success"}
    except ConversionError as err:
        response["convertedObjects"] = []
        response["result"] = {"status": "Failure", "message": str(err)}
    return {
        "apiVersion": body.get("apiVersion", "apiextensions.k8s.io/v1")
        if isinstance(body, Mapping)
        else "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "response": response,
    }
