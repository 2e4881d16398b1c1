"""A real browser for tests: Debian's headless Chromium, driven through Selenium by
Debian's own chromedriver (both installed by ``bin/browser``).

- ``chromium()`` starts one (a context manager), ``browser`` is a fixture of a fresh one
  per test (its own profile: no cookies or storage shared between tests), and
  ``narrow(driver)`` gives it a phone's viewport (390x844 CSS pixels) instead of the
  desktop one (1280x900); ``wide(driver)`` goes back.
- ``screenshot(driver, name)`` saves ``tests/screenshots/<name>.png`` (git ignores the
  folder; the few pictures the README shows are copied to ``docs/screenshots/``).

The browser reaches the loopback only. Chromium sends loopback requests directly and
everything else through its proxy, and that proxy is ``LoopbackOnly``: a server of this
module on 127.0.0.1 that answers every request ``403`` and records what was asked, so no
request ever leaves the machine, and a test can see it was kept in. Host names other than
localhost resolve to nothing (``--host-resolver-rules``), and Chromium's own traffic (sync,
updates, metrics, safe browsing, translation, prefetching) is switched off.

Selenium is given the path of the driver, so it never runs Selenium Manager, which
would look for (and download) a browser and a driver of its own.
"""

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
# What Debian's /usr/bin/chromium wrapper runs, started directly: the wrapper adds flags
# and Google API keys of its own (/etc/chromium.d), which turn on extension updates and
# account sign-in, both of which call home.
CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).parent / "screenshots"
WIDE = (1280, 900)
NARROW = (390, 844)  # a phone held upright (CSS pixels)
# The discard port on the loopback: nothing listens there, so a connection fails at once.
NOWHERE = "http://127.0.0.1:9"
# Where Chromium fetches its own components and updates (seen: "CONNECT
# redirector.gvt1.com:443" once in a few hundred runs, whatever the flags below say).
_CHROMIUM_OWN = re.compile(
    r"^(?:CONNECT |[A-Z]+ https?://)(?:[a-z0-9-]+\.)*(?:gvt1\.com|update\.googleapis\.com"
    r"|clients2\.google(?:usercontent)?\.com|edgedl\.me\.gvt1\.com)[:/]"
)
BLOCKED_BODY = b"blocked by tests/browser.py: the test browser reaches the loopback only\n"


class LoopbackOnly(ThreadingHTTPServer):
    """The browser's proxy: every request that is not for the loopback comes here, and is
    answered ``403`` without being forwarded; ``requests`` lists what was asked (an HTTP
    request line, or ``CONNECT host:443`` for HTTPS)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Refuse)
        self.requests: list[str] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"

    def record(self, request_line: str) -> None:
        """Keeps what a page asked for; Chromium's own downloads of its components (from
        Google's CDN, which its flags cannot always silence) are refused all the same,
        but are not the pages' doing: the console's CSP (tested on every page) already
        keeps pages from loading anything of another origin."""
        if _CHROMIUM_OWN.search(request_line):
            return
        with self._lock:
            self.requests.append(request_line)


class _Refuse(BaseHTTPRequestHandler):
    server: LoopbackOnly

    def _refuse(self) -> None:
        self.server.record(self.requestline)
        self.send_response(403, "Blocked: the test browser reaches the loopback only")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(BLOCKED_BODY)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(BLOCKED_BODY)

    # http.server's names for the methods it answers.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815
    do_HEAD = do_OPTIONS = do_CONNECT = _refuse  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: what matters is in ``requests``."""


@contextmanager
def loopback_only() -> Iterator[LoopbackOnly]:
    proxy = LoopbackOnly()
    thread = threading.Thread(target=proxy.serve_forever, name="browser-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)


# Chromium features that call home on their own (one --disable-features: the last wins).
_DISABLED_FEATURES = (
    "AutofillServerCommunication",
    "CertificateTransparencyComponentUpdater",
    "DiceWebSigninInterception",
    "InterestFeedContentSuggestions",
    "MediaRouter",
    "NetworkTimeServiceQuerying",
    "OptimizationGuideModelDownloading",
    "OptimizationHints",
    "SafeBrowsingEnhancedProtection",
    "Translate",
)


def chromium_options(proxy: str, *, javascript: bool = True) -> webdriver.ChromeOptions:
    """Headless Chromium in a desktop-sized window, whose only way off the loopback is
    ``proxy``."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM_BINARY)
    for argument in (
        "--headless=new",
        # Containers and CI run as root, without the user namespaces the sandbox needs.
        "--no-sandbox",
        # /dev/shm is small in containers; Chromium would crash rendering large pages.
        "--disable-dev-shm-usage",
        f"--window-size={WIDE[0]},{WIDE[1]}",
        # Only the loopback is reached: it bypasses proxies (Chromium's own rule), every
        # other address goes to the refusing proxy, and no other name resolves at all.
        f"--proxy-server=http://{proxy}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        # Chromium's own traffic (update checks, network time, sign-in, safe browsing,
        # translation, hints, field trials): none, so the proxy sees only the pages'.
        "--disable-background-networking",
        "--disable-breakpad",
        "--disable-client-side-phishing-detection",
        "--disable-component-extensions-with-background-pages",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-extensions",
        "--disable-field-trial-config",
        "--disable-sync",
        "--no-default-browser-check",
        "--no-first-run",
        "--no-pings",
        "--dns-prefetch-disable",
        "--disable-features=" + ",".join(_DISABLED_FEATURES),
        "--safebrowsing-disable-auto-update",
        "--metrics-recording-only",
        "--password-store=basic",
        # Google's endpoints that Chromium calls at start-up even so (component updates,
        # account checks): pointed at a closed loopback port, they fail at once.
        *(f"--{switch}={NOWHERE}" for switch in ("gaia-url", "google-apis-url", "lso-url")),
        f"--component-updater=url-source={NOWHERE}",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    # The password manager, which would check a password typed into the console's sign-in
    # against Google's leak database.
    options.add_experimental_option(
        "prefs",
        {
            "credentials_enable_service": False,
            "profile.password_manager_enabled": False,
            "profile.password_manager_leak_detection": False,
            # 2: blocked, as for a person who turned JavaScript off.
            **({} if javascript else {"profile.default_content_setting_values.javascript": 2}),
        },
    )
    return options


def require_browser() -> None:
    """Fail (not skip) when the browser is missing: a browser test that does not run
    proves nothing, and ``bin/browser`` installs it."""
    missing = [str(path) for path in (CHROMIUM, CHROMIUM_BINARY, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: run bin/browser (Debian's chromium and "
            "chromium-driver), as bin/test does",
            pytrace=False,
        )


@contextmanager
def chromium(proxy: LoopbackOnly | None = None, *, javascript: bool = True) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, quit afterwards whatever happens; its
    non-loopback requests go to ``proxy`` (a refusing proxy of its own if none)."""
    require_browser()
    with loopback_only() if proxy is None else nullcontext(proxy) as used:
        service = Service(executable_path=str(CHROMEDRIVER))
        driver = webdriver.Chrome(
            options=chromium_options(used.address, javascript=javascript), service=service
        )
        try:
            driver.set_page_load_timeout(60)
            wide(driver)
            yield driver
        finally:
            driver.quit()


def viewport(driver: WebDriver, width: int, height: int) -> None:
    """Make the page's viewport exactly ``width`` x ``height`` CSS pixels (what media
    queries and screenshots see). A headless window's own size would not do: Chromium
    takes a pretend toolbar off its height and keeps it at least 500 pixels wide."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def narrow(driver: WebDriver) -> None:
    """A phone's window (390x844 CSS pixels) instead of the desktop one."""
    viewport(driver, *NARROW)


def wide(driver: WebDriver) -> None:
    """The desktop window (1280x900), as every browser starts."""
    viewport(driver, *WIDE)


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save what the window shows as ``tests/screenshots/<name>.png`` and return the path.

    ``name`` is a file name without extension (letters, digits, ``-``, ``_``), so tests
    cannot write outside the folder."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"{name!r} is not a screenshot name (letters, digits, - and _)")
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"Chromium could not save a screenshot to {path}")
    return path


@pytest.fixture
def browser_proxy() -> Iterator[LoopbackOnly]:
    """The refusing proxy of this test's ``browser``: what it asked of anything but the
    loopback is in ``browser_proxy.requests``."""
    with loopback_only() as proxy:
        yield proxy


@pytest.fixture
def browser(browser_proxy: LoopbackOnly) -> Iterator[WebDriver]:
    """A fresh headless Chromium in a desktop window (``narrow(browser)`` for a phone's)."""
    with chromium(browser_proxy) as driver:
        yield driver
