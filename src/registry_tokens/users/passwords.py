"""Console passwords: argon2id hashes, the rules a password must meet, and a generator.

The hashing itself is argon2-cffi's: its ``PasswordHasher`` writes PHC strings (the
algorithm, its parameters and the salt travel with each hash), compares in constant time,
and says when a stored hash was made with weaker parameters than today's
(``check_needs_rehash``), so raising the cost later needs no migration: each user's hash
is upgraded at their next sign-in.
"""

import functools
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from registry_tokens.kit.errors import FieldProblem, ValidationFailed

MIN_LENGTH = 12
# An upper bound keeps a sign-in form from being a way to make the server hash megabytes;
# well above any passphrase or password manager's output.
MAX_LENGTH = 1024

# argon2-cffi's defaults are RFC 9106's second recommended profile for argon2id (the
# "low memory" one: 64 MiB, 3 passes, 4 lanes), which a newer release may raise.
_hasher = PasswordHasher()


def normalized(password: str) -> str:
    """The password as it is hashed: NFKC-normalized (NIST SP 800-63B, 5.1.1.2), so that
    the same characters typed on two keyboards, or sent precomposed by one browser and
    decomposed by another, are the same password."""
    return unicodedata.normalize("NFKC", password)


def acceptable(password: str) -> str:
    """``password`` normalized, or a 422 saying which bound it misses.

    Length is counted in characters after normalization. The upper bound is checked on
    the text as given first, so that normalizing (which can lengthen text) never runs on
    an arbitrarily long string.
    """
    if len(password) > MAX_LENGTH or len(text := normalized(password)) > MAX_LENGTH:
        raise _problem(f"is too long (maximum is {MAX_LENGTH} characters)")
    if len(text) < MIN_LENGTH:
        raise _problem(f"is too short (minimum is {MIN_LENGTH} characters)")
    return text


def _problem(text: str) -> ValidationFailed:
    return ValidationFailed([FieldProblem("password", "invalid", text)])


def hash_password(password: str) -> str:
    """An argon2id PHC string of an already ``acceptable`` password."""
    return _hasher.hash(password)


def matches(stored_hash: str, password: str) -> bool:
    """Whether ``password`` (normalized, within bounds) is the one ``stored_hash`` was
    made from; a stored value that is not a readable argon2 hash matches nothing."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with other parameters than today's hasher uses."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash nobody knows the password of, made once per process with the current
    parameters (not a constant), so that verifying against it costs what verifying a
    freshly set or rehashed user's hash costs, whatever argon2-cffi's defaults become."""
    return _hasher.hash(secrets.token_urlsafe(32))


def prepare() -> None:
    """Make the dummy hash now (the server does at start-up), so that not even the first
    refusal of a process costs more than the rest."""
    _dummy_hash()


def spend_one_verification(password: str) -> None:
    """Do the work of one failed verification, for a caller without a hash to verify (an
    unknown email, a user without a password): from the time an answer takes, nobody can
    tell those apart from a wrong password."""
    matches(_dummy_hash(), password)


def generate_password() -> str:
    """A random password of 24 URL-safe characters (144 bits), for ``set-password
    --generate`` and the demo user: easy to paste, far beyond guessing."""
    return secrets.token_urlsafe(18)
