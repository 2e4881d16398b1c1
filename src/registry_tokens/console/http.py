"""The console's one pipeline: every page is a handler wrapped by :func:`page`, which finds
the person signed in (or sends them to sign in), refuses forged form posts, renders the
template with the security headers every page carries, and turns errors into pages with
the status the API would answer.
"""

import functools
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from registry_tokens.api.http import exception_response
from registry_tokens.api.observability import note_caller
from registry_tokens.kit.context import Caller, RequestContext
from registry_tokens.kit.errors import AppError
from registry_tokens.kit.timestamps import format_timestamp
from registry_tokens.kit.urls import Urls, same_origin
from registry_tokens.organizations.repository import MemberOrganization
from registry_tokens.services import Services
from registry_tokens.sessions.service import SignedIn

HERE = Path(__file__).parent
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
STATIC_DIRECTORY = HERE / "static"

# No inline script or style anywhere: the one script (the copy button) is a file of ours.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# Pages change with every action and show what only their reader may see: never kept by
# a shared cache, always asked for again. A page with a secret is not kept at all.
PRIVATE = "private, no-cache"
NO_STORE = "no-store"

# What a form post may hold (the body itself is bounded by the app's BodySizeLimit).
MAX_FORM_FIELDS = 200

# Messages a redirect may ask the next page to show (``?notice=``): never user data.
NOTICES = {
    "signed-out": "You have signed out.",
    "registry-created": "Registry created.",
    "registry-updated": "Registry settings saved.",
    "registry-deleted": "Registry deleted, with its tokens and packages.",
    "package-deleted": "Package deleted.",
    "token-updated": "Registry token saved.",
    "token-deleted": "Registry token deleted: it no longer works.",
    "token-disabled": "Registry token disabled: it is refused until it is enabled.",
    "token-enabled": "Registry token enabled: it works again.",
    "token-usage-reset": "Usage reset: the token's counts and quotas start again from zero.",
    "access-token-revoked": "API access token revoked: it no longer works.",
}
P = ParamSpec("P")
T = TypeVar("T")
_SAFE_NEXT = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")


@dataclass(frozen=True)
class Cookies:
    """The console's cookie names. Over https they carry a prefix browsers hold them to:
    ``__Host-`` (Secure, the whole host, no Domain) when the console is at the root,
    ``__Secure-`` when ``WEB_URL`` has a path (``__Host-`` requires ``Path=/``)."""

    secure: bool
    path: str

    @property
    def _prefix(self) -> str:
        if not self.secure:
            return "registry_tokens_"
        return "__Host-" if self.path == "/" else "__Secure-"

    @property
    def session(self) -> str:
        return f"{self._prefix}session"

    @property
    def sign_in(self) -> str:
        return f"{self._prefix}sign_in"

    def set(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name, value, path=self.path, secure=self.secure, httponly=True, samesite="lax"
        )

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(
            name, path=self.path, secure=self.secure, httponly=True, samesite="lax"
        )


@dataclass
class Visit:
    """One console request: who made it, from where, and what its form holds."""

    request: Request
    services: Services
    cookies: Cookies
    context: RequestContext
    who: SignedIn | None = None
    form: FormData = field(default_factory=FormData)

    @property
    def urls(self) -> Urls:
        return self.services.urls

    @property
    def signed_in(self) -> SignedIn:
        assert self.who is not None  # pages that need one are wrapped by page(signed_in)
        return self.who

    def path(self, name: str) -> str:
        """A parameter of the page's path (``org``, ``registry``, ``token_id`` …)."""
        return str(self.request.path_params[name])

    async def read(
        self, work: Callable[Concatenate[Caller, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A service method that only reads, called as the person signed in."""
        return await self.services.database.read(work, self.signed_in.caller, *args, **kwargs)

    async def write(
        self, work: Callable[Concatenate[Caller, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A service method that may write, called as the person signed in."""
        return await self.services.database.write(work, self.signed_in.caller, *args, **kwargs)

    async def member(self) -> MemberOrganization:
        """The organization of the page's path, as the person sees it (with their role),
        or "not found" for one they do not belong to."""
        return await self.read(self.services.organizations.get, self.path("org"))

    def field(self, name: str) -> str:
        value = self.form.get(name)
        return value if isinstance(value, str) else ""

    def fields(self, name: str) -> list[str]:
        return [value for value in self.form.getlist(name) if isinstance(value, str)]

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        shows_secret: bool = False,
        headers: Mapping[str, str] | None = None,
        **values: Any,
    ) -> HTMLResponse:
        notice = NOTICES.get(self.query("notice") or "")
        body = TEMPLATES.get_template(template).render(
            urls=self.urls,
            who=self.who,
            notice=notice,
            when=when,
            **values,
        )
        response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
        secure(response, shows_secret=shows_secret)
        return response

    def redirect(self, url: str, notice: str | None = None) -> RedirectResponse:
        """303 after a post: the browser GETs the next page, so a reload posts nothing."""
        if notice is not None:
            url += ("&" if "?" in url else "?") + urlencode({"notice": notice})
        response = RedirectResponse(url, status_code=303)
        secure(response)
        return response


def secure(response: Response, *, shows_secret: bool = False) -> None:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = NO_STORE if shows_secret else PRIVATE


def when(value: datetime | None) -> str:
    """A time as the console shows it: UTC to the second."""
    if value is None:
        return "—"
    return format_timestamp(value)[:19].replace("T", " ") + " UTC"


def iso(value: datetime | None) -> str:
    return format_timestamp(value) if value is not None else ""


Handler = Callable[[Visit], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def page(
    *, signed_in: bool = True
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wraps a console handler in the pipeline (module docstring)."""

    def wrap(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            services: Services = request.app.state.services
            settings = services.settings
            web = urlsplit(services.urls.web)
            visit = Visit(
                request=request,
                services=services,
                cookies=Cookies(secure=web.scheme == "https", path=web.path or "/"),
                context=RequestContext.of(request, settings.trusted_proxy_networks),
            )
            try:
                if signed_in:
                    cookie = request.cookies.get(visit.cookies.session)
                    visit.who = await services.database.write(services.sessions.resume, cookie)
                    if visit.who is None:
                        return _to_sign_in(visit, had_cookie=cookie is not None)
                    note_caller(request, "user", visit.who.user_id)
                if request.method == "POST":
                    visit.form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
                    _refuse_forgeries(visit)
                    if visit.who is not None:
                        # A change counts against the person's REST allowance, as the
                        # same change through the API would (429 past it).
                        await services.rate_limits.for_caller(visit.who.user_id, None)
                return await handler(visit)
            except Exception as exc:  # every failure is a page, never a traceback
                return error_page(visit, exc)

        return endpoint

    return wrap


class Forged(AppError):
    def __init__(self) -> None:
        super().__init__(
            "This form was not sent from this console's page, or the page is too old. "
            "Go back, reload the page and try again.",
            403,
        )


def _refuse_forgeries(visit: Visit) -> None:
    """A post must come from one of our pages: same origin (when the browser says) and
    the session's CSRF token in the form. The sign-in form checks its own token."""
    origin = visit.request.headers.get("origin")
    if origin is not None and not same_origin(origin, visit.urls.web):
        raise Forged()
    if visit.request.headers.get("sec-fetch-site") == "cross-site":
        raise Forged()
    if visit.who is not None and not visit.services.sessions.tokens_match(
        visit.who.csrf_token,
        visit.form.get("csrf_token"),  # type: ignore[arg-type]
    ):
        raise Forged()


def _to_sign_in(visit: Visit, *, had_cookie: bool) -> Response:
    """A page asked for without a live session: the sign-in page, then back here."""
    request = visit.request
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = visit.urls.sign_in_web()
    if request.method == "GET":
        url += "?" + urlencode({"next": target})
    response = RedirectResponse(url, status_code=303)
    secure(response)
    if had_cookie:  # over (idle, signed out elsewhere): the browser may forget it
        visit.cookies.clear(response, visit.cookies.session)
    return response


def safe_next(visit: Visit, target: str | None) -> str:
    """Where to go after signing in: one of our own paths, else the organizations."""
    prefix = urlsplit(visit.urls.web).path
    if (
        target
        and len(target) <= 2048
        and _SAFE_NEXT.fullmatch(target)
        and not target.startswith("//")
        and target.startswith(prefix + "/")
    ):
        web = urlsplit(visit.urls.web)
        return f"{web.scheme}://{web.netloc}{target}"
    return visit.urls.organizations_web()


def error_page(visit: Visit, exc: Exception) -> HTMLResponse:
    """The API's answer to the same failure (status, message, Retry-After), as a page."""
    answered = exception_response(exc)
    message = exc.message if isinstance(exc, AppError) else _message_of(answered.body)
    status = answered.status_code
    headers = {
        name: value
        for name, value in answered.headers.items()
        if name.lower() in ("retry-after", "www-authenticate")
    }
    titles = {
        401: "Sign in required",
        403: "Not allowed",
        404: "Page not found",
        422: "That did not work",
        429: "Too many requests",
        503: "Unavailable",
        507: "Storage full",
    }
    return visit.render(
        "error.html",
        status=status,
        headers=headers,
        title=titles.get(status, "Something went wrong"),
        message=message if status < 500 or status in (503, 507) else "Internal server error",
    )


def _message_of(body: bytes | memoryview) -> str:
    try:
        document = json.loads(bytes(body))
    except ValueError:
        return "Request failed"
    return str(document.get("message", "Request failed"))
