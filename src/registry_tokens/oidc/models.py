from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from registry_tokens.db import Base, IdMixin


class OidcTokenUse(IdMixin, Base):
    """An OIDC token that has been used once already: its first use is audited, later
    ones are not. Keyed by a keyed hash of the token (never the token), and kept only
    until the token expires (rows past ``expires_at`` are pruned as new ones come)."""

    __tablename__ = "oidc_token_uses"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
