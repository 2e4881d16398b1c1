"""The admin CLI, run as a user runs it: a subprocess with only environment configuration."""

import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Seeder, ServerProcess, running_server


def cli(
    workdir: Path, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_TOKENS_")}
    return subprocess.run(
        [sys.executable, "-m", "registry_tokens", *args],
        cwd=workdir,
        env={**clean_env, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_json(workdir: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Any:
    result = cli(workdir, *args, "--json", env=env, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_embedded_default_creates_database_and_private_key(tmp_path: Path) -> None:
    result = cli(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "registry-tokens.db").exists()
    key_file = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert cli(tmp_path, "db", "upgrade").returncode == 0
    assert key_file.read_text() == key  # kept, not regenerated


def test_a_readable_key_file_is_refused(tmp_path: Path) -> None:
    assert cli(tmp_path, "db", "upgrade").returncode == 0
    (tmp_path / "var" / "secret_key").chmod(0o644)
    result = cli(tmp_path, "admin", "create-org", "--slug", "acme")
    assert result.returncode != 0
    assert "chmod 600" in result.stderr


def test_admin_commands_build_a_working_tenant(tmp_path: Path) -> None:
    with running_server(tmp_path / "server") as server:
        env = {
            "REGISTRY_TOKENS_DATABASE_URL": server.database_url,
            "REGISTRY_TOKENS_SECRET_KEY": server.env["REGISTRY_TOKENS_SECRET_KEY"],
            "REGISTRY_TOKENS_API_URL": server.base_url,
        }
        org = cli_json(tmp_path, "admin", "create-org", "--slug", "acme", "--name", "Acme", env=env)
        assert (org["slug"], org["name"]) == ("acme", "Acme")
        user = cli_json(
            tmp_path,
            "admin",
            "create-user",
            "--name",
            "Ada",
            "--email",
            "ada@example.test",
            env=env,
        )
        assert user["email"] == "ada@example.test"
        member = cli_json(
            tmp_path,
            "admin",
            "add-member",
            "--org",
            "acme",
            "--email",
            "ada@example.test",
            "--role",
            "admin",
            env=env,
        )
        assert member["role"] == "admin"
        registry = cli_json(
            tmp_path,
            "admin",
            "create-registry",
            "--org",
            "acme",
            "--name",
            "Python Packages",
            "--description",
            "wheels",
            env=env,
        )
        assert registry["slug"] == "python-packages"
        assert registry["ecosystem"] == "python"
        assert registry["public"] is False
        issued = cli_json(
            tmp_path,
            "admin",
            "create-api-token",
            "--email",
            "ada@example.test",
            "--scopes",
            "read_registries,write_registries",
            "--org",
            "acme",
            env=env,
        )
        assert issued["token"].startswith("bkua_")
        assert issued["organizations"] == ["acme"]

        headers = {"Authorization": f"Bearer {issued['token']}"}
        tokens_url = (
            f"{server.base_url}/v2/packages/organizations/acme/registries/python-packages/tokens"
        )
        assert (
            httpx.post(tokens_url, headers=headers, json={"description": "ci"}).status_code == 200
        )

        revoked = cli_json(tmp_path, "admin", "revoke-api-token", issued["uuid"], env=env)
        assert revoked["uuid"] == issued["uuid"]
        assert httpx.get(tokens_url, headers=headers).status_code == 401

        duplicate = cli(tmp_path, "admin", "create-org", "--slug", "acme", env=env)
        assert duplicate.returncode == 1
        assert "has already been taken" in duplicate.stderr
        bad_scope = cli(
            tmp_path,
            "admin",
            "create-api-token",
            "--email",
            "ada@example.test",
            "--scopes",
            "root",
            env=env,
        )
        assert bad_scope.returncode == 1
        assert "unknown scope" in bad_scope.stderr
        assert "Traceback" not in bad_scope.stderr


def test_demo_is_idempotent_and_replaces_its_token(tmp_path: Path) -> None:
    with running_server(tmp_path / "server") as server:
        env = {
            "REGISTRY_TOKENS_DATABASE_URL": server.database_url,
            "REGISTRY_TOKENS_SECRET_KEY": server.env["REGISTRY_TOKENS_SECRET_KEY"],
            "REGISTRY_TOKENS_API_URL": server.base_url,
        }
        text = cli(tmp_path, "demo", env=env)
        assert text.returncode == 0, text.stderr
        first_line, curl_line = text.stdout.strip().splitlines()
        assert first_line.startswith("export TOKEN=bkua_")
        first_token = first_line.removeprefix("export TOKEN=")
        assert curl_line.startswith('curl -H "Authorization: Bearer $TOKEN" -X POST')
        assert "/v2/packages/organizations/my_great_org/registries/my-registry/tokens" in curl_line

        second = cli_json(tmp_path, "demo", env=env)
        assert (second["organization"], second["registry"]) == ("my_great_org", "my-registry")
        tokens_url = (
            f"{server.base_url}/v2/packages/organizations/my_great_org"
            "/registries/my-registry/tokens"
        )
        new = httpx.post(
            tokens_url,
            headers={"Authorization": f"Bearer {second['token']}"},
            json={"description": "Usher"},
        )
        assert new.status_code == 200
        assert new.json()["created_by"]["name"] == "Eminem"
        assert new.json()["created_by"]["email"] == "eminem@buildkite.com"
        old = httpx.get(tokens_url, headers={"Authorization": f"Bearer {first_token}"})
        assert old.status_code == 401


@pytest.fixture
def cli_env(server: ServerProcess) -> dict[str, str]:
    """The configuration a CLI needs to work on the session's server's database."""
    return {
        "REGISTRY_TOKENS_DATABASE_URL": server.database_url,
        "REGISTRY_TOKENS_SECRET_KEY": server.env["REGISTRY_TOKENS_SECRET_KEY"],
    }


def test_set_password_reads_one_line_of_standard_input(
    tmp_path: Path, seeder: Seeder, cli_env: dict[str, str]
) -> None:
    email = seeder.tenant().email
    password = "  spaces count too, as typed  "
    result = cli(
        tmp_path, "admin", "set-password", "--email", email, env=cli_env, stdin=f"{password}\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"password set for {email}"
    assert password.strip() not in result.stdout + result.stderr
    assert seeder.services.users.verify_password(email, password) is not None
    assert seeder.services.users.verify_password(email, password.strip()) is None

    # A Windows line ending, no line ending, and only the first line.
    for sent, meant in (
        ("second password\r\nignored\n", "second password"),
        ("third password", "third password"),
    ):
        document = cli_json(
            tmp_path, "admin", "set-password", "--email", email, env=cli_env, stdin=sent
        )
        assert document["email"] == email
        assert document["password_changed_at"].endswith("Z")
        assert "password" not in document
        assert seeder.services.users.verify_password(email, meant) is not None


def test_set_password_generate_prints_a_new_password_once(
    tmp_path: Path, seeder: Seeder, cli_env: dict[str, str]
) -> None:
    email = seeder.tenant().email
    result = cli(tmp_path, "admin", "set-password", "--email", email, "--generate", env=cli_env)
    assert result.returncode == 0, result.stderr
    done, shown = result.stdout.strip().splitlines()
    assert done == f"password set for {email}"
    first = shown.removeprefix("password (shown once, store it now): ")
    assert len(first) == 24
    assert seeder.services.users.verify_password(email, first) is not None

    second = cli_json(
        tmp_path, "admin", "set-password", "--email", email, "--generate", env=cli_env
    )
    assert second["password"] != first
    assert seeder.services.users.verify_password(email, second["password"]) is not None
    assert seeder.services.users.verify_password(email, first) is None


@pytest.mark.parametrize(
    ("email", "stdin", "error"),
    [
        (
            "known",
            "too short\n",
            "error: Validation failed: Password is too short (minimum is 12 characters)",
        ),
        (
            "known",
            "x" * 5000,
            "error: Validation failed: Password is too long (maximum is 1024 characters)",
        ),
        ("known", "", "error: no password on standard input (or use --generate)"),
        ("nobody@example.test", "long enough password\n", "error: No user found"),
    ],
)
def test_set_password_refusals_are_clear(
    tmp_path: Path, seeder: Seeder, cli_env: dict[str, str], email: str, stdin: str, error: str
) -> None:
    if email == "known":
        email = seeder.tenant().email
    result = cli(tmp_path, "admin", "set-password", "--email", email, env=cli_env, stdin=stdin)
    assert result.returncode == 1
    assert result.stderr.strip() == error
    assert "Traceback" not in result.stderr


def test_set_password_on_a_terminal_asks_without_echo(
    tmp_path: Path, seeder: Seeder, cli_env: dict[str, str]
) -> None:
    """Standard input a terminal (a pseudo-terminal here, in a session of its own so that
    the prompt cannot reach the terminal the tests run in): a prompt, and the password
    typed is not echoed back."""
    email = seeder.tenant().email
    password = "typed at a terminal"
    controller, terminal = pty.openpty()
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_TOKENS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "registry_tokens", "admin", "set-password", "--email", email],
        cwd=tmp_path,
        env={**clean_env, **cli_env},
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        shown = _read_until(controller, b"Password: ")
        os.write(controller, f"{password}\n".encode())
        shown += _read_until(controller, b"password set for")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    assert password.encode() not in shown
    assert seeder.services.users.verify_password(email, password) is not None


def _read_until(fd: int, marker: bytes, timeout: float = 60) -> bytes:
    """What the terminal shows until ``marker`` (or the deadline, which fails the test)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{marker!r} never shown; the terminal showed {seen!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side is closed: nothing more will come
                break
            if not chunk:
                break
            seen += chunk
    assert marker in seen, seen
    return seen
