"""The headless Service that gives every training pod a DNS name for the rendezvous."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.trainingjob import TrainingJob

from .names import as_tj, child_metadata, selector_labels, service_name


def render_headless_service(tj: TrainingJob | Mapping[str, Any]) -> dict[str, Any]:
    """Service `<name>-workers`: clusterIP None over the pods of every attempt.

    The pods set `subdomain` to this name, which makes `<pod hostname>.<name>-workers`
    resolve. publishNotReadyAddresses publishes a pod as soon as it has an IP:
    the trainer has no readiness probe to pass, and the other nodes must reach
    rank 0 while it is still starting. Finished pods of earlier attempts drop
    out of the endpoints on their own.
    """
    tj = as_tj(tj)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(tj, service_name(tj)),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(tj),
            "publishNotReadyAddresses": True,
            "ports": [
                {
                    "name": "rendezvous",
                    "port": c.RENDEZVOUS_PORT,
                    "targetPort": c.RENDEZVOUS_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }
