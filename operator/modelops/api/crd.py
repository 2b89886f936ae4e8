"""CustomResourceDefinitions generated from the API models.

`crds()` is what `modelops crds` writes to crds/ and what the freshness test
compares with the checked-in YAML; nothing else defines the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from pydantic import BaseModel

from . import constants as c
from . import trainingjob as tj
from .conditions import (
    CONDITIONS,
    MD_CONDITIONS_INTRO,
    TJ_CONDITIONS_INTRO,
    TRAINING_JOB_CONDITIONS,
)
from .modeldeployment import ROOT_VALIDATIONS, ModelDeploymentSpec, ModelDeploymentStatus
from .structural import model_schema
from .v1beta1 import modeldeployment as beta_md
from .v1beta1 import trainingjob as beta_tj
from .v1beta1.wording import reword_schema


@dataclass(frozen=True)
class KindSpec:
    """Everything about one kind that the CRD needs beyond its schema."""

    kind: str
    plural: str
    singular: str
    description: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = c.CATEGORIES
    printer_columns: tuple[dict[str, Any], ...] = ()
    scale: dict[str, str] | None = None
    root_validations: tuple[dict[str, str], ...] = ()
    extra_names: dict[str, Any] = field(default_factory=dict)
    # status.conditions: type -> (meaning, reason -> meaning), for docs/api.md.
    conditions: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)
    conditions_intro: str = ""

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{c.GROUP}"

    @property
    def file_name(self) -> str:
        # kubebuilder's convention, so the files look familiar: <group>_<plural>.yaml
        return f"{c.GROUP}_{self.plural}.yaml"


def _condition_column(name: str, ctype: str, attr: str, description: str, **kw: Any) -> dict:
    return {
        "name": name,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{ctype}")].{attr}',
        "description": description,
        **kw,
    }


MODEL_DEPLOYMENT = KindSpec(
    kind=c.MD_KIND,
    plural=c.MD_PLURAL,
    singular=c.MD_SINGULAR,
    short_names=c.MD_SHORT_NAMES,
    description=(
        "ModelDeployment serves one model on NVIDIA Triton Inference Server: a GPU-scheduled "
        "Deployment, a Service, an optional autoscaler and an optional drift-monitor sidecar "
        "that can trigger retraining. status reports readiness (kstatus conditions Ready, "
        "Reconciling, Stalled), the served model version and the endpoints."
    ),
    spec_model=ModelDeploymentSpec,
    status_model=ModelDeploymentStatus,
    printer_columns=(
        _condition_column("Ready", "Ready", "status", "Whether the model serves requests."),
        {
            "name": "Replicas",
            "type": "integer",
            "jsonPath": ".status.readyReplicas",
            "description": "Ready Triton replicas.",
        },
        {
            "name": "GPUs",
            "type": "integer",
            "jsonPath": ".status.gpus",
            "description": "GPUs requested by all Triton pods.",
        },
        {
            "name": "Version",
            "type": "string",
            "jsonPath": ".status.servedVersion",
            "description": "Model version(s) being served.",
        },
        {
            "name": "Candidate",
            "type": "string",
            "jsonPath": ".status.rollout.candidate",
            "description": "Version being rolled out beside the stable one (empty when none).",
        },
        {
            "name": "Rollout",
            "type": "string",
            "jsonPath": ".status.rollout.phase",
            "description": "Rollout phase: Idle, Progressing, Waiting, Shadow, Canary, Paused, "
            "Promoting or RolledBack.",
        },
        _condition_column("Reason", "Ready", "reason", "Reason of the Ready condition."),
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Model",
            "type": "string",
            "jsonPath": ".spec.model.storageUri",
            "description": "Where the model is stored.",
            "priority": 1,
        },
        _condition_column(
            "Drifted", "Drifted", "status", "Whether input drift is detected.", priority=1
        ),
        _condition_column(
            "Message", "Ready", "message", "Message of the Ready condition.", priority=1
        ),
    ),
    scale={
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    },
    root_validations=tuple(ROOT_VALIDATIONS),
    conditions=CONDITIONS,
    conditions_intro=MD_CONDITIONS_INTRO,
)

TRAINING_JOB = KindSpec(
    kind=c.TJ_KIND,
    plural=c.TJ_PLURAL,
    singular=c.TJ_SINGULAR,
    short_names=c.TJ_SHORT_NAMES,
    description=(
        "TrainingJob trains a model with distributed PyTorch: an Indexed Job runs one pod per "
        "node under torchrun (completion index = node rank) with a headless Service for the "
        "rendezvous, and rank 0 publishes the result as the next version of a Triton model "
        "repository, which a ModelDeployment following version latest rolls out. A failed "
        "node fails the attempt, and the operator restarts all nodes (spec.backoffLimit). "
        "status reports the phase, kstatus conditions (Ready means succeeded), the failed "
        "ranks and the published version."
    ),
    spec_model=tj.TrainingJobSpec,
    status_model=tj.TrainingJobStatus,
    printer_columns=(
        {
            "name": "Status",
            "type": "string",
            "jsonPath": ".status.phase",
            "description": "Pending, Suspended, Running, Succeeded or Failed.",
        },
        {
            "name": "Nodes",
            "type": "integer",
            "jsonPath": ".spec.nodes",
            "description": "Nodes (pods) that train together.",
        },
        {
            "name": "GPUs",
            "type": "integer",
            "jsonPath": ".status.gpus",
            "description": "GPUs held by the running attempt.",
        },
        {
            "name": "Output",
            "type": "string",
            "jsonPath": ".status.outputVersion",
            "description": "Model version the training published.",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Active",
            "type": "integer",
            "jsonPath": ".status.activeNodes",
            "description": "Pods of the current attempt that run.",
            "priority": 1,
        },
        {
            "name": "Restarts",
            "type": "integer",
            "jsonPath": ".status.restarts",
            "description": "Whole-group restarts so far.",
            "priority": 1,
        },
        _condition_column(
            "Reason", "Ready", "reason", "Reason of the Ready condition.", priority=1
        ),
        _condition_column(
            "Message", "Ready", "message", "Message of the Ready condition.", priority=1
        ),
    ),
    root_validations=tuple(tj.ROOT_VALIDATIONS),
    conditions=TRAINING_JOB_CONDITIONS,
    conditions_intro=TJ_CONDITIONS_INTRO,
)

KINDS: tuple[KindSpec, ...] = (MODEL_DEPLOYMENT, TRAINING_JOB)

V1BETA1 = "v1beta1"


def _beta_columns(columns: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    out = []
    for col in columns:
        if col.get("jsonPath") == ".status.servedVersion":
            # The API server prints the first match of a column's path only.
            col = {
                **col,
                "jsonPath": ".status.servedVersions[0].version",
                "description": "Model version being served (the first, while several are).",
            }
        out.append(col)
    return tuple(out)


# v1beta1 of each kind, by kind name: same names and columns, the v1beta1 models.
BETA_KINDS: dict[str, KindSpec] = {
    c.MD_KIND: replace(
        MODEL_DEPLOYMENT,
        spec_model=beta_md.ModelDeploymentSpec,
        status_model=beta_md.ModelDeploymentStatus,
        printer_columns=_beta_columns(MODEL_DEPLOYMENT.printer_columns),
    ),
    c.TJ_KIND: replace(
        TRAINING_JOB, spec_model=beta_tj.TrainingJobSpec, status_model=beta_tj.TrainingJobStatus
    ),
}


def root_schema(kind: KindSpec, version: str = c.VERSION) -> dict[str, Any]:
    """The openAPIV3Schema of a kind: apiVersion/kind/metadata plus spec and status."""
    spec = model_schema(kind.spec_model)
    status = model_schema(kind.status_model)
    schema: dict[str, Any] = {
        "description": kind.description,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "description": f"APIVersion of this object: {c.GROUP}/{version}.",
                "type": "string",
            },
            "kind": {"description": f"Kind of this object: {kind.kind}.", "type": "string"},
            # The apiserver forbids anything but restrictions on name/generateName here.
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if kind.root_validations:
        schema["x-kubernetes-validations"] = list(kind.root_validations)
    if version == V1BETA1:
        # The prose v1beta1 inherits names v1alpha1's fields and enum spellings.
        schema = reword_schema(schema)
    return schema


def _version_entry(kind: KindSpec, version: str, storage: bool) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if kind.scale:
        subresources["scale"] = dict(kind.scale)
    entry: dict[str, Any] = {
        "name": version,
        "served": True,
        "storage": storage,
        "schema": {"openAPIV3Schema": root_schema(kind, version)},
        "subresources": subresources,
    }
    if kind.printer_columns:
        entry["additionalPrinterColumns"] = [dict(col) for col in kind.printer_columns]
    return entry


def build_versioned_crd(
    kind: KindSpec,
    webhook_client_config: Mapping[str, Any],
    *,
    group: str = c.GROUP,
    storage: str = c.STORAGE_VERSION,
) -> dict[str, Any]:
    """The CRD serving v1alpha1 and v1beta1, converted by the operator's webhook.

    `webhook_client_config`: apiextensions' WebhookClientConfig, a `service`
    (in a cluster) or a `url` (an operator outside it, as in the tests), plus
    the `caBundle` the operator patches in. `group` lets a test install the
    kinds under a group of its own.
    """
    crd = build_crd(kind)
    beta = BETA_KINDS[kind.kind]
    crd["metadata"]["name"] = f"{kind.plural}.{group}"
    crd["spec"]["group"] = group
    crd["spec"]["versions"] = [
        _version_entry(kind, c.VERSION, storage == c.VERSION),
        _version_entry(beta, V1BETA1, storage == V1BETA1),
    ]
    crd["spec"]["conversion"] = {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": dict(webhook_client_config),
        },
    }
    return crd


def build_crd(kind: KindSpec) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of a kind."""
    names: dict[str, Any] = {
        "kind": kind.kind,
        "listKind": f"{kind.kind}List",
        "plural": kind.plural,
        "singular": kind.singular,
    }
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    if kind.categories:
        names["categories"] = list(kind.categories)
    subresources: dict[str, Any] = {"status": {}}
    if kind.scale:
        subresources["scale"] = dict(kind.scale)
    version: dict[str, Any] = {
        "name": c.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root_schema(kind)},
        "subresources": subresources,
    }
    if kind.printer_columns:
        version["additionalPrinterColumns"] = [dict(col) for col in kind.printer_columns]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "modelops"},
        },
        "spec": {
            "group": c.GROUP,
            "names": names,
            "scope": "Namespaced",
            "versions": [version],
        },
    }


# Where the shipped CRDs send conversions: the operator's webhook Service of
# manifests/install (the chart renders its own release's Service and namespace
# in their place, templates/crds.yaml). The operator patches in the caBundle.
WEBHOOK_NAMESPACE = "modelops-system"
WEBHOOK_SERVICE = "modelops-webhook"
WEBHOOK_PORT = 443


def service_client_config(
    namespace: str = WEBHOOK_NAMESPACE, name: str = WEBHOOK_SERVICE
) -> dict[str, Any]:
    """The clientConfig of a webhook behind a Service (port 443, path /convert)."""
    return {
        "service": {"namespace": namespace, "name": name, "path": "/convert", "port": WEBHOOK_PORT}
    }


def shipped_crd(kind: KindSpec) -> dict[str, Any]:
    """The CRD as shipped: v1alpha1 and v1beta1 served, v1beta1 stored, converted by
    the operator's webhook Service."""
    return build_versioned_crd(kind, service_client_config())


def crds() -> list[dict[str, Any]]:
    """Every CRD of the project, in a fixed order."""
    return [shipped_crd(kind) for kind in KINDS]


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with multi-line strings kept readable."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(obj: dict[str, Any]) -> str:
    """Deterministic YAML: insertion order (the generator's), wide lines, a header."""
    body = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return "# Generated by `modelops crds` from operator/modelops/api; do not edit.\n---\n" + body


def crd_files() -> dict[str, str]:
    """File name -> YAML text of every CRD, as written to crds/."""
    return {kind.file_name: to_yaml(shipped_crd(kind)) for kind in KINDS}
