"""Model storage: pull a model version into a Triton repository, publish new versions.

- ``uri``: parse s3:// gs:// https:// file:// pvc:// URIs (pure)
- ``s3`` / ``gcs`` / ``http`` / ``local``: the stores, behind the ``base.ModelStore`` protocol
- ``pull``: ``pull_model`` -- verified, atomic install into a model repository
- ``publish``: ``publish_version`` -- write a packaged version as the next version
- ``cli``: ``modelops pull-model``
"""
