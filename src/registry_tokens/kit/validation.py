"""Checks on user-supplied text shared by the API and the admin CLI."""

import re
from enum import Enum

from registry_tokens.kit.errors import FieldProblem, ValidationFailed

# At least one character that is not whitespace, and no NUL (PostgreSQL cannot store it).
# The same expression is published in the OpenAPI document. Whitespace is spelled out (the
# union of what Python and ECMAScript call \s): the two engines disagree on \s itself.
_WHITESPACE = (
    r"\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
NON_BLANK_TEXT_PATTERN = rf"^[^\x00]*[^{_WHITESPACE}\x00][^\x00]*$"
_NON_BLANK_TEXT = re.compile(NON_BLANK_TEXT_PATTERN)
_ORGANIZATION_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_REGISTRY_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Omitted(Enum):
    """A field the request did not send at all (as opposed to one sent as ``null``)."""

    OMITTED = "omitted"


OMITTED = Omitted.OMITTED


def text_problem(field: str, value: object, *, max_length: int) -> FieldProblem | None:
    """Why ``value`` is not acceptable text for ``field``, or ``None`` when it is."""
    if value is None:
        return FieldProblem(field, "missing", "can't be blank")
    if not isinstance(value, str):
        return FieldProblem(field, "invalid", "must be a string")
    if len(value) > max_length:
        return FieldProblem(field, "invalid", f"is too long (maximum is {max_length} characters)")
    if "\x00" in value:
        return FieldProblem(field, "invalid", "must not contain NUL characters")
    if not _NON_BLANK_TEXT.match(value):
        return FieldProblem(field, "missing", "can't be blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return FieldProblem(field, "invalid", "must be valid Unicode text")
    return None


def require_text(field: str, value: object, *, max_length: int) -> str:
    problem = text_problem(field, value, max_length=max_length)
    if problem is not None:
        raise ValidationFailed([problem])
    assert isinstance(value, str)
    return value


def require_match(field: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    if not pattern.match(value):
        raise ValidationFailed([FieldProblem(field, "invalid", rule)])
    return value


def organization_slug(value: str) -> str:
    return require_match(
        "slug",
        value,
        _ORGANIZATION_SLUG,
        "must be 1-100 lowercase letters, digits, '-' or '_', starting with a letter or digit",
    )


def registry_slug(value: str) -> str:
    return require_match(
        "slug",
        value,
        _REGISTRY_SLUG,
        "must be 1-100 lowercase letters, digits or '-', starting with a letter or digit",
    )


def email_address(value: str) -> str:
    return require_match("email", value.strip().lower(), _EMAIL, "is not an email address")


def slugify(name: str) -> str:
    """The kebab-case slug Buildkite derives from a registry's name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100].rstrip("-")
