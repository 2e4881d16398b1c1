"""Time in one place: UTC, millisecond precision, Buildkite's wire format."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, e.g. ``2024-09-03T06:46:39.441Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
