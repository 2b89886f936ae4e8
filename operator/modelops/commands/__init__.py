"""Commands over both model storage and Triton: the only place that composes them.

:mod:`modelops.storage` (where versions live) and :mod:`modelops.triton` (what
Triton reads) do not import each other; both build on :mod:`modelops.modeldir`.
What needs both lives here (pyproject.toml, contract "model-tools"):

- ``pull``: ``pull_model`` -- verified, atomic install of a stored version into a
  Triton model repository, with the deployment's runtime settings applied
- ``pull_cli``: ``modelops pull-model`` (the serving pod's init container)
- ``package_cli``: ``modelops package-model`` (package, then publish to a store)
- ``inplace``: an in-place candidate (pulled beside the served model, staged, loaded,
  promoted), driven by the sidecar's in-place agent
"""
