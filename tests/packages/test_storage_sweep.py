"""The start-up sweep's rule, on a real directory: it moves, never deletes, and refuses
when the database owns fewer than half of the package files on disk."""

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest

from registry_tokens.packages.storage import QUARANTINE, FileStore

HOURS_AGO = time.time() - 2 * 3600


def put(store: FileStore, content: bytes) -> tuple[str, uuid.UUID]:
    sha256, package_id = hashlib.sha256(content).hexdigest(), uuid.uuid4()
    path = store.path_for(sha256, package_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (HOURS_AGO, HOURS_AGO))
    return sha256, package_id


@pytest.mark.parametrize(
    ("owned", "unowned", "refused"),
    [(0, 1, True), (0, 3, True), (1, 2, True), (2, 3, True), (1, 1, False), (3, 1, False)],
)
def test_the_sweep_refuses_unless_the_database_owns_half_the_files(
    tmp_path: Path, owned: int, unowned: int, refused: bool
) -> None:
    store = FileStore(tmp_path)
    live = [put(store, f"owned {n}".encode()) for n in range(owned)]
    orphans = [store.path_for(*put(store, f"orphan {n}".encode())) for n in range(unowned)]
    sweep = store.sweep(live, older_than_seconds=3600)
    assert (sweep.package_files, sweep.owned, sweep.unowned) == (owned + unowned, owned, unowned)
    assert sweep.refused is refused
    assert all(store.path_for(*row).exists() for row in live)
    assert all(path.exists() for path in orphans) is refused
    quarantine = tmp_path / QUARANTINE
    moved = sorted(p.read_bytes() for p in quarantine.rglob("*") if p.is_file())
    assert moved == ([] if refused else sorted(f"orphan {n}".encode() for n in range(unowned)))


def test_an_empty_store_and_young_files_are_left_alone(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    assert store.sweep([], older_than_seconds=3600).quarantine is None
    young = store.path_for(hashlib.sha256(b"x").hexdigest(), uuid.uuid4())
    young.parent.mkdir(parents=True)
    young.write_bytes(b"x")
    sweep = store.sweep([], older_than_seconds=3600)
    assert (sweep.unowned, sweep.refused, sweep.quarantine) == (0, False, None)
    assert young.exists()
