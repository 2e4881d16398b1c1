"""Connections that PostgreSQL drops under the service, at each point where it matters: a
read runs again, a write is never run twice, and a commit whose outcome is unknown says so.

Each connection is cut by the server itself (``pg_terminate_backend``, waiting until the
backend is gone), on a real scratch database.
"""

from pathlib import Path

import anyio
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from registry_tokens.api.http import exception_response
from registry_tokens.db import Database
from registry_tokens.db.failures import CommitOutcomeUnknown, is_unavailable
from registry_tokens.kit.ids import new_id
from registry_tokens.organizations.models import Organization
from registry_tokens.settings import Settings
from tests.harness import BACKEND, scratch_database

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL's connections")


def _cut(database: Database, session: Session) -> None:
    """Ends the session's connection from another one, as a restart would."""
    pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with database.engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()


def _organizations(database: Database, slug: str) -> int:
    with database.reading() as session:
        count: int = session.execute(
            select(func.count()).select_from(Organization).where(Organization.slug == slug)
        ).scalar_one()
        return count


def _write_and_lose_the_connection(database: Database, slug: str, *, then_query: bool) -> None:
    """Adds an organization, then the connection is cut: before a further statement
    (``then_query``) or right before the commit."""
    with database.writing() as session:
        session.add(Organization(id=new_id(), slug=slug, name=slug))
        session.flush()
        _cut(database, session)
        if then_query:
            session.execute(text("SELECT 1"))


def test_a_read_whose_connection_is_lost_runs_again(database: Database) -> None:
    calls: list[str] = []

    def work() -> int:
        with database.reading() as session:
            if not calls:
                calls.append("cut")
                _cut(database, session)
            count: int = session.execute(
                select(func.count()).select_from(Organization)
            ).scalar_one()
            calls.append("answered")
            return count

    assert anyio.run(database.read, work) == 0
    assert calls == ["cut", "answered"]  # the first run failed on its read, the second read


def test_a_write_whose_connection_is_lost_before_the_commit_fails_and_stores_nothing(
    database: Database,
) -> None:
    with pytest.raises(DBAPIError) as raised:
        _write_and_lose_the_connection(database, "before-commit", then_query=True)
    assert is_unavailable(raised.value)  # 503 with Retry-After: nothing was done
    assert _organizations(database, "before-commit") == 0


def test_a_connection_lost_at_the_commit_is_said_to_leave_the_outcome_unknown(
    database: Database,
) -> None:
    with pytest.raises(CommitOutcomeUnknown) as raised:  # the COMMIT meets the cut
        _write_and_lose_the_connection(database, "at-commit", then_query=False)
    assert raised.value.status == 503
    assert "Retry-After" not in raised.value.headers
    assert "may or may not" in raised.value.message
    # Here the server ended the session before the COMMIT: rolled back. From the client's
    # side of a lost connection, that cannot be told from a commit whose answer was lost.
    assert _organizations(database, "at-commit") == 0


def test_a_pool_with_no_free_connection_answers_busy_503(tmp_path: Path) -> None:
    """Every pooled connection held past ``DB_POOL_TIMEOUT_SECONDS``: 503 with
    Retry-After (the database is busy), not 500."""
    with scratch_database(tmp_path) as url:
        settings = Settings(
            database_url=url,
            secret_key="k",
            db_pool_size=1,
            db_max_overflow=0,
            db_pool_timeout_seconds=0.2,
        )
        database = Database(settings)
        try:
            with (
                database.engine.connect(),
                pytest.raises(PoolTimeout) as raised,
                database.writing() as session,
            ):
                session.execute(text("SELECT 1"))
            response = exception_response(raised.value)
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert b"busy" in response.body
        finally:
            database.dispose()
