"""Triton model repositories: config rendering, packaging, versioned layout.

- ``config``: signature + runtime settings -> ``config.pbtxt`` text (pure)
- ``config_patch``: apply a deployment's runtime settings to an existing config (pure)
- ``layout``: the on-storage layout, manifests, version selection (pure)
- ``repository``: atomic, immutable numbered versions on a local filesystem
- ``packaging``: TorchScript / ONNX file -> new model version
- ``python_backend_model``: the python-backend ``model.py`` that serves TorchScript
- ``cli``: ``modelops package-model``

Nothing here imports torch at module level.
"""
