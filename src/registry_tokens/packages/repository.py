import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Select, bindparam, delete, select
from sqlalchemy.orm import Session

from registry_tokens.db.queries import Query
from registry_tokens.packages.models import Package, PackageDistTag, StagedUpload


class PackageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, registry_id: uuid.UUID, package_id: uuid.UUID) -> Package | None:
        return self.session.scalar(
            select(Package).where(Package.registry_id == registry_id, Package.id == package_id)
        )

    def get_by_filename(self, registry_id: uuid.UUID, filename: str) -> Package | None:
        return self.session.scalar(
            select(Package).where(Package.registry_id == registry_id, Package.filename == filename)
        )

    def listing(self, registry_id: uuid.UUID, project: str | None) -> Select[Package]:
        """The registry's packages (of one project, if given), for cursor pagination."""
        query = select(Package).where(Package.registry_id == registry_id)
        return query if project is None else query.where(Package.project == project)

    def files_of(self, registry_id: uuid.UUID) -> list[Package]:
        return list(self.session.scalars(select(Package).where(Package.registry_id == registry_id)))

    def all_files(self) -> list[tuple[str, uuid.UUID]]:
        return [
            (row.sha256, row.id) for row in self.session.execute(select(Package.sha256, Package.id))
        ]

    def add(self, package: Package) -> None:
        self.session.add(package)
        self.session.flush()

    def delete(self, package: Package) -> None:
        self.session.delete(package)
        self.session.flush()


class TakenUpload(NamedTuple):
    """A staged upload, as its finalize (which consumes it) reads it."""

    filename: str
    staged_name: str
    size: int
    sha256: str
    sha512: str
    expires_at: datetime


class StagedUploadRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, upload: StagedUpload) -> None:
        self.session.add(upload)
        self.session.flush()

    def take(
        self, upload_id: uuid.UUID, registry_id: uuid.UUID, token_id: uuid.UUID, filename: str
    ) -> TakenUpload | None:
        """Deletes the caller's staged upload in this registry and returns it: of two
        finalizes racing for one upload, exactly one gets it."""
        row = self.session.execute(
            delete(StagedUpload)
            .where(
                StagedUpload.id == upload_id,
                StagedUpload.registry_id == registry_id,
                StagedUpload.token_id == token_id,
                StagedUpload.filename == filename,
            )
            .returning(
                StagedUpload.filename,
                StagedUpload.staged_name,
                StagedUpload.size,
                StagedUpload.sha256,
                StagedUpload.sha512,
                StagedUpload.expires_at,
            )
        ).one_or_none()
        return None if row is None else TakenUpload(*row)

    def take_expired(self, now: datetime) -> list[str]:
        """Deletes the uploads expired by ``now``; their files' names, to discard."""
        return list(
            self.session.scalars(
                delete(StagedUpload)
                .where(StagedUpload.expires_at <= now)
                .returning(StagedUpload.staged_name)
            )
        )


class ProjectFile(NamedTuple):
    """A file of a project, as the package protocols list it."""

    id: uuid.UUID
    filename: str
    sha256: str
    requires_python: str | None


# "The files of this project in this registry", by filename: what a project's simple-index
# page lists, and what a publish checks a new file against.
PROJECT_FILES = Query(
    select(
        Package.id.label("id"),
        Package.filename.label("filename"),
        Package.sha256.label("sha256"),
        Package.requires_python.label("requires_python"),
    )
    .where(Package.registry_id == bindparam("registry_id"))
    .where(Package.project == bindparam("project"))
    .order_by(Package.filename),
    ProjectFile,
)


class StoredFile(NamedTuple):
    """A package file as a download needs it: what to name, count and find on disk."""

    id: uuid.UUID
    filename: str
    project: str
    kind: str
    size: int
    sha256: str


_STORED_FILE = select(
    Package.id.label("id"),
    Package.filename.label("filename"),
    Package.project.label("project"),
    Package.kind.label("kind"),
    Package.size.label("size"),
    Package.sha256.label("sha256"),
).where(Package.registry_id == bindparam("registry_id", type_=Package.registry_id.type))

# "This registry's file with this id" (pip's downloads) and "… with this stored name"
# (npm's tarballs): one indexed row each, on the readers' kept connections.
FILE_BY_ID = Query(
    _STORED_FILE.where(Package.id == bindparam("package_id", type_=Package.id.type)), StoredFile
)
FILE_BY_NAME = Query(_STORED_FILE.where(Package.filename == bindparam("filename")), StoredFile)


class Project(NamedTuple):
    project: str


# "The projects of this registry", by name: the root of its simple index.
PROJECTS = Query(
    select(Package.project.label("project"))
    .where(Package.registry_id == bindparam("registry_id"))
    .distinct()
    .order_by(Package.project),
    Project,
)


class NpmVersion(NamedTuple):
    """A version of an npm package, as its packument lists it."""

    id: uuid.UUID
    version: str
    filename: str
    created_at: datetime
    size: int
    sha512: str
    sha1: str | None
    manifest: str | None


# "The versions of this npm package in this registry": the whole of its packument but the
# dist-tags, in one query.
NPM_VERSIONS = Query(
    select(
        Package.id.label("id"),
        Package.version.label("version"),
        Package.filename.label("filename"),
        Package.created_at.label("created_at"),
        Package.size.label("size"),
        Package.sha512.label("sha512"),
        Package.sha1.label("sha1"),
        Package.manifest.label("manifest"),
    )
    .where(Package.registry_id == bindparam("registry_id"))
    .where(Package.project == bindparam("project"))
    .where(Package.kind == "npm")
    .order_by(Package.created_at, Package.id),
    NpmVersion,
)


class DistTag(NamedTuple):
    tag: str
    version: str


# "The dist-tags of this npm package in this registry, and the versions they name."
DIST_TAGS = Query(
    select(PackageDistTag.tag.label("tag"), Package.version.label("version"))
    .join(Package, Package.id == PackageDistTag.package_id)
    .where(PackageDistTag.registry_id == bindparam("registry_id"))
    .where(PackageDistTag.project == bindparam("project"))
    .order_by(PackageDistTag.tag),
    DistTag,
)


class DistTagRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def version(self, registry_id: uuid.UUID, project: str, version: str) -> Package | None:
        return self.session.scalar(
            select(Package).where(
                Package.registry_id == registry_id,
                Package.project == project,
                Package.version == version,
                Package.kind == "npm",
            )
        )

    def point(self, registry_id: uuid.UUID, project: str, tag: str, package_id: uuid.UUID) -> None:
        """Makes ``tag`` name the package: moved if it exists, else added."""
        existing = self.session.scalar(
            select(PackageDistTag).where(
                PackageDistTag.registry_id == registry_id,
                PackageDistTag.project == project,
                PackageDistTag.tag == tag,
            )
        )
        if existing is not None:
            existing.package_id = package_id
        else:
            self.session.add(
                PackageDistTag(
                    registry_id=registry_id, project=project, tag=tag, package_id=package_id
                )
            )
        self.session.flush()

    def remove(self, registry_id: uuid.UUID, project: str, tag: str) -> bool:
        removed = self.session.execute(
            delete(PackageDistTag)
            .where(
                PackageDistTag.registry_id == registry_id,
                PackageDistTag.project == project,
                PackageDistTag.tag == tag,
            )
            .returning(PackageDistTag.id)
        ).first()
        return removed is not None
