import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.orm import Session

from registry_tokens.kit.pagination import PageRequest
from registry_tokens.kit.secrets import digests_match
from registry_tokens.registry_tokens.models import RegistryToken, RetiredSecret


class RegistryTokenRepository:
    """Registry tokens; "live" ones are those not revoked (deleted or reported leaked)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_live(
        self, registry_id: uuid.UUID, token_id: uuid.UUID, *, for_update: bool = False
    ) -> RegistryToken | None:
        query = select(RegistryToken).where(
            RegistryToken.registry_id == registry_id,
            RegistryToken.id == token_id,
            RegistryToken.revoked_at.is_(None),
        )
        if for_update:
            # Lock only the token's row: the joined registry and user are not written.
            query = query.with_for_update(of=RegistryToken)
        return self.session.scalar(query)

    def get_by_secret_hash(self, secret_hash: bytes) -> RegistryToken | None:
        """The token whose current secret this is, live or revoked."""
        return self.session.scalar(
            select(RegistryToken).where(RegistryToken.secret_hash == secret_hash)
        )

    def get_retired_secret(self, secret_hash: bytes) -> RetiredSecret | None:
        return self.session.get(RetiredSecret, secret_hash)

    def find_by_secret_hash(
        self, secret_hash: bytes
    ) -> tuple[RegistryToken, RetiredSecret | None] | None:
        """The token a presented secret belongs to, as its current secret (retired: None)
        or as one a rotation retired; None for a secret no token ever had."""
        token = self.get_by_secret_hash(secret_hash)
        retired = None
        if token is None:
            retired = self.get_retired_secret(secret_hash)
            token = self.get(retired.registry_token_id) if retired is not None else None
        if token is None:
            return None
        stored = token.secret_hash if retired is None else retired.secret_hash
        return (token, retired) if digests_match(stored, secret_hash) else None

    def get(self, token_id: uuid.UUID) -> RegistryToken | None:
        return self.session.get(RegistryToken, token_id)

    def page(
        self, registry_id: uuid.UUID, request: PageRequest, state: ColumnElement[bool] | None
    ) -> list[RegistryToken]:
        """Newest first; the id breaks ties within a millisecond so pages never overlap."""
        return list(
            self.session.scalars(
                self._live(registry_id, state)
                .order_by(RegistryToken.created_at.desc(), RegistryToken.id.desc())
                .limit(request.per_page)
                .offset(request.offset)
            )
        )

    def count(self, registry_id: uuid.UUID, state: ColumnElement[bool] | None) -> int:
        counted = self._live(registry_id, state).with_only_columns(func.count())
        return self.session.scalar(counted) or 0

    def _live(
        self, registry_id: uuid.UUID, state: ColumnElement[bool] | None
    ) -> Select[RegistryToken]:
        query = select(RegistryToken).where(
            RegistryToken.registry_id == registry_id, RegistryToken.revoked_at.is_(None)
        )
        return query if state is None else query.where(state)

    @staticmethod
    def active_at(moment: datetime) -> ColumnElement[bool]:
        return or_(RegistryToken.expires_at.is_(None), RegistryToken.expires_at > moment)

    @staticmethod
    def expired_at(moment: datetime) -> ColumnElement[bool]:
        return RegistryToken.expires_at <= moment

    def add(self, token: RegistryToken) -> None:
        self.session.add(token)
        self.session.flush()

    def end_grace_periods(self, token_id: uuid.UUID, not_after: datetime) -> None:
        self.session.execute(
            update(RetiredSecret)
            .where(
                RetiredSecret.registry_token_id == token_id,
                RetiredSecret.valid_until > not_after,
            )
            .values(valid_until=not_after)
        )

    def add_retired_secret(self, retired: RetiredSecret) -> None:
        self.session.add(retired)
        self.session.flush()

    def record_use(
        self, token_id: uuid.UUID, moment: datetime, address: str | None, not_since: datetime
    ) -> bool:
        """Stamps the token as used unless a use since ``not_since`` is already stamped.

        One conditional UPDATE: however many workers race, at most one writes per interval.
        """
        result = self.session.execute(
            update(RegistryToken)
            .where(
                RegistryToken.id == token_id,
                or_(RegistryToken.last_used_at.is_(None), RegistryToken.last_used_at < not_since),
            )
            .values(last_used_at=moment, last_used_ip=address)
        )
        return bool(getattr(result, "rowcount", 0))
