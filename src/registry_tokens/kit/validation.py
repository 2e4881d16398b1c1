"""Checks on user-supplied text shared by the API and the admin CLI."""

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from registry_tokens.kit.errors import FieldProblem, ValidationFailed
from registry_tokens.kit.network import MAX_CIDRS, parse_networks
from registry_tokens.kit.timestamps import truncate_to_millisecond

# At least one character that is not whitespace, and no NUL (PostgreSQL cannot store it).
# The same expression is published in the OpenAPI document. Whitespace is spelled out (the
# union of what Python and ECMAScript call \s): the two engines disagree on \s itself.
_WHITESPACE = (
    r"\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
NON_BLANK_TEXT_PATTERN = rf"^[^\x00]*[^{_WHITESPACE}\x00][^\x00]*$"
_ORGANIZATION_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_REGISTRY_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Omitted(Enum):
    """A field the request did not send at all (as opposed to one sent as ``null``)."""

    OMITTED = "omitted"


OMITTED = Omitted.OMITTED


def text_problem(field: str, value: object, *, max_length: int) -> FieldProblem | None:
    """Why ``value`` is not acceptable text for ``field``, or ``None`` when it is: the
    rule of ``text_constraints`` (the request models' text), for values not in a model."""
    try:
        _text_adapter(max_length).validate_python(value)
    except ValidationError as exc:
        return field_problem(field, exc.errors()[0])
    return None


@functools.lru_cache(maxsize=32)
def _text_adapter(max_length: int) -> TypeAdapter[str]:
    return TypeAdapter(Annotated[str, text_constraints(max_length)])


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


def is_organization_slug(value: str) -> bool:
    """Whether ``value`` could be an organization's slug (the rule of ``organization_slug``)."""
    return _ORGANIZATION_SLUG.fullmatch(value) is not None


def is_registry_slug(value: str) -> bool:
    """Whether ``value`` could be a registry's slug (the rule of ``registry_slug``)."""
    return _REGISTRY_SLUG.fullmatch(value) is not None


def email_address(value: str) -> str:
    return require_match("email", value.strip().lower(), _EMAIL, "is not an email address")


def slugify(name: str) -> str:
    """The kebab-case slug Buildkite derives from a registry's name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100].rstrip("-")


# --- request bodies as Pydantic models ------------------------------------------------------
#
# The models' types carry the rules (and so the OpenAPI document); their errors are put in
# Buildkite's words by ``field_problem``, the one translation for the API and the CLI alike.
# A rule a type cannot state raises ``field_error``, whose text is already those words.

_BUILDKITE_ERROR = "buildkite_"


def field_error(code: str, text: str) -> PydanticCustomError:
    """A validation error in Buildkite's words: ``code`` is ``missing`` or ``invalid``."""
    return PydanticCustomError(_BUILDKITE_ERROR + code, "{text}", {"text": text})


def text_constraints(max_length: int) -> StringConstraints:
    """Text as ``text_problem`` accepts it: 1 to ``max_length`` characters, not blank, no NUL
    (and, being a ``str`` from JSON, valid Unicode)."""
    return StringConstraints(min_length=1, max_length=max_length, pattern=NON_BLANK_TEXT_PATTERN)


def field_problem(field: str, error: Mapping[str, Any]) -> FieldProblem:
    """One Pydantic validation error (an ``ErrorDetails``) of ``field``, in Buildkite's words."""
    kind = str(error.get("type"))
    context = error.get("ctx") or {}
    value = error.get("input")
    if kind.startswith(_BUILDKITE_ERROR):
        return FieldProblem(field, kind[len(_BUILDKITE_ERROR) :], str(context.get("text")))
    if kind == "missing" or kind == "string_too_short":
        return FieldProblem(field, "missing", "can't be blank")
    if kind == "string_type":
        if value is None:
            return FieldProblem(field, "missing", "can't be blank")
        return FieldProblem(field, "invalid", "must be a string")
    if kind == "string_too_long":
        maximum = context.get("max_length")
        return FieldProblem(field, "invalid", f"is too long (maximum is {maximum} characters)")
    if kind == "string_pattern_mismatch":
        if isinstance(value, str) and "\x00" in value:
            return FieldProblem(field, "invalid", "must not contain NUL characters")
        return FieldProblem(field, "missing", "can't be blank")
    if kind == "string_unicode":
        return FieldProblem(field, "invalid", "must be valid Unicode text")
    if kind in ("bool_type", "bool_parsing"):
        return FieldProblem(field, "invalid", "must be true or false")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return FieldProblem(field, "invalid", "must be an integer")
    if kind == "greater_than_equal":
        return FieldProblem(field, "invalid", f"must be at least {context.get('ge')}")
    if kind == "less_than_equal":
        return FieldProblem(field, "invalid", f"must be at most {context.get('le')}")
    return FieldProblem(field, "invalid", "is invalid")


def field_problems(errors: Iterable[Mapping[str, Any]]) -> list[FieldProblem]:
    """A model's validation errors (``ValidationError.errors()``), in field order."""
    problems = []
    for error in errors:
        location = tuple(str(part) for part in error.get("loc", ()))
        problems.append(field_problem(location[0] if location else "request", error))
    return problems


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], data: Mapping[str, object]) -> Model:
    """``data`` as ``model``, or the same 422 the API answers (for callers other than it,
    such as the admin CLI)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(field_problems(exc.errors())) from None


def without_defaults(schema: dict[str, Any]) -> None:
    """A request model's ``json_schema_extra``: its fields left out stay as they are, so
    the defaults Pydantic keeps for them are not values a client should send."""
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("default", None)


_NOT_A_TIMESTAMP = "must be an ISO 8601 timestamp, e.g. 2030-01-01T00:00:00Z"


def rfc3339_timestamp(value: object) -> object:
    """A ``BeforeValidator`` for an ``AwareDatetime``: an ISO 8601 string with a time zone
    (RFC 3339's lower-case ``t`` and ``z`` too), in UTC to the millisecond."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise field_error("invalid", _NOT_A_TIMESTAMP)
    try:
        # RFC 3339 allows a lower-case "t" and "z"; Python's parser does not.
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        raise field_error("invalid", _NOT_A_TIMESTAMP) from None
    if moment.tzinfo is None:
        raise field_error("invalid", "must include a time zone, e.g. Z or +00:00")
    try:
        return truncate_to_millisecond(moment.astimezone(UTC))
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise field_error("invalid", "is out of range") from None


def cidr_list(value: object, _handler: Callable[[object], object]) -> list[str] | None:
    """A ``WrapValidator`` for a list of CIDRs: normalized, de-duplicated, and ``None``
    for an empty list (anywhere, as ``null`` is)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise field_error(
            "invalid", 'must be a list of CIDRs, e.g. ["10.0.0.0/8", "2001:db8::/32"]'
        )
    if len(value) > MAX_CIDRS:
        raise field_error("invalid", f"may hold at most {MAX_CIDRS} CIDRs")
    try:
        networks = [str(network) for network in parse_networks(value)]
    except ValueError as exc:
        raise field_error("invalid", str(exc)) from None
    return list(dict.fromkeys(networks)) or None
