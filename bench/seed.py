"""Seeding a bench database fast: the few organizations, registries, users and API tokens
through the services (as the admin CLI does), the many registry tokens in bulk.

Registry tokens go straight into the real ``registry_tokens`` table (its SQLAlchemy
``Table``, after ``registry-tokens db upgrade``): SQLAlchemy Core ``executemany`` in
batches of 10,000 on SQLite, in one transaction with ``synchronous=OFF`` for the seeding
connection only; ``COPY`` through psycopg on PostgreSQL. Every row is what the service
itself would have written: a UUIDv7 id whose first 48 bits are ``created_at`` (checked with
:func:`registry_tokens.kit.ids.id_timestamp`), ``updated_at`` equal to it, and
``secret_hash`` = HMAC-SHA256 under the server's key for the tokens whose secrets the bench
keeps (they really authenticate); the others get random 32-byte hashes, which no secret
matches.
"""

import random
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, text

from registry_tokens.kit.ids import id_timestamp
from registry_tokens.kit.secrets import SecretKind, generate_secret, hash_secret
from registry_tokens.organizations.models import Role
from registry_tokens.registry_tokens.models import RegistryToken
from registry_tokens.services import Services
from registry_tokens.settings import Settings

BATCH = 10_000
ORG = "bench"
MAIN = "main"  # get, list, deep list, install: the registry the read paths use
SCRATCH = "scratch"  # create, update, delete: writes go here, so MAIN's size never moves
FILLER_ORGS = 10
FILLERS_PER_ORG = 10
EMAIL = "bench@example.test"
API_SCOPES = ("read_registries", "write_registries", "read_packages", "write_packages")
KNOWN_SECRETS = 4
DAY_MS = 24 * 3600 * 1000
TOKENS = RegistryToken.metadata.tables["registry_tokens"]
REGISTRIES = RegistryToken.metadata.tables["registries"]
COLUMNS = ("id", "created_at", "registry_id", "description", "secret_hash", "created_by_id")


@dataclass
class Tenant:
    """What the bench seeded through the services, and what it knows about the tokens."""

    user_id: uuid.UUID
    api_token: str
    main_id: uuid.UUID
    scratch_id: uuid.UUID
    filler_ids: list[uuid.UUID]
    known_secrets: list[str] = field(default_factory=list)
    main_token_ids: list[uuid.UUID] = field(default_factory=list)


def create_tenant(settings: Settings) -> Tenant:
    """The organizations, registries, the user and an API token, through the services."""
    services = Services.build(settings)
    try:
        user = services.users.create("Bench User", EMAIL)
        services.organizations.create(ORG, "Bench")
        services.organizations.add_member(ORG, EMAIL, Role.ADMIN)
        main = services.registries.create(ORG, "Main", slug=MAIN)
        scratch = services.registries.create(ORG, "Scratch", slug=SCRATCH)
        fillers = []
        for org_number in range(FILLER_ORGS):
            org = f"filler_{org_number}"
            services.organizations.create(org, f"Filler {org_number}")
            services.organizations.add_member(org, EMAIL, Role.MEMBER)
            for number in range(FILLERS_PER_ORG):
                fillers.append(
                    services.registries.create(org, f"Filler {number}", slug=f"r{number}").id
                )
        issued = services.auth.issue(EMAIL, API_SCOPES, description="bench")
        return Tenant(
            user_id=user.id,
            api_token=issued.secret,
            main_id=main.id,
            scratch_id=scratch.id,
            filler_ids=fillers,
        )
    finally:
        services.database.dispose()


def uuid7_at(millis: int, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for an instant in Unix milliseconds (RFC 9562: 48-bit time, version 7,
    12 random bits, variant 10, 62 random bits)."""
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64)
    value |= (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


@dataclass
class Batch:
    """Tokens to insert: which registry each belongs to, spread over a span of time."""

    registries: list[uuid.UUID]
    start_ms: int
    end_ms: int
    description: str
    # Positions in ``registries`` whose token gets a real secret (kept in ``secrets``).
    known: dict[int, str] = field(default_factory=dict)


def token_rows(
    batch: Batch, created_by: uuid.UUID, secret_key: bytes, rng: random.Random
) -> Iterator[dict[str, Any]]:
    """The rows of ``batch`` in creation order, one millisecond step or more apart."""
    count = len(batch.registries)
    step = max(1, (batch.end_ms - batch.start_ms) // max(count, 1))
    for position, registry_id in enumerate(batch.registries):
        millis = batch.start_ms + position * step
        token_id = uuid7_at(millis, rng)
        created_at = id_timestamp(token_id)
        secret = batch.known.get(position)
        yield {
            "id": token_id,
            "created_at": created_at,
            "registry_id": registry_id,
            "description": f"{batch.description} {position}",
            "secret_hash": hash_secret(secret_key, secret) if secret else rng.randbytes(32),
            "created_by_id": created_by,
            "updated_at": created_at,
        }


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _sqlite_seeding_engine(settings: Settings) -> Engine:
    engine = create_engine(settings.database_url)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # This connection only, while seeding: no fsync, a large page cache.
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-262144")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def insert_tokens(settings: Settings, rows: Iterable[dict[str, Any]]) -> int:
    """Inserts the rows (SQLite: Core executemany, one transaction; PostgreSQL: COPY)."""
    if settings.is_sqlite:
        engine = _sqlite_seeding_engine(settings)
        inserted = 0
        try:
            with engine.begin() as connection:
                for chunk in _chunks(rows, BATCH):
                    connection.execute(TOKENS.insert(), chunk)
                    inserted += len(chunk)
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            engine.dispose()
        return inserted
    return _copy_tokens(settings, rows)


def _copy_tokens(settings: Settings, rows: Iterable[dict[str, Any]]) -> int:
    engine = create_engine(settings.database_url)
    inserted = 0
    try:
        raw = engine.raw_connection()
        try:
            connection: Any = raw.dbapi_connection
            columns = ", ".join([*COLUMNS, "updated_at"])
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY {TOKENS.name} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row([row[name] for name in (*COLUMNS, "updated_at")])
                    inserted += 1
            connection.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
    return inserted


def bump_token_versions(settings: Settings) -> None:
    """What the service does with every token it creates: bump the registry's
    ``tokens_version`` (RegistryTokenRepository.live_tokens_changed), here once for all."""
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                REGISTRIES.update().values(tokens_version=REGISTRIES.c.tokens_version + 1)
            )
    finally:
        engine.dispose()


def analyze(settings: Settings) -> None:
    """PostgreSQL: VACUUM ANALYZE after a bulk load, as autovacuum would do on its own a
    little later (so that it does not do it in the middle of a measurement). SQLite: the
    service never runs ANALYZE, so neither does the bench."""
    if settings.is_sqlite:
        return
    engine = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()


def count_by_registry(settings: Settings) -> dict[uuid.UUID, int]:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(TOKENS.c.registry_id, func.count()).group_by(TOKENS.c.registry_id)
            ).all()
    finally:
        engine.dispose()
    return {registry_id: count for registry_id, count in found}


def live_ids(settings: Settings, registry_id: uuid.UUID) -> list[uuid.UUID]:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(TOKENS.c.id).where(
                    TOKENS.c.registry_id == registry_id, TOKENS.c.revoked_at.is_(None)
                )
            ).all()
    finally:
        engine.dispose()
    return [row[0] for row in found]


def check_ids(settings: Settings, sample: int = 200) -> None:
    """Every id's time is its created_at, to the millisecond (as the service guarantees)."""
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(select(TOKENS.c.id, TOKENS.c.created_at).limit(sample)).all()
    finally:
        engine.dispose()
    for token_id, created_at in found:
        stored = created_at if isinstance(created_at, datetime) else None
        if stored is None or id_timestamp(token_id) != stored:
            raise RuntimeError(f"seeded token {token_id}: created_at {created_at} disagrees")


@dataclass
class SeedReport:
    inserted: int
    seconds: float
    total: int
    by_registry: dict[uuid.UUID, int]


def seed_tokens(
    settings: Settings,
    tenant: Tenant,
    plan: Sequence[tuple[uuid.UUID, int]],
    *,
    start_ms: int,
    end_ms: int,
    description: str,
    known_secrets: int = 0,
    rng: random.Random,
) -> SeedReport:
    """Adds ``count`` tokens to each registry of ``plan``, interleaved in time.

    The first ``known_secrets`` tokens of the main registry get real secrets, which are
    kept in ``tenant.known_secrets``.
    """
    registries = [registry_id for registry_id, count in plan for _ in range(count)]
    rng.shuffle(registries)
    known: dict[int, str] = {}
    for position, registry_id in enumerate(registries):
        if len(known) >= known_secrets:
            break
        if registry_id == tenant.main_id:
            known[position] = generate_secret(SecretKind.REGISTRY_TOKEN)
    batch = Batch(registries, start_ms, end_ms, description, known)
    started = time.monotonic()
    inserted = insert_tokens(
        settings, token_rows(batch, tenant.user_id, settings.secret_key_bytes, rng)
    )
    seconds = time.monotonic() - started
    bump_token_versions(settings)
    tenant.known_secrets.extend(known.values())
    analyze(settings)
    by_registry = count_by_registry(settings)
    return SeedReport(inserted, seconds, sum(by_registry.values()), by_registry)


def sql_version(settings: Settings) -> str:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            query = "select sqlite_version()" if settings.is_sqlite else "show server_version"
            return str(connection.execute(text(query)).scalar())
    finally:
        engine.dispose()
