"""Built-in training modules, e.g. ``--entrypoint modelops.trainer.examples.tabular``."""
