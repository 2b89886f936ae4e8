"""The interface of modelops.kube, as a Protocol.

Controllers depend on this, not on the `Kube` class, so unit tests hand them
the in-memory `tests.support.fake_kube.FakeKube` (which records every call: a
scenario's call count is its API budget). Both are checked against it in
tests/unit/test_kube_protocol.py, signatures included.

Argument order is (kind, namespace, name) everywhere; ``namespace`` is None
for cluster-scoped kinds. Errors are `modelops.kube.errors` types.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol, runtime_checkable

from modelops.api.kinds import Kind


@runtime_checkable
class KubeApi(Protocol):
    def apply(
        self,
        obj: Mapping[str, Any],
        *,
        uid_precondition: str | None = None,
        create_only: bool = False,
        force: bool = True,
        field_manager: str = "modelops",
    ) -> dict[str, Any]:
        """Server-side apply. ``uid_precondition``: only onto the object with that uid
        (PreconditionFailed otherwise, including when none exists). ``create_only``:
        only if the name is free (AlreadyExists otherwise). ``field_manager``: whose
        fields these are (a second manager owns e.g. fields another actor may change)."""
        ...

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create; AlreadyExists when the name is taken. Its fields are owned by an
        update, which a later apply never removes: for objects the operator keeps
        applying, use apply(create_only=True)."""
        ...

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object, or None."""
        ...

    def merge_patch(
        self, kind: Kind, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """RFC 7386 merge patch; NotFound when absent."""
        ...

    def delete(self, kind: Kind, namespace: str | None, name: str, *, uid: str) -> bool:
        """Delete only the object with this uid: False when absent, PreconditionFailed
        when the name belongs to another object."""
        ...

    def patch_status(
        self, kind: Kind, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch `.status` with ``status``; NotFound when absent."""
        ...

    def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        """core/v1 Events of a namespace matching a field selector."""
        ...

    def post_event(
        self,
        involved: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Record an Event about ``involved``; never raises."""
        ...

    def read_secret(
        self, namespace: str, name: str, keys: Collection[str], *, max_bytes: int = 65536
    ) -> dict[str, str] | None:
        """The decoded values of ``keys`` in a Secret (None when absent); over
        ``max_bytes`` refused (KubeError SecretTooLarge); values never logged."""
        ...

    def api_available(self, kind: Kind) -> bool:
        """Whether the cluster serves ``kind`` (cached)."""
        ...

    def forget_api_cache(self) -> None:
        """Forget cached discovery answers."""
        ...
