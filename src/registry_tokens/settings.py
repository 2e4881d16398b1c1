"""All configuration, from the environment (prefix ``REGISTRY_TOKENS_``)."""

import os
import secrets
import time
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from registry_tokens.kit.files import create_private_file, private_directory
from registry_tokens.kit.network import Network, parse_networks
from registry_tokens.kit.urls import oidc_issuer_problem, parse_storage_url

DEFAULT_DATABASE_URL = "sqlite:///./var/registry-tokens.db"
SECRET_KEY_FILE_NAME = "secret_key"


class SettingsError(RuntimeError):
    """Configuration that cannot work; the message says how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_TOKENS_", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    # Keys the HMAC under which every secret is stored. Every process and machine serving
    # one database must share it; with the embedded default it is generated on first start.
    secret_key: SecretStr | None = None
    api_url: str = "http://127.0.0.1:8080"
    web_url: str = "http://127.0.0.1:8080"
    # SQLite waits this long for another writer before giving up with a 503.
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    # PostgreSQL connection pool of each process: size plus overflow bounds its connections.
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=30, gt=0)
    # How long opening a PostgreSQL connection may take before the request answers 503.
    db_connect_timeout_seconds: int = Field(default=5, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Package files: where they live (default: "packages" beside the SQLite database, or
    # ./var/packages) and the largest one that may be published.
    package_storage_dir: Path | None = None
    # Package files in an S3-compatible bucket instead (``s3://bucket/prefix``): what
    # several machines share. The directory above is then only scratch space for uploads.
    # The endpoint (MinIO, R2, Ceph …): S3_ENDPOINT_URL, else AWS_ENDPOINT_URL; region and
    # credentials from the standard AWS variables and files.
    package_storage_url: str | None = None
    s3_endpoint_url: str | None = None
    # With a bucket: downloads answered by a redirect to a presigned URL of the file, valid
    # this long (after our own authorization and counting); 0 sends them through us.
    package_download_redirect_seconds: int = Field(default=0, ge=0, le=3600)
    # With a bucket: presigned uploads (go-buildkite's) posted straight to it, under S3's
    # own presigned POST, instead of through this server's upload target.
    presigned_uploads_to_bucket: bool = False
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    # How long a presigned upload's policy (``…/packages/upload``) may be used, and so how
    # long its staged file waits to be finalized. At most an hour: the sweep of files no
    # package owns takes tmp/ files older than that.
    presigned_upload_expiry_seconds: int = Field(default=900, ge=1, le=3600)
    # REST rate limits: requests per window for each organization (Buildkite: 200 a
    # minute), each user (Buildkite: 50 a minute), and each client address without a
    # valid token. 0 turns one off.
    rate_limit_per_organization: int = Field(default=200, ge=0)
    rate_limit_per_user: int = Field(default=50, ge=0)
    rate_limit_per_client: int = Field(default=200, ge=0)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    # Refused installs of one registry token recorded in the audit log per rate-limit
    # window, across processes (0: every one); beyond it they are refused unrecorded.
    refusals_recorded_per_token: int = Field(default=10, ge=0)
    # Refusals waiting (in each process) to be written to the audit log; beyond it dropped.
    refusal_queue_size: int = Field(default=10_000, ge=1)
    # Proxies (comma-separated IPs or CIDRs) whose X-Forwarded-For is believed; for anyone
    # else the client address is the socket's peer.
    trusted_proxies: str = ""
    # A registry token's last use is written at most once per this many seconds.
    usage_write_interval_seconds: int = Field(default=60, ge=0)
    # Downloads of tokens without quotas are counted in memory and written this often
    # (tokens with quotas are counted in the database before each download, exactly).
    usage_flush_seconds: float = Field(default=1.0, gt=0, le=60)
    # GitHub secret scanning: a JSON file of the public keys that sign leak reports, in
    # GitHub's format ({"public_keys": [{"key_identifier": ..., "key": PEM}, ...]}).
    secret_scanning_keys_file: Path | None = None
    # A leak report holds at most this many tokens, in a body of at most this many bytes.
    secret_scanning_max_tokens: int = Field(default=100, ge=1)
    secret_scanning_max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # Rate-limit counters live in the database unless a Redis URL is given.
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(default=0.25, gt=0)
    redis_retry_after_seconds: float = Field(default=5, ge=0)
    # What ``serve`` lets one connection hold before its request reaches the app
    # (server.py): a request head's bytes and time, idle keep-alive, and connections
    # per process (the request of one more is answered 503).
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    header_timeout_seconds: float = Field(default=10, gt=0)
    keep_alive_timeout_seconds: int = Field(default=5, ge=1)
    max_connections: int = Field(default=1000, ge=1)
    # The web console: a session ends after this long without a request, and after
    # this long in any case; sign-in attempts per client address and per account (named,
    # whether it exists or not) in each window of sign_in_window_seconds (0 turns one off).
    console_session_idle_seconds: int = Field(default=3600, ge=60)
    console_session_max_seconds: int = Field(default=12 * 3600, ge=60)
    sign_in_attempts_per_client: int = Field(default=20, ge=0)
    sign_in_attempts_per_account: int = Field(default=10, ge=0)
    sign_in_window_seconds: int = Field(default=900, ge=1)
    # OIDC: the issuers whose tokens may be presented (comma-separated URLs, https only but
    # for an explicit http://127.0.0.1… or http://[::1]… one), how often an issuer's keys
    # may be fetched again for a key id not seen yet, and how long a fetch may take.
    oidc_issuers: str = "https://agent.buildkite.com,https://token.actions.githubusercontent.com"
    oidc_jwks_refresh_seconds: int = Field(default=60, ge=1)
    oidc_fetch_timeout_seconds: float = Field(default=5, gt=0, le=60)
    log_level: str = "info"
    # "json": one JSON line per request (and every other log line as JSON); "text": as
    # uvicorn writes its logs.
    log_format: Literal["text", "json"] = "text"
    # When set, GET /metrics asks for ``Authorization: Bearer <it>``; unset, it is open.
    metrics_token: SecretStr | None = None
    # Threads per process that run request handlers (database work); see app.py.
    worker_threads: int = Field(default=4, ge=1, le=256)

    @field_validator("package_storage_url")
    @classmethod
    def _storage_is_a_bucket(cls, value: str | None) -> str | None:
        if value:
            try:
                parse_storage_url(value)
            except ValueError as exc:
                raise SettingsError(f"REGISTRY_TOKENS_PACKAGE_STORAGE_URL: {exc}") from None
        return value or None

    @field_validator("oidc_issuers")
    @classmethod
    def _issuers_are_urls(cls, value: str) -> str:
        """Refused when the service starts, not at the first token: an issuer named wrong
        would otherwise only show as every OIDC install failing."""
        for issuer in _split(value):
            problem = oidc_issuer_problem(issuer)
            if problem is not None:
                raise SettingsError(f"REGISTRY_TOKENS_OIDC_ISSUERS: {issuer!r} {problem}")
        return value

    @property
    def oidc_issuer_urls(self) -> tuple[str, ...]:
        """The trusted issuers, as a token's ``iss`` must spell them (no trailing slash)."""
        return tuple(dict.fromkeys(issuer.rstrip("/") for issuer in _split(self.oidc_issuers)))

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        database = make_url(self.database_url).database
        if not database or database == ":memory:":
            return None
        return Path(database)

    @property
    def package_storage_path(self) -> Path:
        if self.package_storage_dir is not None:
            return self.package_storage_dir
        database_path = self.sqlite_path
        return (database_path.parent if database_path else Path("var")) / "packages"

    @cached_property
    def trusted_proxy_networks(self) -> list[Network]:
        return parse_networks(part for part in self.trusted_proxies.split(",") if part.strip())

    @property
    def api_base(self) -> str:
        return self.api_url.rstrip("/")

    @property
    def web_base(self) -> str:
        return self.web_url.rstrip("/")

    @cached_property
    def secret_key_bytes(self) -> bytes:
        """The HMAC key; see :func:`ensure_secret_key` for where it comes from."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode("utf-8")
        return ensure_secret_key(self).encode("utf-8")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def ensure_secret_key(settings: Settings) -> str:
    """The configured key, or (embedded SQLite only) the one kept beside the database.

    On first start a random key is written to ``secret_key`` next to the database file,
    readable only by its owner. Creation uses O_EXCL so concurrent workers agree on one key.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    database_path = settings.sqlite_path
    if database_path is None:
        raise SettingsError(
            "REGISTRY_TOKENS_SECRET_KEY must be set for this database: every process that "
            "serves it must share one key (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`)."
        )
    key_path = database_path.parent / SECRET_KEY_FILE_NAME
    private_directory(key_path.parent)
    try:
        fd = create_private_file(key_path)
    except FileExistsError:
        key = _read_key_file(key_path)
    else:
        key = secrets.token_urlsafe(48)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return key


def _read_key_file(key_path: Path) -> str:
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SettingsError(
            f"{key_path} is readable by others (mode {mode:o}); run `chmod 600 {key_path}`."
        )
    # A concurrent first start may not have written the key yet: wait briefly for it.
    for _ in range(100):
        key = key_path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise SettingsError(
        f"{key_path} is empty. Restore the key from a backup: deleting the file makes a new "
        "key, and every token stored under the old one stops working."
    )
