"""An S3-compatible object store for the tests: moto's server mode, on loopback.

``REGISTRY_TOKENS_TEST_STORAGE=s3`` puts every test server's package files in a bucket of
its own on it (``bin/test`` runs the package tests so, after the two database runs); the
object storage tests use it whatever that variable says. One server per test process,
started at first use and stopped when the process ends. Moto keeps its buckets in memory:
a test that needs the store to go away puts a forwarder in between and stops that.
"""

import atexit
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import boto3
import httpx
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STORAGE = os.environ.get("REGISTRY_TOKENS_TEST_STORAGE", "local")
# Moto takes any credentials; these keep boto3 from looking for real ones anywhere.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
for _name, _value in CREDENTIALS.items():
    os.environ.setdefault(_name, _value)


@cache
def endpoint() -> str:
    """The URL of this process's moto server, started on first use."""
    from tests.harness import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **CREDENTIALS},
    )
    atexit.register(process.kill)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("moto's server exited at start")
        try:
            httpx.get(url, timeout=1)
            return url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("moto's server did not start")


@cache
def client(url: str | None = None) -> "S3Client":
    credentials = CREDENTIALS
    s3: S3Client = boto3.session.Session(
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=credentials["AWS_DEFAULT_REGION"],
    ).client(
        "s3",
        endpoint_url=url or endpoint(),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    return s3


def new_bucket() -> str:
    name = f"rt-{uuid.uuid4().hex[:20]}"
    client().create_bucket(Bucket=name)
    return name


def bucket_env(bucket: str | None = None, url: str | None = None) -> dict[str, str]:
    """A server's configuration for package files in a (new) bucket, under a prefix."""
    return {
        "REGISTRY_TOKENS_PACKAGE_STORAGE_URL": f"s3://{bucket or new_bucket()}/packages",
        "REGISTRY_TOKENS_S3_ENDPOINT_URL": url or endpoint(),
        **CREDENTIALS,
    }


@dataclass(frozen=True)
class StoredObject:
    """An object of the test store, with the little of ``Path`` the tests use."""

    bucket: str
    key: str

    def exists(self) -> bool:
        listed = client().list_objects_v2(Bucket=self.bucket, Prefix=self.key)
        return any(entry["Key"] == self.key for entry in listed.get("Contents", []))

    def read_bytes(self) -> bytes:
        return client().get_object(Bucket=self.bucket, Key=self.key)["Body"].read()

    def write_bytes(self, content: bytes) -> None:
        client().put_object(Bucket=self.bucket, Key=self.key, Body=content)

    def unlink(self) -> None:
        client().delete_object(Bucket=self.bucket, Key=self.key)


def objects(storage_url: str, under: str = "") -> dict[str, bytes]:
    """Every object under a storage URL's prefix (and ``under`` it), with its bytes."""
    bucket, _, prefix = storage_url.removeprefix("s3://").partition("/")
    start = f"{prefix}/{under}" if prefix else under
    found: dict[str, bytes] = {}
    for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start):
        for entry in page.get("Contents", []):
            found[entry["Key"]] = StoredObject(bucket, entry["Key"]).read_bytes()
    return found


def stored_object(storage_url: str, relative: str) -> StoredObject:
    bucket, _, prefix = storage_url.removeprefix("s3://").partition("/")
    return StoredObject(bucket, f"{prefix}/{relative}" if prefix else relative)
