"""Publishing, listing, reading and deleting packages through the Packages API."""

import uuid
from typing import BinaryIO

from packaging.utils import canonicalize_name
from sqlalchemy.exc import IntegrityError

from registry_tokens.auth.caller import Caller
from registry_tokens.auth.scopes import Scope
from registry_tokens.db import Database
from registry_tokens.kit.cursor import Cursor, Window, fetch_window
from registry_tokens.kit.errors import AppError, NotFound
from registry_tokens.kit.ids import new_id
from registry_tokens.packages.metadata import (
    BadDistribution,
    distribution_identity,
    read_distribution,
)
from registry_tokens.packages.models import Package
from registry_tokens.packages.repository import PackageRepository
from registry_tokens.packages.storage import FileStore, StagedFile
from registry_tokens.registries.models import Registry
from registry_tokens.registries.service import Ecosystem, visible_registry
from registry_tokens.users.repository import UserRepository


class PackageService:
    def __init__(self, database: Database, files: FileStore, max_upload_bytes: int) -> None:
        self.database = database
        self.files = files
        self.max_upload_bytes = max_upload_bytes

    def publish(
        self, caller: Caller, org: str, registry: str, upload: BinaryIO, filename: str
    ) -> Package:
        caller.require(Scope.WRITE_PACKAGES)
        with self.database.read() as session:  # refuse before storing a byte
            _publishable(visible_registry(session, caller, org, registry))
        try:
            staged = self.files.stage(upload, self.max_upload_bytes)
        except ValueError as exc:
            raise AppError(f"The package file is too large: {exc}", 413) from exc
        try:
            return self._publish_staged(caller, org, registry, staged, filename)
        finally:
            self.files.discard(staged)  # a no-op once the file was moved into place

    def _publish_staged(
        self, caller: Caller, org: str, registry: str, staged: StagedFile, filename: str
    ) -> Package:
        try:
            distribution = read_distribution(staged.path, filename)
        except BadDistribution as exc:
            raise AppError(f"Validation failed: {exc}", 422) from exc
        package_id = new_id()
        placed = False
        try:
            with self.database.write() as session:
                found = _publishable(visible_registry(session, caller, org, registry))
                packages = PackageRepository(session)
                if packages.get_by_filename(found.id, filename) is not None:
                    raise _already_published(filename)
                identity = distribution_identity(filename)
                for existing in packages.files_of_project(found.id, distribution.project):
                    if distribution_identity(existing.filename) == identity:
                        raise _already_published(filename, existing.filename)
                uploader = UserRepository(session).get(caller.user_id)
                assert uploader is not None
                package = Package(
                    id=package_id,
                    package_registry=found,
                    project=distribution.project,
                    name=distribution.name,
                    version=distribution.version,
                    filename=filename,
                    kind=distribution.kind,
                    requires_python=distribution.requires_python,
                    size=staged.size,
                    sha256=staged.sha256,
                    sha512=staged.sha512,
                    uploaded_by_id=uploader.id,
                )
                packages.add(package)
                # The file is in place before the row that names it is committed.
                self.files.commit(staged, package_id)
                placed = True
        except BaseException as error:
            if placed:  # the row was not committed: its file must not outlive it
                self.files.remove(staged.sha256, package_id)
            if isinstance(error, IntegrityError):  # a concurrent publish of the same file
                raise _already_published(filename) from error
            raise
        return package

    def get(self, caller: Caller, org: str, registry: str, package_id: str) -> Package:
        caller.require(Scope.READ_PACKAGES)
        with self.database.read() as session:
            found = visible_registry(session, caller, org, registry)
            return _existing(PackageRepository(session), found.id, package_id)

    def list(
        self, caller: Caller, org: str, registry: str, *, name: str | None, cursor: Cursor
    ) -> Window[Package]:
        caller.require(Scope.READ_PACKAGES)
        project = canonicalize_name(name) if name is not None else None
        with self.database.read() as session:
            found = visible_registry(session, caller, org, registry)
            query = PackageRepository(session).listing(found.id, project)
            return fetch_window(session, query, Package.id, cursor)

    def delete(self, caller: Caller, org: str, registry: str, package_id: str) -> None:
        caller.require(Scope.DELETE_PACKAGES)
        with self.database.write() as session:
            found = visible_registry(session, caller, org, registry)
            packages = PackageRepository(session)
            package = _existing(packages, found.id, package_id)
            sha256, owned_id = package.sha256, package.id
            packages.delete(package)
        # Only after the row is gone: a crash in between leaves an orphan, swept later.
        self.files.remove(sha256, owned_id)

    def sweep_orphans(self, older_than_seconds: float = 3600) -> int:
        with self.database.read() as session:
            live = PackageRepository(session).all_files()
        return self.files.sweep(live, older_than_seconds)


def _publishable(registry: Registry) -> Registry:
    if registry.ecosystem != Ecosystem.PYTHON.value:
        raise AppError(
            f"Validation failed: this is a {registry.ecosystem} registry; only python "
            "registries accept wheels and sdists",
            422,
        )
    return registry


def _already_published(filename: str, as_filename: str | None = None) -> AppError:
    spelled = f" as {as_filename}" if as_filename and as_filename != filename else ""
    return AppError(f"{filename} is already published in this registry{spelled}", 409)


def _existing(packages: PackageRepository, registry_id: uuid.UUID, package_id: str) -> Package:
    try:
        parsed = uuid.UUID(package_id)
    except ValueError:
        raise NotFound("package") from None
    package = packages.get(registry_id, parsed)
    if package is None:
        raise NotFound("package")
    return package
