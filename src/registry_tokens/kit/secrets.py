"""Secret credentials: format, offline checksum, keyed hashing.

A secret is ``<prefix>_`` + 30 random base62 characters + a 6-character base62 CRC32 of
everything before it (the format GitHub and Polar use). The checksum lets a secret
scanner, or our own ``check-token``, tell a real token from noise without a database.

We store only ``HMAC-SHA256(server key, secret)``. The secrets carry ~178 bits of
randomness, so a slow password hash would buy nothing and cost every request.
"""

import hashlib
import hmac
import secrets
import zlib
from enum import StrEnum

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 30
CHECKSUM_LENGTH = 6


class SecretKind(StrEnum):
    """What a secret's prefix says it is."""

    API_ACCESS_TOKEN = "bkua"
    REGISTRY_TOKEN = "bkpt"


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(BASE62_ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_secret(kind: SecretKind) -> str:
    random_part = "".join(secrets.choice(BASE62_ALPHABET) for _ in range(RANDOM_LENGTH))
    body = f"{kind.value}_{random_part}"
    return body + _checksum(body)


def secret_kind(candidate: str) -> SecretKind | None:
    """The kind of a well-formed secret with a valid checksum, else ``None``.

    Cheap and offline: malformed input is turned away before any database work.
    """
    prefix, sep, rest = candidate.partition("_")
    if not sep or len(rest) != RANDOM_LENGTH + CHECKSUM_LENGTH:
        return None
    try:
        kind = SecretKind(prefix)
    except ValueError:
        return None
    if any(char not in BASE62_ALPHABET for char in rest):
        return None
    body, checksum = candidate[:-CHECKSUM_LENGTH], candidate[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return kind


def hash_secret(key: bytes, secret: str) -> bytes:
    """The only form of a secret we ever store: HMAC-SHA256 under the server key."""
    return hmac.new(key, secret.encode("utf-8"), hashlib.sha256).digest()


def digests_match(stored: bytes, presented: bytes) -> bool:
    return hmac.compare_digest(stored, presented)
