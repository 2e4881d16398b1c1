"""URLs that follow the server: the base URL of ``serve --host H --port P``, and what
``serve`` does with it when ``REGISTRY_TOKENS_API_URL`` / ``WEB_URL`` are not set."""

import os

import pytest

from registry_tokens import cli
from registry_tokens.kit.urls import listen_origin


@pytest.mark.parametrize(
    ("host", "url", "wildcard"),
    [
        ("127.0.0.1", "http://127.0.0.1:8181", False),
        ("127.0.0.2", "http://127.0.0.2:8181", False),
        ("localhost", "http://localhost:8181", False),
        ("::1", "http://[::1]:8181", False),
        ("2001:db8:0:0::1", "http://[2001:db8::1]:8181", False),
        ("0.0.0.0", "http://127.0.0.1:8181", True),  # noqa: S104 (a value, never bound)
        ("::", "http://[::1]:8181", True),
        ("0:0:0:0:0:0:0:0", "http://[::1]:8181", True),
    ],
)
def test_the_listen_address_as_a_url(host: str, url: str, wildcard: bool) -> None:
    origin = listen_origin(host, 8181)
    assert (origin.url, origin.wildcard) == (url, wildcard)


@pytest.fixture
def unset(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in cli.PUBLIC_URL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unset_urls_follow_the_server(
    unset: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli._follow_the_server("127.0.0.1", 8181)
    assert os.environ["REGISTRY_TOKENS_API_URL"] == "http://127.0.0.1:8181"
    assert os.environ["REGISTRY_TOKENS_WEB_URL"] == "http://127.0.0.1:8181"
    assert capsys.readouterr().err == ""


def test_set_urls_are_kept_and_a_blank_one_is_unset(
    unset: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unset.setenv("REGISTRY_TOKENS_API_URL", "https://api.example.test")
    unset.setenv("REGISTRY_TOKENS_WEB_URL", " ")
    cli._follow_the_server("::1", 8181)
    assert os.environ["REGISTRY_TOKENS_API_URL"] == "https://api.example.test"
    assert os.environ["REGISTRY_TOKENS_WEB_URL"] == "http://[::1]:8181"
    assert capsys.readouterr().err == ""


def test_a_wildcard_host_names_the_loopback_and_warns(
    unset: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unset.setenv("REGISTRY_TOKENS_API_URL", "https://api.example.test")
    cli._follow_the_server("0.0.0.0", 8181)  # noqa: S104 (a value, never bound)
    assert os.environ["REGISTRY_TOKENS_WEB_URL"] == "http://127.0.0.1:8181"
    assert capsys.readouterr().err == (
        "warning: listening on every interface (0.0.0.0), but REGISTRY_TOKENS_WEB_URL is "
        "not set, so the web_url fields name http://127.0.0.1:8181, which only this "
        "machine reaches; set it to the address clients use\n"
    )


def test_the_warning_names_both_when_both_are_unset(
    unset: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli._follow_the_server("::", 8181)
    assert os.environ["REGISTRY_TOKENS_API_URL"] == "http://[::1]:8181"
    assert capsys.readouterr().err == (
        "warning: listening on every interface (::), but REGISTRY_TOKENS_API_URL and "
        "REGISTRY_TOKENS_WEB_URL are not set, so the url and web_url fields name "
        "http://[::1]:8181, which only this machine reaches; set them to the address "
        "clients use\n"
    )


def test_nothing_to_warn_about_when_both_are_set(
    unset: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unset.setenv("REGISTRY_TOKENS_API_URL", "https://api.example.test")
    unset.setenv("REGISTRY_TOKENS_WEB_URL", "https://console.example.test")
    cli._follow_the_server("::", 8181)
    assert os.environ["REGISTRY_TOKENS_WEB_URL"] == "https://console.example.test"
    assert capsys.readouterr().err == ""
