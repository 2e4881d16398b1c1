"""The object store on a real S3-compatible server (moto's, on loopback): the local store's
rules. The sweep moves (never deletes) only what no row names, and nothing when the
database owns fewer than half of the bucket's package files; a missing object is
``FileNotFoundError``; files of every size go and come back whole.

Moto cannot date an object in the past: an "old" object is one older than a threshold
set a minute into the future.
"""

import hashlib
import io
import random
import uuid
from pathlib import Path

import pytest

from registry_tokens.packages.object_storage import ObjectStore, StoreUnavailable, s3_client
from registry_tokens.packages.storage import CHUNK, QUARANTINE
from registry_tokens.settings import Settings, SettingsError
from tests.object_store import endpoint, new_bucket, objects

ALL_OLD = -60.0  # seconds: every object counts as older than this


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(
        f"s3://{new_bucket()}/pkgs", tmp_path / "scratch", client=s3_client(endpoint())
    )


def put(store: ObjectStore, content: bytes) -> tuple[str, uuid.UUID]:
    staged = store.stage(io.BytesIO(content), max_bytes=len(content))
    package_id = uuid.uuid4()
    store.commit(staged, package_id)
    return staged.sha256, package_id


@pytest.mark.parametrize(
    ("owned", "unowned", "refused"),
    [(0, 1, True), (1, 2, True), (1, 1, False), (3, 1, False)],
)
def test_the_sweep_refuses_unless_the_database_owns_half_the_files(
    store: ObjectStore, owned: int, unowned: int, refused: bool
) -> None:
    live = [put(store, f"owned {n}".encode()) for n in range(owned)]
    orphans = [put(store, f"orphan {n}".encode()) for n in range(unowned)]
    sweep = store.sweep(live, older_than_seconds=ALL_OLD)
    assert (sweep.package_files, sweep.owned, sweep.unowned) == (owned + unowned, owned, unowned)
    assert sweep.refused is refused
    remaining = objects(store.url, "sha256/")
    assert all(store.key_for(*row) in remaining for row in live)
    assert all(store.key_for(*row) in remaining for row in orphans) is refused
    moved = sorted(objects(store.url, f"{QUARANTINE}/").values())
    assert moved == ([] if refused else sorted(f"orphan {n}".encode() for n in range(unowned)))
    if not refused:
        assert sweep.quarantine is not None
        assert sweep.quarantine.startswith(f"s3://{store.bucket}/pkgs/{QUARANTINE}/")


def test_young_objects_and_an_empty_bucket_are_left_alone(store: ObjectStore) -> None:
    assert store.sweep([], older_than_seconds=3600).quarantine is None
    young = put(store, b"young")
    sweep = store.sweep([], older_than_seconds=3600)
    assert (sweep.unowned, sweep.refused, sweep.quarantine) == (0, False, None)
    assert store.key_for(*young) in objects(store.url, "sha256/")


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 9 * 1024 * 1024])
def test_files_of_every_size_come_back_whole(store: ObjectStore, size: int) -> None:
    content = random.randbytes(size)
    sha256, package_id = put(store, content)
    assert sha256 == hashlib.sha256(content).hexdigest()
    fetched = store.fetch(sha256, package_id)
    assert fetched.size == size
    assert b"".join(fetched.chunks()) == content
    # Whole in memory only when it is one chunk at most; else streamed.
    assert (fetched.content is not None) is (size <= CHUNK)
    assert list(store.scratch.tmp.iterdir()) == []  # nothing left staged


def test_a_missing_object_is_file_not_found_and_a_removed_one_is_gone(
    store: ObjectStore,
) -> None:
    sha256, package_id = put(store, b"soon gone")
    store.remove(sha256, package_id)
    with pytest.raises(FileNotFoundError):
        store.fetch(sha256, package_id)
    with pytest.raises(FileNotFoundError):
        store.stage_copy(sha256, package_id, "")
    store.remove(sha256, package_id)  # removing twice is no error


def test_a_held_upload_waits_in_the_bucket_until_consumed_or_forgotten(
    store: ObjectStore,
) -> None:
    staged = store.stage(io.BytesIO(b"presigned"), max_bytes=100)
    name = store.hold(staged)
    assert not staged.path.exists()
    assert objects(store.url, "tmp/") == {f"pkgs/tmp/{name}": b"presigned"}
    fetched = store.staged(name, staged.size, staged.sha256, staged.sha512)
    assert fetched.path.read_bytes() == b"presigned"
    package_id = uuid.uuid4()
    store.commit(fetched, package_id)
    store.discard(fetched)
    assert objects(store.url, "tmp/") == {}
    assert b"".join(store.fetch(staged.sha256, package_id).chunks()) == b"presigned"

    other = store.hold(store.stage(io.BytesIO(b"expired"), max_bytes=100))
    store.forget(other)
    assert objects(store.url, "tmp/") == {}


def test_an_unreachable_store_is_unavailable_not_an_error(tmp_path: Path) -> None:
    from tests.harness import free_port

    nowhere = ObjectStore(
        "s3://nowhere/pkgs",
        tmp_path,
        client=s3_client(f"http://127.0.0.1:{free_port()}"),
    )
    with pytest.raises(StoreUnavailable) as raised:
        nowhere.check()
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "5"}
    staged = nowhere.stage(io.BytesIO(b"x"), max_bytes=10)
    with pytest.raises(StoreUnavailable):
        nowhere.commit(staged, uuid.uuid4())


@pytest.mark.parametrize(
    "url", ["bucket/prefix", "s3://", "file:///var/packages", "s3://bucket/p?x=1", "http://b/p"]
)
def test_a_storage_url_that_is_not_a_bucket_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError, match="PACKAGE_STORAGE_URL"):
        Settings(package_storage_url=url)
