"""Integration tests of `modelops train`: real torchrun, gloo, Triton, moto S3."""
