"""Package files in an S3-compatible object store (AWS S3, MinIO, Cloudflare R2, Ceph …).

The bucket holds what the local store's directory holds, under the URL's prefix:
``sha256/<aa>/<digest>/<package id>`` for each package's file, and ``tmp/<name>.part`` for
presigned uploads waiting for their finalize (which may come to another instance). An
upload is staged on this machine's scratch directory as with the local store (hashed and
refused one byte past its limit as it streams in), then sent with boto3's managed
transfer: multipart past ``PART`` bytes, so memory is bounded by the part size times the
transfer's concurrency, whatever the file's size.

The crash rules are the local store's: an object is in the bucket before the row that
names it commits, and deleted only after the row's deletion commits; the sweep moves
(copies, then deletes) only objects no row names, older than its threshold, and nothing at
all when the database owns fewer than half of the bucket's package files.

Every call to the store that fails for want of the store (no connection, a timeout, its
5xx) raises ``StoreUnavailable``: a 503 with ``Retry-After``; the next request tries again.
"""

import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from registry_tokens.kit.errors import AppError
from registry_tokens.kit.metrics import STORAGE_ERRORS
from registry_tokens.kit.urls import parse_storage_url
from registry_tokens.packages.storage import (
    CHUNK,
    QUARANTINE,
    FileStore,
    Opened,
    StagedFile,
    Staging,
    Sweep,
    package_location,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef

logger = logging.getLogger(__name__)

# Parts of a multipart transfer, and how many move at once: the memory an upload or a copy
# holds, at most, whatever the file's size.
PART = 8 * 1024 * 1024
TRANSFER = TransferConfig(
    multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=2, io_chunksize=CHUNK
)
# S3's answers that say "not now" rather than "no": the store is down or shedding load.
_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}
)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

P = ParamSpec("P")
T = TypeVar("T")


class StoreUnavailable(AppError):
    def __init__(self) -> None:
        super().__init__(
            "The package store is unavailable; please retry", 503, headers={"Retry-After": "5"}
        )


def _missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _MISSING_CODES


def _unavailable(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _UNAVAILABLE_CODES or status >= 500


def _guarded(method: Callable[P, T]) -> Callable[P, T]:
    """The store's failures as ``StoreUnavailable``; a missing object as ``FileNotFoundError``."""

    operation = method.__name__.strip("_")  # a label from a fixed set: the methods' names
    failures = STORAGE_ERRORS.labels(operation=operation)

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except ClientError as error:
            if _missing(error):
                raise FileNotFoundError(str(error)) from None
            failures.inc()
            if _unavailable(error):
                logger.warning("package store unavailable (%s): %s", operation, error)
            else:  # refused: credentials, permissions, no such bucket … (the operator's to fix)
                logger.error("package store refused %s: %s", operation, error)
            raise StoreUnavailable() from error
        except (BotoCoreError, Boto3Error) as error:
            # No connection, a timeout, a broken response, no credentials; a transfer that
            # failed (boto3's own errors: an upload refused, retries exhausted).
            failures.inc()
            logger.warning("package store unavailable (%s): %s", operation, error)
            raise StoreUnavailable() from error

    return call


def s3_client(endpoint_url: str | None, connections: int = 10) -> "S3Client":
    """A client with short timeouts and standard retries. Region and credentials come
    from the standard AWS variables and files; the endpoint, when not given, from
    ``AWS_ENDPOINT_URL`` (boto3 reads it). A given endpoint (MinIO, R2, Ceph, moto) is
    addressed by path, which every S3-compatible store understands. ``connections``: the
    pool's size (the threads that may use the store at once)."""
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    config = Config(
        max_pool_connections=connections,
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": "path"} if endpoint_url else {},
        # Presigned URLs signed as every region and S3-compatible store accepts them.
        signature_version="s3v4",
        # Checksums only where an operation needs them: not every S3-compatible store
        # understands the newer default's trailing checksums.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client: S3Client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, config=config
    )
    return client


class ObjectStore:
    """The local store's interface, on a bucket (module docstring)."""

    remote = True

    def __init__(
        self,
        url: str,
        scratch: Path,
        *,
        client: "S3Client",
        redirect_seconds: int = 0,
        direct_uploads: bool = False,
    ) -> None:
        self.url = url
        self.bucket, prefix = parse_storage_url(url)
        self.prefix = f"{prefix}/" if prefix else ""
        self.scratch = FileStore(scratch)  # uploads are staged here, nothing else
        self.client = client
        self.redirect_seconds = redirect_seconds
        self.direct_uploads = direct_uploads

    def describe(self) -> str:
        return self.url

    # Keys --------------------------------------------------------------------------------

    def key_for(self, sha256: str, package_id: uuid.UUID) -> str:
        return self.prefix + package_location(sha256, package_id)

    def _tmp_key(self, name: str) -> str:
        return f"{self.prefix}tmp/{name}"

    # Staging: on scratch disk ------------------------------------------------------------

    def stage(self, source: Any, max_bytes: int) -> StagedFile:
        return self.scratch.stage(source, max_bytes)

    def staging(self, max_bytes: int) -> Staging:
        return self.scratch.staging(max_bytes)

    @_guarded
    def hold(self, staged: StagedFile) -> str:
        """A presigned upload's staged file, kept in the bucket for its finalize (which
        may come to another instance); its name."""
        try:
            self.client.upload_file(
                str(staged.path), self.bucket, self._tmp_key(staged.path.name), Config=TRANSFER
            )
        finally:
            staged.path.unlink(missing_ok=True)
        return staged.path.name

    @_guarded
    def staged(self, name: str, size: int, sha256: str, sha512: str) -> StagedFile:
        """A presigned upload's file, fetched from the bucket to scratch disk to be read."""
        local = self.scratch.staged(name, size, sha256, sha512)
        self.scratch.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.client.download_file(
                self.bucket, self._tmp_key(name), str(local.path), Config=TRANSFER
            )
        except BaseException:
            local.path.unlink(missing_ok=True)
            raise
        local.path.chmod(0o600)
        return replace(local, held=True)

    @_guarded
    def forget(self, name: str) -> None:
        """A presigned upload's file that will never be finalized (expired)."""
        self.scratch.forget(name)
        self.client.delete_object(Bucket=self.bucket, Key=self._tmp_key(name))

    @_guarded
    def stage_copy(self, sha256: str, package_id: uuid.UUID, sha512: str) -> StagedFile:
        """Another package's file, fetched to scratch disk for a new package (raises
        ``FileNotFoundError`` if it is gone)."""
        staged = self._to_scratch(self.key_for(sha256, package_id), max_bytes=2**63)
        return replace(staged, sha256=sha256, sha512=sha512)

    def _to_scratch(self, key: str, max_bytes: int) -> StagedFile:
        """An object fetched to scratch disk, hashed as it comes (``ValueError`` past
        ``max_bytes``; nothing is left behind on any failure)."""
        staging = self.scratch.staging(max_bytes)
        try:
            for chunk in self._get(key).chunks():
                staging.write(chunk)
            return staging.finish()
        except BaseException:
            staging.abandon()
            raise

    def discard(self, staged: StagedFile) -> None:
        self.scratch.discard(staged)
        if staged.held:  # the bucket's copy of a presigned upload, once consumed
            self._delete(self._tmp_key(staged.path.name))

    # Package files -----------------------------------------------------------------------

    @_guarded
    def commit(self, staged: StagedFile, package_id: uuid.UUID) -> None:
        """Sends a staged file to its key; returns once the store has it (durably: S3
        acknowledges a put only once it is stored)."""
        self.client.upload_file(
            str(staged.path), self.bucket, self.key_for(staged.sha256, package_id), Config=TRANSFER
        )
        self.scratch.discard(staged)

    def remove(self, sha256: str, package_id: uuid.UUID) -> None:
        self._delete(self.key_for(sha256, package_id))

    def _delete(self, key: str) -> None:
        """Best effort: a deletion that fails leaves an object no row names, which the
        sweep moves later; the request that asked for it has already done its work."""
        try:
            self._delete_now(key)
        except StoreUnavailable:
            logger.warning("package store: %s left behind, for the sweep", key)

    @_guarded
    def _delete_now(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def fetch(self, sha256: str, package_id: uuid.UUID) -> Opened:
        """The file to send: whole when it is one chunk, else a stream (``FileNotFoundError``
        if the object is gone)."""
        return self._get(self.key_for(sha256, package_id))

    @_guarded
    def _get(self, key: str) -> Opened:
        answer = self.client.get_object(Bucket=self.bucket, Key=key)
        size, body = int(answer["ContentLength"]), answer["Body"]
        if size <= CHUNK:
            try:
                return Opened(size, content=body.read())
            finally:
                body.close()
        return Opened(size, stream=_streamed(body), close=body.close)

    @_guarded
    def download_url(self, sha256: str, package_id: uuid.UUID, filename: str) -> str | None:
        """A short-lived presigned URL of the file, when downloads are redirected."""
        if self.redirect_seconds <= 0:
            return None
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key_for(sha256, package_id),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
                "ResponseContentType": "application/octet-stream",
            },
            ExpiresIn=self.redirect_seconds,
        )

    # Presigned uploads straight to the bucket ------------------------------------------

    @_guarded
    def presigned_post(
        self, folder: str, max_bytes: int, expires_in: int
    ) -> tuple[str, dict[str, str]] | None:
        """Where and how a client posts one file straight to the bucket, under
        ``uploads/<folder>/${filename}``, at most ``max_bytes``: S3's presigned POST (its
        policy, signed with our credentials, bounds the key and the size); ``None`` unless
        direct uploads are on. Signed locally: no request to the store."""
        if not self.direct_uploads:
            return None
        start = f"{self.prefix}uploads/{folder}/"
        post = self.client.generate_presigned_post(
            self.bucket,
            start + "${filename}",
            Conditions=[["starts-with", "$key", start], ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
        return str(post["url"]), {name: str(value) for name, value in post["fields"].items()}

    def uploaded_key(self, package_url: str) -> str | None:
        """The part after ``uploads/`` of the key a ``package_url`` names, when it is an
        object of our bucket's uploads (as go-buildkite joins ``form.url`` and the key);
        else ``None``. Parsed only: never fetched."""
        if not self.direct_uploads:
            return None
        post_url = self._post_url()
        if not package_url.startswith(post_url + "/") or "?" in package_url or "#" in package_url:
            return None
        key = package_url[len(post_url) + 1 :]
        start = f"{self.prefix}uploads/"
        return key[len(start) :] if key.startswith(start) else None

    @functools.cache  # noqa: B019 (one store per process, for its life)
    @_guarded
    def _post_url(self) -> str:
        """The bucket's URL that presigned POSTs go to (signed locally: no request)."""
        return str(self.client.generate_presigned_post(self.bucket, "k")["url"]).rstrip("/")

    @_guarded
    def take_upload(self, uploaded: str, max_bytes: int) -> StagedFile:
        """A file posted straight to the bucket (``uploads/<uploaded>``), fetched to
        scratch disk, hashed as it comes: ``FileNotFoundError`` if it is not there (never
        posted, or already published), ``ValueError`` past ``max_bytes``."""
        return self._to_scratch(f"{self.prefix}uploads/{uploaded}", max_bytes)

    def drop_upload(self, uploaded: str) -> None:
        """A file posted straight to the bucket, once published (or refused)."""
        self._delete(f"{self.prefix}uploads/{uploaded}")

    @_guarded
    def check(self) -> None:
        """Raises ``StoreUnavailable`` unless the bucket answers (readiness)."""
        self.client.head_bucket(Bucket=self.bucket)

    # The sweep ---------------------------------------------------------------------------

    @_guarded
    def sweep(self, live: Iterable[tuple[str, uuid.UUID]], older_than_seconds: float) -> Sweep:
        """The local store's sweep (see ``FileStore.sweep``), on the bucket's objects and
        the scratch directory's staged files; moved objects go to ``.quarantine/<time>/``."""
        keep = {self.key_for(sha256, package_id) for sha256, package_id in live}
        cutoff = time.time() - older_than_seconds
        package_files = owned = 0
        stale: list[str] = []
        for listed in self._objects():
            key = listed["Key"]
            if key.startswith(f"{self.prefix}sha256/"):
                package_files += 1
            if key in keep:
                owned += 1
            elif listed["LastModified"].timestamp() < cutoff:
                stale.append(key)
        local = self.scratch.sweep([], older_than_seconds)  # staged files: tmp/ only
        sweep = Sweep(package_files=package_files, owned=owned, unowned=len(stale))
        if not stale or sweep.refused:
            return replace(sweep, unowned=sweep.unowned + local.unowned)
        folder = f"{self.prefix}{QUARANTINE}/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}/"
        for key in stale:
            target = folder + key.removeprefix(self.prefix)
            try:
                self.client.copy_object(
                    Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": key}
                )
            except ClientError as error:
                if _missing(error):  # another instance's sweep moved it first
                    continue
                raise
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return replace(
            sweep,
            unowned=sweep.unowned + local.unowned,
            quarantine=f"s3://{self.bucket}/{folder}",
        )

    def _objects(self) -> Iterator["ObjectTypeDef"]:
        pages = self.client.get_paginator("list_objects_v2")
        for top in ("sha256/", "tmp/", "uploads/"):
            for page in pages.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{top}"):
                yield from page.get("Contents", [])


def _streamed(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    except (BotoCoreError, ClientError) as error:  # mid-body: the client sees a short file
        logger.warning("package store failed mid-download: %s", error)
        raise
    finally:
        body.close()
