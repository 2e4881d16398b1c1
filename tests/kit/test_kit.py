"""Unit tests of the small core: secrets, ids, timestamps, slugs."""

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry_tokens.kit import ids, secrets, timestamps, validation
from registry_tokens.kit.errors import ValidationFailed
from registry_tokens.kit.secrets import SecretKind


@pytest.mark.parametrize("kind", list(SecretKind))
def test_generated_secrets_have_the_format_and_a_valid_checksum(kind: SecretKind) -> None:
    secret = secrets.generate_secret(kind)
    assert secret.startswith(f"{kind.value}_")
    assert len(secret) == len(kind.value) + 1 + 36
    assert secrets.secret_kind(secret) is kind


def test_secrets_do_not_repeat() -> None:
    assert len({secrets.generate_secret(SecretKind.REGISTRY_TOKEN) for _ in range(1000)}) == 1000


@given(st.integers(min_value=0, max_value=35), st.sampled_from(secrets.BASE62_ALPHABET))
def test_any_single_character_change_breaks_the_checksum(position: int, char: str) -> None:
    secret = secrets.generate_secret(SecretKind.REGISTRY_TOKEN)
    index = len("bkpt_") + position
    if secret[index] == char:
        return
    tampered = secret[:index] + char + secret[index + 1 :]
    assert secrets.secret_kind(tampered) is None


@given(st.text(max_size=60))
def test_noise_is_not_a_secret(noise: str) -> None:
    assert secrets.secret_kind(noise) is None


def test_hash_is_keyed() -> None:
    secret = secrets.generate_secret(SecretKind.API_ACCESS_TOKEN)
    first = secrets.hash_secret(b"key one", secret)
    assert len(first) == 32
    assert first == secrets.hash_secret(b"key one", secret)
    assert first != secrets.hash_secret(b"key two", secret)
    assert secret.encode() not in first


def test_new_ids_are_uuid7_with_their_creation_millisecond() -> None:
    before = datetime.now(UTC)
    identifier = ids.new_id()
    after = datetime.now(UTC)
    assert identifier.version == 7
    moment = ids.id_timestamp(identifier)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= moment <= after
    assert moment.microsecond % 1000 == 0


def test_seed_id_decodes_to_seed_created_at() -> None:
    seed = uuid.UUID("0191b6a2-aa51-70d0-8a5f-aabce115b0fd")
    assert timestamps.format_timestamp(ids.id_timestamp(seed)) == "2024-09-03T06:46:39.441Z"


def test_graphql_id_matches_the_seed_and_round_trips() -> None:
    seed = uuid.UUID("0191b6a2-aa51-70d0-8a5f-aabce115b0fd")
    encoded = ids.graphql_id("RegistryToken", seed)
    assert encoded == "UmVnaXN0cnlUb2tlbi0tLTAxOTFiNmEyLWFhNTEtNzBkMC04YTVmLWFhYmNlMTE1YjBmZA=="
    assert ids.parse_graphql_id(encoded) == ("RegistryToken", seed)
    with pytest.raises(ValueError, match="GraphQL"):
        ids.parse_graphql_id("not base64!")


def test_timestamps_are_utc_with_milliseconds() -> None:
    moment = datetime(2024, 9, 2, 5, 35, 23, 318999, tzinfo=UTC)
    assert timestamps.format_timestamp(moment) == "2024-09-02T05:35:23.318Z"


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Registry", "my-registry"),
        ("  Python  packages!! ", "python-packages"),
        ("already-kebab", "already-kebab"),
        ("Ünïcode Name 2", "n-code-name-2"),
    ],
)
def test_registry_slugs_are_kebab_case(name: str, slug: str) -> None:
    assert validation.slugify(name) == slug


@pytest.mark.parametrize("value", ["", "   ", "\t\n", "a\x00b", "x" * 256, 5, None, ["a"]])
def test_descriptions_that_are_refused(value: object) -> None:
    with pytest.raises(ValidationFailed):
        validation.require_text("description", value, max_length=255)


@pytest.mark.parametrize("value", ["a", " padded ", "x" * 255, "🎉" * 255, "שלום", "e\u0301"])
def test_descriptions_that_are_kept_exactly(value: str) -> None:
    assert validation.require_text("description", value, max_length=255) == value
