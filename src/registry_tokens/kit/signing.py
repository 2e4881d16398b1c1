"""Signed policies: a JSON object the server signs, hands out, and later believes only if
its signature (HMAC-SHA256 under a key derived from the server's secret key) matches.

Like an S3 presigned POST's ``policy``: the policy is not a secret (the client may read
it); the signature makes any change to it, however small, detectable.
"""

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any


def derive_key(key: bytes, purpose: str) -> bytes:
    """A key of its own for one purpose, so that no other HMAC we compute (a stored
    secret's, say) can ever pass for a policy's signature."""
    return hmac.new(key, f"registry-tokens/{purpose}".encode(), hashlib.sha256).digest()


def sign(key: bytes, claims: dict[str, Any]) -> tuple[str, str]:
    """The policy (base64url of compact, key-sorted JSON) and its hex signature."""
    encoded = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    policy = base64.urlsafe_b64encode(encoded).decode("ascii")
    return policy, _signature(key, policy)


def verify(key: bytes, policy: str, signature: str) -> dict[str, Any] | None:
    """The policy's claims if ``signature`` is its own (compared in constant time), else
    ``None``."""
    if not hmac.compare_digest(_signature(key, policy).encode(), signature.encode()):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(policy.encode("ascii")))
    except (ValueError, binascii.Error):  # signed by us, so never; but never a 500 either
        return None
    return claims if isinstance(claims, dict) else None


def _signature(key: bytes, policy: str) -> str:
    return hmac.new(key, policy.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
