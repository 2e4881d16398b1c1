"""Time in one place: UTC, millisecond precision, Buildkite's wire format."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The system clock; services take a clock argument so tests can set the time."""
    return datetime.now(UTC)


def truncate_to_millisecond(value: datetime) -> datetime:
    """What we store and show: the wire format has milliseconds, so no more is kept."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, e.g. ``2024-09-03T06:46:39.441Z``."""
    # isoformat, not strftime: twice as fast, and it writes years before 1000 with four
    # digits ("0999-…"), as RFC 3339 requires, where strftime writes "999-…" here.
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[: -len("+00:00")] + "Z"
