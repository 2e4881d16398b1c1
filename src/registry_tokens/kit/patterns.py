"""Package-name patterns: which packages a registry token may see (``allowed_packages``).

A pattern is a normalized package name in which ``*`` stands for any run of characters
(none included): ``acme-*``, ``@acme/*``, ``*-internal``. Names are compared in their
normalized form: Python's (PEP 503: lower case, runs of ``-_.`` as one ``-``) for a
Python registry, npm's (lower case; ``.`` and ``_`` are part of the name) for an npm one.
Nothing else is special: no ``?``, no ``[…]``, so a pattern means what it looks like.

Matching splits the pattern at its stars once and checks the pieces in order, left to
right: linear in the name, whatever the pattern (no backtracking regex).
"""

import re
from collections.abc import Iterable, Sequence

MAX_PATTERNS = 100
MAX_PATTERN_LENGTH = 214  # npm's longest package name

_PYTHON_PATTERN = re.compile(r"[a-z0-9*](?:[a-z0-9*-]*[a-z0-9*])?")
_NPM_PATTERN = re.compile(r"(?:@[a-z0-9*~-][a-z0-9*._~-]*/)?[a-z0-9*~-][a-z0-9*._~-]*")
_PYTHON_SEPARATORS = re.compile(r"[-_.]+")


def normalized_pattern(pattern: str, ecosystem: str) -> str | None:
    """The pattern as names are compared (``ecosystem``: ``python`` or ``npm``), or
    ``None`` if it cannot match a valid name of that ecosystem."""
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH or "**" in pattern:
        return None
    if ecosystem == "python":
        normalized = _PYTHON_SEPARATORS.sub("-", pattern).lower()
        return normalized if _PYTHON_PATTERN.fullmatch(normalized) else None
    normalized = pattern.lower()
    return normalized if _NPM_PATTERN.fullmatch(normalized) else None


def normalized_name(name: str, ecosystem: str) -> str:
    """A package name as patterns are matched against it."""
    if ecosystem == "python":
        return _PYTHON_SEPARATORS.sub("-", name).lower()
    return name.lower()


class PackagePatterns:
    """A token's ``allowed_packages`` (already normalized), ready to match names."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if "*" not in p)
        self._globs = tuple(p.split("*") for p in self.patterns if "*" in p)

    def allows(self, name: str) -> bool:
        """Whether a normalized package name matches one of the patterns."""
        return name in self._exact or any(_glob_matches(parts, name) for parts in self._globs)

    def filter(self, names: Iterable[str], ecosystem: str) -> list[str]:
        return [name for name in names if self.allows(normalized_name(name, ecosystem))]


def patterns_of(allowed: Sequence[str] | None) -> PackagePatterns | None:
    """``None`` (every package) for a token without ``allowed_packages``."""
    return None if allowed is None else PackagePatterns(allowed)


def _glob_matches(parts: Sequence[str], name: str) -> bool:
    """``parts``: the pattern split at its stars (so at least two)."""
    first, *middle, last = parts
    if len(name) < len(first) + len(last) or not name.startswith(first):
        return False
    if not name.endswith(last):
        return False
    position, end = len(first), len(name) - len(last)
    for part in middle:
        found = name.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True
