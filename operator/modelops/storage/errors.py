"""Storage failures with a machine-readable reason.

The reason is CamelCase so the operator can copy it into a condition's
``reason`` and the init container's termination message stays one line.
"""

from __future__ import annotations

from typing import Literal

from modelops.redact import redact

Reason = Literal[
    "InvalidUri",
    "UnsupportedScheme",
    "InvalidArgument",
    "NoCredentials",
    "AccessDenied",
    "BucketNotFound",
    "EndpointUnreachable",
    "ModelNotFound",
    "VersionNotFound",
    "VersionIncomplete",
    "VersionExists",
    "ChecksumMismatch",
    "UnsafePath",
    "InvalidConfig",
    "FormatMismatch",
    "ObjectTooLarge",
    "ListingTooLarge",
    "StorageError",
]


class StorageError(Exception):
    """A model could not be read from or written to storage; ``reason`` says why."""

    def __init__(self, reason: Reason, message: str) -> None:
        # Messages quote URIs; none may carry credentials or a signature onward.
        super().__init__(redact(message))
        self.reason: Reason = reason

    def one_line(self) -> str:
        """``Reason: message`` on a single line, for logs and termination messages."""
        text = " ".join(str(self).split())
        return f"{self.reason}: {text}"
