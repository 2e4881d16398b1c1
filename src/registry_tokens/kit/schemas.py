"""Pydantic building blocks for responses: Buildkite's timestamp format, the error body."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from registry_tokens.kit.timestamps import format_timestamp

Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2024-09-03T06:46:39.441Z"]}
    ),
]


class _SecretMarker:
    """Marks a response field whose value is a secret (see :data:`Secret`)."""


_SECRET = _SecretMarker()
# A secret in a response (shown once): a response model with such a field is sent with
# ``Cache-Control: no-store`` (``api.http.JsonRoute``), so no cache or history keeps it.
Secret = Annotated[str, _SECRET]


def carries_secret(model: object) -> bool:
    """Whether responses of ``model`` (a route's response model) hold a :data:`Secret`."""
    return (
        isinstance(model, type)
        and issubclass(model, BaseModel)
        and any(_SECRET in field.metadata for field in model.model_fields.values())
    )


class ResponseModel(BaseModel):
    """Responses list their fields in the seed's order and keep nulls."""

    model_config = ConfigDict(from_attributes=False)


class FieldError(BaseModel):
    field: str
    code: str


class ErrorBody(BaseModel):
    """Every non-2xx response: Buildkite's ``{"message": ...}``."""

    model_config = ConfigDict(extra="allow")

    message: str
    errors: list[FieldError] | None = None
