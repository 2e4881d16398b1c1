"""Starting and stopping the processes the bench runs, and reading their memory and CPU.

Every server runs in a process group of its own (``start_new_session``), so stopping it
stops its uvicorn workers too; :class:`Processes` stops whatever is still running when the
bench ends, fails or is interrupted.
"""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process (``registry-tokens serve`` or the baseline) on a loopback port."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    workers: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving_pids(self) -> list[int]:
        """The processes that answer requests: uvicorn's spawned workers if it has any
        (``--workers N`` with N > 1), else the process itself (``--workers 1`` serves
        in the main process)."""
        workers = [
            pid
            for pid in descendants(self.process.pid)
            if "spawn_main" in _read(f"/proc/{pid}/cmdline").replace("\0", " ")
        ]
        return sorted(workers) or [self.process.pid]

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Processes:
    """Everything the bench started; :meth:`stop_all` ends what is still running."""

    running: list[Server] = field(default_factory=list)

    def start_server(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        port: int,
        workers: int,
        ready_path: str,
        timeout: float = 60,
    ) -> Server:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                list(argv),
                env=env,
                cwd=ROOT,
                # uvicorn's access log (stdout, at the default log level info) is written,
                # as it would be, but not kept; everything else (stderr) goes to the log.
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        server = Server(name, process, port, workers, log_path)
        self.running.append(server)
        try:
            _wait_ready(server, ready_path, timeout)
        except BaseException:
            self.stop(server)
            raise
        return server

    def stop(self, server: Server) -> None:
        if server in self.running:
            self.running.remove(server)
        process = server.process
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Workers left behind by a killed supervisor are in the same group.
        _signal_group(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for server in list(self.running):
            try:
                self.stop(server)
            except Exception as error:  # stop the others whatever happens to one
                print(f"bench: could not stop {server.name}: {error}", flush=True)


@contextmanager
def managed() -> Iterator[Processes]:
    """Processes that are stopped when the block ends, also on failure, Ctrl-C or SIGTERM."""
    processes = Processes()

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield processes
    finally:
        processes.stop_all()
        signal.signal(signal.SIGTERM, previous)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_ready(server: Server, ready_path: str, timeout: float) -> None:
    """Until the server answers ``ready_path`` and (with several workers) every worker has
    started and finished importing the app (its CPU time stops growing while idle)."""
    deadline = time.monotonic() + timeout
    answered = False
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(
                f"{server.name} exited early (code {server.process.returncode}); "
                f"log:\n{_tail(server.log_path)}"
            )
        if not answered:
            try:
                answered = httpx.get(f"{server.base_url}{ready_path}", timeout=2).is_success
            except httpx.HTTPError:
                answered = False
        if answered and (server.workers == 1 or _workers_idle(server)):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not start in {timeout:.0f}s:\n{_tail(server.log_path)}")


def _workers_idle(server: Server) -> bool:
    pids = server.serving_pids()
    if len(pids) < server.workers:
        return False
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(0.5)
    return all(cpu_seconds(pid) - used < 0.02 for pid, used in before.items())


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children, their children...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        if not stat:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    stack = [root]
    for _ in range(10_000):
        if not stack:
            break
        pid = stack.pop()
        for child in children.get(pid, []):
            found.append(child)
            stack.append(child)
    return found


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of a process, in KiB."""
    values: dict[str, int] = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_checked(argv: Sequence[str], env: dict[str, str], timeout: float) -> str:
    """Runs a short command to completion (bounded in time); its output, or an error."""
    completed = subprocess.run(  # noqa: S603 - our own argv, no shell
        list(argv),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed.stdout
