"""A server's memory under the attacks of #11: ``.venv/bin/python bench/attacks.py``.

Starts ``registry-tokens serve`` (one worker, the SQLite default in a temporary directory,
the demo data and an API token that may publish, made with the admin CLI), samples the
serving process's VmRSS and VmHWM (``/proc/<pid>/status``) every 50 ms, and runs two
phases, each against a fresh server:

- **archives**: three hostile uploads at once, with a valid API token: an sdist whose GNU
  long-name header announces (and holds) 1 GiB of zeros, the same with a pax header, and a
  "wheel" of nothing but central-directory entries (94 MB, or the largest that fits under
  the upload limit). Each is about a megabyte on the wire but the last.
- **combined**: the same uploads while a header flood runs: 4 connections each sending an
  unfinished header of 100 MB, slowly, and 900 half-sent requests held open (fewer than
  ``REGISTRY_TOKENS_MAX_CONNECTIONS``, 1000, so the uploads are served during the flood).
- **saturated**: the same with 3000 half-sent requests, as in the issue: past the
  connection bound, the uploads are answered 503 at once (memory stays bounded).

It prints each phase's peak RSS and each attack's HTTP status. The issue's target: a
worker's peak stays under 300 MB. The hostile archives are built by
``tests/distributions.py`` (the tests use the same builders at the limits' edges).
"""

import argparse
import asyncio
import json
import os
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

import httpx
from tests.distributions import central_directory_bomb, extended_header_sdist

from bench.processes import (
    ROOT,
    Processes,
    Server,
    free_port,
    managed,
    memory_kib,
    run_checked,
)
from registry_tokens.settings import Settings

CLI = str(ROOT / ".venv" / "bin" / "registry-tokens")
ORG, REGISTRY, EMAIL = "my_great_org", "my-registry", "eminem@buildkite.com"  # the demo's
SCOPES = "read_registries,write_registries,read_packages,write_packages"
GIB = 1024 * 1024 * 1024
ZIP_BOMB_BYTES = 94_000_000
TARGET_MB = 300
SAMPLE_SECONDS = 0.05
FLOOD_CONNECTIONS = 4
FLOOD_HEADER_BYTES = 100 * 1024 * 1024
FLOOD_CHUNK = 64 * 1024
FLOOD_PAUSE_SECONDS = 0.005
HALF_SENT = 900  # combined: under the default connection bound (1000)
SATURATING = 3000  # saturated: the 3000, past it


@dataclass
class Sampler:
    """The serving process's memory, every 50 ms, on a thread of its own."""

    pid: int
    peak_rss_kib: int = 0
    hwm_kib: int = 0
    first_rss_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "Sampler":
        self.first_rss_kib = memory_kib(self.pid).get("VmRSS", 0)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        memory = memory_kib(self.pid)
        self.peak_rss_kib = max(self.peak_rss_kib, memory.get("VmRSS", 0))
        self.hwm_kib = max(self.hwm_kib, memory.get("VmHWM", 0))


@dataclass(frozen=True)
class Attack:
    name: str
    path: Path


@dataclass
class Outcome:
    name: str
    status: int | str
    seconds: float
    message: str


def build_attacks(directory: Path, max_upload_bytes: int) -> list[Attack]:
    gnu = extended_header_sdist(
        directory, "gnu-bomb", "1.0", [(tarfile.GNUTYPE_LONGNAME, GIB)], zeros=True
    )
    pax = extended_header_sdist(directory, "pax-bomb", "1.0", [(tarfile.XHDTYPE, GIB)], zeros=True)
    wheel = directory / "zip_bomb-1.0-py3-none-any.whl"
    # The form's own bytes (boundary, part headers) count against the limit too.
    wheel.write_bytes(central_directory_bomb(min(ZIP_BOMB_BYTES, max_upload_bytes - 64 * 1024)))
    return [
        Attack("tar GNU long name claiming 1 GiB", gnu),
        Attack("tar pax header claiming 1 GiB", pax),
        Attack(
            f"zip of only central-directory entries ({wheel.stat().st_size / 1e6:.0f} MB)", wheel
        ),
    ]


def upload(base_url: str, token: str, attack: Attack) -> Outcome:
    started = time.monotonic()
    url = f"{base_url}/v2/packages/organizations/{ORG}/registries/{REGISTRY}/packages"
    try:
        with attack.path.open("rb") as handle:
            response = httpx.post(
                url,
                headers={"Authorization": f"Bearer {token}"},
                files={"file": (attack.path.name, handle, "application/octet-stream")},
                timeout=300,
            )
        status: int | str = response.status_code
        message = response.text[:160]
    except httpx.HTTPError as error:
        status, message = type(error).__name__, str(error)[:160]
    return Outcome(attack.name, status, time.monotonic() - started, message)


async def _flood_one(port: int, stop: asyncio.Event, sent: list[int]) -> None:
    """One connection sending an unfinished header of 100 MB, a chunk at a time."""
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Flood: ")
        chunk = b"a" * FLOOD_CHUNK
        total = 0
        while total < FLOOD_HEADER_BYTES and not stop.is_set():
            writer.write(chunk)
            await writer.drain()
            total += len(chunk)
            sent[0] += len(chunk)
            await asyncio.sleep(FLOOD_PAUSE_SECONDS)
        await stop.wait()
    except OSError:
        pass  # the server closed it: what a bounded server does
    finally:
        writer.close()


async def _half_sent(port: int, stop: asyncio.Event, opened: list[int]) -> None:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        opened[0] += 1
        await stop.wait()
    except OSError:
        pass
    finally:
        writer.close()


@dataclass
class Flood:
    """The header flood, on an event loop of its own thread, until :meth:`stop`."""

    port: int
    half_sent: int
    sent: list[int] = field(default_factory=lambda: [0])
    opened: list[int] = field(default_factory=lambda: [0])
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()

        async def run() -> None:
            self._stop = asyncio.Event()
            ready.set()
            await asyncio.gather(
                *(_flood_one(self.port, self._stop, self.sent) for _ in range(FLOOD_CONNECTIONS)),
                *(_half_sent(self.port, self._stop, self.opened) for _ in range(self.half_sent)),
            )

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(run(),))
        self._thread.start()
        ready.wait()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._loop.close()


def start_server(processes: Processes, workdir: Path, label: str) -> Server:
    port = free_port()
    env = server_env(workdir, port)
    argv = [CLI, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return processes.start_server(
        f"registry-tokens ({label})", argv, env, workdir / f"{label}.log", port, 1, "/openapi.json"
    )


def server_env(workdir: Path, port: int) -> dict[str, str]:
    """The shipped defaults, but for the SQLite file (in ``workdir``) and the URLs."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_TOKENS_")
    }
    return {
        **environment,
        "REGISTRY_TOKENS_DATABASE_URL": f"sqlite:///{workdir / 'registry-tokens.db'}",
        "REGISTRY_TOKENS_API_URL": f"http://127.0.0.1:{port}",
    }


def seed(workdir: Path) -> str:
    """The demo data and an API token that may publish, with the admin CLI; its secret."""
    env = server_env(workdir, 0)
    run_checked([CLI, "demo", "--json"], env, timeout=120)
    created = run_checked(
        [CLI, "admin", "create-api-token", "--email", EMAIL, "--scopes", SCOPES, "--json"],
        env,
        timeout=120,
    )
    token: str = json.loads(created)["token"]
    return token


def phase(
    processes: Processes,
    workdir: Path,
    label: str,
    token: str,
    attacks: list[Attack],
    half_sent: int | None,
) -> tuple[Sampler, list[Outcome], Flood | None]:
    """One phase on a fresh server: the uploads, during a flood of ``half_sent`` requests
    (and the four long headers) unless ``None``."""
    server = start_server(processes, workdir, label)
    try:
        (pid,) = server.serving_pids()
        flooding = Flood(server.port, half_sent) if half_sent is not None else None
        with Sampler(pid) as sampler:
            time.sleep(0.5)
            if flooding is not None:
                flooding.start()
                time.sleep(2)  # the flood under way before the uploads start
            with ThreadPoolExecutor(len(attacks)) as pool:
                outcomes = list(pool.map(partial(upload, server.base_url, token), attacks))
            if flooding is not None:
                time.sleep(2)
                flooding.stop()
        return sampler, outcomes, flooding
    finally:
        processes.stop(server)


def report(label: str, sampler: Sampler, outcomes: list[Outcome], flood: Flood | None) -> None:
    peak = max(sampler.peak_rss_kib, sampler.hwm_kib) / 1024
    verdict = "under" if peak < TARGET_MB else "OVER"
    print(f"\n== {label}")
    print(f"  RSS at start {sampler.first_rss_kib / 1024:.0f} MB")
    print(
        f"  peak RSS {sampler.peak_rss_kib / 1024:.0f} MB sampled every 50 ms, "
        f"VmHWM {sampler.hwm_kib / 1024:.0f} MB: {verdict} the {TARGET_MB} MB target"
    )
    for outcome in outcomes:
        print(f"  {outcome.status}  {outcome.name}  ({outcome.seconds:.1f} s)  {outcome.message}")
    if flood is not None:
        print(
            f"  flood: {flood.sent[0] / 1e6:.0f} MB of unfinished headers sent on "
            f"{FLOOD_CONNECTIONS} connections; {flood.opened[0]} of {flood.half_sent} half-sent "
            "requests opened"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--no-flood", action="store_true", help="the archives phase only")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rt-attacks-") as scratch, managed() as processes:
        workdir = Path(scratch)
        token = seed(workdir)
        attacks = build_attacks(workdir, Settings().max_upload_bytes)
        for attack in attacks:
            print(f"built {attack.path.name}: {attack.path.stat().st_size / 1e6:.2f} MB")
        results = [("archives", *phase(processes, workdir, "archives", token, attacks, None))]
        if not options.no_flood:
            for label, half_sent in (("combined", HALF_SENT), ("saturated", SATURATING)):
                outcome = phase(processes, workdir, label, token, attacks, half_sent)
                results.append((f"archives and header flood ({label})", *outcome))
        for label, sampler, outcomes, flood in results:
            report(label, sampler, outcomes, flood)
    return 0


if __name__ == "__main__":
    sys.exit(main())
