"""modelops: serve models on Triton, watch them for drift, retrain, roll out."""

__version__ = "0.2.0"
