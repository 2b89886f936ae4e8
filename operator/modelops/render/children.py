"""All children of a ModelDeployment at once, and the kinds the controller manages.

The controller applies `render_children(...)` and deletes, by name, the
children of every kind in `child_kinds()` that was not rendered this time
(`stale_children`), e.g. the HPA after autoscaling is removed or the
ScaledObject after switching to engine hpa.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from modelops.api import constants as c
from modelops.api.kinds import (
    DEPLOYMENT,
    HPA,
    PDB,
    RESOURCE_CLAIM_TEMPLATE,
    SCALED_OBJECT,
    SERVICE,
    Kind,
)
from modelops.api.modeldeployment import ModelDeployment

from .autoscaler import DEFAULT_PROMETHEUS_ADDRESS, render_autoscaler
from .deployment import render_deployment
from .dra import render_claim_template
from .meta import as_md
from .pdb import render_pdb
from .service import render_service

# The kinds come from the one registry in modelops.api.kinds (kube/ takes its
# REST plurals from the same place); ChildKind is kept as a name for callers.
ChildKind = Kind


class ChildRef(NamedTuple):
    api_version: str
    kind: str
    plural: str
    namespace: str
    name: str


_KINDS = (RESOURCE_CLAIM_TEMPLATE, DEPLOYMENT, SERVICE, HPA, SCALED_OBJECT, PDB)


def child_kinds() -> tuple[Kind, ...]:
    """Every kind a ModelDeployment may own (ScaledObject only exists with KEDA)."""
    return _KINDS


def render_children(
    md: ModelDeployment | Mapping[str, Any],
    *,
    operator_image: str,
    model_version: str,
    replace_in_place: bool = False,
    replicas: int | None = None,
    prometheus_address: str = DEFAULT_PROMETHEUS_ADDRESS,
    triton_image: str = c.DEFAULT_TRITON_IMAGE,
) -> list[dict[str, Any]]:
    """The desired children, in apply order (the GPU claim template before the pods that
    reference it, the Deployment, the autoscaler after it).

    triton_image: the operator's default Triton image (spec.runtime.image overrides it).
    """
    md = as_md(md)
    claim_template = render_claim_template(md)
    out = [] if claim_template is None else [claim_template]
    out += [
        render_deployment(
            md,
            operator_image=operator_image,
            model_version=model_version,
            replace_in_place=replace_in_place,
            replicas=replicas,
            triton_image=triton_image,
        ),
        render_service(md),
    ]
    for optional in (render_autoscaler(md, prometheus_address=prometheus_address), render_pdb(md)):
        if optional is not None:
            out.append(optional)
    return out


def stale_children(
    md: ModelDeployment | Mapping[str, Any], rendered: Iterable[Mapping[str, Any]]
) -> list[ChildRef]:
    """Children the ModelDeployment may have from an earlier spec but no longer wants."""
    md = as_md(md)
    wanted = {(obj["apiVersion"], obj["kind"]) for obj in rendered}
    return [
        ChildRef(k.api_version, k.kind, k.plural, md.namespace, md.name)
        for k in _KINDS
        if (k.api_version, k.kind) not in wanted
    ]
