"""Issuers' signing keys: OpenID discovery, then the JWKS it names, cached per issuer.

A token's key id (``kid``) that the cache does not hold makes the keys be fetched again,
but at most once per ``refresh_seconds`` per issuer, so tokens with made-up key ids cannot
make us hammer an issuer (or wait on one) for every request. Keys older than
``max_age_seconds`` are fetched again before use. An issuer that cannot be reached, or
answers with anything but valid discovery and keys, fails closed: no key, no token; a
failed fetch is not tried again for ``refresh_seconds`` either.
"""

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWKSetError

from registry_tokens.kit.urls import oidc_issuer_problem

MAX_DOCUMENT_BYTES = 1024 * 1024  # discovery documents and key sets are a few KiB
DEFAULT_MAX_AGE_SECONDS = 3600.0


class IssuerUnavailable(Exception):
    """The issuer's keys cannot be had now (unreachable, or not valid discovery/JWKS)."""


class UnknownKey(Exception):
    """The issuer has no key with the token's ``kid``, even after fetching them again."""


@dataclass(frozen=True)
class SigningKey:
    """One of an issuer's keys, with what its JWK says about it (type, curve, algorithm)."""

    jwk: PyJWK
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None


@dataclass(frozen=True)
class _KeySet:
    keys: tuple[SigningKey, ...]
    fetched_at: float

    def find(self, kid: str | None) -> SigningKey | None:
        if kid is None:  # no kid: only unambiguous with a single key
            return self.keys[0] if len(self.keys) == 1 else None
        for key in self.keys:
            if key.kid == kid:
                return key
        return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """An issuer's documents are read where they are named, never where they point."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def fetch_json(url: str, timeout: float) -> Any:
    """A JSON document over HTTP(S), bounded in time and size; ``IssuerUnavailable`` for
    anything but a 200 with JSON."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise IssuerUnavailable(f"{url} answered {response.status}")
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise IssuerUnavailable(f"{url}: {error}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise IssuerUnavailable(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise IssuerUnavailable(f"{url} did not answer JSON") from None


class IssuerKeys:
    """The keys of every trusted issuer, shared by every request of the process."""

    def __init__(
        self,
        refresh_seconds: float,
        timeout_seconds: float,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self.timeout_seconds = timeout_seconds
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._sets: dict[str, _KeySet] = {}
        self._failed_at: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetches = 0  # key sets fetched (successfully or not), for tests and logs

    def key(self, issuer: str, kid: str | None) -> SigningKey:
        """The issuer's key ``kid``. Blocking: it may fetch (call it off the event loop).

        One fetch per issuer at a time: requests that find the same key missing wait for
        the one fetch, then read what it found."""
        with self._lock(issuer):
            now = self.clock()
            cached = self._sets.get(issuer)
            if cached is None or now - cached.fetched_at >= self.max_age_seconds:
                cached = self._refresh(issuer, now)
            found = cached.find(kid)
            if found is None and now - cached.fetched_at >= self.refresh_seconds:
                cached = self._refresh(issuer, now)
                found = cached.find(kid)
            if found is None:
                raise UnknownKey(kid)
            return found

    def forget(self) -> None:
        with self._guard:
            self._sets.clear()
            self._failed_at.clear()

    def _lock(self, issuer: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(issuer, threading.Lock())

    def _refresh(self, issuer: str, now: float) -> _KeySet:
        failed = self._failed_at.get(issuer)
        if failed is not None and now - failed < self.refresh_seconds:
            raise IssuerUnavailable(f"{issuer} failed {now - failed:.0f} s ago")
        self.fetches += 1
        try:
            fetched = _KeySet(self._fetch(issuer), now)
        except IssuerUnavailable:
            self._failed_at[issuer] = now
            self._sets.pop(issuer, None)  # fail closed: no stale keys past a failed fetch
            raise
        self._failed_at.pop(issuer, None)
        self._sets[issuer] = fetched
        return fetched

    def _fetch(self, issuer: str) -> tuple[SigningKey, ...]:
        discovery = fetch_json(f"{issuer}/.well-known/openid-configuration", self.timeout_seconds)
        if not isinstance(discovery, dict) or discovery.get("issuer", "").rstrip("/") != issuer:
            raise IssuerUnavailable(f"{issuer}'s discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or oidc_issuer_problem(jwks_uri) is not None:
            raise IssuerUnavailable(f"{issuer}'s discovery document has no usable jwks_uri")
        document = fetch_json(jwks_uri, self.timeout_seconds)
        if not isinstance(document, dict):
            raise IssuerUnavailable(f"{jwks_uri} is not a JSON Web Key Set")
        keys = []
        for data in document.get("keys", []) if isinstance(document.get("keys"), list) else []:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            try:
                jwk = PyJWK(data)
            except (PyJWKError, PyJWKSetError, ValueError, TypeError):
                continue  # a key of a type or curve we cannot use: the others may do
            keys.append(
                SigningKey(
                    jwk,
                    _text(data.get("kid")),
                    str(data.get("kty")),
                    _text(data.get("crv")),
                    _text(data.get("alg")),
                )
            )
        if not keys:
            raise IssuerUnavailable(f"{jwks_uri} holds no usable signing key")
        return tuple(keys)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
