"""`kubectl modelops`: the rollout view and controls of a ModelDeployment.

`view` turns a ModelDeployment (a dict as the API server returns it) into
text and patches, without I/O; `cli` is the thin shell that reads and writes
through modelops.kube.
"""
