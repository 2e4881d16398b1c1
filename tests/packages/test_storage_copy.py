"""A copied package's file, on a real directory: its own name for the bytes (a hard link,
or a flushed copy where links fail), which the start-up sweep spares while it is staged."""

import errno
import hashlib
import os
import uuid
from pathlib import Path

import pytest

from registry_tokens.packages.storage import FileStore
from tests.packages.test_storage_sweep import HOURS_AGO, put

CONTENT = b"the wheel's bytes"


def test_a_staged_copy_is_a_link_the_sweep_spares_and_each_name_is_removed_alone(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    sha256, source_id = put(store, CONTENT)  # placed two hours ago
    source = store.path_for(sha256, source_id)

    staged = store.stage_copy(sha256, source_id, hashlib.sha512(CONTENT).hexdigest())
    assert os.path.samefile(staged.path, source)
    assert (staged.size, staged.sha256) == (len(CONTENT), sha256)
    # A link keeps its inode's old mtime: without the touch, the sweep would take it.
    sweep = store.sweep([(sha256, source_id)], older_than_seconds=3600)
    assert sweep.unowned == 0
    assert staged.path.exists()

    copy_id = uuid.uuid4()
    store.commit(staged, copy_id)
    store.remove(sha256, source_id)
    assert not source.exists()
    assert store.path_for(sha256, copy_id).read_bytes() == CONTENT


def test_where_links_fail_the_copy_is_a_full_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    sha256, source_id = put(store, CONTENT)

    def cross_device(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)  # as on a storage dir spanning mounts
    staged = store.stage_copy(sha256, source_id, hashlib.sha512(CONTENT).hexdigest())
    assert not os.path.samefile(staged.path, store.path_for(sha256, source_id))
    assert staged.path.read_bytes() == CONTENT
    assert (staged.size, staged.sha256) == (len(CONTENT), sha256)
    assert staged.path.stat().st_mtime > HOURS_AGO


def test_a_source_deleted_meanwhile_is_file_not_found_and_stages_nothing(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    sha256, source_id = put(store, CONTENT)
    store.remove(sha256, source_id)
    with pytest.raises(FileNotFoundError):
        store.stage_copy(sha256, source_id, "")
    assert list(store.tmp.iterdir()) == []
