"""Issuers' keys (discovery, JWKS cache, refresh bounds, failing closed), the trusted
issuers setting, and verification details no policy reaches: against a real loopback
issuer, with a clock the test moves."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import jwt
import pytest

from registry_tokens.kit.secrets import SecretKind, generate_secret
from registry_tokens.kit.urls import Urls
from registry_tokens.oidc.keys import IssuerKeys, IssuerUnavailable, UnknownKey
from registry_tokens.oidc.schemas import OidcRefusal, OidcRefused
from registry_tokens.oidc.service import OidcService, looks_like_jwt
from registry_tokens.settings import Settings, SettingsError
from tests.oidc_issuer import LocalIssuer, local_issuer, new_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def own_issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as started:
        yield started


def keys(clock: Clock) -> IssuerKeys:
    return IssuerKeys(refresh_seconds=60, timeout_seconds=2, max_age_seconds=3600, clock=clock)


def test_keys_are_fetched_once_then_again_for_an_unknown_kid_at_most_every_interval(
    own_issuer: LocalIssuer,
) -> None:
    clock = Clock()
    cache = keys(clock)
    first = own_issuer.current
    assert cache.key(own_issuer.url, first.kid).kid == first.kid
    assert cache.key(own_issuer.url, first.kid).kid == first.kid
    assert (own_issuer.discovery_requests, own_issuer.jwks_requests) == (1, 1)

    rotated = own_issuer.rotate(keep_old=True)
    clock.now += 59  # within the interval: the unknown kid is refused without a fetch
    with pytest.raises(UnknownKey):
        cache.key(own_issuer.url, rotated.kid)
    assert own_issuer.jwks_requests == 1
    clock.now += 1
    assert cache.key(own_issuer.url, rotated.kid).kid == rotated.kid
    assert own_issuer.jwks_requests == 2
    with pytest.raises(UnknownKey):  # still unknown after a refresh
        cache.key(own_issuer.url, "nobody")
    assert own_issuer.jwks_requests == 2


def test_keys_older_than_their_max_age_are_fetched_again_and_a_failure_fails_closed(
    own_issuer: LocalIssuer,
) -> None:
    clock = Clock()
    cache = keys(clock)
    kid = own_issuer.current.kid
    cache.key(own_issuer.url, kid)
    clock.now += 3600
    cache.key(own_issuer.url, kid)
    assert own_issuer.jwks_requests == 2
    own_issuer.stop()
    clock.now += 3600
    with pytest.raises(IssuerUnavailable):  # stale keys are not used past a failed fetch
        cache.key(own_issuer.url, kid)
    fetches = cache.fetches
    with pytest.raises(IssuerUnavailable):  # and a failed issuer is not asked again at once
        cache.key(own_issuer.url, kid)
    assert cache.fetches == fetches


def test_discovery_must_name_its_issuer_and_a_usable_jwks_uri(own_issuer: LocalIssuer) -> None:
    clock = Clock()
    with pytest.raises(IssuerUnavailable, match="another issuer"):
        keys(clock).key(f"{own_issuer.url}/", own_issuer.current.kid)  # not what it names
    with pytest.raises(IssuerUnavailable):
        keys(clock).key("http://127.0.0.1:9", None)  # nothing listens there


def test_a_kid_less_token_is_verified_only_when_the_issuer_has_one_key(
    own_issuer: LocalIssuer,
) -> None:
    clock = Clock()
    assert keys(clock).key(own_issuer.url, None).kid == own_issuer.current.kid
    own_issuer.rotate(keep_old=True)
    with pytest.raises(UnknownKey):
        keys(clock).key(own_issuer.url, None)


def service(issuer: LocalIssuer) -> OidcService:
    return OidcService(
        cast(Any, None),  # verification reads no database
        Urls("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        b"k" * 32,
        (issuer.url,),
        IssuerKeys(refresh_seconds=60, timeout_seconds=2),
        lambda use: None,
        lambda: datetime.now(UTC),
    )


def refusal(oidc: OidcService, token: str) -> OidcRefusal:
    with pytest.raises(OidcRefused) as refused:
        oidc.verify(token)
    return refused.value.reason


def test_the_algorithm_must_fit_the_key_it_names(own_issuer: LocalIssuer) -> None:
    oidc = service(own_issuer)
    rsa_key = own_issuer.current
    ec_key = own_issuer.rotate(keep_old=True, alg="ES256")
    aud = "http://127.0.0.1:8080/acme/reg"
    assert oidc.verify(own_issuer.token(aud, key=ec_key)).claims["aud"] == aud
    assert oidc.verify(own_issuer.token(aud, key=rsa_key)).claims["aud"] == aud
    # ES256 under the RSA key's kid; RS384 under an RS256 key (its JWK names RS256).
    forged = own_issuer.token(aud, key=ec_key, kid=rsa_key.kid)
    assert refusal(oidc, forged) is OidcRefusal.ALGORITHM_NOT_ALLOWED
    claims = own_issuer.claims(aud)
    other_alg = jwt.encode(claims, rsa_key.private, algorithm="RS384", headers={"kid": rsa_key.kid})
    assert refusal(oidc, other_alg) is OidcRefusal.ALGORITHM_NOT_ALLOWED
    hs = jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": rsa_key.kid})
    assert refusal(oidc, hs) is OidcRefusal.ALGORITHM_NOT_ALLOWED
    assert refusal(oidc, "e30.e30.") is OidcRefusal.ALGORITHM_NOT_ALLOWED  # {} header
    assert refusal(oidc, "not.a.jwt") is OidcRefusal.MALFORMED
    assert own_issuer.discovery_requests == 1  # none of these fetched anything more


def test_tokens_of_an_untrusted_issuer_never_make_us_fetch_from_it(
    own_issuer: LocalIssuer,
) -> None:
    with local_issuer() as stranger:
        token = stranger.token("http://127.0.0.1:8080/acme/reg")
        assert refusal(service(own_issuer), token) is OidcRefusal.UNTRUSTED_ISSUER
        assert stranger.discovery_requests == 0


def test_our_secrets_never_look_like_a_jwt() -> None:
    for kind in SecretKind:
        assert not looks_like_jwt(generate_secret(kind))
    assert looks_like_jwt(jwt.encode({"a": 1}, new_key().private, algorithm="RS256"))
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d")
    assert not looks_like_jwt("a b.c.d")


@pytest.mark.parametrize(
    "value",
    [
        "http://agent.buildkite.com",
        "ftp://agent.buildkite.com",
        "agent.buildkite.com",
        "https://user:pw@issuer.example",
        "https://issuer.example?x=1",
        "http://127.0.0.2",
        "http://localhost:8000",
        "https://agent.buildkite.com,http://10.0.0.1",
    ],
)
def test_an_issuer_that_is_not_https_or_explicit_loopback_is_a_settings_error(value: str) -> None:
    with pytest.raises(SettingsError, match="REGISTRY_TOKENS_OIDC_ISSUERS"):
        Settings(oidc_issuers=value)


def test_issuers_default_to_buildkite_and_github_and_take_explicit_loopback() -> None:
    assert Settings().oidc_issuer_urls == (
        "https://agent.buildkite.com",
        "https://token.actions.githubusercontent.com",
    )
    settings = Settings(oidc_issuers=" http://127.0.0.1:9000/ , http://[::1]:9001,")
    assert settings.oidc_issuer_urls == ("http://127.0.0.1:9000", "http://[::1]:9001")
