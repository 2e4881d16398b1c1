"""What registry tokens download: quota periods, the counting that enforces quotas, and
the usage series.

Counting is exact because the check and the count are one conditional ``UPDATE`` of the
token's row: its ``WHERE`` holds the limits (``usage_downloads + 1 <= max_downloads``…),
so of any number of concurrent downloads, on any process or instance, exactly as many
succeed as the limit has room for. PostgreSQL re-reads the row after a concurrent writer
commits and tests the ``WHERE`` again; SQLite has one writer at a time.

A download by a new client address first inserts the address into
``registry_token_clients`` for the period (``max_clients`` counts those rows through
``usage_clients``); when the update then refuses, the transaction rolls the insert back.
Lock order in every transaction: client row, then token row, then hour row; a batch takes
its tokens in id order. So two transactions never wait for each other in a circle.

A period's counts live in the token's row beside ``usage_period_start``: a download in a
later period starts them again in the same ``UPDATE`` (the ``CASE`` below), so a
roll-over needs no job and no extra write.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import ColumnElement, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from registry_tokens.db.queries import Query
from registry_tokens.registry_tokens.models import (
    RegistryToken,
    RegistryTokenClient,
    RegistryTokenUsageHour,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNKNOWN_ADDRESS = "unknown"


class QuotaPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def aligned_start(period: str | None, now: datetime) -> datetime:
    """The start of the UTC day, ISO week (Monday) or month ``now`` is in; ``EPOCH``
    for a token whose counts never start again by themselves."""
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == QuotaPeriod.DAY:
        return midnight
    if period == QuotaPeriod.WEEK:
        return midnight - timedelta(days=midnight.weekday())
    if period == QuotaPeriod.MONTH:
        return midnight.replace(day=1)
    return EPOCH


def period_end(period: str | None, now: datetime) -> datetime | None:
    """When the period ``now`` is in ends (counts start again); ``None``: never."""
    start = aligned_start(period, now)
    if period == QuotaPeriod.DAY:
        return start + timedelta(days=1)
    if period == QuotaPeriod.WEEK:
        return start + timedelta(days=7)
    if period == QuotaPeriod.MONTH:
        return (start + timedelta(days=32)).replace(day=1)
    return None


def period_key(period: str | None, usage_since: datetime | None, now: datetime) -> datetime:
    """Which counts a download at ``now`` adds to: the period's start, or the last usage
    reset if that came later in the period."""
    start = aligned_start(period, now)
    if usage_since is not None and usage_since > start:
        return usage_since
    return start


@dataclass(frozen=True)
class Usage:
    """A token's counts in its current period (or since its last reset, without one)."""

    downloads: int
    bytes: int
    clients: int
    since: datetime
    until: datetime | None  # when they start again by themselves; None: never


def current_usage(
    period: str | None,
    usage_since: datetime | None,
    counted_start: datetime | None,
    counts: tuple[int, int, int],
    now: datetime,
) -> Usage:
    """The counts stored for ``counted_start``, if that is still the current period."""
    key = period_key(period, usage_since, now)
    downloads, size, clients = counts if counted_start == key else (0, 0, 0)
    return Usage(downloads, size, clients, key, period_end(period, now))


class Download(NamedTuple):
    """Downloads to count for one token, one client and one hour (one, or a batch's sum)."""

    token_id: uuid.UUID
    key: datetime  # period_key() at the download
    hour: datetime
    address: str
    downloads: int
    bytes: int


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _current(
    column: InstrumentedAttribute[int], key: ColumnElement[datetime]
) -> ColumnElement[int]:
    """The column's count if it belongs to the period ``key``, else 0 (a new period)."""
    return case((RegistryToken.usage_period_start == key, column), else_=0)


class UsageRepository:
    """The writes of counting; each method runs in the caller's transaction."""

    def __init__(self, session: Session, is_sqlite: bool) -> None:
        self.session = session
        self.dialect = sqlite if is_sqlite else postgresql

    def count(self, download: Download, *, enforce: bool) -> bool:
        """Adds the download(s) to the token's counts; with ``enforce``, only if no quota
        of the token (as its row holds it now) would be exceeded. Whether it was added:
        if not, the caller must roll the transaction back (a new client's row was
        inserted)."""
        new_client = self._add_client(download.token_id, download.key, download.address)
        key = bindparam("key", download.key, type_=RegistryToken.usage_period_start.type)
        downloads = _current(RegistryToken.usage_downloads, key) + download.downloads
        size = _current(RegistryToken.usage_bytes, key) + download.bytes
        clients = _current(RegistryToken.usage_clients, key) + int(new_client)
        conditions: list[ColumnElement[bool]] = [
            RegistryToken.id == download.token_id,
            # A download that read the token before a reset never counts into the old
            # period's counts: they are gone.
            (RegistryToken.usage_period_start.is_(None))
            | (RegistryToken.usage_period_start <= key),
        ]
        if enforce:
            conditions += [
                RegistryToken.max_downloads.is_(None) | (downloads <= RegistryToken.max_downloads),
                RegistryToken.max_bytes.is_(None) | (size <= RegistryToken.max_bytes),
                RegistryToken.max_clients.is_(None) | (clients <= RegistryToken.max_clients),
            ]
        result = self.session.execute(
            update(RegistryToken)
            .where(*conditions)
            .values(
                usage_period_start=key,
                usage_downloads=downloads,
                usage_bytes=size,
                usage_clients=clients,
            )
            .execution_options(synchronize_session=False)
        )
        counted = bool(getattr(result, "rowcount", 0))
        if counted or not enforce:
            # A download already served is history whatever became of the counts (a
            # reset or a later period since it was read): the series keeps it.
            self._add_hour(download)
        return counted

    def count_all(self, downloads: Iterable[Download]) -> None:
        """A batch of downloads already served (tokens without quotas), in token order.
        A token whose row is gone (its registry was deleted since) has nothing to count
        into: its downloads are skipped rather than failing the batch on its foreign key
        (on PostgreSQL, a deletion committing under the batch fails it once; the next
        try skips the token)."""
        batch = sorted(downloads, key=lambda d: (d.token_id, d.key, d.address, d.hour))
        wanted = {download.token_id for download in batch}
        existing = set(
            self.session.scalars(select(RegistryToken.id).where(RegistryToken.id.in_(wanted)))
        )
        for download in batch:
            if download.token_id in existing:
                self.count(download, enforce=False)

    def reset(self, token_id: uuid.UUID, now: datetime) -> None:
        """Counts start again at ``now``; the hourly series is history and stays."""
        self.session.execute(
            update(RegistryToken)
            .where(RegistryToken.id == token_id)
            .values(
                usage_since=now,
                usage_period_start=None,
                usage_downloads=0,
                usage_bytes=0,
                usage_clients=0,
            )
            .execution_options(synchronize_session=False)
        )

    def _add_client(self, token_id: uuid.UUID, key: datetime, address: str) -> bool:
        """Whether the address is new in the period. (``RETURNING``, not ``rowcount``:
        psycopg reports -1 for an ``INSERT … ON CONFLICT DO NOTHING``.)"""
        statement = (
            self.dialect.insert(RegistryTokenClient)
            .values(registry_token_id=token_id, period_start=key, address=address)
            .on_conflict_do_nothing(index_elements=["registry_token_id", "period_start", "address"])
            .returning(RegistryTokenClient.address)
        )
        return self.session.execute(statement).first() is not None

    def _add_hour(self, download: Download) -> None:
        insert = self.dialect.insert(RegistryTokenUsageHour).values(
            registry_token_id=download.token_id,
            hour=download.hour,
            address=download.address,
            day=download.hour.replace(hour=0),
            downloads=download.downloads,
            bytes=download.bytes,
        )
        self.session.execute(
            insert.on_conflict_do_update(
                index_elements=["registry_token_id", "hour", "address"],
                set_={
                    "downloads": RegistryTokenUsageHour.downloads + insert.excluded.downloads,
                    "bytes": RegistryTokenUsageHour.bytes + insert.excluded.bytes,
                },
            )
        )


class UsagePoint(NamedTuple):
    """One hour's or day's downloads (``at``: its start)."""

    at: datetime
    downloads: int
    bytes: int
    clients: int


class TokenTotal(NamedTuple):
    """One token's downloads over a range, and what it is called."""

    token_id: uuid.UUID
    description: str
    deleted: bool
    downloads: int
    bytes: int
    clients: int


def _range(query_token: bool) -> list[ColumnElement[bool]]:
    hours = RegistryTokenUsageHour.hour
    conditions = [
        hours >= bindparam("start", type_=hours.type),
        hours < bindparam("end", type_=hours.type),
    ]
    if query_token:
        conditions.append(RegistryTokenUsageHour.registry_token_id == bindparam("token_id"))
    else:
        conditions.append(
            RegistryTokenUsageHour.registry_token_id.in_(
                select(RegistryToken.id).where(
                    RegistryToken.registry_id == bindparam("registry_id")
                )
            )
        )
    return conditions


def _series(bucket: InstrumentedAttribute[datetime], one_token: bool) -> Query[UsagePoint]:
    return Query(
        select(
            bucket.label("at"),
            func.sum(RegistryTokenUsageHour.downloads).label("downloads"),
            func.sum(RegistryTokenUsageHour.bytes).label("bytes"),
            func.count(RegistryTokenUsageHour.address.distinct()).label("clients"),
        )
        .where(*_range(one_token))
        .group_by(bucket)
        .order_by(bucket),
        UsagePoint,
    )


# "This token's (this registry's tokens') downloads in [start, end), per hour / per day":
# the buckets that have any; distinct clients are counted across the hours of a day.
SERIES = {
    ("hour", True): _series(RegistryTokenUsageHour.hour, True),
    ("day", True): _series(RegistryTokenUsageHour.day, True),
    ("hour", False): _series(RegistryTokenUsageHour.hour, False),
    ("day", False): _series(RegistryTokenUsageHour.day, False),
}


class Total(NamedTuple):
    downloads: int | None  # None: no downloads (a SUM of no rows)
    bytes: int | None
    clients: int


def _total(one_token: bool) -> Query[Total]:
    return Query(
        select(
            func.sum(RegistryTokenUsageHour.downloads).label("downloads"),
            func.sum(RegistryTokenUsageHour.bytes).label("bytes"),
            func.count(RegistryTokenUsageHour.address.distinct()).label("clients"),
        ).where(*_range(one_token)),
        Total,
    )


# "This token's (this registry's tokens') downloads in [start, end), all told".
TOTALS = {True: _total(True), False: _total(False)}

# "Each of this registry's tokens' downloads in [start, end)".
TOKEN_TOTALS = Query(
    select(
        RegistryToken.id.label("token_id"),
        RegistryToken.description.label("description"),
        RegistryToken.revoked_at.is_not(None).label("deleted"),
        func.sum(RegistryTokenUsageHour.downloads).label("downloads"),
        func.sum(RegistryTokenUsageHour.bytes).label("bytes"),
        func.count(RegistryTokenUsageHour.address.distinct()).label("clients"),
    )
    .join(RegistryToken, RegistryToken.id == RegistryTokenUsageHour.registry_token_id)
    .where(*_range(False))
    .group_by(RegistryToken.id, RegistryToken.description, RegistryToken.revoked_at)
    .order_by(func.sum(RegistryTokenUsageHour.downloads).desc(), RegistryToken.id),
    TokenTotal,
)
