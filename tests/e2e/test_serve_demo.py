"""``serve --demo`` (what ``bin/serve`` runs) as a newcomer runs it: a real process on a
port of its choosing, whose printed lines and answers name that port, since neither
``REGISTRY_TOKENS_API_URL`` nor ``REGISTRY_TOKENS_WEB_URL`` is set."""

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from registry_tokens.services import Services
from registry_tokens.settings import Settings
from tests.harness import BACKEND, free_port, scratch_database, wait_until_serving

ORG_PATH = "/v2/organizations/my_great_org"
TOKENS_PATH = "/v2/packages/organizations/my_great_org/registries/my-registry/tokens"
CONSOLE = re.compile(
    r"Console: (?P<url>\S+) — sign in as (?P<email>\S+) with password (?P<password>\S+)"
)


@dataclass
class Demo:
    base_url: str
    lines: list[str]
    database_url: str
    settings_env: dict[str, str]

    @property
    def token(self) -> str:
        return self.lines[0].removeprefix("export TOKEN=")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def serving_demo(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Demo]:
    """``registry-tokens serve --demo --port P [args]`` with only the environment a
    newcomer has (no REGISTRY_TOKENS_* but the database, and its key on PostgreSQL);
    yields once it serves, with the lines it printed before serving."""
    port = free_port()
    with scratch_database(workdir / "db") as database_url:
        settings_env = {"REGISTRY_TOKENS_DATABASE_URL": database_url}
        if BACKEND != "sqlite":  # the embedded default makes its own key beside the file
            settings_env["REGISTRY_TOKENS_SECRET_KEY"] = os.urandom(24).hex()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_TOKENS_")}
        log = (workdir / "server.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "registry_tokens",
                "serve",
                "--demo",
                "--port",
                str(port),
                *args,
            ],
            cwd=workdir,
            env={**clean, **settings_env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=log,
            bufsize=0,  # unbuffered: select() then sees every line not yet read
        )
        try:
            assert process.stdout is not None
            lines = _lines_until(process.stdout, "Console: ", workdir / "server.log")
            base_url = f"http://127.0.0.1:{port}"
            wait_until_serving(base_url, process, workdir / "server.log", timeout=120)
            yield Demo(base_url, lines, database_url, settings_env)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _lines_until(stream: IO[bytes], prefix: str, log: Path) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + 120  # a ceiling for a loaded machine
    while not (lines and lines[-1].startswith(prefix)):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {prefix!r} line; printed {lines}; log:\n{log.read_text()}"
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            line = stream.readline()
            assert line, f"serve ended; printed {lines}; log:\n{log.read_text()}"
            lines.append(line.decode().rstrip("\n"))
    return lines


def test_serve_demo_prints_and_answers_urls_of_its_own_port(tmp_path: Path) -> None:
    # Two workers: each reads the URLs from the environment serve hands down to it.
    with serving_demo(tmp_path, "--workers", "2") as demo:
        base = demo.base_url
        export, curl, console = demo.lines[-3:]
        assert export.startswith("export TOKEN=bkua_")
        assert curl.startswith('curl -H "Authorization: Bearer $TOKEN" -X POST ')
        assert f'"{base}{TOKENS_PATH}"' in curl
        shown = CONSOLE.fullmatch(console)
        assert shown is not None, console
        assert shown["url"] == f"{base}/"
        assert shown["email"] == "eminem@buildkite.com"

        with httpx.Client(headers=demo.headers(), timeout=30) as client:
            for _ in range(6):  # new connections, spread over both workers
                organization = client.get(f"{base}{ORG_PATH}", headers={"Connection": "close"})
                assert organization.status_code == 200, organization.text
                assert organization.json()["url"] == f"{base}{ORG_PATH}"
                assert organization.json()["web_url"] == f"{base}/organizations/my_great_org"
            created = client.post(f"{base}{TOKENS_PATH}", json={"description": "Usher"})
            assert created.status_code == 200, created.text
            assert created.json()["url"].startswith(f"{base}{TOKENS_PATH}/")
            assert created.json()["registry"]["web_url"] == (
                f"{base}/organizations/my_great_org/packages/registries/my-registry"
            )

        # The printed password is the demo user's console password.
        key = demo.settings_env.get("REGISTRY_TOKENS_SECRET_KEY")  # else the file's
        services = Services.build(Settings(database_url=demo.database_url, secret_key=key))
        try:
            assert services.users.verify_password(shown["email"], shown["password"]) is not None
        finally:
            services.database.dispose()


def test_configured_urls_are_kept_and_only_the_unset_one_follows(tmp_path: Path) -> None:
    api = "https://api.example.test"
    with serving_demo(tmp_path, env={"REGISTRY_TOKENS_API_URL": api}) as demo:
        _, curl, console = demo.lines[-3:]
        assert f'"{api}{TOKENS_PATH}"' in curl
        assert console.startswith(f"Console: {demo.base_url}/ — sign in as ")
        answer = httpx.get(f"{demo.base_url}{ORG_PATH}", headers=demo.headers(), timeout=30)
        assert answer.json()["url"] == f"{api}{ORG_PATH}"
        assert answer.json()["web_url"] == f"{demo.base_url}/organizations/my_great_org"
