"""Package files on local disk, written atomically and addressed by their digest.

Each package owns its file at ``sha256/<aa>/<digest>/<package id>``: the digest names the
content, the id makes the file the package's own, so deleting one package can never
remove a file another package still needs. A file is written to ``tmp/``, flushed to
disk, then renamed into place *before* the database row that points at it is committed,
and unlinked only *after* the row's deletion is committed. A crash at any point can leave
an orphan file (moved to ``.quarantine/`` later), never a row without its file. Files are
owner-only (0600), and so is every directory made for them (0700).
"""

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from registry_tokens.kit.files import create_private_file, flush_to_disk, private_directory

CHUNK = 1024 * 1024
_STAGED_NAME = re.compile(r"[0-9a-f]{32}\.part")
# Where the sweep moves unowned files, inside the storage directory and never swept itself.
QUARANTINE = ".quarantine"


@dataclass(frozen=True)
class Sweep:
    """What a sweep found on disk, and where it moved the files no package owns."""

    package_files: int  # files under sha256/
    owned: int  # of those, files a package row names
    unowned: int  # files no package owns, older than the threshold (tmp/ included)
    quarantine: str | None = None  # where they went, if they were moved

    @property
    def refused(self) -> bool:
        """The database owns too few of the files on disk to be this storage's database."""
        return self.unowned > 0 and self.owned * 2 < self.package_files


@dataclass(frozen=True)
class StagedFile:
    """An uploaded file on disk, hashed, not yet given to a package."""

    path: Path
    size: int
    sha256: str
    sha512: str
    held: bool = False  # fetched from an object store's tmp/ (a presigned upload's)


@dataclass(frozen=True)
class Opened:
    """A stored file being sent: its size, and its bytes whole (one chunk at most) or as
    a stream of chunks."""

    size: int
    content: bytes | None = None
    stream: Iterator[bytes] | None = None
    # Releases the stream's source (a file, a connection) when it is never read.
    close: Callable[[], None] | None = None

    def chunks(self) -> Iterator[bytes]:
        if self.content is not None:
            yield self.content
        elif self.stream is not None:
            yield from self.stream


class PackageStore(Protocol):
    """Where package files live: a local directory (``FileStore``) or a bucket
    (``object_storage.ObjectStore``). Uploads are staged on local disk either way."""

    # True when reads go over the network (a download then fetches in a worker thread).
    remote: bool

    def describe(self) -> str: ...
    def stage(self, source: BinaryIO, max_bytes: int) -> StagedFile: ...
    def staging(self, max_bytes: int) -> "Staging": ...
    def hold(self, staged: StagedFile) -> str: ...
    def staged(self, name: str, size: int, sha256: str, sha512: str) -> StagedFile: ...
    def forget(self, name: str) -> None: ...
    def stage_copy(self, sha256: str, package_id: uuid.UUID, sha512: str) -> StagedFile: ...
    def commit(self, staged: StagedFile, package_id: uuid.UUID) -> None: ...
    def discard(self, staged: StagedFile) -> None: ...
    def remove(self, sha256: str, package_id: uuid.UUID) -> None: ...
    def fetch(self, sha256: str, package_id: uuid.UUID) -> Opened: ...
    def download_url(self, sha256: str, package_id: uuid.UUID, filename: str) -> str | None: ...
    def check(self) -> None: ...
    def presigned_post(
        self, folder: str, max_bytes: int, expires_in: int
    ) -> tuple[str, dict[str, str]] | None: ...
    def uploaded_key(self, package_url: str) -> str | None: ...
    def take_upload(self, uploaded: str, max_bytes: int) -> StagedFile: ...
    def drop_upload(self, uploaded: str) -> None: ...
    def sweep(self, live: Iterable[tuple[str, uuid.UUID]], older_than_seconds: float) -> Sweep: ...


class Staging:
    """A file being written to ``tmp/``: hashed as it goes, refused one byte past its limit
    (``ValueError``). ``finish`` makes it durable; ``abandon`` removes it."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self._sha256, self._sha512 = hashlib.sha256(), hashlib.sha512()
        self._target = os.fdopen(create_private_file(path), "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise ValueError(f"the file is larger than {self.max_bytes} bytes")
        self._sha256.update(chunk)
        self._sha512.update(chunk)
        self._target.write(chunk)

    def finish(self) -> StagedFile:
        self._target.flush()
        os.fsync(self._target.fileno())
        self._target.close()
        return StagedFile(self.path, self.size, self._sha256.hexdigest(), self._sha512.hexdigest())

    def abandon(self) -> None:
        try:
            self._target.close()  # flushes what is buffered: on a full disk, that fails too
        except OSError:
            pass
        finally:
            self.path.unlink(missing_ok=True)


class FileStore:
    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def describe(self) -> str:
        return str(self.root)

    def stage(self, source: BinaryIO, max_bytes: int) -> StagedFile:
        """Copies an upload into ``tmp/`` while hashing it; raises ``ValueError`` if too big."""
        staging = self.staging(max_bytes)
        try:
            while chunk := source.read(CHUNK):
                staging.write(chunk)
            return staging.finish()
        except BaseException:
            staging.abandon()
            raise

    def staging(self, max_bytes: int) -> "Staging":
        """A file to stage chunk by chunk, as a body streams in."""
        private_directory(self.tmp)
        return Staging(self.tmp / f"{uuid.uuid4().hex}.part", max_bytes)

    def hold(self, staged: StagedFile) -> str:
        """Keeps a presigned upload's staged file for its finalize: where it is; its name."""
        return staged.path.name

    def staged(self, name: str, size: int, sha256: str, sha512: str) -> StagedFile:
        """A file staged earlier (a presigned upload's), by the name ``hold`` gave it."""
        if not _STAGED_NAME.fullmatch(name):
            raise ValueError(f"not a staged file's name: {name!r}")
        return StagedFile(self.tmp / name, size, sha256, sha512)

    def forget(self, name: str) -> None:
        """A held file that will never be finalized (its upload expired)."""
        self.discard(self.staged(name, 0, "", ""))

    def stage_copy(self, sha256: str, package_id: uuid.UUID, sha512: str) -> StagedFile:
        """Stages another package's file for a new package: a hard link in ``tmp/`` (the
        files are never written after they are placed, so the two names may share one
        inode), or a flushed copy where links are impossible. Raises ``FileNotFoundError``
        if the file is gone. Deleting either package then unlinks only its own name."""
        source = self.path_for(sha256, package_id)
        private_directory(self.tmp)
        path = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            os.link(source, path)
        except FileNotFoundError:
            raise
        except OSError:  # another file system, no hard links, too many links
            with source.open("rb") as original:
                return self.stage(original, max_bytes=os.fstat(original.fileno()).st_size)
        try:
            os.utime(path)  # a link keeps the inode's mtime; the sweep spares recent files
            return StagedFile(path, path.stat().st_size, sha256, sha512)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def path_for(self, sha256: str, package_id: uuid.UUID) -> Path:
        return self.root / package_location(sha256, package_id)

    def commit(self, staged: StagedFile, package_id: uuid.UUID) -> None:
        """Moves a staged file to its final place, durably."""
        final = self.path_for(staged.sha256, package_id)
        private_directory(final.parent)
        os.replace(staged.path, final)
        # The new name, and any directories just made for it, must survive a power loss.
        for directory in (final.parent, final.parent.parent, final.parent.parent.parent):
            flush_to_disk(directory)

    def discard(self, staged: StagedFile) -> None:
        staged.path.unlink(missing_ok=True)

    def remove(self, sha256: str, package_id: uuid.UUID) -> None:
        # Empty directories stay: removing one could race a publish moving a file into it.
        self.path_for(sha256, package_id).unlink(missing_ok=True)

    def fetch(self, sha256: str, package_id: uuid.UUID) -> Opened:
        """The file to send (``FileNotFoundError`` if it is gone). It is opened at once: a
        delete racing the download unlinks the name, but the open file stays readable to
        the end. One chunk (most packages) is read whole, at once: a streamed body is read
        in the server's worker threads, two trips for even the smallest file, each waiting
        its turn behind other requests' database work, where one read of 1 MiB at most
        from the page cache takes a fraction of a millisecond."""
        handle = self.path_for(sha256, package_id).open("rb")
        try:
            size = os.fstat(handle.fileno()).st_size
            if size <= CHUNK:  # stored files never change: what fstat said is what is read
                with handle:
                    return Opened(size, content=handle.read())
        except BaseException:
            handle.close()
            raise
        return Opened(size, stream=_read(handle), close=handle.close)

    def download_url(self, sha256: str, package_id: uuid.UUID, filename: str) -> str | None:
        """Local files are sent by this server: no URL elsewhere."""
        return None

    def presigned_post(
        self, folder: str, max_bytes: int, expires_in: int
    ) -> tuple[str, dict[str, str]] | None:
        """Presigned uploads come to this server's own upload target."""
        return None

    def uploaded_key(self, package_url: str) -> str | None:
        return None

    def take_upload(self, uploaded: str, max_bytes: int) -> StagedFile:
        raise FileNotFoundError(uploaded)

    def drop_upload(self, uploaded: str) -> None:
        return None

    def check(self) -> None:
        """Raises ``OSError`` unless the directory can be written (readiness)."""
        private_directory(self.root)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.root} is not writable")

    def sweep(self, live: Iterable[tuple[str, uuid.UUID]], older_than_seconds: float) -> Sweep:
        """Moves files no package owns (left by crashes) to ``.quarantine/<time>/``, if
        older than the threshold; deletes nothing.

        The threshold protects uploads in flight, whose rows are not committed yet. If the
        database owns fewer than half of the package files on disk (none, say, because the
        server was started against the wrong or an empty database), nothing is touched:
        the caller warns instead.
        """
        keep = {self.path_for(sha256, package_id) for sha256, package_id in live}
        cutoff = time.time() - older_than_seconds
        package_files = owned = 0
        stale: list[Path] = []
        for path in self._files():
            if path.is_relative_to(self.root / "sha256"):
                package_files += 1
            if path in keep:
                owned += 1
            elif path.stat().st_mtime < cutoff:
                stale.append(path)
        sweep = Sweep(package_files=package_files, owned=owned, unowned=len(stale))
        if not stale or sweep.refused:
            return sweep
        folder = self.root / QUARANTINE / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for path in stale:
            target = folder / path.relative_to(self.root)
            private_directory(target.parent)
            os.replace(path, target)
        return replace(sweep, quarantine=str(folder))

    def _files(self) -> Iterator[Path]:
        for top in (self.tmp, self.root / "sha256"):
            if top.exists():
                yield from (path for path in top.rglob("*") if path.is_file())


def package_location(sha256: str, package_id: uuid.UUID) -> str:
    """Where a package's own file lives in either store, relative to its root: addressed by
    its digest, owned by its id."""
    return f"sha256/{sha256[:2]}/{sha256}/{package_id}"


def _read(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk
