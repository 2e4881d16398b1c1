"""A real OIDC issuer on the loopback, for the OIDC tests: OpenID discovery and a JWKS
served over HTTP by a thread, signing keys it can rotate, and tokens it signs like a
Buildkite agent's (``buildkite-agent oidc request-token``)."""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class SigningKey:
    kid: str
    private: PrivateKey
    alg: str

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(public))
        else:
            jwk = json.loads(ECAlgorithm.to_jwk(public))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def new_key(alg: str = "RS256") -> SigningKey:
    private: PrivateKey
    if alg.startswith("ES"):
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(f"key-{uuid.uuid4().hex[:8]}", private, alg)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class LocalIssuer:
    url: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    jwks_requests: int = 0
    discovery_requests: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self, *, keep_old: bool = False, alg: str = "RS256") -> SigningKey:
        """A new signing key, published; the old ones withdrawn unless ``keep_old``."""
        key = new_key(alg)
        self.keys = [*self.keys, key] if keep_old else [key]
        return key

    def claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        """A Buildkite agent token's claims for a job of ``pipeline_slug`` ``deploy``."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": "organization:acme:pipeline:deploy:ref:refs/heads/main:commit:abc:step:",
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            "organization_slug": "acme",
            "pipeline_slug": "deploy",
            "build_number": 42,
            "build_branch": "main",
            "job_id": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        audience: str,
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        signer = key or self.current
        return jwt.encode(
            self.claims(audience, **overrides),
            signer.private,
            algorithm=signer.alg,
            headers={"kid": kid or signer.kid, **(headers or {})},
        )

    def unsigned_token(self, audience: str, **overrides: Any) -> str:
        """``alg: none``: no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.current.kid}).encode())
        body = _b64(json.dumps(self.claims(audience, **overrides)).encode())
        return f"{header}.{body}."

    def hmac_token_with_public_key(self, audience: str) -> str:
        """The classic confusion: HS256 "signed" with the issuer's public key as secret."""
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.current.kid}).encode())
        body = _b64(json.dumps(self.claims(audience)).encode())
        signing_input = f"{header}.{body}".encode()
        signature = hmac.new(self.current.public_pem(), signing_input, hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(signature)}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def local_issuer() -> Iterator[LocalIssuer]:
    """An issuer serving on a free loopback port until the block ends (or ``stop()``)."""
    issuer = LocalIssuer()
    issuer.rotate()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body: dict[str, Any]
            if self.path == "/.well-known/openid-configuration":
                issuer.discovery_requests += 1
                body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
            elif self.path == "/jwks":
                issuer.jwks_requests += 1
                body = {"keys": [key.public_jwk() for key in issuer.keys]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer._server = server
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        issuer.stop()
        thread.join(timeout=5)
