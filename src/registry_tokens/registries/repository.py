import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

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

    def add(self, registry: Registry) -> None:
        self.session.add(registry)
        self.session.flush()
