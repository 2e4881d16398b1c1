"""Issue 11, refused installs: what the audit log records of them, how much of it, when,
and that a refusal takes as long whether or not the token was ever real."""

import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from registry_tokens.kit.secrets import SecretKind, generate_secret
from tests.harness import Seeder, in_process_server
from tests.package_helpers import basic, simple_path, tokens_path


def create_token(
    client: httpx.Client, org: str, registry: str, auth: dict[str, str]
) -> dict[str, Any]:
    response = client.post(tokens_path(org, registry), headers=auth, json={"description": "t"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_once_real_token_is_refused_as_fast_as_a_never_issued_one(tmp_path: Path) -> None:
    """The refusal of a revoked token must not take measurably longer than that of a
    well-formed token no one ever had: else the time tells which strings were real."""
    with in_process_server(tmp_path) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        with server.client() as client:
            path = simple_path(tenant.org, tenant.registry)
            revoked = create_token(client, tenant.org, tenant.registry, tenant.auth())
            deleted = client.delete(
                f"{tokens_path(tenant.org, tenant.registry)}/{revoked['id']}",
                headers=tenant.auth(),
            )
            assert deleted.status_code == 200
            kinds = {
                "once_real": basic(revoked["token"]),
                "never_issued": basic(generate_secret(SecretKind.REGISTRY_TOKEN)),
            }
            timings: dict[str, list[float]] = {kind: [] for kind in kinds}
            for round_ in range(460):
                # Alternating which kind goes first, so neither pays for its position.
                order = list(kinds.items())
                for kind, headers in order if round_ % 2 else reversed(order):
                    started = time.perf_counter()
                    response = client.get(path, headers=headers)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 401
                    if round_ >= 60:  # warmed up
                        timings[kind].append(elapsed)
        seeder.services.database.dispose()
    once_real = statistics.median(timings["once_real"])
    never_issued = statistics.median(timings["never_issued"])
    gap = once_real - never_issued
    print(f"median once-real {once_real * 1e6:.0f} µs, never-issued {never_issued * 1e6:.0f} µs")
    assert gap < 300e-6 or gap < 0.25 * never_issued, (once_real, never_issued)
