"""List pagination: page/per_page and RFC 8288 Link headers, newest first."""

import re

import httpx
import pytest

from tests.harness import Seeder, Server, Tenant

LINK = re.compile(r'<([^>]+)>;\s*rel="([a-z]+)"')


def links(response: httpx.Response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("link", ""))}


@pytest.fixture(scope="module")
def crowded(seeder: Seeder, server: Server) -> tuple[Tenant, list[str]]:
    """A registry holding 250 tokens, created through the API; ids newest first."""
    tenant = seeder.tenant()
    with server.client(headers=tenant.auth(), timeout=30) as http:
        ids = [
            http.post(tenant.tokens_path, json={"description": f"token {n}"}).json()["id"]
            for n in range(250)
        ]
    return tenant, ids[::-1]


@pytest.mark.parametrize("per_page", [None, 7, 100])
def test_walking_next_links_visits_every_token_once(
    client: httpx.Client, crowded: tuple[Tenant, list[str]], per_page: int | None
) -> None:
    tenant, newest_first = crowded
    url: str | None = tenant.tokens_path + (f"?per_page={per_page}" if per_page else "")
    seen: list[str] = []
    pages = 0
    while url is not None:
        response = client.get(url, headers=tenant.auth())
        assert response.status_code == 200
        assert response.headers["access-control-expose-headers"] == "Link"
        seen.extend(item["id"] for item in response.json())
        pages += 1
        url = links(response).get("next")
        assert pages <= 300, "the next links never end"
    assert seen == newest_first
    expected_pages = -(-250 // (per_page or 30))
    assert pages == expected_pages


def test_link_relations_on_first_middle_and_last_pages(
    client: httpx.Client, crowded: tuple[Tenant, list[str]]
) -> None:
    tenant, _ = crowded
    base = f"{client.base_url}{tenant.tokens_path}"
    first = links(client.get(tenant.tokens_path, headers=tenant.auth()))
    assert first == {
        "next": f"{base}?page=2&per_page=30",
        "last": f"{base}?page=9&per_page=30",
    }
    middle = links(client.get(f"{tenant.tokens_path}?page=4", headers=tenant.auth()))
    assert middle == {
        "first": f"{base}?page=1&per_page=30",
        "prev": f"{base}?page=3&per_page=30",
        "next": f"{base}?page=5&per_page=30",
        "last": f"{base}?page=9&per_page=30",
    }
    last_page = client.get(f"{tenant.tokens_path}?page=9", headers=tenant.auth())
    assert len(last_page.json()) == 250 - 8 * 30
    assert set(links(last_page)) == {"first", "prev"}


def test_per_page_above_the_maximum_means_the_maximum(
    client: httpx.Client, crowded: tuple[Tenant, list[str]]
) -> None:
    tenant, newest_first = crowded
    response = client.get(f"{tenant.tokens_path}?per_page=1000", headers=tenant.auth())
    assert [item["id"] for item in response.json()] == newest_first[:100]
    assert links(response)["next"].endswith("page=2&per_page=100")


def test_a_page_past_the_end_is_empty_and_points_back(
    client: httpx.Client, crowded: tuple[Tenant, list[str]]
) -> None:
    tenant, _ = crowded
    response = client.get(f"{tenant.tokens_path}?page=50", headers=tenant.auth())
    assert response.status_code == 200
    assert response.json() == []
    assert links(response)["prev"].endswith("page=9&per_page=30")


def test_an_empty_registry_has_no_links(client: httpx.Client, tenant: Tenant) -> None:
    response = client.get(tenant.tokens_path, headers=tenant.auth())
    assert response.json() == []
    assert "link" not in response.headers
