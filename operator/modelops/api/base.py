"""Building blocks for API models whose JSON schema becomes a CRD schema.

Everything Kubernetes-specific that the schema needs (CEL rules, int-or-string,
list types, preserve-unknown-fields) is attached here through pydantic's
`json_schema_extra`, so the rule sits next to the model it guards and the CRD
generator only has to translate, never to know about individual fields.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, WithJsonSchema
from pydantic.alias_generators import to_camel

# --- patterns (RE2-compatible: the apiserver evaluates them in Go) ----------

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A label key: optional DNS-subdomain prefix, then a name of at most 63 characters.
_QUALIFIED_NAME_BODY = (
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
QUALIFIED_NAME = f"^{_QUALIFIED_NAME_BODY}$"
QUALIFIED_NAME_OR_EMPTY = f"^({_QUALIFIED_NAME_BODY})?$"
ENV_VAR_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
STORAGE_URI = r"^(s3|gs|https|pvc|file)://[^\s]+$"
# Kubernetes resource.Quantity without a sign: "2", "500m", "16Gi", "1e3".
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY = rf"^{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"
PERCENT = r"^(100|[1-9]?[0-9])%$"
# A Go time.Duration as time.ParseDuration accepts it, e.g. "6h", "1h30m", "90s".
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored rather than refused: the apiserver is the gate
    (it prunes or, with strict field validation, rejects them), and an operator
    older than its CRD must still read objects written against the newer one.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        protected_namespaces=(),
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as the apiserver would store it (camelCase, no nulls)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- CEL -------------------------------------------------------------------


def cel(
    rule: str,
    message: str,
    *,
    field_path: str | None = None,
    reason: str | None = None,
) -> dict[str, str]:
    """One `x-kubernetes-validations` entry.

    `field_path` (relative to the object the rule sits on, e.g. ".minReplicas")
    makes the apiserver report the error against that field, so the message a
    user sees names the field they have to fix.
    """
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def cel_regex(pattern: str) -> str:
    """A regex for a single-quoted CEL string: CEL rejects the escape `\\.`."""
    return pattern.replace("\\.", "[.]")


# STORAGE_URI lets any pvc:// text through; the claim name must be a DNS-1123 label.
PVC_URI_RULE = cel(
    "!self.startsWith('pvc://') || self.matches('^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?$')",
    "a pvc:// URI must be pvc://<claim-name>/<path> with a DNS-1123 claim name",
)


# Credentials never travel in a URI: it is stored in the object, shown by
# kubectl get and copied into pod specs, logs and messages. userinfo
# (user:password@) in the authority, and query strings (pre-signed URLs carry
# their signature there), are refused; credentials go in credentialsSecretRef.
NO_USERINFO_RULE = cel(
    "!self.matches('^[a-z0-9]+://[^/?#]*@')",
    "URIs must not carry credentials (user:password@host): put them in a Secret and "
    "name it in credentialsSecretRef",
)
NO_QUERY_RULE = cel(
    "!self.contains('?') && !self.contains('#')",
    "storage URIs take no query string or fragment (a pre-signed URL's signature would be "
    "stored and shown in the object): use credentialsSecretRef",
)
# Every storage URI field carries these.
STORAGE_URI_RULES = (PVC_URI_RULE, NO_USERINFO_RULE, NO_QUERY_RULE)


def validations(*rules: dict[str, str], **extra: Any) -> dict[str, Any]:
    """`json_schema_extra` carrying CEL rules (plus any other x- keys)."""
    out: dict[str, Any] = dict(extra)
    if rules:
        out["x-kubernetes-validations"] = list(rules)
    return out


def reworded(base: type[BaseModel], **descriptions: str) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` of a subclass that only rewords its base's field descriptions.

    Lets a second kind reuse a type (its validation, defaults and CEL rules)
    while `kubectl explain` describes the field in that kind's own terms.
    The base's own `json_schema_extra` (e.g. its CEL rules) is kept, since a
    subclass's setting would otherwise replace it.
    """
    inherited = base.model_config.get("json_schema_extra")

    def apply(schema: dict[str, Any]) -> None:
        if isinstance(inherited, Mapping):
            schema.update(copy.deepcopy(dict(inherited)))
        elif inherited is not None:
            raise TypeError(f"{base.__name__}: cannot reword a callable json_schema_extra")
        for field, text in descriptions.items():
            schema["properties"][to_camel(field)]["description"] = text

    return apply


def map_list(*keys: str, **extra: Any) -> dict[str, Any]:
    """`json_schema_extra` for a list merged by key (like containers by name).

    A map list rejects duplicate keys at the door and lets server-side apply
    merge entries instead of replacing the whole list.
    """
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys), **extra}


def sub_object(model: type[BaseModel], description: str, **extra: Any) -> Any:
    """A nested object that is always present, defaulted to `{}`.

    The CRD default `{}` makes the apiserver fill in the nested defaults even
    when the user leaves the whole block out, so the stored object shows the
    effective values (and matches what pydantic's default_factory builds).
    """
    return Field(
        default_factory=model,
        description=description,
        json_schema_extra={"default": {}, **extra},
    )


# --- int-or-string types ----------------------------------------------------


def _int_or_string_schema(pattern: str) -> dict[str, Any]:
    # The form controller-gen emits for resource.Quantity / IntOrString: the
    # apiserver accepts exactly this anyOf under x-kubernetes-int-or-string,
    # and applies `pattern` to string values only.
    # `pattern` cannot reach integers, hence the CEL rule for the sign.
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": pattern,
        "x-kubernetes-int-or-string": True,
        "x-kubernetes-validations": [
            cel("type(self) == string || self >= 0", "must not be negative"),
        ],
    }


def _check(pattern: str, what: str) -> Any:
    compiled = re.compile(pattern)

    def check(value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"{what} must not be negative")
            return value
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return check


# StrictInt: YAML `true` must not pass as the quantity 1.
Quantity = Annotated[
    StrictInt | str,
    AfterValidator(_check(QUANTITY, "quantity")),
    WithJsonSchema(_int_or_string_schema(QUANTITY)),
]
"""A Kubernetes quantity such as 2, "500m" or "16Gi" (fractions must be strings)."""

IntOrPercent = Annotated[
    StrictInt | str,
    AfterValidator(_check(PERCENT, "percentage")),
    WithJsonSchema(_int_or_string_schema(PERCENT)),
]
"""A non-negative count or a percentage string such as "25%"."""


def plain(value: Any) -> Any:
    """Plain dicts and lists from kopf's read-only mapping views (pydantic wants them)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# `json_schema_extra` of a free-form object the apiserver stores as given.
PRESERVE_UNKNOWN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


# status.kopf: where kopf may keep bookkeeping; the same on every kind.
KOPF_STATUS_FIELD: Any = Field(
    default=None,
    json_schema_extra=PRESERVE_UNKNOWN,
    description="Progress records of the operator framework (kopf); not for users.",
)


class ObjectMeta(BaseModel):
    """The metadata fields the renderers need."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str
    uid: str = ""
    generation: int = 1


class ParsedObject(BaseModel):
    """A custom resource as the renderers see it: the metadata they need plus
    the typed spec (subclasses declare ``spec``)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    metadata: ObjectMeta

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Parse an object as the API server (or kopf's `body`) returns it."""
        data = plain(body)
        return cls.model_validate({"metadata": data["metadata"], "spec": data.get("spec") or {}})

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace
