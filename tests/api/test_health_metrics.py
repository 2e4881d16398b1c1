"""/healthz, /readyz, /metrics and X-Request-Id on the app in process (the real servers,
several workers, a database that stops and the JSON log are in tests/e2e/test_operations.py)."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from registry_tokens.registries.service import Ecosystem
from tests.harness import Seeder, Tenant, in_process_server, unique
from tests.package_helpers import admin_tenant, basic, bearer, create_registry_token
from tests.packages.test_npm_packages import npm_path, published

HEX_ID = re.compile(r"[0-9a-f]{32}")


def test_healthz_answers_without_credentials_and_uncached(client: httpx.Client) -> None:
    answered = client.get("/healthz")
    assert answered.status_code == 200
    assert answered.json() == {"status": "ok"}
    assert answered.headers["cache-control"] == "no-store"
    head = client.head("/healthz")
    assert head.status_code == 200
    assert head.content == b""


def test_readyz_checks_the_database_migrations_and_storage(client: httpx.Client) -> None:
    answered = client.get("/readyz")
    assert answered.status_code == 200, answered.text
    assert answered.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "storage": "ok"},
    }
    assert answered.headers["cache-control"] == "no-store"
    assert "retry-after" not in answered.headers


def test_readyz_is_503_when_the_package_directory_cannot_be_one(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "packages"
    not_a_directory.write_text("a file where the package directory should be")
    env = {"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(not_a_directory)}
    with in_process_server(tmp_path / "server", env=env) as server, server.client() as client:
        answered = client.get("/readyz")
        assert answered.status_code == 503
        assert answered.headers["retry-after"] == "5"
        assert answered.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "migrations": "ok", "storage": "unavailable"},
        }
        assert client.get("/healthz").status_code == 200


def test_operations_endpoints_are_outside_openapi(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)


def test_request_id_is_echoed_when_sane_and_made_otherwise(
    client: httpx.Client, tenant: Tenant
) -> None:
    for path in ("/healthz", "/no/such/page", tenant.tokens_path, "/v2/user"):
        echoed = client.get(path, headers={"X-Request-Id": "req-1.2_3"})
        assert echoed.headers["x-request-id"] == "req-1.2_3", path
    for insane in (b"a" * 129, b"with space", b"semi;colon", "ünï".encode(), b""):
        made = client.get("/v2/user", headers={b"X-Request-Id": insane})
        assert made.status_code == 401
        assert HEX_ID.fullmatch(made.headers["x-request-id"]), insane
    first, second = (client.get("/healthz").headers["x-request-id"] for _ in range(2))
    assert HEX_ID.fullmatch(first)
    assert first != second
    assert client.get(tenant.tokens_path, headers=tenant.auth()).headers["x-request-id"]


def _labels(text: str) -> list[dict[str, str]]:
    return [
        found.labels
        for family in text_string_to_metric_families(text)
        if family.name.startswith("registry_tokens_")
        for found in family.samples
    ]


def test_metric_labels_never_hold_a_path_a_token_or_a_method_made_up(
    client: httpx.Client, tenant: Tenant
) -> None:
    marker = unique("marker").replace("-", "")
    token = create_registry_token(client, tenant.org, tenant.registry, tenant.tokens["rw"])
    client.get(f"/{marker}/nothing/here")
    client.get(f"/{tenant.org}/{tenant.registry}/pypi/simple/{marker}/", headers=basic(marker))
    client.get(
        f"/{tenant.org}/{tenant.registry}/pypi/simple/{marker}/", headers=basic(token["token"])
    )
    client.get(f"/v2/packages/organizations/{marker}/registries/x/tokens", headers=bearer(marker))
    client.request(marker.upper(), "/healthz")
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    text = scraped.text
    for never in (marker, marker.upper(), token["token"], tenant.tokens["rw"], "127.0.0.1"):
        assert never not in text
    labels = _labels(text)
    assert {"route": "/healthz", "method": "other", "status": "405"} in labels
    routes = {found["route"] for found in labels if "route" in found}
    assert "unmatched" in routes
    assert "/{org}/{registry}/pypi/simple/{project}/" in routes
    assert all(route == "unmatched" or route.startswith("/") for route in routes)


def test_a_metrics_token_guards_metrics_only(tmp_path: Path) -> None:
    env = {"REGISTRY_TOKENS_METRICS_TOKEN": "scrape-secret"}
    with in_process_server(tmp_path, env=env) as server, server.client() as client:
        for headers in ({}, bearer("scrape-secre"), bearer("scrape-secret!"), basic("x")):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
            assert refused.headers["cache-control"] == "no-store"
            assert "x-request-id" in refused.headers
        allowed = client.get("/metrics", headers=bearer("scrape-secret"))
        assert allowed.status_code == 200
        assert "registry_tokens_http_requests_total" in allowed.text
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_an_empty_metrics_token_leaves_metrics_open(tmp_path: Path) -> None:
    with (
        in_process_server(tmp_path, env={"REGISTRY_TOKENS_METRICS_TOKEN": ""}) as server,
        server.client() as client,
    ):
        assert client.get("/metrics").status_code == 200


def _counts(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    return {
        (found.name, tuple(sorted(found.labels.items()))): found.value
        for family in text_string_to_metric_families(scraped.text)
        if family.name.startswith("registry_tokens_")
        for found in family.samples
        if found.name.endswith("_total")
    }


def test_npm_installs_and_downloads_are_counted_as_javascript(
    client: httpx.Client, seeder: Seeder
) -> None:
    tenant = admin_tenant(seeder)
    registry = seeder.services.registries.create(
        tenant.org, "Node", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
    )
    tenant.registry = registry.slug
    published(client, tenant, "observed-js", "1.0.0")
    token = create_registry_token(client, tenant.org, tenant.registry, tenant.tokens["rw"])
    reader = bearer(token["token"])
    before = _counts(client)
    packument = client.get(npm_path(tenant, "observed-js"), headers=reader)
    assert packument.status_code == 200, packument.text
    tarball = urlsplit(packument.json()["versions"]["1.0.0"]["dist"]["tarball"]).path
    assert client.get(tarball, headers=reader).status_code == 200
    after = _counts(client)
    found = {key: value - before.get(key, 0.0) for key, value in after.items()}
    npm = "/{org}/{registry}/npm"
    assert found[("registry_tokens_installs_total", (("ecosystem", "javascript"),))] == 1
    assert found[("registry_tokens_downloads_total", (("ecosystem", "javascript"),))] == 1
    for route in (f"{npm}/{{name:path}}", f"{npm}/{{name:path}}/-/{{filename}}"):
        key = (
            "registry_tokens_http_requests_total",
            (("method", "GET"), ("route", route), ("status", "200")),
        )
        assert found[key] == 1, route
