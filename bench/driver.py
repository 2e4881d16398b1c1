"""The bench: each backend on a fresh database, seeded small then big, driven with wrk,
every measurement next to the baseline's, results to ``results.json`` and ``RESULTS.md``.

Run it with ``bench/run`` (which installs wrk and the venv first); see bench/README.md.
"""

import argparse
import base64
import json
import math
import os
import random
import secrets
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests import harness
from tests.distributions import build_wheel

from bench import peer_app, report, seed
from bench.load import LoadSettings, Request, run_wrk
from bench.processes import (
    ROOT,
    Processes,
    Server,
    cpu_seconds,
    free_port,
    managed,
    memory_kib,
    run_checked,
)
from registry_tokens.kit.secrets import SecretKind, generate_secret
from registry_tokens.settings import Settings

BENCH_DIR = ROOT / "bench"
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")
# The order every phase measures them in: reads first (on the freshly seeded data), then
# the writes, which add rows (to the scratch registry only).
PATHS = (
    "get",
    "list",
    "list_deep",
    "install",
    "install_index",
    "download",
    "download_quota",
    "create",
    "update",
    "delete",
)
EXTRA_PATHS = ("install_w2",)
# The primary table: each of these is also measured with the rate limits off, against a
# second server started beside the first, right after the baseline.
PRIMARY_PATHS = ("install", "install_index", "get", "list", "create")
# The shipped defaults count every REST request against the organization's, the user's
# (and, unauthenticated, the client's) limits; the bench keeps them counting with limits
# no run can reach, so that nothing is refused. 0 turns them off.
LIMITS_COUNTING = 1_000_000_000
RATE_LIMIT_VARIABLES = (
    "REGISTRY_TOKENS_RATE_LIMIT_PER_ORGANIZATION",
    "REGISTRY_TOKENS_RATE_LIMIT_PER_USER",
    "REGISTRY_TOKENS_RATE_LIMIT_PER_CLIENT",
)
# Installs never count against a limit (only refusals do): no RateLimit-* headers to check.
UNCOUNTED_PATHS = ("install", "install_index", "install_w2", "download", "download_quota")
# The quotas of the token "download_quota" downloads with: every one counted, exactly, in
# the database before the file is sent, with room for any run (none may be refused).
QUOTAS = {
    "max_downloads": 2_000_000_000,
    "max_bytes": 2**53 - 1,
    "max_clients": 1_000,
    "quota_period": "month",
}
PEER_USER = "buildkite"
PEER = "pypiserver"  # the backend name of the peer's runs
SMALL_LABEL = "1k"
DEEP_PAGE = 1000
PER_PAGE = 30
SMALL_TOTAL = 1_000
SMALL_MAIN = 500
GET_IDS = 1_000
PROJECT = "bench-pkg"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
MAX_TARGETS = 200_000
# What a server log line at warning level or above may say that matters here.
LOG_MARKERS = ("database busy", "Traceback", "unhandled error", "database error", "ERROR:")


@dataclass(frozen=True)
class Options:
    mode: str
    backends: tuple[str, ...]
    paths: tuple[str, ...]
    load: LoadSettings
    big_total: int
    big_main: int
    keep: bool
    output_dir: Path
    peer: bool = True

    @property
    def big_label(self) -> str:
        return report.size_label(self.big_total)


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark registry-tokens against a bare ASGI baseline (bench/README.md).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3 s per measurement, 1 s warm-up, no big dataset (unless --big)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated, in order (default: sqlite,postgresql)",
    )
    parser.add_argument(
        "--duration", type=float, help="seconds of load per measurement (default 12; quick 3)"
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds of load before each measurement (default 2)"
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated paths to measure (default all): {', '.join(PATHS + EXTRA_PATHS)}",
    )
    parser.add_argument(
        "--big", type=int, help="tokens in the big dataset (default 1,000,000; 0: none)"
    )
    parser.add_argument(
        "--no-peer", action="store_true", help="do not measure the peer (pypiserver)"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--keep", action="store_true", help="keep bench/.work/ (databases, logs, wrk specs)"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=BENCH_DIR,
        help="where results.json and RESULTS.md go (default: bench/)",
    )
    arguments = parser.parse_args(argv)
    backends = tuple(part.strip() for part in arguments.backends.split(",") if part.strip())
    unknown = set(backends) - set(BACKENDS)
    if unknown or not backends:
        parser.error(f"--backends: choose from {', '.join(BACKENDS)}")
    paths: tuple[str, ...] = PATHS + EXTRA_PATHS
    if arguments.only:
        paths = tuple(part.strip() for part in arguments.only.split(",") if part.strip())
        bad = set(paths) - set(PATHS + EXTRA_PATHS)
        if bad:
            parser.error(f"--only: unknown {', '.join(sorted(bad))}")
        if "install_w2" in paths and "install" not in paths:
            paths = (*paths, "install")  # the one-worker figure it is compared with
    quick = bool(arguments.quick)
    duration = arguments.duration or (3.0 if quick else 12.0)
    warmup = arguments.warmup if arguments.warmup is not None else (1.0 if quick else 2.0)
    big_total = arguments.big if arguments.big is not None else (0 if quick else 1_000_000)
    # The deep page (1000 of 30) needs more than 29,970 live tokens in the main registry.
    big_main = max(DEEP_PAGE * PER_PAGE + 1_000, min(40_000, big_total // 2))
    if big_total and big_total < big_main + SMALL_TOTAL:
        parser.error(f"--big must be 0 or at least {big_main + SMALL_TOTAL}")
    if duration < 1 or warmup < 0:
        parser.error("--duration must be at least 1 and --warmup at least 0")
    return Options(
        mode="quick" if quick else "full",
        backends=backends,
        paths=paths,
        load=LoadSettings(
            duration=duration,
            warmup=warmup,
            connections=arguments.connections,
            threads=arguments.threads,
        ),
        big_total=big_total,
        big_main=big_main,
        keep=bool(arguments.keep),
        output_dir=arguments.output_dir,
        peer=not arguments.no_peer,
    )


def log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


def scratch_database(backend: str, workdir: Path) -> AbstractContextManager[str]:
    """A fresh database (tests/harness.py's); a PostgreSQL one is dropped afterwards."""
    return harness.scratch_database(
        workdir, backend=backend, admin_url=POSTGRES_ADMIN_URL, prefix="rt_bench"
    )


@dataclass
class Probe:
    """The real response to one request of a path: what the baseline must answer."""

    status: int
    content_type: str
    body: bytes
    rate_limit: dict[str, str] = field(default_factory=dict)


class MeasurementFailed(RuntimeError):
    """A measured run had errors: a refused (429) or failed request, a socket error."""


@dataclass
class BackendRun:
    options: Options
    processes: Processes
    backend: str
    database_url: str
    workdir: Path
    runs: list[dict[str, Any]]
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    tenant: seed.Tenant | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(20261127))  # noqa: S311
    write_rate: float = 0.0
    targets: list[str] = field(default_factory=list)
    warm_targets: list[str] = field(default_factory=list)
    wheel: Path | None = None
    download_path: str = ""  # the wheel's file URL, from the project page
    quota_secret: str = ""  # a registry token of main with QUOTAS
    peer: dict[str, Any] = field(default_factory=dict)

    # -- the service ---------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            secret_key=self.secret_key,
            package_storage_dir=self.workdir / "packages",
        )

    def service_env(self, port: int, limits: bool = True) -> dict[str, str]:
        """The shipped defaults but for what the bench must set: the database, the key,
        the URLs, where packages go, and rate limits high enough that nothing is refused
        (still counting) or, with ``limits=False``, off. Nothing else: the log level is
        the default (info: uvicorn's access log, which goes to /dev/null)."""
        value = str(LIMITS_COUNTING if limits else 0)
        environment = {
            key: item for key, item in os.environ.items() if not key.startswith("REGISTRY_TOKENS_")
        }
        return {
            **environment,
            "REGISTRY_TOKENS_DATABASE_URL": self.database_url,
            "REGISTRY_TOKENS_SECRET_KEY": self.secret_key,
            "REGISTRY_TOKENS_API_URL": f"http://127.0.0.1:{port}",
            "REGISTRY_TOKENS_WEB_URL": "http://web.example.test",
            "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(self.workdir / "packages"),
            **dict.fromkeys(RATE_LIMIT_VARIABLES, value),
        }

    def start_service(self, workers: int, label: str, limits: bool = True) -> Server:
        port = free_port()
        argv = [
            str(ROOT / ".venv" / "bin" / "registry-tokens"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        limits_label = "limits counting" if limits else "limits off"
        log(
            f"{self.backend}: starting registry-tokens serve --workers {workers} on :{port} "
            f"({limits_label})"
        )
        server = self.processes.start_server(
            f"registry-tokens ({self.backend}, {label}, {workers} workers, {limits_label})",
            argv,
            self.service_env(port, limits),
            self.workdir / f"server-{label}-w{workers}{'' if limits else '-off'}.log",
            port,
            workers,
            ready_path="/openapi.json",
        )
        log(f"{self.backend}: serving pid {', '.join(map(str, server.serving_pids()))}")
        return server

    def start_baseline(self, probe: Probe, workers: int, name: str) -> Server:
        port = free_port()
        body_file = self.workdir / "baseline" / f"{name}.body"
        body_file.parent.mkdir(parents=True, exist_ok=True)
        body_file.write_bytes(probe.body)
        env = {
            **os.environ,
            "BENCH_BASELINE_STATUS": str(probe.status),
            "BENCH_BASELINE_CONTENT_TYPE": probe.content_type,
            "BENCH_BASELINE_BODY_FILE": str(body_file),
        }
        argv = [
            sys.executable,
            "-m",
            "bench.baseline_app",
            "--port",
            str(port),
            "--workers",
            str(workers),
            # uvicorn's default, as `registry-tokens serve` runs with by default.
            "--log-level",
            "info",
        ]
        return self.processes.start_server(
            f"baseline ({name}, {workers} workers)",
            argv,
            env,
            self.workdir / "baseline" / f"{name}.log",
            port,
            workers,
            ready_path="/",
        )

    # -- seeding -------------------------------------------------------------------------

    def prepare(self) -> None:
        log(f"{self.backend}: registry-tokens db upgrade")
        run_checked(
            [str(ROOT / ".venv" / "bin" / "registry-tokens"), "db", "upgrade"],
            self.service_env(0),
            timeout=300,
        )
        self.tenant = seed.create_tenant(self.settings)

    def seed_small(self) -> None:
        tenant = self._tenant()
        fillers = _spread(SMALL_TOTAL - SMALL_MAIN, tenant.filler_ids)
        now_ms = int(time.time() * 1000)
        result = seed.seed_tokens(
            self.settings,
            tenant,
            [(tenant.main_id, SMALL_MAIN), *fillers],
            start_ms=now_ms - 2 * seed.DAY_MS,
            end_ms=now_ms - seed.DAY_MS,
            description="bench small",
            known_secrets=seed.KNOWN_SECRETS,
            rng=self.rng,
        )
        seed.check_ids(self.settings)
        self._record_dataset(SMALL_LABEL, result)

    def seed_big(self) -> None:
        tenant = self._tenant()
        counts = seed.count_by_registry(self.settings)
        main_more = max(0, self.options.big_main - counts.get(tenant.main_id, 0))
        rest = max(0, self.options.big_total - sum(counts.values()) - main_more)
        now_ms = int(time.time() * 1000)
        log(f"{self.backend}: seeding {main_more + rest:,} more tokens")
        result = seed.seed_tokens(
            self.settings,
            tenant,
            [(tenant.main_id, main_more), *_spread(rest, tenant.filler_ids)],
            start_ms=now_ms - 400 * seed.DAY_MS,
            end_ms=now_ms - 2 * seed.DAY_MS,
            description="bench big",
            rng=self.rng,
        )
        seed.check_ids(self.settings)
        self._record_dataset(self.options.big_label, result)

    def _record_dataset(self, label: str, result: seed.SeedReport) -> None:
        tenant = self._tenant()
        self.datasets[label] = {
            "inserted": result.inserted,
            "seed_seconds": round(result.seconds, 1),
            "rows_per_second": round(result.inserted / max(result.seconds, 1e-9)),
            "total_tokens": result.total,
            "main_registry_tokens": result.by_registry.get(tenant.main_id, 0),
            "scratch_registry_tokens": result.by_registry.get(tenant.scratch_id, 0),
            "registries_with_tokens": len(result.by_registry),
        }
        log(
            f"{self.backend}: {label}: inserted {result.inserted:,} tokens in "
            f"{result.seconds:.1f}s; {result.total:,} in all, "
            f"{self.datasets[label]['main_registry_tokens']:,} in the main registry"
        )

    def add_targets(self, dataset: str) -> None:
        """Live tokens for update and delete to walk: enough that delete never runs out."""
        tenant = self._tenant()
        load = self.options.load
        rate = max(self.write_rate, 300.0)
        warm = math.ceil(rate * load.warmup * 3) + 100
        measured = min(MAX_TARGETS, math.ceil(rate * load.duration * 3) + 500)
        now_ms = int(time.time() * 1000)
        batch = seed.Batch(
            [tenant.scratch_id] * (warm + measured),
            now_ms - 3_600_000,
            now_ms - 60_000,
            f"bench target {dataset}",
        )
        rows = list(
            seed.token_rows(batch, tenant.user_id, self.settings.secret_key_bytes, self.rng)
        )
        seed.insert_tokens(self.settings, rows)
        ids = [str(row["id"]) for row in rows]
        self.rng.shuffle(ids)
        self.warm_targets, self.targets = ids[:warm], ids[warm:]
        log(f"{self.backend}: {dataset}: {len(ids):,} live tokens to update and delete")

    def _tenant(self) -> seed.Tenant:
        assert self.tenant is not None
        return self.tenant

    # -- the paths -----------------------------------------------------------------------

    def rest_headers(self, json_body: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._tenant().api_token}"}
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    def tokens_path(self, registry: str) -> str:
        return f"/v2/packages/organizations/{seed.ORG}/registries/{registry}/tokens"

    def install_request(self) -> Request:
        secret = self._tenant().known_secrets[0]
        credentials = base64.b64encode(f"buildkite:{secret}".encode()).decode("ascii")
        return Request(
            "GET",
            f"/{seed.ORG}/{seed.MAIN}/pypi/simple/{PROJECT}/",
            {"Authorization": f"Basic {credentials}", "Accept": PIP_ACCEPT},
        )

    def request_for(self, path: str, label: str) -> Request:
        main = self.tokens_path(seed.MAIN)
        scratch = self.tokens_path(seed.SCRATCH)
        if path == "get":
            ids = seed.live_ids(self.settings, self._tenant().main_id)
            self.rng.shuffle(ids)
            return Request("GET", f"{main}/{{id}}", self.rest_headers(), ids=_strs(ids[:GET_IDS]))
        if path == "list":
            return Request("GET", f"{main}?page=1&per_page={PER_PAGE}", self.rest_headers())
        if path == "list_deep":
            return Request(
                "GET", f"{main}?page={DEEP_PAGE}&per_page={PER_PAGE}", self.rest_headers()
            )
        if path in ("install", "install_w2"):
            return self.install_request()
        if path == "install_index":
            return replace(self.install_request(), path=f"/{seed.ORG}/{seed.MAIN}/pypi/simple/")
        if path in ("download", "download_quota"):
            # The wheel pip downloads after the project page, with a token without limits
            # (counted after it is served) or with quotas (counted, exactly, before).
            secret = self._tenant().known_secrets[0] if path == "download" else self.quota_secret
            credentials = base64.b64encode(f"buildkite:{secret}".encode()).decode("ascii")
            return Request("GET", self.download_path, {"Authorization": f"Basic {credentials}"})
        if path == "create":
            body = json.dumps({"description": f"bench create {label} {{n}}"})
            return Request("POST", scratch, self.rest_headers(json_body=True), body)
        if path == "update":
            body = json.dumps({"description": f"bench update {label} {{n}}"})
            return Request(
                "POST", f"{scratch}/{{id}}", self.rest_headers(json_body=True), body, self.targets
            )
        if path == "delete":
            return Request("DELETE", f"{scratch}/{{id}}", self.rest_headers(), ids=self.targets)
        raise ValueError(path)

    def publish_wheel(self, server: Server) -> None:
        wheel = build_wheel(self.workdir, PROJECT, "1.0.0")
        self.wheel = wheel
        response = httpx.post(
            f"{server.base_url}/v2/packages/organizations/{seed.ORG}/registries/{seed.MAIN}/packages",
            headers=self.rest_headers(),
            files={"file": (wheel.name, wheel.read_bytes(), "application/octet-stream")},
            timeout=30,
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"publishing {wheel.name}: {response.status_code} {response.text}")
        self.download_path = self.find_download_path(server)
        created = httpx.post(
            f"{server.base_url}{self.tokens_path(seed.MAIN)}",
            headers=self.rest_headers(),
            json={"description": "bench quotas", **QUOTAS},
            timeout=30,
        )
        if created.status_code != 200:
            raise RuntimeError(f"creating the quota token: {created.status_code} {created.text}")
        self.quota_secret = created.json()["token"]

    def find_download_path(self, server: Server) -> str:
        """The wheel's URL on the project page (PEP 691 JSON), as pip finds it."""
        request = self.install_request()
        headers = {**request.headers, "Accept": "application/vnd.pypi.simple.v1+json"}
        page = httpx.get(f"{server.base_url}{request.path}", headers=headers, timeout=30)
        page.raise_for_status()
        url = page.json()["files"][0]["url"]
        return str(httpx.URL(f"{server.base_url}{request.path}").join(url).raw_path.decode())

    def check_install_auth(self, server: Server) -> None:
        """Every known secret installs; a well-formed unknown one does not."""
        request = self.install_request()
        for secret in self._tenant().known_secrets:
            credentials = base64.b64encode(f"buildkite:{secret}".encode()).decode("ascii")
            headers = {**request.headers, "Authorization": f"Basic {credentials}"}
            response = httpx.get(f"{server.base_url}{request.path}", headers=headers, timeout=30)
            if response.status_code != 200 or PROJECT.replace("-", "_") not in response.text:
                raise RuntimeError(f"a seeded secret did not install: {response.status_code}")
        stranger = generate_secret(SecretKind.REGISTRY_TOKEN)
        credentials = base64.b64encode(f"buildkite:{stranger}".encode()).decode("ascii")
        headers = {**request.headers, "Authorization": f"Basic {credentials}"}
        response = httpx.get(f"{server.base_url}{request.path}", headers=headers, timeout=30)
        if response.status_code != 401:
            raise RuntimeError(f"an unknown secret was not refused: {response.status_code}")

    # -- measuring -----------------------------------------------------------------------

    def phase(self, dataset: str, server: Server, off_server: Server | None) -> None:
        for path in PATHS:
            if path not in self.options.paths:
                continue
            if path == "list_deep" and self.datasets[dataset]["main_registry_tokens"] <= (
                (DEEP_PAGE - 1) * PER_PAGE
            ):
                log(f"{self.backend}: {dataset}: list_deep skipped (page {DEEP_PAGE} is empty)")
                continue
            if path in ("update", "delete") and not self.targets:
                self.add_targets(dataset)
            self.measure(dataset, path, server, off_server if path in PRIMARY_PATHS else None)
        self.targets, self.warm_targets = [], []

    def probe(self, server: Server, request: Request) -> Probe:
        path, body = request.concrete()
        response = httpx.request(
            request.method,
            f"{server.base_url}{path}",
            headers=request.headers,
            content=body.encode() if body is not None else None,
            timeout=60,
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"{server.name}: {request.method} {path}: expected 200, got "
                f"{response.status_code}: {response.text[:500]}"
            )
        rate_limit = {
            key: response.headers[key]
            for key in ("RateLimit-Limit", "RateLimit-Remaining")
            if key in response.headers
        }
        return Probe(
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
            rate_limit,
        )

    def check_limits(self, server: Server, path: str, probe: Probe, limits: bool) -> None:
        """The server's REST answers say its limits are counting (RateLimit-Limit is the
        bench's, RateLimit-Remaining below it), or, limits off, carry no RateLimit-*."""
        if path in UNCOUNTED_PATHS:
            return
        if not limits:
            if probe.rate_limit:
                raise RuntimeError(f"{server.name}: limits are off but it said {probe.rate_limit}")
            return
        limit = probe.rate_limit.get("RateLimit-Limit")
        remaining = probe.rate_limit.get("RateLimit-Remaining")
        if limit != str(LIMITS_COUNTING) or remaining is None or int(remaining) >= LIMITS_COUNTING:
            raise RuntimeError(
                f"{server.name}: {path}: rate limits are not counting ({probe.rate_limit})"
            )

    def measure(
        self, dataset: str, path: str, server: Server, off_server: Server | None = None
    ) -> None:
        label = f"{dataset}-{path}-w{server.workers}"
        request = self.request_for(path, label)
        probe_request = request
        if request.ids:
            # The probe uses its own id, so a delete's probe never takes one from the walk.
            probe_request = replace(request, ids=request.ids[:1])
            request = replace(request, ids=request.ids[1:])
        probe = self.probe(server, probe_request)
        self.check_limits(server, path, probe, limits=True)
        warm_request = request
        if path == "delete":
            warm_request = replace(request, ids=self.warm_targets)
        elif path == "update":
            warm_request = replace(
                request, body=(request.body or "").replace(label, f"{label}-warm")
            )
        log(
            f"{self.backend}: {dataset}: {path} (workers {server.workers}): response "
            f"{probe.status}, {len(probe.body):,} bytes {probe.content_type}"
            f"{', ' + str(probe.rate_limit) if probe.rate_limit else ''}"
        )
        service = self.load(server, warm_request, request, label, "service")
        if path == "create":
            self.write_rate = max(self.write_rate, service["wrk"]["requests_per_second"])
        baseline_server = self.start_baseline(probe, server.workers, label)
        try:
            baseline = self.load(baseline_server, warm_request, request, label, "baseline")
        finally:
            self.processes.stop(baseline_server)
        measured = [("service", service), ("baseline", baseline)]
        if off_server is not None:
            off_label = f"{label}-off"
            off_request = replace(
                request, body=request.body.replace(label, off_label) if request.body else None
            )
            off_probe = self.probe(off_server, off_request)
            self.check_limits(off_server, path, off_probe, limits=False)
            if off_probe.status != probe.status or off_probe.content_type != probe.content_type:
                raise RuntimeError(f"{path}: limits off, the answer differs: {off_probe}")
            off = self.load(off_server, off_request, off_request, off_label, "limits-off")
            measured.append(("service_limits_off", off))
        response = {
            "status": probe.status,
            "content_type": probe.content_type,
            "bytes": len(probe.body),
            "rate_limit": probe.rate_limit,
        }
        self.record(self.backend, dataset, path, server.workers, response, measured)
        self.log_figures(measured)

    def record(
        self,
        backend: str,
        dataset: str,
        path: str,
        workers: int,
        response: dict[str, Any],
        measured: list[tuple[str, dict[str, Any]]],
    ) -> None:
        for kind, figures in measured:
            self.runs.append(
                {
                    "backend": backend,
                    "dataset": dataset,
                    "path": path,
                    "workers": workers,
                    "kind": kind,
                    "response": response,
                    **figures,
                }
            )

    def log_figures(self, measured: list[tuple[str, dict[str, Any]]]) -> None:
        figures = dict(measured)
        base_rps = figures["baseline"]["wrk"]["requests_per_second"]
        for kind, found in measured:
            wrk = found["wrk"]
            ratio = wrk["requests_per_second"] / base_rps if base_rps else 0.0
            log(
                f"    {kind:<18} {wrk['requests_per_second']:>9.1f} req/s "
                f"p50 {wrk['p50_ms']:.2f} ms p99 {wrk['p99_ms']:.2f} ms "
                f"peak RSS {found['rss_peak_mb']:.0f} MB; vs baseline {ratio:.3f}"
            )

    def load(
        self, server: Server, warm: Request, measured: Request, label: str, kind: str
    ) -> dict[str, Any]:
        load = self.options.load
        specs = self.workdir / "wrk"
        log_path = self.workdir / "wrk.log"
        if load.warmup > 0:
            warm_spec = warm.write_spec(specs, f"{label}-{kind}-warm", load.threads)
            run_wrk(server.base_url, warm_spec, load.warmup, load, log_path)
        spec = measured.write_spec(specs, f"{label}-{kind}", load.threads)
        pids = server.serving_pids()
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        load_average = os.getloadavg()
        started = time.monotonic()
        result = run_wrk(server.base_url, spec, load.duration, load, log_path)
        elapsed = time.monotonic() - started
        cpu_used = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        memory = [memory_kib(pid) for pid in pids]
        # wrk counts a response of status 400 or more (a 429 among them) as a "status"
        # error; any error at all fails the run, loudly.
        failed = sum(result.errors.values())
        if not server.alive():
            raise RuntimeError(f"{server.name} died during {label}")
        if failed or result.non_2xx_3xx:
            raise MeasurementFailed(
                f"{server.name}, {label} ({kind}): {result.errors} "
                f"(status: responses of 400 or more, e.g. 429; "
                f"{result.non_2xx_3xx} non-2xx/3xx); wrk's report is in {log_path}"
            )
        return {
            "wrk": result.as_dict(),
            "failed": failed,
            "rss_peak_mb": _megabytes(max(m.get("VmHWM", 0) for m in memory)),
            "rss_now_mb": _megabytes(max(m.get("VmRSS", 0) for m in memory)),
            "serving_pids": pids,
            "cpu_percent": round(100 * cpu_used / max(elapsed, 1e-9), 1),
            "load_average_before": [round(value, 2) for value in load_average],
        }

    # -- the peer ------------------------------------------------------------------------

    def measure_peer(self) -> dict[str, Any]:
        """pypiserver serving the wheel published to our registry, to the same user and
        password (an htpasswd entry), each page and its own baseline measured alike."""
        assert self.wheel is not None
        peer_dir = self.workdir / "peer"
        packages = peer_dir / "packages"
        packages.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.wheel, packages / self.wheel.name)
        secret = self._tenant().known_secrets[0]
        htpasswd = peer_dir / "htpasswd"
        peer_app.write_htpasswd(htpasswd, PEER_USER, secret)
        port = free_port()
        env = {
            **os.environ,
            "BENCH_PEER_PACKAGES": str(packages),
            "BENCH_PEER_HTPASSWD": str(htpasswd),
        }
        argv = [sys.executable, "-m", "bench.peer_app", "--port", str(port), "--workers", "1"]
        log(f"peer: starting pypiserver {report.version('pypiserver')} on uvicorn on :{port}")
        server = self.processes.start_server(
            "pypiserver (1 worker)", argv, env, peer_dir / "server.log", port, 1, "/health"
        )
        credentials = base64.b64encode(f"{PEER_USER}:{secret}".encode()).decode("ascii")
        headers = {"Authorization": f"Basic {credentials}", "Accept": PIP_ACCEPT}
        try:
            refused = httpx.get(f"{server.base_url}/simple/{PROJECT}/", timeout=30)
            if refused.status_code not in (401, 403):
                raise RuntimeError(f"pypiserver served without a password: {refused.status_code}")
            for path, url in (
                ("install", f"/simple/{PROJECT}/"),
                ("install_index", "/simple/"),
                ("download", f"/packages/{self.wheel.name}"),
            ):
                request = Request("GET", url, headers)
                probe = self.probe(server, request)
                if path == "install" and self.wheel.name not in probe.body.decode():
                    raise RuntimeError(f"pypiserver does not list {self.wheel.name}")
                label = f"peer-{path}"
                log(
                    f"peer: {path}: response {probe.status}, {len(probe.body):,} bytes "
                    f"{probe.content_type}"
                )
                service = self.load(server, request, request, label, "service")
                baseline_server = self.start_baseline(probe, 1, label)
                try:
                    baseline = self.load(baseline_server, request, request, label, "baseline")
                finally:
                    self.processes.stop(baseline_server)
                measured = [("service", service), ("baseline", baseline)]
                response = {
                    "status": probe.status,
                    "content_type": probe.content_type,
                    "bytes": len(probe.body),
                    "url": url,
                }
                self.record(PEER, "peer", path, 1, response, measured)
                self.log_figures(measured)
        finally:
            self.processes.stop(server)
        return {
            "software": f"pypiserver {report.version('pypiserver')}",
            "server": peer_app.SERVER_SOFTWARE,
            "authentication": (
                f"HTTP basic auth, user {PEER_USER!r} with the registry token as password, "
                f"checked against an htpasswd file ({peer_app.HTPASSWD_SCHEME}, passlib "
                f"{report.version('passlib')}) on every request; authenticated actions: "
                f"{', '.join(peer_app.AUTHENTICATED)}"
            ),
            "wheel": self.wheel.name,
            "measured_during": f"{self.backend} {SMALL_LABEL}",
        }

    # -- one backend, end to end ---------------------------------------------------------

    def run(self, with_peer: bool) -> None:
        self.prepare()
        self.seed_small()
        small_paths = [p for p in PATHS if p in self.options.paths]
        server = self.start_service(1, SMALL_LABEL)
        off_server = self.start_service(1, SMALL_LABEL, limits=False)
        try:
            self.publish_wheel(server)
            self.check_install_auth(server)
            self.check_install_auth(off_server)
            if small_paths:
                self.phase(SMALL_LABEL, server, off_server)
            self.record_peak(SMALL_LABEL, server)
        finally:
            self.processes.stop(off_server)
            self.processes.stop(server)
        if with_peer:
            self.peer = self.measure_peer()
        if self.options.big_total:
            self.run_big()
        self.datasets["server_log"] = self.log_findings()

    def run_big(self) -> None:
        big = self.options.big_label
        self.seed_big()
        server = self.start_service(1, big)
        off_server = self.start_service(1, big, limits=False)
        try:
            self.check_install_auth(server)
            self.phase(big, server, off_server)
            self.record_peak(big, server)
        finally:
            self.processes.stop(off_server)
            self.processes.stop(server)
        if "install_w2" in self.options.paths:
            server = self.start_service(2, f"{big}-w2")
            try:
                self.measure(big, "install_w2", server)
                self.record_peak(f"{big}-w2", server)
            finally:
                self.processes.stop(server)

    def record_peak(self, label: str, server: Server) -> None:
        memory = [memory_kib(pid) for pid in server.serving_pids()]
        self.datasets.setdefault("peak_rss_mb", {})[label] = _megabytes(
            max(m.get("VmHWM", 0) for m in memory)
        )

    def log_findings(self) -> dict[str, int]:
        """What the servers logged at warning level or above, counted by kind."""
        counts: dict[str, int] = {}
        for path in sorted(self.workdir.glob("server-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                for marker in LOG_MARKERS:
                    if marker in line:
                        counts[marker] = counts.get(marker, 0) + 1
        return counts


def _spread(total: int, registries: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, int]]:
    share, extra = divmod(total, len(registries))
    return [
        (registry, share + (1 if index < extra else 0)) for index, registry in enumerate(registries)
    ]


def _megabytes(kib: int) -> float:
    """/proc's kB (KiB) in MB (10^6 bytes), the unit of the issue's RSS target."""
    return round(kib * 1024 / 1e6, 1)


def _strs(ids: Sequence[uuid.UUID]) -> list[str]:
    return [str(value) for value in ids]


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (bench/run installs it)", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    workroot = BENCH_DIR / ".work" / started.strftime("%Y%m%dT%H%M%SZ")
    runs: list[dict[str, Any]] = []
    datasets: dict[str, Any] = {}
    peer: dict[str, Any] = {}
    machine = report.machine_info(POSTGRES_ADMIN_URL if "postgresql" in options.backends else None)
    load_start = os.getloadavg()
    log(
        f"bench ({options.mode}): backends {', '.join(options.backends)}; "
        f"{options.load.duration:g}s per measurement after {options.load.warmup:g}s warm-up; "
        f"{options.load.connections} connections; big seed {options.big_total:,}; "
        f"load average {load_start[0]:.2f}"
    )
    failure: str | None = None
    try:
        with managed() as processes:
            for number, backend in enumerate(options.backends):
                workdir = workroot / backend
                with scratch_database(backend, workdir) as url:
                    run = BackendRun(options, processes, backend, url, workdir, runs)
                    try:
                        # The peer right after the first backend's 1k figures.
                        run.run(with_peer=options.peer and number == 0)
                    finally:
                        datasets[backend] = run.datasets
                        peer = peer or run.peer
    except KeyboardInterrupt:
        failure = "interrupted"
        log("bench: interrupted; everything it started is stopped")
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
        log(f"bench: failed: {failure}")
        raise
    finally:
        finished = datetime.now(UTC)
        results = report.build_results(
            options_document={
                "mode": options.mode,
                "backends": list(options.backends),
                "paths": list(options.paths),
                "duration_seconds": options.load.duration,
                "warmup_seconds": options.load.warmup,
                "connections": options.load.connections,
                "wrk_threads": options.load.threads,
                "small_total": SMALL_TOTAL,
                "small_main": SMALL_MAIN,
                "big_total": options.big_total,
                "big_main": options.big_main,
                "big_label": options.big_label,
                "deep_page": DEEP_PAGE,
                "per_page": PER_PAGE,
                "limits_counting": LIMITS_COUNTING,
                "primary_paths": list(PRIMARY_PATHS),
                "peer": options.peer,
            },
            machine=machine,
            started=started,
            finished=finished,
            load_average={"start": list(load_start), "end": list(os.getloadavg())},
            datasets=datasets,
            runs=runs,
            peer=peer,
            failure=failure,
        )
        if failure is None:
            report.write(results, options.output_dir)
            log(f"wrote results.json and RESULTS.md in {options.output_dir}")
        if failure is not None and runs:
            # An incomplete run never replaces the last complete results: it goes to the
            # work directory, which is then kept.
            report.write(results, workroot)
            log(f"incomplete results: {workroot / 'results.json'}")
        elif not options.keep:
            shutil.rmtree(workroot, ignore_errors=True)
        if options.keep or (failure is not None and runs):
            log(f"kept {workroot}")
    if failure is None:
        print(report.markdown_tables(results))
    return 0 if failure is None else 1
