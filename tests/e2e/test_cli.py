"""The admin CLI, run as a user runs it: a subprocess with only environment configuration."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.harness import running_server


def cli(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_TOKENS_")}
    return subprocess.run(
        [sys.executable, "-m", "registry_tokens", *args],
        cwd=workdir,
        env={**clean_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_json(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = cli(workdir, *args, "--json", env=env)
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
