"""The one redaction every message goes through: no userinfo, no query strings."""

from __future__ import annotations

import pytest

from modelops.redact import REDACTED, redact, redact_uri
from modelops.storage.errors import StorageError
from modelops.trainer.result import error_document

SECRET = "hunter2"
SIGNATURE = "X-Amz-Signature=0123abcd"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://user:hunter2@host/models/fraud", f"https://{REDACTED}@host/models/fraud"),
        ("https://user@host:8443/m", f"https://{REDACTED}@host:8443/m"),
        # A password holding '@': everything up to the last '@' of the authority goes.
        ("https://u:p@ss@host/m", f"https://{REDACTED}@host/m"),
        (f"https://bucket.s3.amazonaws.com/m/1/model.pt?{SIGNATURE}&X-Amz-Credential=AKIA",
         f"https://bucket.s3.amazonaws.com/m/1/model.pt?{REDACTED}"),
        ("https://host/m#token=abc", f"https://host/m?{REDACTED}"),
        ("https://host/path/with@sign", "https://host/path/with@sign"),  # '@' after the host
        ("s3://models/fraud", "s3://models/fraud"),
        ("gs://models/fraud/3/model.pt", "gs://models/fraud/3/model.pt"),
        ("file:///models/fraud", "file:///models/fraud"),
        ("pvc://claim/models", "pvc://claim/models"),
        # Generated data: the query is its parameters, kept for the reader.
        ("synthetic://tabular?rows=100&seed=1", "synthetic://tabular?rows=100&seed=1"),
        ("not a uri", "not a uri"),
    ],
)  # fmt: skip
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected
    assert redact(uri) == expected


def test_every_uri_in_a_message_is_redacted_and_the_rest_kept():
    text = (
        f"downloading 'https://alice:{SECRET}@store.example/m/1/a.pt' failed; "
        f"retry https://store.example/m/1/b.pt?{SIGNATURE} (see s3://logs/x)"
    )
    out = redact(text)
    assert SECRET not in out and "0123abcd" not in out and "alice" not in out
    assert out == (
        f"downloading 'https://{REDACTED}@store.example/m/1/a.pt' failed; "
        f"retry https://store.example/m/1/b.pt?{REDACTED} (see s3://logs/x)"
    )


def test_messages_without_uris_are_untouched():
    text = "0/7 nodes are available: 4 Insufficient nvidia.com/gpu. user:pass@host"
    assert redact(text) is text or redact(text) == text


def test_storage_errors_and_trainer_errors_are_redacted_where_they_are_built():
    err = StorageError("AccessDenied", f"GET https://bob:{SECRET}@h/m/index.json: HTTP 403")
    assert SECRET not in str(err) and SECRET not in err.one_line()
    doc = error_document("StorageError", f"uploading https://h/m?{SIGNATURE}")
    assert "0123abcd" not in doc["error"]["message"]


@pytest.mark.parametrize(
    "uri",
    [
        f"https://alice:{SECRET}@models.example.com/fraud",
        f"https://models.example.com/fraud?{SIGNATURE}",
    ],
)
def test_pull_model_termination_message_carries_no_credential(tmp_path, uri):
    """The real init-container command: its stderr and termination message are redacted."""
    import subprocess
    import sys

    log = tmp_path / "termination-log"
    proc = subprocess.run(
        [sys.executable, "-m", "modelops.cli", "pull-model", uri,
         "--repository", str(tmp_path / "repo"), "--termination-log", str(log)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert log.read_text().startswith("InvalidUri: ")
    for text in (proc.stderr, log.read_text()):
        assert SECRET not in text and "0123abcd" not in text, text
        assert REDACTED in text
