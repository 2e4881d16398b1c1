"""Operating the service: /metrics, /healthz and /readyz, and the JSON request log, on
real ``registry-tokens serve`` processes (one worker and several).

``/readyz`` is shown turning 503 when PostgreSQL stops and 200 when it is back, on a
private PostgreSQL cluster of the test's own (``initdb`` and ``pg_ctl`` on a free port):
the shared server at 127.0.0.1:5432 is never stopped.
"""

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.distributions import build_wheel
from tests.harness import Seeder, ServerProcess, free_port, running_server
from tests.package_helpers import admin_tenant, basic, bearer, create_registry_token, published
from tests.ratelimits.test_rate_limits import limits

Sample = tuple[str, tuple[tuple[str, str], ...]]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def sample(name: str, **labels: str) -> Sample:
    return name, tuple(sorted(labels.items()))


def scrape(client: httpx.Client, headers: dict[str, str] | None = None) -> dict[Sample, float]:
    """Every counter and histogram count of ours on ``/metrics``, parsed as Prometheus
    parses the text format."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(response.text):
        if not family.name.startswith("registry_tokens_"):
            continue
        for found in family.samples:
            if found.name.endswith(("_total", "_count")):
                samples[sample(found.name, **found.labels)] = found.value
    return samples


def increments(before: dict[Sample, float], after: dict[Sample, float]) -> dict[Sample, float]:
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if value != before.get(key, 0.0)
    }


def requests_of(route: str, method: str, status: int, times: float) -> dict[Sample, float]:
    """One route's increments: the request counter and the latency histogram's count."""
    return {
        sample(
            "registry_tokens_http_requests_total", route=route, method=method, status=str(status)
        ): times,
        sample(
            "registry_tokens_http_request_duration_seconds_count", route=route, method=method
        ): times,
    }


def merged(*parts: dict[Sample, float]) -> dict[Sample, float]:
    total: dict[Sample, float] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total


@dataclass
class Installing:
    """A python registry with one published wheel, and a registry token that reads it."""

    org: str
    registry: str
    api_token: str
    api_token_id: str
    registry_token: str
    registry_token_id: str
    project_page: str
    download: str
    tokens_path: str


def installing(server: ServerProcess, tmp_path: Path) -> Installing:
    seeder = Seeder(server)
    tenant = admin_tenant(seeder)
    issued = seeder.services.auth.issue(
        tenant.email, ("read_registries", "write_registries", "read_packages")
    )
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = build_wheel(dist, "observed-pkg", "1.0")
    with server.client() as client:
        published(client, tenant.org, tenant.registry, tenant.tokens["rw"], wheel)
        token = create_registry_token(client, tenant.org, tenant.registry, tenant.tokens["rw"])
        page = f"/{tenant.org}/{tenant.registry}/pypi/simple/observed-pkg/"
        listing = client.get(
            page,
            headers={**basic(token["token"]), "Accept": "application/vnd.pypi.simple.v1+json"},
        )
        assert listing.status_code == 200, listing.text
        (file,) = listing.json()["files"]
    download = page.removesuffix("simple/observed-pkg/") + file["url"].removeprefix("../../")
    return Installing(
        org=tenant.org,
        registry=tenant.registry,
        api_token=issued.secret,
        api_token_id=str(issued.token.id),
        registry_token=token["token"],
        registry_token_id=token["id"],
        project_page=page,
        download=download,
        tokens_path=tenant.tokens_path,
    )


def metrics_dirs(server: ServerProcess) -> set[Path]:
    """The multiprocess directories named in the environments of the server's workers."""
    assert server.process is not None
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = set()
    for child in children:
        with contextlib.suppress(OSError):
            for entry in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
                if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                    found.add(Path(entry.split(b"=", 1)[1].decode()))
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_show_exactly_the_requests_made(tmp_path: Path, workers: int) -> None:
    with running_server(tmp_path, serve_args=("--workers", str(workers))) as server:
        seen = installing(server, tmp_path)
        pypi = "/{org}/{registry}/pypi"
        with server.client() as client:
            before = scrape(client)
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
            for _ in range(2):
                assert client.get("/no/such/page").status_code == 404
                page = client.get(seen.project_page, headers=basic(seen.registry_token))
                assert page.status_code == 200
            assert client.get(seen.download, headers=basic(seen.registry_token)).status_code == 200
            index = f"/{seen.org}/{seen.registry}/pypi/simple/"
            assert client.get(index).status_code == 401  # no credentials
            assert client.get(index, headers=basic("not-a-token")).status_code == 401
            listed = client.get(seen.tokens_path, headers=bearer(seen.api_token))
            assert listed.status_code == 200
            after = scrape(client)
        shared = metrics_dirs(server)
        if workers > 1:  # every worker in one private directory, made by serve
            (directory,) = shared
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
            assert list(directory.glob("*.db"))
        else:
            assert not shared
    assert not any(directory.exists() for directory in shared)  # removed when serve stops

    assert increments(before, after) == merged(
        requests_of("/metrics", "GET", 200, 1),  # the first scrape
        requests_of("/healthz", "GET", 200, 3),
        requests_of("/readyz", "GET", 200, 1),
        requests_of("unmatched", "GET", 404, 2),
        requests_of(f"{pypi}/simple/{{project}}/", "GET", 200, 2),
        requests_of(f"{pypi}/files/{{package_id}}/{{filename}}", "GET", 200, 1),
        requests_of(f"{pypi}/simple/", "GET", 401, 2),
        requests_of("/v2/packages/organizations/{org}/registries/{registry}/tokens", "GET", 200, 1),
        {
            sample("registry_tokens_installs_total", ecosystem="python"): 2,
            sample("registry_tokens_downloads_total", ecosystem="python"): 1,
            sample("registry_tokens_credential_refusals_total", reason="missing"): 1,
            sample("registry_tokens_credential_refusals_total", reason="unknown"): 1,
        },
    )


def test_a_revoked_registry_token_is_counted_by_its_reason(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        seen = installing(server, tmp_path)
        with server.client() as client:
            revoked = client.delete(
                f"{seen.tokens_path}/{seen.registry_token_id}", headers=bearer(seen.api_token)
            )
            assert revoked.status_code == 200, revoked.text
            before = scrape(client)
            for _ in range(2):
                refused = client.get(seen.project_page, headers=basic(seen.registry_token))
                assert refused.status_code == 401
            after = scrape(client)
    found = increments(before, after)
    assert found[sample("registry_tokens_credential_refusals_total", reason="revoked")] == 2
    assert not any("ecosystem" in dict(labels) for _, labels in found)


def test_health_and_metrics_are_never_rate_limited(tmp_path: Path) -> None:
    limit, window = 5, 3600
    env = limits(rate_limit_per_client=limit, rate_limit_window_seconds=window)
    with running_server(tmp_path, env=env) as server, server.client() as client:
        before = scrape(client)
        left = window - time.time() % window
        if left < 60:  # the whole test within one window
            time.sleep(left + 0.05)
        for _ in range(limit + 10):
            for path in ("/healthz", "/readyz", "/metrics"):
                answered = client.get(path)
                assert answered.status_code == 200, (path, answered.text)
                assert "ratelimit-limit" not in answered.headers
        # The REST door past the limit (requests without a valid token count per address).
        statuses = [client.get("/v2/user").status_code for _ in range(limit + 3)]
        assert statuses.count(429) >= 3, statuses
        for path in ("/healthz", "/readyz"):
            assert client.get(path).status_code == 200
        after = scrape(client)
    found = increments(before, after)
    assert found[sample("registry_tokens_rate_limited_total", limit="client")] == statuses.count(
        429
    )
    assert found[
        sample("registry_tokens_http_requests_total", route="/v2/user", method="GET", status="429")
    ] == statuses.count(429)


def test_metrics_behind_a_bearer_secret(tmp_path: Path) -> None:
    secret = "metrics-" + os.urandom(8).hex()
    env = {"REGISTRY_TOKENS_METRICS_TOKEN": secret}
    with running_server(tmp_path, env=env) as server, server.client() as client:
        for headers in ({}, bearer("wrong"), {"Authorization": secret}, basic(secret)):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert secret not in refused.text
        assert scrape(client, bearer(secret))
        assert client.get("/healthz").status_code == 200  # probes need no secret


# The JSON request log.

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def request_lines(log: Path) -> dict[str, dict[str, Any]]:
    lines = {}
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if document.get("logger") == "registry_tokens.requests":
            lines[document["request_id"]] = document
    return lines


def test_json_request_log_has_its_fields_and_no_secret(tmp_path: Path) -> None:
    env = {"REGISTRY_TOKENS_LOG_FORMAT": "json", "REGISTRY_TOKENS_WEB_URL": "{base_url}"}
    with running_server(tmp_path, env=env) as server:
        seen = installing(server, tmp_path)
        with server.client() as client:
            rest = client.get(
                f"{seen.tokens_path}?per_page=5&note=query-marker",
                headers={**bearer(seen.api_token), "X-Request-Id": "trace-1.a_B"},
            )
            install = client.get(
                f"/{seen.org}/{seen.registry}/pypi/simple/?query-marker",
                headers={**basic(seen.registry_token), "X-Request-Id": "not sane!"},
            )
            missing = client.get("/no/such/page", headers={"X-Request-Id": "a" * 129})
            refused = client.get(seen.project_page, headers=basic("bkpt_password-marker"))
            signing_in = client.post(
                "/sign-in", data={"email": "nobody@example.test", "password": "password-marker"}
            )
        time.sleep(0.5)  # the server's last lines reach its log
        log_text = server.log_path.read_text()
        lines = request_lines(server.log_path)

    assert rest.status_code == 200
    assert install.status_code == 200
    assert missing.status_code == 404
    assert refused.status_code == 401
    assert rest.headers["x-request-id"] == "trace-1.a_B"
    generated = [
        response.headers["x-request-id"] for response in (install, missing, refused, signing_in)
    ]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in generated), generated
    assert len(set(generated)) == len(generated)

    line = lines["trace-1.a_B"]
    assert TIME.fullmatch(line.pop("time"))
    assert isinstance(line.pop("duration_ms"), float)
    assert line == {
        "level": "info",
        "logger": "registry_tokens.requests",
        "message": "request",
        "request_id": "trace-1.a_B",
        "method": "GET",
        "route": "/v2/packages/organizations/{org}/registries/{registry}/tokens",
        "status": 200,
        "caller_type": "api_token",
        "caller_id": seen.api_token_id,
        "organization": seen.org,
        "client": "127.0.0.1",
    }
    installed = lines[install.headers["x-request-id"]]
    assert installed["route"] == "/{org}/{registry}/pypi/simple/"
    assert (installed["caller_type"], installed["caller_id"]) == (
        "registry_token",
        seen.registry_token_id,
    )
    assert installed["organization"] == seen.org
    unmatched = lines[missing.headers["x-request-id"]]
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)
    assert "caller_id" not in unmatched
    assert "organization" not in unmatched
    assert "caller_id" not in lines[refused.headers["x-request-id"]]
    assert lines[signing_in.headers["x-request-id"]]["route"] == "/sign-in"

    for secret in (seen.api_token, seen.registry_token, "password-marker", "query-marker"):
        assert secret not in log_text
    assert "Basic " not in log_text
    assert "Bearer " not in log_text
    assert 'HTTP/1.1" ' not in log_text  # uvicorn's access log is off: one line per request
    for line_text in log_text.splitlines():  # every line the server wrote is JSON
        if line_text.strip():
            json.loads(line_text)


# /readyz and a database that goes away.


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of this test's own, which it may stop and start."""

    data: Path
    socket_dir: Path
    port: int
    as_postgres: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", options, "-l", str(self.data.parent / "postgres.log"), "-w", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15's initdb is not installed")
    root_user = os.geteuid() == 0
    # initdb refuses to run as root: the cluster is the postgres user's, in a directory
    # of its own (pytest's tmp_path is root's alone, so the cluster cannot live there).
    as_postgres = ["runuser", "-u", "postgres", "--"] if root_user else []
    root = Path(tempfile.mkdtemp(prefix="rt-readyz-pg-"))
    try:
        if root_user:
            shutil.chown(root, "postgres")
        data = root / "data"
        subprocess.run(
            [
                *as_postgres,
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cluster = PrivateCluster(data, root, free_port(), as_postgres)
        cluster.start()
        try:
            yield cluster
        finally:
            subprocess.run(
                [
                    *as_postgres,
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def eventually(check: Callable[[], httpx.Response], status: int, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        answered = check()
        if answered.status_code == status or time.monotonic() > deadline:
            return answered
        time.sleep(0.2)


def test_readyz_follows_the_database_without_a_restart(tmp_path: Path) -> None:
    with (
        private_cluster() as cluster,
        running_server(tmp_path, cluster.url) as server,
        server.client() as client,
    ):
        seeder = Seeder(server)
        tenant = seeder.tenant()
        seeder.services.database.dispose()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ok",
            "checks": {"database": "ok", "migrations": "ok", "storage": "ok"},
        }
        assert ready.headers["cache-control"] == "no-store"

        cluster.stop()
        try:
            unready = eventually(lambda: client.get("/readyz"), 503)
            assert unready.status_code == 503, unready.text
            assert unready.headers["retry-after"] == "5"
            assert unready.headers["cache-control"] == "no-store"
            assert unready.json() == {
                "status": "unavailable",
                "checks": {"database": "unavailable", "migrations": "unknown", "storage": "ok"},
            }
            assert client.get("/healthz").status_code == 200  # alive: no restart wanted
            before = scrape(client)
            assert client.get(tenant.tokens_path, headers=tenant.auth()).status_code == 503
            after = scrape(client)
            assert (
                increments(before, after)[
                    sample("registry_tokens_database_errors_total", kind="unavailable")
                ]
                == 1
            )
        finally:
            cluster.start()

        back = eventually(lambda: client.get("/readyz"), 200)
        assert back.status_code == 200, back.text
        assert client.get(tenant.tokens_path, headers=tenant.auth()).status_code == 200
