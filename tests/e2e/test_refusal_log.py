"""Refused installs are recorded off the request path (``registry_tokens.refusals``): a
real server stopped with SIGTERM (a graceful shutdown) has written every one it answered."""

from pathlib import Path

from sqlalchemy import func, select

from registry_tokens.audit.models import AuditEvent
from tests.harness import Seeder, running_server
from tests.package_helpers import basic, simple_path, tokens_path


def test_sigterm_writes_every_refusal_answered(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        with server.client() as client:
            secrets = []
            for _ in range(30):
                created = client.post(
                    tokens_path(tenant.org, tenant.registry),
                    headers=tenant.auth(),
                    json={"description": "doomed"},
                )
                assert created.status_code == 200
                url = f"{tokens_path(tenant.org, tenant.registry)}/{created.json()['id']}"
                assert client.delete(url, headers=tenant.auth()).status_code == 200
                secrets.append(created.json()["token"])
            for secret in secrets:  # one each: no token reaches its limit
                refused = client.get(
                    simple_path(tenant.org, tenant.registry), headers=basic(secret)
                )
                assert refused.status_code == 401
        server.stop()  # SIGTERM, at once: the last refusals are still queued
        assert server.process is None
        with seeder.services.database.reading() as session:
            recorded = session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.event_type == "REGISTRY_TOKEN_USE_REFUSED")
            )
        assert recorded == len(secrets)
        seeder.services.database.dispose()
