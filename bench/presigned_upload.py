"""A server's memory while go-buildkite's ``PackagesService.Create`` uploads a large wheel
through the presigned flow: ``.venv/bin/python -m bench.presigned_upload [BYTES]``.

Starts ``registry-tokens serve`` (``tests.harness.running_server``: one process, a fresh
SQLite database, an upload limit just above the file), seeds a publisher, then runs the
client's three requests as ``tests/api/test_go_client_presigned_upload.py`` rebuilds them.
Prints the serving process's VmRSS and VmHWM (``/proc/<pid>/status``) before and after:
the file streams to disk, so the peak should not grow with its size.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from tests.api.test_go_client_contract import GoClient
from tests.api.test_go_client_presigned_upload import GoPackages
from tests.distributions import build_wheel
from tests.harness import Seeder, running_server
from tests.package_helpers import admin_tenant


def memory(pid: int) -> str:
    with open(f"/proc/{pid}/status") as status:
        lines = [line.split() for line in status if line.startswith(("VmRSS", "VmHWM"))]
    return ", ".join(f"{name} {int(kb) // 1024} MiB" for name, kb, _ in lines)


def main(size: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        env = {"REGISTRY_TOKENS_MAX_UPLOAD_BYTES": str(size + 10**6)}
        with running_server(work / "server", env=env) as server:
            assert server.process is not None
            owner = admin_tenant(Seeder(server))
            blob = {"big_pkg/blob.bin": os.urandom(size)}
            wheel = build_wheel(work, "big-pkg", "1.0", extra_members=blob)
            print(f"before: {memory(server.process.pid)}")
            go = GoClient(server, owner.tokens["rw"])
            started = time.perf_counter()
            try:
                created = GoPackages(go).create(owner.org, owner.registry, wheel)
            finally:
                go.close()
            elapsed = time.perf_counter() - started
            print(
                f"published {created.package.name} ({wheel.stat().st_size} bytes) in {elapsed:.2f}s"
            )
            print(f"after: {memory(server.process.pid)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60_000_000)
