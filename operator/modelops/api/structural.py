"""Turn pydantic's JSON Schema into a Kubernetes structural OpenAPI v3 schema.

The apiserver only accepts "structural" schemas: no $ref, a `type` on every
node (except int-or-string and preserve-unknown-fields nodes), no anyOf/oneOf
except the int-or-string form, and OpenAPI 3.0 spellings (boolean
exclusiveMinimum). pydantic emits JSON Schema 2020-12, so this module inlines
references, drops the `null` branch of optional fields (an optional field is
simply absent), and translates the rest.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

# Keys kept from pydantic's output; anything else is a bug to surface, not to ship.
_ALLOWED = {
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}

# Output key order: what a reader of the YAML wants first.
_ORDER = [
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "x-kubernetes-validations",
]


class SchemaError(ValueError):
    """The pydantic model cannot be expressed as a structural schema."""


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic API model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, path=model.__name__)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a $ref (or pydantic's allOf-wrapped $ref); sibling keys win."""
    node = dict(node)
    if "allOf" in node and len(node["allOf"]) == 1 and "$ref" in node["allOf"][0]:
        node.update(node.pop("allOf")[0])
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    target = copy.deepcopy(defs[ref.split("/")[-1]])
    merged = {**target, **node}
    # Rules from the referenced model and from the field both apply.
    rules = target.get("x-kubernetes-validations", []) + node.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _drop_null(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """`X | None` arrives as anyOf [X, null]: keep X, with the field's own keys."""
    branches = [b for b in node["anyOf"] if b != {"type": "null"}]
    if node.get("x-kubernetes-int-or-string"):
        return node
    if len(branches) != 1:
        raise SchemaError(f"{path}: unions are not structural; use int-or-string or a model")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    inner = _resolve(branches[0], defs)
    if "anyOf" in inner:  # e.g. Optional[Quantity]
        inner = _drop_null(inner, defs, path)
    return _merge_field(inner, rest)


def _merge_field(inner: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    merged = {**inner, **field}
    rules = inner.get("x-kubernetes-validations", []) + field.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _drop_null(node, defs, path)
    node.pop("title", None)
    if node.get("default", 0) is None:
        node.pop("default")
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        # JSON Schema: a number; OpenAPI 3.0 (what CRDs speak): a flag on minimum/maximum.
        if bound in node and not isinstance(node[bound], bool):
            node["minimum" if bound == "exclusiveMinimum" else "maximum"] = node[bound]
            node[bound] = True

    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    additional = node.get("additionalProperties")
    if additional is False or (additional is True and preserve):
        # `additionalProperties: false` is implied by structural pruning and is not
        # allowed next to `properties`; free-form maps say preserve-unknown-fields.
        node.pop("additionalProperties")
    elif additional is True:
        raise SchemaError(f"{path}: free-form object needs x-kubernetes-preserve-unknown-fields")
    unknown = set(node) - _ALLOWED
    if unknown:
        raise SchemaError(f"{path}: unsupported schema keys {sorted(unknown)}")

    if "properties" in node:
        node["properties"] = {
            name: _convert(sub, defs, f"{path}.{name}") for name, sub in node["properties"].items()
        }
    if "items" in node:
        node["items"] = _convert(node["items"], defs, f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _convert(node["additionalProperties"], defs, f"{path}{{}}")
    if "anyOf" in node:
        node["anyOf"] = [{"type": b["type"]} for b in node["anyOf"]]

    if "type" not in node and not (
        node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        raise SchemaError(f"{path}: every structural schema node needs a type")
    return _ordered(node)


_RULE_ORDER = ("rule", "message", "messageExpression", "fieldPath", "reason")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    out = {key: node[key] for key in _ORDER if key in node}
    if "x-kubernetes-validations" in out:
        # pydantic sorts keys alphabetically; put each rule before its message.
        out["x-kubernetes-validations"] = [
            {k: rule[k] for k in _RULE_ORDER if k in rule}
            for rule in out["x-kubernetes-validations"]
        ]
    return out
