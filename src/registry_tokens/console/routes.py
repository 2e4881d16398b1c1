"""The console's pages: thin handlers that read a form, call the same services as the
REST API (with the person signed in as the caller), and render a template.

Every page is wrapped by :func:`console.http.page` (sessions, CSRF, headers, errors).
"""

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from registry_tokens.audit.service import EventFilters, EventType
from registry_tokens.console.charts import CHART_POLICY, CHARTS, label, usage_chart
from registry_tokens.console.http import (
    STATIC_DIRECTORY,
    Visit,
    iso,
    page,
    safe_next,
    secure,
    when,
)
from registry_tokens.console.installing import install_lines
from registry_tokens.kit.context import Caller, Scope
from registry_tokens.kit.cursor import Cursor
from registry_tokens.kit.errors import AppError, FieldProblem, NotFound, ValidationFailed
from registry_tokens.kit.pagination import MAX_PAGE, MAX_PER_PAGE, PageRequest
from registry_tokens.kit.validation import validated
from registry_tokens.organizations.models import Role
from registry_tokens.packages.downloads import file_response
from registry_tokens.packages.models import Package
from registry_tokens.ratelimits.service import RateLimited
from registry_tokens.registries.oidc_policy import shown as shown_policy
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registries.requests import Ecosystem, RegistryCreate, RegistryUpdate
from registry_tokens.registry_tokens.repository import TokenRow
from registry_tokens.registry_tokens.schemas import (
    RegistryTokenCreate,
    RegistryTokenRotate,
    RegistryTokenUpdate,
    UsageOut,
)
from registry_tokens.registry_tokens.service import (
    MAX_GRACE_PERIOD_SECONDS,
    UsageReport,
    UsageWindow,
)
from registry_tokens.sessions.service import SignInRefused

PER_PAGE = 30
# The rotate form's choices: how long the old secret keeps working.
GRACE_PERIODS = [
    (0, "None: the old secret stops now"),
    (300, "5 minutes"),
    (3600, "1 hour"),
    (86400, "1 day"),
    (MAX_GRACE_PERIOD_SECONDS, "7 days"),
]
QUOTA_PERIODS = [
    ("", "None: counts never start again"),
    ("day", "Day"),
    ("week", "Week"),
    ("month", "Month"),
]
# The usage pages' ranges up to now (the form's "last"); from/to name any other.
USAGE_RANGES = [
    ("24h", "24 hours"),
    ("48h", "48 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
]
_LAST = re.compile(r"([1-9][0-9]{0,3})([hd])")
LIMIT_FIELDS = (
    "allowed_packages",
    "not_before",
    "max_downloads",
    "max_clients",
    "max_bytes",
    "quota_period",
)
EMPTY_TOKEN_FORM = {
    "description": "",
    "expires_at": "",
    "allowed_cidrs": "",
    "allowed_packages": "",
    "not_before": "",
    "max_downloads": "",
    "max_clients": "",
    "max_bytes": "",
    "quota_period": "",
}


# Sign-in and sign-out.


@page(signed_in=False)
async def home(visit: Visit) -> Response:
    return visit.redirect(visit.urls.organizations_web())


@page(signed_in=False)
async def sign_in_form(visit: Visit) -> Response:
    return _sign_in_page(visit, email="", error=None, status=200)


@page(signed_in=False)
async def sign_in(visit: Visit) -> Response:
    sessions = visit.services.sessions
    nonce = visit.request.cookies.get(visit.cookies.sign_in)
    if not nonce or not sessions.tokens_match(
        sessions.sign_in_csrf_token(nonce), visit.field("csrf_token")
    ):
        return _sign_in_page(
            visit,
            email=visit.field("email")[:320],
            error="This sign-in form is too old or was not sent from this page. Please try again.",
            status=403,
        )
    email, password = visit.field("email"), visit.field("password")
    try:
        cookie = await sessions.sign_in(email, password, visit.context)
    except SignInRefused as refused:
        return _sign_in_page(visit, email=email[:320], error=refused.message, status=401)
    except RateLimited as limited:
        minutes = -(-int(limited.headers.get("Retry-After", "60")) // 60)
        return _sign_in_page(
            visit,
            email=email[:320],
            error=f"Too many sign-in attempts. Try again in {minutes} minute"
            + ("s." if minutes != 1 else "."),
            status=429,
            headers={"Retry-After": limited.headers.get("Retry-After", "60")},
        )
    response = visit.redirect(safe_next(visit, visit.field("next")))
    visit.cookies.set(response, visit.cookies.session, cookie)
    visit.cookies.clear(response, visit.cookies.sign_in)
    return response


def _sign_in_page(
    visit: Visit,
    *,
    email: str,
    error: str | None,
    status: int,
    headers: dict[str, str] | None = None,
) -> Response:
    nonce = secrets.token_urlsafe(24)
    next_target = visit.field("next") or visit.query("next") or ""
    response = visit.render(
        "sign_in.html",
        status=status,
        headers=headers,
        title="Sign in",
        email=email,
        error=error,
        next_target=next_target if len(next_target) <= 2048 else "",
        csrf_token=visit.services.sessions.sign_in_csrf_token(nonce),
    )
    visit.cookies.set(response, visit.cookies.sign_in, nonce)
    return response


@page()
async def sign_out(visit: Visit) -> Response:
    cookie = visit.request.cookies.get(visit.cookies.session)
    await visit.services.database.write(visit.services.sessions.sign_out, cookie)
    response = visit.redirect(visit.urls.sign_in_web(), notice="signed-out")
    visit.cookies.clear(response, visit.cookies.session)
    return response


# Organizations and registries.


@page()
async def organizations(visit: Visit) -> Response:
    services = visit.services
    found = await visit.read(services.organizations.list, PageRequest(1, MAX_PER_PAGE))
    return visit.render("organizations.html", title="Organizations", organizations=found.items)


@page()
async def organization(visit: Visit) -> Response:
    return await _organization_page(visit, form=None, problems=[], status=200)


async def _organization_page(
    visit: Visit, *, form: dict[str, Any] | None, problems: list[FieldProblem], status: int
) -> Response:
    org = visit.path("org")
    services = visit.services
    member = await visit.member()
    number = _page_number(visit)
    registries = await visit.read(services.registries.list, org, PageRequest(number, PER_PAGE))
    return visit.render(
        "organization.html",
        status=status,
        title=member.name,
        org=member,
        is_admin=member.role == Role.ADMIN.value,
        registries=registries,
        ecosystems=[ecosystem.value for ecosystem in Ecosystem],
        form=form or {"name": "", "ecosystem": "python", "description": "", "public": False},
        problems=problems,
    )


@page()
async def create_registry(visit: Visit) -> Response:
    org = visit.path("org")
    form = {
        "name": visit.field("name"),
        "ecosystem": visit.field("ecosystem"),
        "description": visit.field("description") or None,
        "public": visit.field("public") == "on",
    }
    try:
        body = validated(RegistryCreate, form)
        created = await visit.write(visit.services.registries.create_for, org, body)
    except ValidationFailed as failed:
        # The slug is made from the name: a taken slug is the name's problem on this form.
        problems = [
            FieldProblem("name", p.code, p.text) if p.field == "slug" else p
            for p in failed.problems
        ]
        return await _organization_page(visit, form=form, problems=problems, status=422)
    return visit.redirect(visit.urls.registry_web(org, created.slug), notice="registry-created")


@page()
async def registry(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    services = visit.services
    member = await visit.member()
    cursor = Cursor.parse(visit.query("before"), visit.query("after"), PER_PAGE)
    window, found = await visit.read(services.packages.list, org, slug, name=None, cursor=cursor)
    return visit.render(
        "registry.html",
        title=found.name,
        org=member,
        registry=found,
        packages=window,
        install=install_lines(visit.urls, found, secret=None),
        is_admin=member.role == Role.ADMIN.value,
    )


@page()
async def registry_settings(visit: Visit) -> Response:
    return await _settings_page(visit, form=None, problems=[], status=200)


async def _settings_page(
    visit: Visit, *, form: dict[str, Any] | None, problems: list[FieldProblem], status: int
) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    services = visit.services
    member = await visit.member()
    found = await visit.read(services.registries.get, org, slug)
    shown = form or {
        "name": found.name,
        "description": found.description or "",
        "emoji": found.emoji or "",
        "color": found.color or "",
        "public": found.public,
        "oidc_policy": shown_policy(found.oidc_policy) or "",
    }
    return visit.render(
        "registry_settings.html",
        status=status,
        title=f"{found.name}: settings",
        org=member,
        registry=found,
        form=shown,
        problems=problems,
        is_admin=member.role == Role.ADMIN.value,
    )


@page()
async def update_registry(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    form: dict[str, Any] = {
        "name": visit.field("name"),
        "description": visit.field("description") or None,
        "emoji": visit.field("emoji") or None,
        "color": visit.field("color") or None,
        "public": visit.field("public") == "on",
        "oidc_policy": visit.field("oidc_policy").strip() or None,
    }
    try:
        body = validated(RegistryUpdate, form)
        await visit.write(visit.services.registries.update, org, slug, body)
    except ValidationFailed as failed:
        shown = {key: "" if value is None else value for key, value in form.items()}
        return await _settings_page(visit, form=shown, problems=failed.problems, status=422)
    return visit.redirect(visit.urls.registry_web(org, slug), notice="registry-updated")


@page()
async def confirm_registry_deletion(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    services = visit.services
    member = await visit.member()
    found = await visit.read(services.registries.get, org, slug)
    if member.role != Role.ADMIN.value:
        raise AppError("Only organization admins can manage registries", 403)
    return visit.render(
        "confirm.html",
        title=f"Delete {found.name}?",
        org=member,
        registry=found,
        question=f"Delete the registry {found.name}?",
        consequence="Every package in it and every registry token of it is deleted with it. "
        "Installs from it stop at once. This cannot be undone.",
        action=visit.urls.registry_delete_web(org, slug),
        confirm_label="Delete registry",
        cancel=visit.urls.registry_settings_web(org, slug),
    )


@page()
async def delete_registry(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    await visit.write(visit.services.registries.delete, org, slug, visit.context)
    return visit.redirect(visit.urls.organization_web(org), notice="registry-deleted")


# Packages.


async def _package(visit: Visit) -> tuple[Package, RegistryRow]:
    """The package of the page's path, as the person may see it (else "not found")."""
    return await visit.read(
        visit.services.packages.get,
        visit.path("org"),
        visit.path("registry"),
        visit.path("package_id"),
    )


@page()
async def package(visit: Visit) -> Response:
    member = await visit.member()
    found, registry_row = await _package(visit)
    return visit.render(
        "package.html",
        title=f"{found.name} {found.version}",
        org=member,
        registry=registry_row,
        package=found,
    )


@page()
async def download_package(visit: Visit) -> Response:
    services = visit.services
    found, registry_row = await _package(visit)
    stored = await services.database.read(
        services.packages.file, registry_row, str(found.id), found.filename
    )
    response = await file_response(services.packages.files, stored, found.filename, _uncounted)
    secure(response)
    return response


async def _uncounted() -> None:
    """A download from the console is a person's, not an install's: no quota counts it."""


@page()
async def confirm_package_deletion(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    member = await visit.member()
    found, registry_row = await _package(visit)
    return visit.render(
        "confirm.html",
        title=f"Delete {found.filename}?",
        org=member,
        registry=registry_row,
        question=f"Delete {found.filename}?",
        consequence="Installs that need this file will fail. This cannot be undone.",
        action=visit.urls.package_delete_web(org, slug, found.id),
        confirm_label="Delete package",
        cancel=visit.urls.package_web(org, slug, found.id),
    )


@page()
async def delete_package(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    await visit.write(
        visit.services.packages.delete,
        org,
        slug,
        visit.path("package_id"),
    )
    return visit.redirect(visit.urls.registry_web(org, slug), notice="package-deleted")


# Registry tokens.


@page()
async def tokens(visit: Visit) -> Response:
    return await _tokens_page(visit, form=None, problems=[], status=200)


async def _tokens_page(
    visit: Visit, *, form: dict[str, str] | None, problems: list[FieldProblem], status: int
) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    services = visit.services
    member = await visit.member()
    found, listed = await visit.read(
        services.registry_tokens.list, org, slug, PageRequest(_page_number(visit), PER_PAGE)
    )
    now = services.registry_tokens.clock()
    return visit.render(
        "tokens.html",
        status=status,
        title=f"{found.name}: tokens",
        org=member,
        registry=found,
        tokens=listed,
        usage={row.id: UsageOut.of(row, now) for row in listed.items},
        limits=limits_of,
        form=form or EMPTY_TOKEN_FORM,
        problems=problems,
        quota_periods=QUOTA_PERIODS,
    )


@page()
async def create_token(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    form = _token_form(visit)
    try:
        body = validated(RegistryTokenCreate, _token_fields(form, creating=True))
        created = await visit.write(
            visit.services.registry_tokens.create,
            org,
            slug,
            body.changes(),
            visit.context,
        )
    except ValidationFailed as failed:
        return await _tokens_page(visit, form=form, problems=failed.problems, status=422)
    return await _secret_page(visit, created.registry, created.token.id, created.secret, "created")


@page()
async def token(visit: Visit) -> Response:
    return await _token_page(visit, form=None, problems=[], status=200)


async def _token_page(
    visit: Visit, *, form: dict[str, str] | None, problems: list[FieldProblem], status: int
) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    services = visit.services
    member = await visit.member()
    found = await visit.read(services.registry_tokens.get, org, slug, visit.path("token_id"))
    current = found.token
    return visit.render(
        "token.html",
        status=status,
        title=f"Token {current.description}",
        org=member,
        registry=found.registry,
        token=current,
        form=form
        or {
            "description": current.description,
            "expires_at": _local(current.expires_at),
            "allowed_cidrs": "\n".join(current.allowed_cidrs or []),
            "allowed_packages": "\n".join(current.allowed_packages or []),
            "not_before": _local(current.not_before),
            "max_downloads": _shown(current.max_downloads),
            "max_clients": _shown(current.max_clients),
            "max_bytes": _shown(current.max_bytes),
            "quota_period": current.quota_period or "",
        },
        problems=problems,
        grace_periods=GRACE_PERIODS,
        quota_periods=QUOTA_PERIODS,
        iso=iso,
        expires_at_was=_local(current.expires_at),
        not_before_was=_local(current.not_before),
        usage=UsageOut.of(current, services.registry_tokens.clock()),
        limits=limits_of(current),
        may_write=_may_write(visit.signed_in.caller),
    )


@page()
async def update_token(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    form = _token_form(visit)
    fields = _token_fields(form, creating=False)
    if _same_moment(form["expires_at"], visit.field("expires_at_was")):
        # Left as the page showed it: not sent, so an expired token's other fields can
        # still be changed, and an expiry with milliseconds keeps them.
        del fields["expires_at"]
    if _same_moment(form["not_before"], visit.field("not_before_was")):
        del fields["not_before"]  # the same: a start with milliseconds keeps them
    for name in LIMIT_FIELDS:
        if name not in visit.form:
            fields.pop(name, None)  # a form without the field (an older page) keeps it
    try:
        body = validated(RegistryTokenUpdate, fields)
        await visit.write(
            visit.services.registry_tokens.update,
            org,
            slug,
            visit.path("token_id"),
            body.changes(),
            visit.context,
        )
    except ValidationFailed as failed:
        return await _token_page(visit, form=form, problems=failed.problems, status=422)
    return visit.redirect(visit.urls.registry_tokens_web(org, slug), notice="token-updated")


@page()
async def rotate_token(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    grace = visit.field("grace_period_seconds")
    try:
        body = validated(
            RegistryTokenRotate,
            {
                "grace_period_seconds": _whole_number(grace)
                if _whole_number(grace) is not None
                else grace
            },
        )
        rotated = await visit.write(
            visit.services.registry_tokens.rotate,
            org,
            slug,
            visit.path("token_id"),
            body.grace_period_seconds,
            visit.context,
        )
    except ValidationFailed as failed:
        return await _token_page(visit, form=None, problems=failed.problems, status=422)
    return await _secret_page(visit, rotated.registry, rotated.token.id, rotated.secret, "rotated")


@page()
async def confirm_token_deletion(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    services = visit.services
    member = await visit.member()
    found = await visit.read(services.registry_tokens.get, org, slug, visit.path("token_id"))
    action = visit.urls.registry_token_web(org, slug, found.token.id) + "/delete"
    return visit.render(
        "confirm.html",
        title=f"Delete token {found.token.description}?",
        org=member,
        registry=found.registry,
        question=f"Delete the registry token {found.token.description}?",
        consequence="Every install that uses it fails from now on, including its secrets "
        "still in a rotation's grace period. This cannot be undone.",
        action=action,
        confirm_label="Delete token",
        cancel=visit.urls.registry_tokens_web(org, slug),
    )


@page()
async def delete_token(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    await visit.write(
        visit.services.registry_tokens.delete,
        org,
        slug,
        visit.path("token_id"),
        visit.context,
    )
    return visit.redirect(visit.urls.registry_tokens_web(org, slug), notice="token-deleted")


@page()
async def disable_token(visit: Visit) -> Response:
    return await _switch_token(visit, disabled=True)


@page()
async def enable_token(visit: Visit) -> Response:
    return await _switch_token(visit, disabled=False)


async def _switch_token(visit: Visit, *, disabled: bool) -> Response:
    org, slug, token_id = visit.path("org"), visit.path("registry"), visit.path("token_id")
    service = visit.services.registry_tokens
    switch = service.disable if disabled else service.enable
    found = await visit.write(switch, org, slug, token_id, visit.context)
    return visit.redirect(
        visit.urls.registry_token_web(org, slug, found.token.id),
        notice="token-disabled" if disabled else "token-enabled",
    )


@page()
async def confirm_usage_reset(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    services = visit.services
    member = await visit.member()
    found = await visit.read(services.registry_tokens.get, org, slug, visit.path("token_id"))
    if not _may_write(visit.signed_in.caller):
        raise AppError("Changing registry tokens needs the write_registries scope", 403)
    page_url = visit.urls.registry_token_web(org, slug, found.token.id)
    return visit.render(
        "confirm.html",
        title=f"Reset the usage of {found.token.description}?",
        org=member,
        registry=found.registry,
        question=f"Reset the usage of the registry token {found.token.description}?",
        consequence="Its download, byte and client counts start again from zero now, and "
        "so do its quotas. The usage charts keep their history. The reset is recorded in "
        "the audit log.",
        action=page_url + "/usage/reset",
        confirm_label="Reset usage",
        cancel=page_url,
    )


@page()
async def reset_token_usage(visit: Visit) -> Response:
    org, slug = visit.path("org"), visit.path("registry")
    found = await visit.write(
        visit.services.registry_tokens.reset_usage,
        org,
        slug,
        visit.path("token_id"),
        visit.context,
    )
    return visit.redirect(
        visit.urls.registry_token_web(org, slug, found.token.id), notice="token-usage-reset"
    )


# Usage.


@page()
async def token_usage(visit: Visit) -> Response:
    return await _usage_page(visit, visit.path("token_id"))


@page()
async def registry_usage(visit: Visit) -> Response:
    return await _usage_page(visit, None)


async def _usage_page(visit: Visit, token_id: str | None) -> Response:
    """Downloads and bytes per hour or day, as charts and as a table of the same numbers."""
    org, slug = visit.path("org"), visit.path("registry")
    services = visit.services
    member = await visit.member()
    chosen = _usage_choices(visit)
    problems: list[FieldProblem] = []
    report: UsageReport | None = None
    try:
        report = await _usage_report(visit, token_id, chosen)
    except ValidationFailed as failed:
        problems = failed.problems
    registry_row = (
        report.registry
        if report is not None
        else await visit.read(services.registries.get, org, slug)
    )
    token_row = report.token if report is not None else None
    if token_id is not None and token_row is None:
        token_row = (await visit.read(services.registry_tokens.get, org, slug, token_id)).token
    base = (
        visit.urls.registry_token_web(org, slug, token_row.id)
        if token_row is not None
        else visit.urls.registry_web(org, slug)
    ) + "/usage"
    kept = urlencode({key: value for key, value in chosen.items() if value})
    subject = f"token {token_row.description}" if token_row is not None else registry_row.name
    return visit.render(
        "usage.html",
        status=422 if problems else 200,
        title=f"Usage of {subject}",
        org=member,
        registry=registry_row,
        token=token_row,
        report=report,
        label=label,
        choices=chosen,
        ranges=USAGE_RANGES,
        problems=problems,
        base=base,
        chart_url={chart: f"{base}/{chart}.svg?{kept}" for chart in CHARTS},
        current=UsageOut.of(token_row, services.registry_tokens.clock())
        if token_row is not None
        else None,
    )


@page()
async def token_usage_chart(visit: Visit) -> Response:
    return await _chart(visit, visit.path("token_id"))


@page()
async def registry_usage_chart(visit: Visit) -> Response:
    return await _chart(visit, None)


async def _chart(visit: Visit, token_id: str | None) -> Response:
    """One usage chart as an SVG document of its own (its page shows it with ``<img>``)."""
    chart = visit.path("chart")
    if chart not in CHARTS:
        raise NotFound("chart")
    chosen = _usage_choices(visit)
    report = await _usage_report(visit, token_id, chosen)
    every = "hour" if report.window.interval == "hour" else "day"
    subject = (
        f"registry token {report.token.description}"
        if report.token is not None
        else f"registry {report.registry.name}"
    )
    svg = usage_chart(
        report.points, report.window.interval, chart, f"{CHARTS[chart]} per {every} of {subject}"
    )
    response = Response(svg, media_type="image/svg+xml")
    secure(response)
    response.headers["Content-Security-Policy"] = CHART_POLICY
    return response


def _usage_choices(visit: Visit) -> dict[str, str]:
    return {
        "interval": visit.query("interval") or "day",
        "from": (visit.query("from") or "").strip(),
        "to": (visit.query("to") or "").strip(),
        "last": (visit.query("last") or "").strip(),
    }


async def _usage_report(visit: Visit, token_id: str | None, chosen: dict[str, str]) -> UsageReport:
    """The usage the page's GET form asks for: an interval, and a range as ``from``/``to``
    (UTC) or as the last so many buckets up to now."""
    services = visit.services
    now = services.registry_tokens.clock()
    problems: list[FieldProblem] = []
    start, end = _moment(chosen["from"], "from", problems), _moment(chosen["to"], "to", problems)
    last = _LAST.fullmatch(chosen["last"]) if chosen["last"] else None
    if chosen["last"] and last is None:
        problems.append(FieldProblem("last", "invalid", "must be like 24h or 30d"))
    elif last is not None and start is None:
        # The last buckets up to "to" (or now), the one it falls in included.
        hours = int(last[1]) * (24 if last[2] == "d" else 1)
        step = timedelta(hours=1) if chosen["interval"] == "hour" else timedelta(days=1)
        start = (end or now) - max(timedelta(hours=hours), step) + step
    if problems:
        raise ValidationFailed(problems)
    try:
        window = UsageWindow.of(start, end, chosen["interval"], now)
    except ValidationFailed as failed:
        if last is None or chosen["from"]:
            raise
        # The range came from "last": its field is the one to correct.
        raise ValidationFailed(
            [
                FieldProblem("last", p.code, p.text) if p.field == "from" else p
                for p in failed.problems
            ]
        ) from None
    return await visit.read(
        services.registry_tokens.usage,
        visit.path("org"),
        visit.path("registry"),
        token_id,
        window,
    )


def _moment(value: str, name: str, problems: list[FieldProblem]) -> datetime | None:
    """A ``datetime-local`` or date field (UTC), or a problem with it."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(_utc(value) if "T" in value else value)
    except ValueError:
        problems.append(FieldProblem(name, "invalid", "must be a date and time, UTC"))
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _secret_page(
    visit: Visit, registry_row: RegistryRow, token_id: uuid.UUID, secret: str, done: str
) -> Response:
    org = registry_row.organization_slug
    member = await visit.read(visit.services.organizations.get, org)
    found = await visit.read(
        visit.services.registry_tokens.get,
        org,
        registry_row.slug,
        str(token_id),
    )
    return visit.render(
        "token_secret.html",
        shows_secret=True,
        title="Copy the token's secret now",
        org=member,
        registry=registry_row,
        token=found.token,
        done=done,
        secret=secret,
        install=install_lines(visit.urls, registry_row, secret=secret),
    )


def _token_form(visit: Visit) -> dict[str, str]:
    return {
        "description": visit.field("description"),
        "expires_at": visit.field("expires_at").strip(),
        "allowed_cidrs": visit.field("allowed_cidrs"),
        "allowed_packages": visit.field("allowed_packages"),
        "not_before": visit.field("not_before").strip(),
        "max_downloads": visit.field("max_downloads").strip(),
        "max_clients": visit.field("max_clients").strip(),
        "max_bytes": visit.field("max_bytes").strip(),
        "quota_period": visit.field("quota_period").strip(),
    }


def _token_fields(form: dict[str, str], *, creating: bool) -> dict[str, Any]:
    """The form as the API's request body: an empty field means none (no expiry, every
    network, every package, no quota)."""
    cidrs = [part for part in form["allowed_cidrs"].replace(",", " ").split() if part]
    patterns = [part for part in form["allowed_packages"].replace(",", " ").split() if part]
    fields: dict[str, Any] = {
        "description": form["description"],
        "expires_at": _utc(form["expires_at"]) if form["expires_at"] else None,
        "allowed_cidrs": cidrs or None,
        "allowed_packages": patterns or None,
        "not_before": _utc(form["not_before"]) if form["not_before"] else None,
        "max_downloads": _count(form["max_downloads"]),
        "max_clients": _count(form["max_clients"]),
        "max_bytes": _count(form["max_bytes"]),
        "quota_period": form["quota_period"] or None,
    }
    if creating:
        return {name: value for name, value in fields.items() if value is not None}
    return fields


def _count(raw: str) -> int | str | None:
    """A quota field: empty is none, ASCII digits a number; anything else is sent as
    it is, for the request's model to refuse in its words."""
    if not raw:
        return None
    if raw.isascii() and raw.isdecimal() and len(raw) <= 20:
        return int(raw)
    return raw


def _shown(value: int | None) -> str:
    return "" if value is None else str(value)


def limits_of(token: TokenRow) -> list[str]:
    """A token's limits in a few words each, as the Tokens table and the token page list
    them (none: no words)."""
    per = f" per {token.quota_period}" if token.quota_period else ""
    shown: list[str] = []
    if token.allowed_packages:
        shown.append("packages " + ", ".join(token.allowed_packages))
    if token.not_before is not None:
        shown.append("from " + when(token.not_before))
    if token.max_downloads is not None:
        shown.append(f"{token.max_downloads:,} downloads{per}")
    if token.max_bytes is not None:
        shown.append(f"{_size(token.max_bytes)}{per}")
    if token.max_clients is not None:
        shown.append(f"{token.max_clients:,} clients{per}")
    return shown


def _size(value: int) -> str:
    """Bytes as people read them (1 kB = 1000 bytes, as Jinja's ``filesizeformat``)."""
    size = float(value)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{value:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _may_write(caller: Caller) -> bool:
    """Whether the person may change tokens: what the service requires (the same scope
    as the API), so the buttons show only to those whose posts would be accepted."""
    return Scope.WRITE_REGISTRIES.value in caller.scopes


def _utc(value: str) -> str:
    """A ``datetime-local`` value (no zone: the form says UTC) as RFC 3339."""
    if len(value) == len("2030-01-01T00:00"):
        value += ":00"
    if not value.upper().endswith("Z") and "+" not in value[10:] and "-" not in value[10:]:
        value += "Z"
    return value


def _same_moment(shown: str, was: str) -> bool:
    """Whether two ``datetime-local`` values name the same second (browsers write
    ``03:04`` for ``03:04:00``); two empty ones are the same (no expiry)."""
    if not shown or not was:
        return shown == was
    try:
        return datetime.fromisoformat(_utc(shown)) == datetime.fromisoformat(_utc(was))
    except ValueError:
        return False


def _local(value: datetime | None) -> str:
    """What a ``datetime-local`` input shows for a stored time (UTC, to the second)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S") if value is not None else ""


# The audit log.


@page()
async def audit_log(visit: Visit) -> Response:
    org = visit.path("org")
    services = visit.services
    member = await visit.member()
    registry_filter = visit.query("registry") or None
    token_filter = visit.query("token") or None
    type_filter = visit.query("event_type") or None
    problems: list[FieldProblem] = []
    token_id: uuid.UUID | None = None
    if token_filter:
        try:
            token_id = uuid.UUID(token_filter)
        except ValueError:
            problems.append(FieldProblem("token", "invalid", "must be a registry token's id"))
    registries = await visit.read(services.registries.list, org, PageRequest(1, MAX_PER_PAGE))
    window = None
    if not problems:
        try:
            window = await visit.read(
                services.audit.list,
                org,
                EventFilters(registry=registry_filter, token=token_id, event_type=type_filter),
                Cursor.parse(visit.query("before"), visit.query("after"), PER_PAGE),
            )
        except ValidationFailed as failed:
            problems = failed.problems
        except NotFound:
            problems = [
                FieldProblem("registry", "invalid", "is not a registry of this organization")
            ]
    filters = {"registry": registry_filter, "token": token_filter, "event_type": type_filter}
    return visit.render(
        "audit_log.html",
        status=422 if problems else 200,
        title=f"{member.name}: audit log",
        org=member,
        events=window,
        registries=registries.items,
        event_types=[event.value for event in EventType],
        filters={key: value or "" for key, value in filters.items()},
        kept={key: value for key, value in filters.items() if value},
        problems=problems,
    )


# API access tokens.


@page()
async def access_tokens(visit: Visit) -> Response:
    return await _access_tokens_page(visit, form=None, problems=[], status=200)


async def _access_tokens_page(
    visit: Visit, *, form: dict[str, Any] | None, problems: list[FieldProblem], status: int
) -> Response:
    services = visit.services
    own = await visit.read(services.auth.own_tokens)
    memberships = await visit.read(services.organizations.list, PageRequest(1, MAX_PER_PAGE))
    return visit.render(
        "access_tokens.html",
        status=status,
        title="API access tokens",
        tokens=own,
        scopes=[scope.value for scope in Scope],
        organizations=memberships.items,
        form=form or {"description": "", "scopes": [], "organizations": []},
        problems=problems,
    )


@page()
async def create_access_token(visit: Visit) -> Response:
    description, scopes = visit.field("description"), visit.fields("scopes")
    organizations = visit.fields("organizations")
    form = {"description": description, "scopes": scopes, "organizations": organizations}
    try:
        issued = await visit.write(
            visit.services.auth.issue_own,
            scopes,
            organizations,
            description or None,
        )
    except ValidationFailed as failed:
        return await _access_tokens_page(visit, form=form, problems=failed.problems, status=422)
    return visit.render(
        "access_token_secret.html",
        shows_secret=True,
        title="Copy the API access token now",
        token=issued.token,
        scopes=issued.token.scopes,
        organizations=organizations,
        secret=issued.secret,
    )


@page()
async def revoke_access_token(visit: Visit) -> Response:
    try:
        token_id = uuid.UUID(visit.path("token_id"))
    except ValueError:
        raise NotFound("API access token") from None
    await visit.write(visit.services.auth.revoke_own, token_id)
    return visit.redirect(visit.urls.access_tokens_web(), notice="access-token-revoked")


# Helpers.


def _page_number(visit: Visit) -> int:
    number = _whole_number(visit.query("page") or "1")
    if number is None or number < 1 or number > MAX_PAGE:
        raise ValidationFailed([FieldProblem("page", "invalid", "must be a positive integer")])
    return number


def _whole_number(raw: str) -> int | None:
    """ASCII digits as a number (``"²"`` is a digit to ``str.isdigit``, not to ``int``)."""
    if not raw.isascii() or not raw.isdecimal() or len(raw) > 9:
        return None
    return int(raw)


@page(signed_in=False)
async def not_found(visit: Visit) -> Response:
    """A console path that names no page: a page saying so, with the console's headers."""
    raise NotFound("page")


def routes(web_url: str) -> list[BaseRoute]:
    """Every console page, under the path of ``WEB_URL`` (usually ``/``)."""
    registry_path = "/organizations/{org}/packages/registries/{registry}"
    pages: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Route("/sign-in", sign_in_form, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/access-tokens", access_tokens, methods=["GET"]),
        Route("/access-tokens", create_access_token, methods=["POST"]),
        Route("/access-tokens/{token_id}/revoke", revoke_access_token, methods=["POST"]),
        Route("/organizations", organizations, methods=["GET"]),
        Route("/organizations/{org}", organization, methods=["GET"]),
        Route("/organizations/{org}/registries", create_registry, methods=["POST"]),
        Route("/organizations/{org}/audit-log", audit_log, methods=["GET"]),
        Route(registry_path, registry, methods=["GET"]),
        Route(registry_path + "/settings", registry_settings, methods=["GET"]),
        Route(registry_path + "/settings", update_registry, methods=["POST"]),
        Route(registry_path + "/delete", confirm_registry_deletion, methods=["GET"]),
        Route(registry_path + "/delete", delete_registry, methods=["POST"]),
        Route(registry_path + "/packages/{package_id}", package, methods=["GET"]),
        Route(registry_path + "/packages/{package_id}/download", download_package, methods=["GET"]),
        Route(
            registry_path + "/packages/{package_id}/delete",
            confirm_package_deletion,
            methods=["GET"],
        ),
        Route(registry_path + "/packages/{package_id}/delete", delete_package, methods=["POST"]),
        Route(registry_path + "/tokens", tokens, methods=["GET"]),
        Route(registry_path + "/tokens", create_token, methods=["POST"]),
        Route(registry_path + "/tokens/{token_id}", token, methods=["GET"]),
        Route(registry_path + "/tokens/{token_id}", update_token, methods=["POST"]),
        Route(registry_path + "/tokens/{token_id}/rotate", rotate_token, methods=["POST"]),
        Route(registry_path + "/tokens/{token_id}/delete", confirm_token_deletion, methods=["GET"]),
        Route(registry_path + "/tokens/{token_id}/delete", delete_token, methods=["POST"]),
        Route(registry_path + "/tokens/{token_id}/disable", disable_token, methods=["POST"]),
        Route(registry_path + "/tokens/{token_id}/enable", enable_token, methods=["POST"]),
        Route(registry_path + "/tokens/{token_id}/usage", token_usage, methods=["GET"]),
        Route(
            registry_path + "/tokens/{token_id}/usage/{chart}.svg",
            token_usage_chart,
            methods=["GET"],
        ),
        Route(
            registry_path + "/tokens/{token_id}/usage/reset", confirm_usage_reset, methods=["GET"]
        ),
        Route(
            registry_path + "/tokens/{token_id}/usage/reset", reset_token_usage, methods=["POST"]
        ),
        Route(registry_path + "/usage", registry_usage, methods=["GET"]),
        Route(registry_path + "/usage/{chart}.svg", registry_usage_chart, methods=["GET"]),
        Mount("/console-static", StaticFiles(directory=STATIC_DIRECTORY), name="console-static"),
        # Last: what is under the console's own paths but no page above.
        Route("/organizations/{rest:path}", not_found, methods=["GET", "POST"]),
        Route("/access-tokens/{rest:path}", not_found, methods=["GET", "POST"]),
    ]
    prefix = urlsplit(web_url).path.rstrip("/")
    return [Mount(prefix, routes=pages)] if prefix else pages
