"""A model directory: numbered versions with manifests, the format both sides share.

Below both :mod:`modelops.storage` (the remote and mounted stores) and
:mod:`modelops.triton` (config, packaging), which are independent of each other;
:mod:`modelops.commands` composes them (pyproject.toml, contract "model-tools").

- ``layout``: names, manifests (``SHA256SUMS``), the version index, version selection (pure)
- ``repository``: atomic, immutable numbered versions on a local filesystem
"""
