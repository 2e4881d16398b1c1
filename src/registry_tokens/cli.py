"""The ``registry-tokens`` command: serve, migrate, and administer.

Admin commands call the same services as the HTTP handlers, never the HTTP API.
"""

import getpass
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from registry_tokens.db import backup as backups
from registry_tokens.db import migrate
from registry_tokens.kit import metrics
from registry_tokens.kit.errors import AppError
from registry_tokens.kit.logs import json_logging_config
from registry_tokens.kit.secrets import SecretKind, secret_kind
from registry_tokens.kit.timestamps import format_timestamp
from registry_tokens.kit.urls import listen_origin
from registry_tokens.organizations.models import Role
from registry_tokens.organizations.schemas import OrganizationOut
from registry_tokens.packages.object_storage import StoreUnavailable
from registry_tokens.packages.storage import Sweep
from registry_tokens.registries.schemas import RegistryOut
from registry_tokens.registries.service import Ecosystem
from registry_tokens.server import BoundedHttpToolsProtocol
from registry_tokens.services import Services
from registry_tokens.settings import Settings, SettingsError, ensure_secret_key
from registry_tokens.users import passwords
from registry_tokens.users.schemas import UserOut

app = typer.Typer(
    help="Self-hosted registry tokens, wire-compatible with Buildkite.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(
    help="Create organizations, users, registries and API tokens.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]

DEMO_ORG = "my_great_org"
DEMO_REGISTRY = "my-registry"
DEMO_USER_NAME = "Eminem"
DEMO_USER_EMAIL = "eminem@buildkite.com"
DEMO_TOKEN_DESCRIPTION = "registry-tokens demo"


def _services() -> Services:
    return Services.build(Settings())


def _emit(as_json: bool, document: dict[str, Any], text: str) -> None:
    typer.echo(json.dumps(document) if as_json else text)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _migrated_services() -> Services:
    services = _services()
    migrate.upgrade(services.database)
    return services


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    with_demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="First seed the demo data (as `demo` does), give the demo user a new "
            "console password, and print the token and the password.",
        ),
    ] = False,
) -> None:
    """Run the API server (applies pending migrations first)."""
    _follow_the_server(host, port)
    settings = Settings()
    services = Services.build(settings)
    migrate.upgrade(services.database)
    if with_demo:
        seeded = _seed_demo(services, with_password=True)
        typer.echo(f"{_demo_text(seeded)}\n")
    try:
        services.packages.discard_expired_uploads()  # before the sweep, which spares none
        _report(services.packages.sweep_orphans(), services.packages.files.describe())
    except StoreUnavailable:
        # Serve anyway: what needs the store answers 503 until it is back.
        typer.echo(
            f"warning: the package store {services.packages.files.describe()} does not "
            "answer: the start-up sweep is skipped; downloads and publishes answer 503 "
            "until it does",
            err=True,
        )
    services.database.dispose()
    if settings.secret_key is None:
        # Workers must share one key: create it (if new) before they start, and hand it down.
        os.environ["REGISTRY_TOKENS_SECRET_KEY"] = ensure_secret_key(settings)
    # Several workers keep their metrics in files of a directory of their own, made
    # fresh before they start, so any worker's /metrics answers for all (kit/metrics.py).
    metrics_dir = metrics.private_multiprocess_dir() if workers > 1 else None
    json_logs = settings.log_format == "json"
    try:
        _run(host, port, workers, settings, json_logs)
    finally:
        if metrics_dir is not None:
            metrics.remove_multiprocess_dir(metrics_dir)


def _run(host: str, port: int, workers: int, settings: Settings, json_logs: bool) -> None:
    uvicorn.run(
        "registry_tokens.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        # JSON: every log line as JSON, and one per request from the app instead of
        # uvicorn's access log (api/observability.py).
        log_config=json_logging_config(settings.log_level) if json_logs else LOGGING_CONFIG,
        access_log=not json_logs,
        server_header=False,
        # uvicorn would believe X-Forwarded-For from loopback by default; whose header is
        # believed is decided by REGISTRY_TOKENS_TRUSTED_PROXIES alone (kit/network.py).
        proxy_headers=False,
        # Bounds on what a client may hold (server.py; README "Connections and headers").
        http=BoundedHttpToolsProtocol,
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
        # uvicorn counts the asking connection among those open: one more than the bound.
        limit_concurrency=settings.max_connections + 1,
    )


# Each public base URL's variable, and the fields whose base it is.
PUBLIC_URL_VARIABLES = {"REGISTRY_TOKENS_API_URL": "url", "REGISTRY_TOKENS_WEB_URL": "web_url"}


def _follow_the_server(host: str, port: int) -> None:
    """Point the public URLs that are not configured at the address ``serve`` listens on.

    Without this, ``serve --port 8181`` would answer with ``url`` and ``web_url`` fields
    naming the settings' default port, 8080, where nothing listens. The values go into this
    process's environment, which is where the app's settings are read from, in this process
    and in every worker uvicorn spawns (they inherit it). A wildcard host is reached
    through some other address, which only the operator knows: the loopback is named, and
    a warning says to set the variables.
    """
    unset = [name for name in PUBLIC_URL_VARIABLES if not os.environ.get(name, "").strip()]
    if not unset:
        return
    origin = listen_origin(host, port)
    for name in unset:
        os.environ[name] = origin.url
    if origin.wildcard:
        one = len(unset) == 1
        typer.echo(
            f"warning: listening on every interface ({host}), but {' and '.join(unset)} "
            f"{'is' if one else 'are'} not set, so the "
            f"{' and '.join(PUBLIC_URL_VARIABLES[name] for name in unset)} fields name "
            f"{origin.url}, which only this machine reaches; set {'it' if one else 'them'} "
            "to the address clients use",
            err=True,
        )


def _report(sweep: Sweep, storage: str) -> None:
    """Says in the log what the start-up sweep of package files did, or why it did not."""
    if sweep.refused:
        typer.echo(
            f"warning: {storage} holds {sweep.package_files} package files and the database "
            f"owns only {sweep.owned} of them: is this the right database? Left all "
            f"{sweep.unowned} unowned files where they are.",
            err=True,
        )
    elif sweep.quarantine is not None:
        typer.echo(
            f"moved {sweep.unowned} package files that no package owned (left by a crash) "
            f"to {sweep.quarantine}; delete them once you are sure they are not needed"
        )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    services = _services()
    migrate.upgrade(services.database)
    typer.echo("database is up to date")


@db_app.command("backup")
def db_backup(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="The file to write (its directory must exist).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Copy the SQLite database to PATH, consistently, while the service runs.

    PostgreSQL is backed up with pg_dump: the command says how, and exits 2.
    The secret key and the package files are not in the database: keep them
    too (README, "Backups and restore").
    """
    settings = Settings()
    keep = backups.also_keep(settings)
    try:
        made = backups.backup(settings, path, force=force)
    except backups.UseAnotherTool as refusal:
        if as_json:
            typer.echo(
                json.dumps(
                    {"error": refusal.message, "pg_dump": refusal.command, **_keep_document(keep)}
                )
            )
        typer.echo(f"error: {refusal.message}\n{_keep_text(keep)}", err=True)
        raise typer.Exit(code=2) from None
    except backups.BackupError as error:
        raise _fail(error.message) from None
    document = {
        "path": str(made.path),
        "size_bytes": made.size_bytes,
        "revision": made.revision,
        "head_revision": made.head_revision,
        **_keep_document(keep),
    }
    if made.revision is None:
        schema = "no migration revision (a database never migrated)"
    elif made.is_current:
        schema = f"migration revision {made.revision} (the newest)"
    else:
        schema = (
            f"migration revision {made.revision} (this version's newest is "
            f"{made.head_revision}: `registry-tokens db upgrade` after restoring)"
        )
    _emit(
        as_json,
        document,
        f"wrote {made.path}: {made.size_bytes} bytes, {schema}\n{_keep_text(keep)}",
    )


def _keep_document(keep: list[backups.KeepAlso]) -> dict[str, Any]:
    return {"also_keep": [{"what": k.what, "where": k.where, "why": k.why} for k in keep]}


def _keep_text(keep: list[backups.KeepAlso]) -> str:
    lines = [f"  - the {k.what}: {k.where} ({k.why})" for k in keep]
    return "\n".join(
        [
            "The database alone cannot be restored; keep these with it, they are not in it:",
            *lines,
            'To restore: README, "Backups and restore".',
        ]
    )


@admin_app.command("create-org")
def create_org(
    slug: Annotated[str, typer.Option(help="URL slug, e.g. my_great_org.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an organization."""
    services = _migrated_services()
    organization = services.organizations.create(slug, name)
    document = OrganizationOut.of(organization, services.urls).model_dump(mode="json")
    _emit(as_json, document, f"created organization {organization.slug} ({organization.id})")


@admin_app.command("create-user")
def create_user(
    name: Annotated[str, typer.Option(help="Display name.")],
    email: Annotated[str, typer.Option(help="Email address (unique).")],
    avatar_url: Annotated[str | None, typer.Option(help="Avatar image URL.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a user."""
    services = _migrated_services()
    user = services.users.create(name, email, avatar_url)
    _emit(
        as_json, UserOut.of(user).model_dump(mode="json"), f"created user {user.email} ({user.id})"
    )


@admin_app.command("add-member")
def add_member(
    org: Annotated[str, typer.Option(help="Organization slug.")],
    email: Annotated[str, typer.Option(help="The user's email address.")],
    role: Annotated[Role, typer.Option(help="Role in the organization.")] = Role.MEMBER,
    as_json: JsonFlag = False,
) -> None:
    """Add a user to an organization (or change their role)."""
    services = _migrated_services()
    membership = services.organizations.add_member(org, email, role)
    document = {
        "id": str(membership.id),
        "organization": org,
        "email": email.strip().lower(),
        "role": membership.role,
    }
    _emit(as_json, document, f"{document['email']} is now {membership.role} of {org}")


@admin_app.command("create-registry")
def create_registry(
    org: Annotated[str, typer.Option(help="Organization slug.")],
    name: Annotated[str, typer.Option(help="Registry name.")],
    slug: Annotated[str | None, typer.Option(help="URL slug (default: from the name).")] = None,
    ecosystem: Annotated[Ecosystem, typer.Option(help="Package ecosystem.")] = Ecosystem.PYTHON,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    public: Annotated[bool, typer.Option("--public", help="Installable without a token.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a registry in an organization."""
    services = _migrated_services()
    registry = services.registries.create(
        org, name, slug=slug, ecosystem=ecosystem, description=description, public=public
    )
    document = RegistryOut.of(registry, services.urls).model_dump(mode="json")
    _emit(as_json, document, f"created registry {org}/{registry.slug} ({registry.id})")


@admin_app.command("create-api-token")
def create_api_token(
    email: Annotated[str, typer.Option(help="The user the token acts for.")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated, e.g. read_registries,write_registries.")
    ],
    org: Annotated[
        list[str] | None, typer.Option(help="Limit the token to this organization (repeatable).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue an API access token; its secret is printed once, as `token`."""
    services = _migrated_services()
    issued = services.auth.issue(
        email, scopes.split(","), organization_slugs=org or (), description=description
    )
    document = _api_token_document(issued.token.id, issued.token.scopes, org or [], issued.secret)
    _emit(
        as_json,
        document,
        f"created API access token {issued.token.id}\n"
        f"token (shown once, store it now): {issued.secret}",
    )


@admin_app.command("revoke-api-token")
def revoke_api_token(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's uuid.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API access token at once."""
    try:
        parsed = uuid.UUID(token_id)
    except ValueError:
        raise _fail(f"{token_id!r} is not a token id (a UUID)") from None
    services = _migrated_services()
    token = services.auth.revoke(parsed)
    assert token.revoked_at is not None
    document = {"uuid": str(token.id), "revoked_at": token.revoked_at.isoformat()}
    _emit(as_json, document, f"revoked API access token {token.id}")


@admin_app.command("set-password")
def set_password(
    email: Annotated[str, typer.Option(help="The user's email address.")],
    generate: Annotated[
        bool,
        typer.Option("--generate", help="Make a random password, set it and print it once."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set a user's console password, read from standard input (one line).

    On a terminal the password is asked for without echo; otherwise the first line of
    standard input is the password (its line ending removed), so it never appears in the
    command line, the shell's history or the process list. With --generate nothing is
    read: a random password is set and printed, this once.
    """
    password = passwords.generate_password() if generate else _read_password()
    services = _migrated_services()
    user = services.users.set_password(email, password)
    assert user.password_changed_at is not None
    document: dict[str, Any] = {
        "email": user.email,
        "password_changed_at": format_timestamp(user.password_changed_at),
    }
    text = f"password set for {user.email}"
    if generate:
        document["password"] = password
        text += f"\npassword (shown once, store it now): {password}"
    _emit(as_json, document, text)


def _read_password() -> str:
    """The password from standard input: asked for without echo on a terminal, else its
    first line. No more is read than the longest acceptable password and a line ending, so
    a stream without line breaks cannot make the command hold megabytes (what was read
    is then refused as too long)."""
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    line = sys.stdin.readline(passwords.MAX_LENGTH + 2)
    if not line:
        raise _fail("no password on standard input (or use --generate)")
    return line.removesuffix("\n").removesuffix("\r")


@app.command("check-token")
def check_token(
    candidate: Annotated[str, typer.Argument(metavar="STRING", help="The suspected token.")],
    as_json: JsonFlag = False,
) -> None:
    """Tell, offline, whether STRING is a real token's format (prefix and checksum).

    Exits 0 for a well-formed registry token or API access token, 1 for anything else.
    Needs no database: the checksum inside every token is what is checked.
    """
    kind = secret_kind(candidate.strip())
    names = {
        SecretKind.REGISTRY_TOKEN: "registry token",
        SecretKind.API_ACCESS_TOKEN: "API access token",
    }
    document = {"valid": kind is not None, "kind": kind.name.lower() if kind else None}
    text = (
        f"a well-formed {names[kind]} (prefix {kind.value}_, checksum valid)"
        if kind
        else "not a registry-tokens token (wrong prefix, length or checksum)"
    )
    _emit(as_json, document, text)
    if kind is None:
        raise typer.Exit(code=1)


@app.command()
def demo(as_json: JsonFlag = False) -> None:
    """Create the seed's organization, registry, user and an API access token (idempotent).

    Running it again keeps the same organization, registry and user, and replaces the
    previous demo API token with a new one (secrets are shown only once, so the old one
    cannot be printed again). `serve --demo` does this too, and also gives the demo user
    a new console password.
    """
    seeded = _seed_demo(_migrated_services(), with_password=False)
    _emit(as_json, seeded, _demo_text(seeded))


def _seed_demo(services: Services, *, with_password: bool) -> dict[str, Any]:
    """The demo data, and the secrets made for it this time, as one document."""
    organization = services.organizations.get_or_create(DEMO_ORG)
    registry = services.registries.get_or_create(DEMO_ORG, DEMO_REGISTRY, DEMO_REGISTRY)
    services.users.get_or_create(DEMO_USER_NAME, DEMO_USER_EMAIL)
    services.organizations.add_member(DEMO_ORG, DEMO_USER_EMAIL, Role.ADMIN)
    issued = services.auth.replace_described(
        DEMO_USER_EMAIL,
        ["read_registries", "write_registries"],
        description=DEMO_TOKEN_DESCRIPTION,
    )
    tokens_url = services.urls.registry_tokens(organization.slug, registry.slug)
    curl = (
        f'curl -H "Authorization: Bearer $TOKEN" -X POST "{tokens_url}" '
        f'-H "Content-Type: application/json" -d \'{{"description": "Usher"}}\''
    )
    document = {
        **_api_token_document(issued.token.id, issued.token.scopes, [], issued.secret),
        "organization": organization.slug,
        "registry": registry.slug,
        "curl": curl,
    }
    if with_password:
        # Like the token, a new one each time: the old one cannot be shown again.
        password = passwords.generate_password()
        services.users.set_password(DEMO_USER_EMAIL, password)
        document["console"] = {
            "url": f"{services.urls.web}/",
            "email": DEMO_USER_EMAIL,
            "password": password,
        }
    return document


def _demo_text(seeded: dict[str, Any]) -> str:
    text = f"export TOKEN={seeded['token']}\n{seeded['curl']}"
    if console := seeded.get("console"):
        text += (
            f"\nConsole: {console['url']} — sign in as {console['email']} "
            f"with password {console['password']}"
        )
    return text


def _api_token_document(
    token_id: object, scopes: list[str], orgs: list[str], secret: str
) -> dict[str, Any]:
    return {"uuid": str(token_id), "scopes": scopes, "organizations": orgs, "token": secret}


def main() -> None:
    try:
        app()
    except AppError as error:
        typer.echo(f"error: {error.message}", err=True)
        sys.exit(1)
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
