"""Package files in object storage, end to end: real servers on an S3-compatible store
(moto's server mode, on loopback; tests/object_store.py), real pip and real npm.

Two instances that share only PostgreSQL and the bucket (each its own scratch directory)
serve each other's packages; SIGKILL during uploads leaves no row without its object; a
store that goes away answers 503 with ``Retry-After`` and comes back by itself; downloads
may be redirected to presigned URLs, after our own authorization.
"""

import concurrent.futures
import hashlib
import random
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from registry_tokens.registries.service import Ecosystem
from tests.api.test_go_client_contract import GoClient
from tests.api.test_go_client_presigned_upload import GoPackages
from tests.distributions import build_wheel
from tests.e2e.test_database_outages import TcpForwarder
from tests.e2e.test_npm import (
    NPM,
    Npm,
    ok,
    package_dir,
    project_dir,
    required_value,
)
from tests.e2e.test_pip_install import (
    NAME,
    VERSION,
    assert_installed,
    fresh_venv,
    index_url,
    pip_install,
)
from tests.harness import (
    BACKEND,
    Seeder,
    ServerProcess,
    Tenant,
    running_server,
    scratch_database,
    unique,
)
from tests.object_store import bucket_env, endpoint, new_bucket, objects
from tests.package_helpers import (
    ALL_REGISTRY_SCOPES,
    admin_tenant,
    basic,
    create_registry_token,
    packages_path,
    publish,
    published,
    simple_path,
    stored_files,
)

needs_postgresql = pytest.mark.skipif(
    BACKEND != "postgresql", reason="several instances share PostgreSQL"
)


def _package_objects(bucket: str) -> dict[str, bytes]:
    return objects(f"s3://{bucket}/packages", "sha256/")


def _rows(database_url: str) -> list[tuple[str, str]]:
    """Every package row's (sha256, id), read straight from the database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT sha256, id FROM packages")).all()
    finally:
        engine.dispose()
    return [(str(sha256), str(uuid.UUID(str(package_id)))) for sha256, package_id in rows]


def _fresh(directory: Path) -> Path:
    """A new directory under ``directory``, for one built distribution."""
    made = directory / f"dist-{uuid.uuid4().hex[:8]}"
    made.mkdir()
    return made


def _key(sha256: str, package_id: str) -> str:
    return f"packages/sha256/{sha256[:2]}/{sha256}/{package_id}"


@contextmanager
def two_instances(
    tmp_path: Path, extra: dict[str, str] | None = None
) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    """Two servers on one database and one bucket, each with a scratch directory of its own."""
    bucket = new_bucket()
    env = {
        **bucket_env(bucket),
        "REGISTRY_TOKENS_SECRET_KEY": uuid.uuid4().hex * 2,
        **(extra or {}),
    }
    with (
        scratch_database(tmp_path) as url,
        running_server(tmp_path / "a", url, env=env) as first,
        running_server(tmp_path / "b", url, env=env) as second,
    ):
        yield first, second, bucket


def _js_registry(seeder: Seeder, tenant: Tenant) -> str:
    return seeder.services.registries.create(
        tenant.org, "Node", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
    ).slug


@needs_postgresql
@pytest.mark.skipif(NPM is None, reason="npm is not installed (bin/npm-setup)")
def test_two_instances_sharing_only_postgresql_and_the_bucket_serve_pip_and_npm(
    tmp_path: Path,
) -> None:
    with two_instances(tmp_path) as (first, second, bucket):
        seeder = Seeder(first)
        owner = admin_tenant(seeder)
        value = uuid.uuid4().hex
        wheel = build_wheel(_fresh(tmp_path), NAME, VERSION, value=value)
        with first.client() as client:
            package = published(client, owner.org, owner.registry, owner.tokens["rw"], wheel)
        assert set(_package_objects(bucket)) == {_key(package["digests"]["sha256"], package["id"])}
        with second.client() as client:
            token = create_registry_token(client, owner.org, owner.registry, owner.tokens["rw"])

        # pip through each instance, the file published through the first.
        for server in (second, first):
            python = fresh_venv(tmp_path / f"venv-{urlsplit(server.base_url).port}")
            url = index_url(server, owner.org, owner.registry, token["token"])
            assert_installed(pip_install(python, "--index-url", url, NAME), python, value)

        # npm: publish through the second, install and require() through each.
        js = _js_registry(seeder, owner)
        npm_value = uuid.uuid4().hex
        publisher = Npm(tmp_path / "publisher", f"{second.base_url}/{owner.org}/{js}/npm/")
        publisher.home.mkdir()
        publisher.configure(owner.tokens["rw"])
        ok(publisher.run(package_dir(tmp_path, "shared-npm", "1.0.0", npm_value), "publish"))
        with first.client() as client:
            js_token = create_registry_token(client, owner.org, js, owner.tokens["rw"])
        for server in (first, second):
            port = urlsplit(server.base_url).port
            installer = Npm(
                tmp_path / f"installer-{port}", f"{server.base_url}/{owner.org}/{js}/npm/"
            )
            installer.home.mkdir()
            installer.configure(js_token["token"])
            project = project_dir(tmp_path, f"shared-{port}")
            ok(installer.run(project, "install", "shared-npm"))
            assert required_value(project, "shared-npm") == npm_value

        # Neither scratch directory keeps a package file: they are all in the bucket.
        for server in (first, second):
            scratch = Path(server.env["REGISTRY_TOKENS_PACKAGE_STORAGE_DIR"])
            assert stored_files(scratch) == {}
        assert len(_package_objects(bucket)) == 2

        # A deletion through one instance is a 404 on the other, and the object is gone.
        with second.client() as client:
            deleted = client.delete(package["url"], headers=owner.auth())
            assert deleted.status_code == 200, deleted.text
        with first.client() as client:
            page = client.get(
                simple_path(owner.org, owner.registry) + f"{NAME}/", headers=basic(token["token"])
            )
            assert page.status_code == 404
        assert _key(package["digests"]["sha256"], package["id"]) not in _package_objects(bucket)


@needs_postgresql
def test_a_presigned_upload_to_one_instance_is_finalized_by_the_other(tmp_path: Path) -> None:
    """go-buildkite's three requests through a load balancer (a forwarder to the first
    instance), the finalize at the second: the staged file waits in the bucket, not on the
    scratch disk of the instance that took it."""
    balancer = TcpForwarder(("127.0.0.1", 0))
    balancer.start()
    try:
        api = {"REGISTRY_TOKENS_API_URL": f"http://127.0.0.1:{balancer.port}"}
        with two_instances(tmp_path, api) as (first, second, bucket):
            balancer.target = ("127.0.0.1", urlsplit(first.base_url).port or 80)
            owner = admin_tenant(Seeder(first))
            wheel = build_wheel(_fresh(tmp_path), NAME, VERSION, value="presigned")
            uploader, finisher = (
                GoClient(first, owner.tokens["rw"]),
                GoClient(second, owner.tokens["rw"]),
            )
            try:
                presigned = GoPackages(uploader).request_presigned_upload(owner.org, owner.registry)
                package_url = GoPackages(uploader).perform(
                    presigned, wheel.read_bytes(), wheel.name
                )
                assert stored_files(Path(first.env["REGISTRY_TOKENS_PACKAGE_STORAGE_DIR"])) == {}
                assert len(objects(f"s3://{bucket}/packages", "tmp/")) == 1
                package = GoPackages(finisher).finalize(owner.org, owner.registry, package_url)
            finally:
                uploader.close()
                finisher.close()
            assert objects(f"s3://{bucket}/packages", "tmp/") == {}
            assert _package_objects(bucket) == {
                _key(hashlib.sha256(wheel.read_bytes()).hexdigest(), package.id): wheel.read_bytes()
            }
    finally:
        balancer.cut()


def test_sigkill_during_uploads_leaves_no_row_without_its_object(tmp_path: Path) -> None:
    bucket = new_bucket()
    with running_server(tmp_path, env=bucket_env(bucket)) as server:
        owner = admin_tenant(Seeder(server))
        wheels = [
            build_wheel(
                _fresh(tmp_path),
                f"crash-{n}",
                "1.0",
                value=str(n),
                extra_members={"crash/padding.bin": random.randbytes(3 * 1024 * 1024)},
            )
            for n in range(12)
        ]

        def upload(wheel: Path) -> int:
            try:
                with server.client(timeout=60) as client:
                    return client.post(
                        packages_path(owner.org, owner.registry),
                        headers=owner.auth(),
                        files={"file": (wheel.name, wheel.read_bytes())},
                    ).status_code
            except httpx.HTTPError:
                return 0

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(upload, wheel) for wheel in wheels]
            time.sleep(1.5)  # some uploads answered, others in flight
            assert server.process is not None
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            answers = [future.result() for future in futures]
        rows = _rows(server.database_url)
        in_bucket = _package_objects(bucket)
        assert answers.count(201) + answers.count(200) <= len(rows)
        for sha256, package_id in rows:
            assert _key(sha256, package_id) in in_bucket, (sha256, package_id)

        # Restarted, it serves every package it has a row for.
        server.start()
        token = None
        with server.client() as client:
            token = create_registry_token(client, owner.org, owner.registry, owner.tokens["rw"])
            listed = client.get(
                packages_path(owner.org, owner.registry), headers=owner.auth()
            ).json()["items"]
            assert len(listed) == len(rows)
            for package in listed:
                project = simple_path(owner.org, owner.registry) + f"{package['name']}/"
                page = client.get(project, headers=basic(token["token"]))
                assert page.status_code == 200, page.text


def _storage_failures(client: httpx.Client) -> float:
    """The sum of the package store's failures in ``/metrics``."""
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(scraped.text)
        if family.name == "registry_tokens_storage_errors"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_an_unreachable_store_answers_503_and_recovers_by_itself(tmp_path: Path) -> None:
    store = urlsplit(endpoint())
    forwarder = TcpForwarder((store.hostname or "127.0.0.1", store.port or 80))
    forwarder.start()
    try:
        through = f"http://127.0.0.1:{forwarder.port}"
        env = bucket_env(new_bucket(), url=through)
        with running_server(tmp_path, env=env) as server:
            owner = admin_tenant(Seeder(server))
            wheel = build_wheel(_fresh(tmp_path), NAME, VERSION, value="outage")
            with server.client() as client:
                package = published(client, owner.org, owner.registry, owner.tokens["rw"], wheel)
                token = create_registry_token(client, owner.org, owner.registry, owner.tokens["rw"])
                auth = basic(token["token"])
                page = client.get(
                    simple_path(owner.org, owner.registry) + f"{NAME}/",
                    headers={**auth, "Accept": "application/vnd.pypi.simple.v1+json"},
                )
                file_url = page.json()["files"][0]["url"]
                download = str(httpx.URL(page.url).join(file_url))
                assert client.get(download, headers=auth).content == wheel.read_bytes()

                assert client.get("/readyz").status_code == 200
                failures_before = _storage_failures(client)

                forwarder.cut()
                not_ready = client.get("/readyz")
                assert not_ready.status_code == 503
                assert not_ready.json()["checks"]["storage"] == "unavailable"
                second = build_wheel(_fresh(tmp_path), "other-pkg", "1.0", value="x")
                refused = [
                    client.get(download, headers=auth),
                    client.post(
                        packages_path(owner.org, owner.registry),
                        headers=owner.auth(),
                        files={"file": (second.name, second.read_bytes())},
                    ),
                ]
                for answer in refused:
                    assert answer.status_code == 503, answer.text
                    assert answer.headers["Retry-After"].isdigit()
                    assert "package store is unavailable" in answer.json()["message"]
                # Nothing was half-published: the refused file has no row.
                names = [
                    item["name"]
                    for item in client.get(
                        packages_path(owner.org, owner.registry), headers=owner.auth()
                    ).json()["items"]
                ]
                assert names == [package["name"]]

                # The readiness check, the download and the publish: each failed once.
                assert _storage_failures(client) - failures_before == 3

                forwarder.restore()
                assert client.get("/readyz").status_code == 200
                assert client.get(download, headers=auth).content == wheel.read_bytes()
                again = client.post(
                    packages_path(owner.org, owner.registry),
                    headers=owner.auth(),
                    files={"file": (second.name, second.read_bytes())},
                )
                assert again.status_code in (200, 201), again.text
            log = server.log_path.read_text()
            assert "Internal Server Error" not in log
            assert "Traceback" not in log
    finally:
        forwarder.cut()


def test_downloads_redirect_to_a_presigned_url_only_after_our_authorization(
    tmp_path: Path,
) -> None:
    env = {**bucket_env(), "REGISTRY_TOKENS_PACKAGE_DOWNLOAD_REDIRECT_SECONDS": "60"}
    with running_server(tmp_path, env=env) as server:
        owner = admin_tenant(Seeder(server))
        value = uuid.uuid4().hex
        wheel = build_wheel(_fresh(tmp_path), NAME, VERSION, value=value)
        with server.client() as client:
            published(client, owner.org, owner.registry, owner.tokens["rw"], wheel)
            created = client.post(
                f"/v2/packages/organizations/{owner.org}/registries/{owner.registry}/tokens",
                headers=owner.auth(),
                json={"description": "redirected", "max_downloads": 2},
            )
            assert created.status_code == 200, created.text
            token = created.json()
            auth = basic(token["token"])
            page = client.get(
                simple_path(owner.org, owner.registry) + f"{NAME}/",
                headers={**auth, "Accept": "application/vnd.pypi.simple.v1+json"},
            )
            download = str(httpx.URL(page.url).join(page.json()["files"][0]["url"]))
            # No credentials: no redirect, no URL of the file.
            anonymous = client.get(download)
            assert anonymous.status_code == 401
            assert "location" not in anonymous.headers
            redirected = client.get(download, headers=auth)
            assert redirected.status_code == 302
            location = redirected.headers["location"]
            assert location.startswith(endpoint())
            assert "X-Amz-Signature=" in location
            assert "X-Amz-Expires=60" in location
            assert httpx.get(location).content == wheel.read_bytes()

        # pip follows the redirect; the token's second (and last) download.
        python = fresh_venv(tmp_path / "venv")
        url = index_url(server, owner.org, owner.registry, token["token"])
        assert_installed(pip_install(python, "--index-url", url, NAME), python, value)
        with server.client() as client:
            refused = client.get(download, headers=auth)
            assert refused.status_code == 403
            assert "location" not in refused.headers


def test_presigned_uploads_go_straight_to_the_bucket_and_publish_once(tmp_path: Path) -> None:
    """go-buildkite's three requests with PRESIGNED_UPLOADS_TO_BUCKET: the file is posted
    to the bucket under S3's presigned POST, never through us; the finalize fetches it,
    checks our policy inside its key, publishes it and removes the upload."""
    bucket = new_bucket()
    env = {**bucket_env(bucket), "REGISTRY_TOKENS_PRESIGNED_UPLOADS_TO_BUCKET": "true"}
    with running_server(tmp_path, env=env) as server:
        seeder = Seeder(server)
        owner = admin_tenant(seeder)
        # The same person's other token: the policy names the token that asked for it.
        other_token = seeder.api_token(owner.email, ALL_REGISTRY_SCOPES)
        value = uuid.uuid4().hex
        wheel = build_wheel(_fresh(tmp_path), NAME, VERSION, value=value)
        go = GoClient(server, owner.tokens["rw"])
        try:
            packages = GoPackages(go)
            presigned = packages.request_presigned_upload(owner.org, owner.registry)
            assert presigned.form.url.startswith(endpoint())
            assert "x-amz-signature" in presigned.form.data
            package_url = packages.perform(presigned, wheel.read_bytes(), wheel.name)
            uploads = objects(f"s3://{bucket}/packages", "uploads/")
            assert list(uploads.values()) == [wheel.read_bytes()]
            assert "/uploads/packages" not in server.log_path.read_text()  # never through us

            # Another token, and a key whose signature is not ours: as absent.
            signature = presigned.form.data["key"].split("/uploads/")[1].split("/")[0]
            signature = signature.rpartition(".")[2]
            forged = signature[:-1] + ("1" if signature[-1] == "0" else "0")
            with server.client() as client:
                for secret, url in (
                    (other_token, package_url),
                    (owner.tokens["rw"], package_url.replace(signature, forged)),
                ):
                    refused = client.post(
                        packages_path(owner.org, owner.registry),
                        headers={"Authorization": f"Bearer {secret}"},
                        data={"package_url": url},
                    )
                    assert refused.status_code == 404, refused.text

            package = packages.finalize(owner.org, owner.registry, package_url)
            assert (package.name, package.version) == (NAME, VERSION)
        finally:
            go.close()
        assert objects(f"s3://{bucket}/packages", "uploads/") == {}
        with server.client() as client:
            again = client.post(
                packages_path(owner.org, owner.registry),
                headers=owner.auth(),
                data={"package_url": package_url},
            )
            assert again.status_code == 404, again.text
            token = create_registry_token(client, owner.org, owner.registry, owner.tokens["rw"])
        python = fresh_venv(tmp_path / "venv")
        url = index_url(server, owner.org, owner.registry, token["token"])
        assert_installed(pip_install(python, "--index-url", url, NAME), python, value)


def test_a_server_started_while_the_store_is_down_serves_once_it_is_back(
    tmp_path: Path,
) -> None:
    store = urlsplit(endpoint())
    forwarder = TcpForwarder((store.hostname or "127.0.0.1", store.port or 80))
    forwarder.start()
    env = bucket_env(new_bucket(), url=f"http://127.0.0.1:{forwarder.port}")
    forwarder.cut()
    try:
        with running_server(tmp_path, env=env) as server:
            assert "the start-up sweep is skipped" in server.log_path.read_text()
            owner = admin_tenant(Seeder(server))
            wheel = build_wheel(_fresh(tmp_path), NAME, VERSION, value="late")
            with server.client() as client:
                assert client.get("/readyz").status_code == 503
                refused = publish(client, owner.org, owner.registry, owner.tokens["rw"], wheel)
                assert refused.status_code == 503, refused.text
                forwarder.restore()
                assert client.get("/readyz").status_code == 200
                published(client, owner.org, owner.registry, owner.tokens["rw"], wheel)
    finally:
        forwarder.cut()
