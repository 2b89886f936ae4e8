"""The drift reference shipped with every trained version (adapter over modelops.drift).

The trainer computes it from the training features, in the format the drift
sidecar reads (``modelops drift-monitor --reference``), and stores it as
``reference.json`` inside the model version. This is the only place the
trainer touches :mod:`modelops.drift`, so a change there is one edit here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

REFERENCE_NAME = "reference.json"


def reference_bytes(features: np.ndarray, names: Sequence[str] | None) -> bytes:
    """The reference file's content for a 2-D sample of training features."""
    from modelops.drift.reference import build_reference

    reference = build_reference(features, list(names) if names is not None else None)
    return (json.dumps(reference.to_dict(), indent=1) + "\n").encode()
