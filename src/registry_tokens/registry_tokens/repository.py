import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from registry_tokens.kit.pagination import PageRequest
from registry_tokens.registry_tokens.models import RegistryToken


class RegistryTokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, registry_id: uuid.UUID, token_id: uuid.UUID) -> RegistryToken | None:
        return self.session.scalar(
            select(RegistryToken).where(
                RegistryToken.registry_id == registry_id, RegistryToken.id == token_id
            )
        )

    def get_by_secret_hash(self, secret_hash: bytes) -> RegistryToken | None:
        return self.session.scalar(
            select(RegistryToken).where(RegistryToken.secret_hash == secret_hash)
        )

    def page(self, registry_id: uuid.UUID, request: PageRequest) -> list[RegistryToken]:
        """Newest first; the id breaks ties within a millisecond so pages never overlap."""
        return list(
            self.session.scalars(
                select(RegistryToken)
                .where(RegistryToken.registry_id == registry_id)
                .order_by(RegistryToken.created_at.desc(), RegistryToken.id.desc())
                .limit(request.per_page)
                .offset(request.offset)
            )
        )

    def count(self, registry_id: uuid.UUID) -> int:
        return (
            self.session.scalar(
                select(func.count()).where(RegistryToken.registry_id == registry_id)
            )
            or 0
        )

    def add(self, token: RegistryToken) -> None:
        self.session.add(token)
        self.session.flush()

    def delete(self, registry_id: uuid.UUID, token_id: uuid.UUID) -> bool:
        result = self.session.execute(
            delete(RegistryToken).where(
                RegistryToken.registry_id == registry_id, RegistryToken.id == token_id
            )
        )
        return bool(getattr(result, "rowcount", 0))
