"""The request models on their own: their rules, and their errors in Buildkite's words
(the same for the API and for callers outside it, such as the admin CLI)."""

from typing import Any

import pytest

from registry_tokens.kit.errors import ValidationFailed
from registry_tokens.kit.validation import validated
from registry_tokens.registries.requests import RegistryCreate, RegistryUpdate
from registry_tokens.registry_tokens.schemas import (
    RegistryTokenCreate,
    RegistryTokenRotate,
    RegistryTokenUpdate,
)
from registry_tokens.registry_tokens.service import TokenChanges


def refusal(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationFailed) as caught:
        validated(model, data)
    return caught.value.body()


def test_every_problem_is_reported_at_once_in_field_order() -> None:
    body = refusal(
        RegistryCreate,
        {"name": " ", "ecosystem": "cobol", "color": "", "public": "yes", "emoji": None},
    )
    assert body["message"] == (
        "Validation failed: Name can't be blank, Ecosystem must be one of: python, "
        "javascript, ruby, java, container, helm, debian, redhat, alpine, terraform, swift, "
        "nuget, files, Color can't be blank, Public must be true or false"
    )
    assert body["errors"] == [
        {"field": "name", "code": "missing"},
        {"field": "ecosystem", "code": "invalid"},
        {"field": "color", "code": "missing"},
        {"field": "public", "code": "invalid"},
    ]


def test_token_fields_in_buildkite_words() -> None:
    body = refusal(
        RegistryTokenCreate,
        {"description": "a\x00", "expires_at": "2030-01-01T00:00:00", "allowed_cidrs": ["x"]},
    )
    assert body["message"] == (
        "Validation failed: Description must not contain NUL characters, Expires at must "
        "include a time zone, e.g. Z or +00:00, Allowed cidrs 'x' is not an IPv4 or IPv6 "
        "address or CIDR"
    )


def test_left_out_differs_from_null() -> None:
    assert RegistryTokenUpdate.model_validate({}).changes() == TokenChanges()
    cleared = RegistryTokenUpdate.model_validate({"expires_at": None}).changes()
    assert cleared == TokenChanges(expires_at=None)
    assert RegistryUpdate.model_validate({"emoji": None, "ecosystem": "x"}).fields() == {
        "emoji": None
    }
    assert refusal(RegistryUpdate, {"name": None})["errors"] == [
        {"field": "name", "code": "missing"}
    ]


def test_values_are_normalized() -> None:
    token = RegistryTokenCreate.model_validate(
        {
            "description": "x",
            "expires_at": "2030-01-01t01:00:00.123456+01:00",
            "allowed_cidrs": ["10.0.0.1/8", " 10.0.0.0/8", "2001:DB8::/32"],
        }
    )
    assert token.expires_at is not None
    assert token.expires_at.isoformat() == "2030-01-01T00:00:00.123000+00:00"
    assert token.allowed_cidrs == ["10.0.0.0/8", "2001:db8::/32"]
    assert (
        RegistryTokenCreate.model_validate({"description": "x", "allowed_cidrs": []}).allowed_cidrs
        is None
    )


@pytest.mark.parametrize(("sent", "kept"), [(60.0, 60), (0, 0), (604800, 604800), (None, None)])
def test_grace_period_accepts_whole_numbers(sent: object, kept: int | None) -> None:
    assert (
        RegistryTokenRotate.model_validate({"grace_period_seconds": sent}).grace_period_seconds
        == kept
    )


@pytest.mark.parametrize("sent", [True, "60", 1.5, -1, 604801])
def test_grace_period_refusals(sent: object) -> None:
    assert refusal(RegistryTokenRotate, {"grace_period_seconds": sent})["message"] == (
        "Validation failed: Grace period seconds must be a whole number of seconds from 0 to 604800"
    )
