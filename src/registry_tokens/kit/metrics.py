"""Every Prometheus metric of the service, in one place (``GET /metrics``).

Label values are always from a fixed set: a route's template (never its path), a method,
a status, an ecosystem, a reason from an enum. A token, a path, an address or anything
else a client chooses never becomes a label, so the number of series stays bounded.

Under ``serve --workers N`` each worker is a process of its own: ``serve`` gives them a
private ``PROMETHEUS_MULTIPROC_DIR`` before they start (:func:`private_multiprocess_dir`),
prometheus-client then keeps every value in a file there, and :func:`exposition` sums the
files of all the workers, so whichever worker answers a scrape answers for all of them.
"""

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The label of a request that no route matched (its path is the client's, unbounded).
UNMATCHED = "unmatched"
# Methods counted by name; any other a client makes up is "other".
METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})

REQUESTS = Counter(
    "registry_tokens_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "registry_tokens_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INSTALLS = Counter(
    "registry_tokens_installs",
    "Package pages read to install (a PEP 503/691 project page, an npm packument), by ecosystem.",
    ["ecosystem"],
)
DOWNLOADS = Counter(
    "registry_tokens_downloads",
    "Package files admitted for download, by ecosystem.",
    ["ecosystem"],
)
CREDENTIAL_REFUSALS = Counter(
    "registry_tokens_credential_refusals",
    "Installs and downloads refused for their credentials, by reason (a registry token's "
    "refusal, an OIDC token's as oidc_<reason>, or missing_or_unknown).",
    ["reason"],
)
RATE_LIMITED = Counter(
    "registry_tokens_rate_limited",
    "Requests refused with 429, by the limit they exceeded (organization, user, client, "
    "sign_in_client, sign_in_account).",
    ["limit"],
)
DATABASE_ERRORS = Counter(
    "registry_tokens_database_errors",
    "Requests failed by the database: busy (503), unavailable (503), commit_lost (503, "
    "outcome unknown), error (500).",
    ["kind"],
)
STORAGE_ERRORS = Counter(
    "registry_tokens_storage_errors",
    "Failures of the package store by operation; full counts the 507 answers (no room on "
    "a disk, the store's or the database's).",
    ["operation"],
)


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def exposition() -> tuple[bytes, str]:
    """Every metric in Prometheus' text format, and its content type: this process's, or
    with a multiprocess directory, all the workers' summed."""
    registry = REGISTRY
    if os.environ.get(MULTIPROCESS_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def private_multiprocess_dir() -> Path:
    """A new, empty directory only its owner may enter, named in this process's
    environment (which the workers ``serve`` starts inherit); call before they start."""
    directory = Path(tempfile.mkdtemp(prefix="registry-tokens-metrics-"))  # mode 0700
    os.environ[MULTIPROCESS_VARIABLE] = str(directory)
    return directory


def remove_multiprocess_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    if os.environ.get(MULTIPROCESS_VARIABLE) == str(directory):
        del os.environ[MULTIPROCESS_VARIABLE]
