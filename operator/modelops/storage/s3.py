"""A model directory under an S3 prefix (AWS S3, MinIO, Ceph RGW, moto...).

Credentials and endpoint come from the standard AWS environment, which the
pod gets from the ModelDeployment's credentials Secret: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. With a custom endpoint, path-style
addressing is used (what S3-compatible servers expect).

S3 has no rename, so publishing relies on order instead: a version's files
go up first and its ``SHA256SUMS`` last, and readers only select versions
with a manifest. Writers claim a version number with a conditional PUT
(``If-None-Match: *``) so two trainers never write into the same version.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from modelops.modeldir.layout import (
    CONFIG_NAME,
    INDEX_NAME,
    MANIFEST_NAME,
    parse_manifest,
    render_index,
)
from modelops.storage.base import (
    Downloaded,
    MissingObjectError,
    VersionListing,
    capped,
    check_listing_size,
    claim_version,
    copy_hashing,
    listing_from_keys,
    manifest_last,
)
from modelops.storage.errors import StorageError
from modelops.storage.uri import S3Location

CLAIM_NAME = ".modelops-claim"
_ACCESS_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "403",
}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
# A conditional PUT lost: the object exists (or another writer is creating it).
_TAKEN_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


# The keys of a credentials Secret that configure an S3 client (the standard AWS
# environment); the operator reads only these from the Secret a ModelDeployment names.
CREDENTIAL_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


def s3_endpoint(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


def make_s3_client(endpoint_url: str | None = None, env: Mapping[str, str] | None = None) -> Any:
    """A boto3 S3 client configured from the environment, failing fast on a dead endpoint.

    env: the variables to configure it from instead of the process environment (the
    operator lists a store with the credentials Secret of the ModelDeployment, as its
    pods would, never with its own). Its keys are passed explicitly, so nothing of the
    process's own AWS configuration is mixed in."""
    import boto3
    from botocore.config import Config

    source = os.environ if env is None else env
    endpoint = endpoint_url or s3_endpoint(source)
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    region = source.get("AWS_REGION") or source.get("AWS_DEFAULT_REGION") or "us-east-1"
    keys: dict[str, Any] = {}
    if env is not None and env.get("AWS_ACCESS_KEY_ID"):
        keys = {
            "aws_access_key_id": env.get("AWS_ACCESS_KEY_ID"),
            "aws_secret_access_key": env.get("AWS_SECRET_ACCESS_KEY"),
            "aws_session_token": env.get("AWS_SESSION_TOKEN") or None,
        }
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region, config=config, **keys
    )


class S3Store:
    def __init__(self, location: S3Location, client: Any | None = None) -> None:
        self.location = location
        self.client = client if client is not None else make_s3_client()
        self.endpoint = str(self.client.meta.endpoint_url)

    def describe(self) -> str:
        return str(self.location)

    @contextlib.contextmanager
    def _errors(self, action: str, relative: str | None = None) -> Iterator[None]:
        """Translate botocore failures into StorageError reasons (or MissingObjectError)."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        where = (
            f"s3://{self.location.bucket}/{self.location.key(relative)}"
            if relative
            else (str(self.location))
        )
        try:
            yield
        except NoCredentialsError:
            raise StorageError(
                "NoCredentials",
                f"{action} {where}: no S3 credentials; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (the credentials Secret)",
            ) from None
        except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError) as err:
            raise StorageError(
                "EndpointUnreachable", f"{action} {where}: cannot reach {self.endpoint}: {err}"
            ) from None
        except ReadTimeoutError as err:
            raise StorageError("EndpointUnreachable", f"{action} {where}: {err}") from None
        except ClientError as err:
            error = err.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "NoSuchBucket":
                raise StorageError(
                    "BucketNotFound",
                    f"{action} {where}: bucket {self.location.bucket!r} does not exist "
                    f"at {self.endpoint}",
                ) from None
            if code in _ACCESS_CODES:
                raise StorageError(
                    "AccessDenied",
                    f"{action} {where}: access denied ({code}); check the S3 credentials",
                ) from None
            if code in _MISSING_CODES and relative is not None:
                raise MissingObjectError(relative) from None
            message = error.get("Message") or str(err)
            if code in _MISSING_CODES:
                # A 404 without NoSuchBucket, for a listing: not an S3 API at that URL.
                message += f" (is {self.endpoint} an S3 endpoint?)"
            raise StorageError("StorageError", f"{action} {where}: {code}: {message}") from None

    def _keys(self, relative_dir: str = "") -> list[str]:
        """Keys below the model prefix (or one of its subdirectories), relative to it."""
        base = self.location.key(relative_dir).rstrip("/")
        prefix = f"{base}/" if base else ""
        root = f"{self.location.prefix}/" if self.location.prefix else ""
        keys: list[str] = []
        with self._errors("listing"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
                keys.extend(obj["Key"][len(root) :] for obj in page.get("Contents", []))
                check_listing_size(len(keys), str(self.location))
        return keys

    def list_versions(self) -> VersionListing:
        return listing_from_keys(self._keys())

    def read_bytes(self, relative: str, limit: int | None = None) -> bytes:
        with self._errors("reading", relative):
            # A ranged GET: the server sends at most limit + 1 bytes, whatever the size.
            ranged = {} if limit is None else {"Range": f"bytes=0-{limit}"}
            response = self.client.get_object(
                Bucket=self.location.bucket, Key=self.location.key(relative), **ranged
            )
            body = response["Body"]
            data = bytes(body.read() if limit is None else body.read(limit + 1))
        return capped(data, limit, f"{self.location}/{relative}")

    def download(self, relative: str, dest: Path) -> Downloaded:
        with self._errors("downloading", relative):
            response = self.client.get_object(
                Bucket=self.location.bucket, Key=self.location.key(relative)
            )
            md5 = hashlib.md5(usedforsecurity=False)

            def chunks() -> Iterator[bytes]:
                for block in response["Body"].iter_chunks(1 << 20):
                    md5.update(block)
                    yield block

            result = copy_hashing(chunks(), dest)
        etag = str(response.get("ETag", "")).strip('"')
        # The ETag is the MD5 of the content only for single-part uploads
        # without KMS or customer-key encryption; otherwise it is opaque.
        plain = "SSEKMSKeyId" not in response and "SSECustomerAlgorithm" not in response
        if plain and len(etag) == 32 and "-" not in etag and etag != md5.hexdigest():
            raise StorageError(
                "ChecksumMismatch",
                f"s3://{self.location.bucket}/{self.location.key(relative)}: content MD5 "
                f"{md5.hexdigest()} does not match its ETag {etag}",
            )
        return result

    def list_files(self, version: int) -> list[str]:
        prefix = f"{version}/"
        return sorted(
            key[len(prefix) :]
            for key in self._keys(str(version))
            if key.startswith(prefix) and not key.endswith("/") and key != prefix + CLAIM_NAME
        )

    def _put(self, relative: str, body: bytes, *, exclusive: bool = False) -> bool:
        """PUT a small object; with ``exclusive``, False (and no write) if it already exists."""
        from botocore.exceptions import ClientError

        extra = {"IfNoneMatch": "*"} if exclusive else {}
        with self._errors("writing", relative):
            try:
                self.client.put_object(
                    Bucket=self.location.bucket,
                    Key=self.location.key(relative),
                    Body=body,
                    **extra,
                )
            except ClientError as err:
                code = str(err.response.get("Error", {}).get("Code", ""))
                if exclusive and code in _TAKEN_CODES:
                    return False
                raise
        return True

    def _claim(self, version: int | None) -> int:
        return claim_version(
            self.list_versions,
            lambda n: self._put(f"{n}/{CLAIM_NAME}", b"", exclusive=True),
            version,
            self.location,
        )

    def publish_version(self, version_dir: Path, version: int | None) -> int:
        manifest = parse_manifest((version_dir / MANIFEST_NAME).read_text())
        number = self._claim(version)
        for relative in manifest_last(manifest):
            key = self.location.key(f"{number}/{relative}")
            with self._errors("uploading", f"{number}/{relative}"):
                self.client.upload_file(str(version_dir / relative), self.location.bucket, key)
        complete = set(self.list_versions().complete)
        if number >= max(complete, default=0) and (version_dir / CONFIG_NAME).is_file():
            self._put(CONFIG_NAME, (version_dir / CONFIG_NAME).read_bytes())
        self._put(INDEX_NAME, render_index(complete | {number}).encode())
        return number
