"""Persistence: engine and sessions, the declarative base, shared column types."""

from registry_tokens.db.base import Base, IdMixin, UTCDateTime
from registry_tokens.db.engine import Database

__all__ = ["Base", "Database", "IdMixin", "UTCDateTime"]
