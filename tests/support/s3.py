"""A real S3 endpoint for tests: moto's server, in its own process, with auth enforced.

moto runs as a subprocess (not ``ThreadedMotoServer``) because enforcing
credentials is a process-global switch in moto; a separate process keeps it
from leaking into other tests that use moto in-process.

After start, an IAM user with an S3-only policy is created and then moto is
told to authenticate every request (``POST /moto-api/reset-auth`` with 0 free
requests), so unknown keys get ``InvalidAccessKeyId`` and a wrong secret gets
``SignatureDoesNotMatch``, as on AWS.

Register with ``pytest_plugins = ["tests.support.s3"]`` or import the fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.triton_server import free_port

S3_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes] = field(repr=False)

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for a process that should use this endpoint (as a pod would)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_REGION="us-east-1",
            # Never fall back to a developer's own AWS config or instance metadata.
            AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
            AWS_CONFIG_FILE="/nonexistent",
            AWS_EC2_METADATA_DISABLED="true",
        )
        env.update(overrides)
        return env

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )


def _wait_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server not up after {timeout}s: {log.read_text()[-2000:]}")


def start_s3_server(work_dir: Path, host: str = "127.0.0.1") -> S3Server:
    """moto on ``host`` (loopback by default; a real node's host address for pods)."""
    port = free_port()
    endpoint = f"http://{host}:{port}"
    log = work_dir / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_up(f"{endpoint}/moto-api/", process, log)
        import boto3

        # Requests are not authenticated yet: set up the IAM user first.
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="modelops")
        iam.put_user_policy(
            UserName="modelops", PolicyName="s3", PolicyDocument=json.dumps(S3_POLICY)
        )
        key = iam.create_access_key(UserName="modelops")["AccessKey"]
        # Not a form post: moto reads the count from the raw body.
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=5).close()
    except BaseException:
        process.kill()
        process.wait()
        raise
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], process)


def stop_s3_server(server: S3Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_s3_server(server)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point this process's AWS environment at the test endpoint (for in-process calls)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in s3_server.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return s3_server
