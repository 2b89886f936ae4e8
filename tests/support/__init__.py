"""Helpers shared by the test suites: real Triton, a local S3 (moto), tiny models."""
