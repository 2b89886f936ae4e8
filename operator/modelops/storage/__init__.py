"""Model storage: read and publish versions of a model directory in a store.

- ``uri``: parse s3:// gs:// https:// file:// pvc:// URIs (pure)
- ``s3`` / ``gcs`` / ``http`` / ``local``: the stores, behind the ``base.ModelStore`` protocol
- ``publish``: ``publish_version`` -- write a packaged version as the next version
- ``fetch`` / ``file_cli``: one file from a store (``modelops pull-file``)

Independent of :mod:`modelops.triton`; the puller (``pull-model``) that installs a
version into a Triton repository is :mod:`modelops.commands.pull`.
"""
