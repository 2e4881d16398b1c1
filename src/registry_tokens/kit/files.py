"""Files and directories only their owner may read: the database, package files, the key."""

import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIRECTORY = 0o700


def private_directory(path: Path) -> Path:
    """``mkdir -p`` where every directory it makes is owner-only (``Path.mkdir`` gives the
    parents it makes the default mode); directories that exist keep theirs."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY)
        except FileExistsError:  # made meanwhile by another process or thread
            if not directory.is_dir():
                raise
    return path


def create_private_file(path: Path) -> int:
    """A new file, owner-only, open for writing: its file descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)


def flush_to_disk(path: Path) -> None:
    """``fsync`` of a file, or of a directory (which makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
