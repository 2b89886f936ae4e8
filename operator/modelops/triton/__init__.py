"""Triton model repositories: config rendering and packaging.

- ``config``: signature + runtime settings -> ``config.pbtxt`` text (pure)
- ``config_patch``: apply a deployment's runtime settings to an existing config (pure)
- ``packaging``: TorchScript / ONNX file -> new model version
- ``python_backend_model``: the python-backend ``model.py`` that serves TorchScript

The versioned directory format is :mod:`modelops.modeldir`; the commands that also
need the stores (``pull-model``, ``package-model``, in-place candidates) are in
:mod:`modelops.commands`. Nothing here imports torch at module level.
"""
