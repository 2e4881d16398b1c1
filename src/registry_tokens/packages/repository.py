import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry_tokens.packages.models import Package


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

    def window(
        self,
        registry_id: uuid.UUID,
        *,
        name: str | None,
        before: uuid.UUID | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[Package]:
        """Newest first by id (UUIDv7: creation order). ``after``: older than that id;
        ``before``: newer than it (fetched oldest-first, then reversed)."""
        query = select(Package).where(Package.registry_id == registry_id)
        if name is not None:
            query = query.where(Package.project == name)
        if before is not None:
            rows = self.session.scalars(
                query.where(Package.id > before).order_by(Package.id.asc()).limit(limit)
            )
            return list(rows)[::-1]
        if after is not None:
            query = query.where(Package.id < after)
        return list(self.session.scalars(query.order_by(Package.id.desc()).limit(limit)))

    def exists_beyond(
        self,
        registry_id: uuid.UUID,
        name: str | None,
        *,
        newer_than: uuid.UUID | None = None,
        older_than: uuid.UUID | None = None,
    ) -> bool:
        query = select(Package.id).where(Package.registry_id == registry_id)
        if name is not None:
            query = query.where(Package.project == name)
        if newer_than is not None:
            query = query.where(Package.id > newer_than)
        if older_than is not None:
            query = query.where(Package.id < older_than)
        return self.session.scalar(query.limit(1)) is not None

    def files_of_project(self, registry_id: uuid.UUID, project: str) -> list[Package]:
        return list(
            self.session.scalars(
                select(Package)
                .where(Package.registry_id == registry_id, Package.project == project)
                .order_by(Package.filename)
            )
        )

    def projects(self, registry_id: uuid.UUID) -> list[str]:
        return list(
            self.session.scalars(
                select(Package.project)
                .where(Package.registry_id == registry_id)
                .distinct()
                .order_by(Package.project)
            )
        )

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
