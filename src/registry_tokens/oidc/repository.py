from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from registry_tokens.oidc.models import OidcTokenUse


class OidcTokenUseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def seen(self, token_hash: str) -> bool:
        found = self.session.scalar(
            select(OidcTokenUse.id).where(OidcTokenUse.token_hash == token_hash)
        )
        return found is not None

    def add(self, token_hash: str, expires_at: datetime) -> None:
        self.session.add(OidcTokenUse(token_hash=token_hash, expires_at=expires_at))
        self.session.flush()

    def prune(self, now: datetime) -> None:
        """Forgets tokens that have expired: they can never be used again."""
        self.session.execute(delete(OidcTokenUse).where(OidcTokenUse.expires_at < now))
