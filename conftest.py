"""Fixtures for every test directory (tests/ and e2e/) live in tests/support."""

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.triton",
    "tests.support.s3",
    "tests.support.gcs",
    "tests.support.project_images",
    "tests.support.real_sample",
]
