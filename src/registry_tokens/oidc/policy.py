"""Evaluating a registry's ``oidc_policy`` (normalized by ``registries.oidc_policy``)
against a verified token's claims, with Buildkite's semantics.

Statements are tried in order; the first whose ``iss`` is the token's and whose every
claim rule holds grants its scopes (``read_packages`` alone when it names none). No
statement, no access. Within a rule, every matcher must hold:

- ``equals`` / ``not_equals``: the claim is (is not) the value;
- ``in`` / ``not_in``: the claim is (is not) one of the values;
- ``matches``: the claim matches one of the glob patterns, where ``*`` stands for any
  run of characters (``/`` too) and every other character, ``?`` and ``[`` included,
  stands for itself, so a pattern never means more than it shows.

A claim that is a list (e.g. groups) holds a positive matcher when one of its items
does, and a negative one when none of them matches. Numbers and booleans compare by
their JSON text, so ``build_number: 42`` and ``"42"`` are the same. Everything fails
closed: an absent claim, ``null``, an object, an empty list, or a list holding one of
those, holds no matcher, not even ``not_equals`` or ``not_in`` (a policy that excludes
a branch must not admit a token that names no branch).
"""

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from registry_tokens.registries.oidc_policy import Policy, PolicyProblem, normalize

DEFAULT_SCOPES = ("read_packages",)


def canonical(value: object) -> str | None:
    """A scalar's text for comparison (``None`` for anything that is not one)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return None


def _claim_texts(value: object) -> list[str] | None:
    """The claim as texts to compare; ``None`` when it cannot be compared at all."""
    if isinstance(value, list):
        texts = [canonical(item) for item in value]
        if not texts or any(text is None for text in texts):
            return None
        return [text for text in texts if text is not None]
    text = canonical(value)
    return None if text is None else [text]


@functools.lru_cache(maxsize=4096)
def glob(pattern: str) -> re.Pattern[str]:
    """``*`` is any run of characters; everything else is literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _values(values: Sequence[object]) -> set[str]:
    return {text for text in (canonical(value) for value in values) if text is not None}


def rule_holds(rule: Mapping[str, Any], value: object, present: bool = True) -> bool:
    """Whether every matcher of a (normalized) rule holds for the claim's value."""
    texts = _claim_texts(value) if present else None
    if texts is None:
        return False
    for matcher, expected in rule.items():
        if matcher == "equals":
            held = canonical(expected) in texts
        elif matcher == "not_equals":
            held = canonical(expected) not in texts
        elif matcher == "in":
            held = not _values(expected).isdisjoint(texts)
        elif matcher == "not_in":
            held = _values(expected).isdisjoint(texts)
        elif matcher == "matches":
            held = any(glob(pattern).fullmatch(text) for pattern in expected for text in texts)
        else:  # a matcher normalize() does not know: never a grant
            held = False
        if not held:
            return False
    return True


def statement_holds(statement: Mapping[str, Any], claims: Mapping[str, Any]) -> bool:
    if str(statement.get("iss", "")).rstrip("/") != str(claims.get("iss", "")).rstrip("/"):
        return False
    rules: Mapping[str, Any] = statement.get("claims") or {}
    if not rules:  # normalize() refuses these; never a grant
        return False
    return all(rule_holds(rule, claims.get(name), name in claims) for name, rule in rules.items())


def first_match(policy: Policy, claims: Mapping[str, Any]) -> tuple[int, tuple[str, ...]] | None:
    """The first statement that holds (its index) and the scopes it grants."""
    for index, statement in enumerate(policy):
        if statement_holds(statement, claims):
            return index, tuple(statement.get("scopes") or DEFAULT_SCOPES)
    return None


@functools.lru_cache(maxsize=1024)
def parsed(stored: str) -> Policy | None:
    """A registry's stored policy, ready to evaluate; ``None`` when there is none, or when
    text stored before policies were checked is not a valid policy (no grant)."""
    try:
        return normalize(json.loads(stored))
    except (ValueError, RecursionError, PolicyProblem):
        return None
