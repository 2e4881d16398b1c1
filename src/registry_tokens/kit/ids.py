"""Identifiers: time-ordered UUIDv7 ids and Buildkite's GraphQL ids."""

import base64
import binascii
import uuid
from datetime import UTC, datetime

import uuid_utils


def new_id() -> uuid.UUID:
    """A fresh UUIDv7: its first 48 bits are the creation time in Unix milliseconds."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def id_timestamp(value: uuid.UUID) -> datetime:
    """The creation instant a UUIDv7 carries, to the millisecond.

    Rows take their ``created_at`` from their id so the two can never disagree.
    """
    if value.version != 7:
        raise ValueError(f"{value} is not a UUIDv7")
    millis = value.int >> 80
    return datetime.fromtimestamp(millis / 1000, tz=UTC).replace(microsecond=(millis % 1000) * 1000)


def graphql_id(type_name: str, value: uuid.UUID) -> str:
    """Buildkite's GraphQL node id: padded base64 of ``<Type>---<uuid>``."""
    return base64.b64encode(f"{type_name}---{value}".encode()).decode("ascii")


def parse_graphql_id(encoded: str) -> tuple[str, uuid.UUID]:
    """The inverse of :func:`graphql_id`; raises ``ValueError`` on anything else."""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a GraphQL id") from exc
    type_name, sep, raw = decoded.partition("---")
    if not sep or not type_name:
        raise ValueError("not a GraphQL id")
    return type_name, uuid.UUID(raw)
