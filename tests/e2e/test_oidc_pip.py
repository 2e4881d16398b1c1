"""Issue 14 end to end: a real ``serve`` trusting a real loopback issuer; a job publishes
with its OIDC token and real pip installs with another as the password, no stored secret
anywhere."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.distributions import build_wheel
from tests.e2e.test_pip_install import (
    NAME,
    VERSION,
    assert_installed,
    assert_refused_with_401,
    fresh_venv,
    index_url,
    pip_install,
)
from tests.harness import Seeder, ServerProcess, running_server
from tests.oidc_issuer import LocalIssuer, local_issuer
from tests.package_helpers import admin_tenant, bearer, packages_path, registry_path


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as started:
        yield started


@pytest.fixture(scope="module")
def oidc_serve(
    tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer
) -> Iterator[ServerProcess]:
    env = {"REGISTRY_TOKENS_OIDC_ISSUERS": issuer.url}
    with running_server(tmp_path_factory.mktemp("oidc-serve"), env=env) as started:
        yield started


def test_a_job_publishes_with_one_oidc_token_and_pip_installs_with_another(
    oidc_serve: ServerProcess, issuer: LocalIssuer, tmp_path: Path
) -> None:
    owner = admin_tenant(Seeder(oidc_serve))
    aud = f"{oidc_serve.base_url}/{owner.org}/{owner.registry}"
    policy = (
        f"- iss: {issuer.url}\n"
        "  scopes: [read_packages, write_packages]\n"
        "  claims:\n"
        "    pipeline_slug: deploy\n"
        "    build_branch:\n"
        "      not_in: [experimental]\n"
    )
    value = uuid.uuid4().hex
    (tmp_path / "dist").mkdir()
    wheel = build_wheel(tmp_path / "dist", NAME, VERSION, value=value)
    with oidc_serve.client(timeout=60) as client:
        updated = client.patch(
            registry_path(owner.org, owner.registry),
            headers=owner.auth(),
            json={"oidc_policy": policy},
        )
        assert updated.status_code == 200, updated.text
        published = client.post(
            packages_path(owner.org, owner.registry),
            headers=bearer(issuer.token(aud)),
            files={"file": (wheel.name, wheel.read_bytes(), "application/octet-stream")},
        )
        assert published.status_code == 200, published.text

        python = fresh_venv(tmp_path / "venv")
        url = index_url(oidc_serve, owner.org, owner.registry, issuer.token(aud))
        assert_installed(pip_install(python, "--index-url", url, NAME), python, value)

        refused = fresh_venv(tmp_path / "venv-refused")
        experimental = issuer.token(aud, build_branch="experimental")
        url = index_url(oidc_serve, owner.org, owner.registry, experimental)
        assert_refused_with_401(pip_install(refused, "--index-url", url, NAME), refused)

        audit = f"/v2/packages/organizations/{owner.org}/audit-events"
        used = client.get(audit, params={"event_type": "OIDC_TOKEN_USED"}, headers=owner.auth())
        assert sorted(e["data"]["action"] for e in used.json()["items"]) == [
            "install",
            "publish",
        ]
        reasons = _refusal_reasons(client, audit, owner.auth())
        assert reasons
        assert set(reasons) == {"no_matching_statement"}
    assert experimental not in oidc_serve.log_path.read_text()  # never logged


def _refusal_reasons(client: httpx.Client, audit: str, auth: dict[str, str]) -> list[str]:
    """Refusals are written moments after they are answered."""
    for _ in range(50):
        response = client.get(audit, params={"event_type": "OIDC_TOKEN_REFUSED"}, headers=auth)
        reasons = [event["data"]["reason"] for event in response.json()["items"]]
        if reasons:
            return reasons
        time.sleep(0.1)
    return []


def test_an_issuer_that_is_not_https_stops_the_service_with_a_clear_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REGISTRY_TOKENS_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "REGISTRY_TOKENS_OIDC_ISSUERS": "https://agent.buildkite.com,http://issuer.example",
    }
    result = subprocess.run(
        [sys.executable, "-m", "registry_tokens", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "REGISTRY_TOKENS_OIDC_ISSUERS: 'http://issuer.example' must be an https:// URL" in (
        result.stderr
    )
