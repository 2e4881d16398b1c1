import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from registry_tokens.db.queries import Query
from registry_tokens.sessions.models import ConsoleSession
from registry_tokens.users.models import User


class SessionRow(NamedTuple):
    """A session as resuming it sees it: with its person, and when their password last
    changed (a session opened before that is over)."""

    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    user_id: uuid.UUID
    name: str
    email: str
    password_changed_at: datetime | None


# "Whose session has this secret's digest?": every console page asks it.
SESSION_BY_SECRET = Query(
    select(
        ConsoleSession.id.label("id"),
        ConsoleSession.created_at.label("created_at"),
        ConsoleSession.last_seen_at.label("last_seen_at"),
        User.id.label("user_id"),
        User.name.label("name"),
        User.email.label("email"),
        User.password_changed_at.label("password_changed_at"),
    )
    .join(User, User.id == ConsoleSession.user_id)
    .where(ConsoleSession.secret_hash == bindparam("secret_hash")),
    SessionRow,
)


class SessionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, console_session: ConsoleSession) -> None:
        self.session.add(console_session)
        self.session.flush()

    def touch(self, session_id: uuid.UUID, now: datetime) -> None:
        found = self.session.get(ConsoleSession, session_id)
        if found is not None:
            found.last_seen_at = now

    def remove(self, session_id: uuid.UUID) -> None:
        self.session.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))

    def remove_stale(self, idle_before: datetime, created_before: datetime) -> None:
        """Sessions no request can resume any more: they only take room."""
        self.session.execute(
            delete(ConsoleSession).where(
                (ConsoleSession.last_seen_at < idle_before)
                | (ConsoleSession.created_at < created_before)
            )
        )
