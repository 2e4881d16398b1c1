import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry_tokens.kit.pagination import PageRequest
from registry_tokens.registries.models import Registry


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_slug(self, organization_id: uuid.UUID, slug: str) -> Registry | None:
        return self.session.scalar(
            select(Registry).where(
                Registry.organization_id == organization_id, Registry.slug == slug
            )
        )

    def page(self, organization_id: uuid.UUID, request: PageRequest) -> list[Registry]:
        return list(
            self.session.scalars(
                select(Registry)
                .where(Registry.organization_id == organization_id)
                .order_by(Registry.created_at.desc(), Registry.id.desc())
                .limit(request.per_page)
                .offset(request.offset)
            )
        )

    def count(self, organization_id: uuid.UUID) -> int:
        return (
            self.session.scalar(
                select(func.count()).where(Registry.organization_id == organization_id)
            )
            or 0
        )

    def add(self, registry: Registry) -> None:
        self.session.add(registry)
        self.session.flush()

    def delete(self, registry: Registry) -> None:
        self.session.delete(registry)
        self.session.flush()
