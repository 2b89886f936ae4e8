"""modelops.io/v1beta1: the storage version (api/conversion.py converts v1alpha1)."""

from __future__ import annotations

VERSION = "v1beta1"
