"""Driving a server with wrk and reading what it reports.

Each run sends one request shape (``bench/lua/request.lua`` reads it from a spec file):
a method, a path (``{id}`` walks a list of token ids), headers and a body (``{n}`` makes
each body unique). Throughput and the latency percentiles come from wrk's ``--latency``
report; the script's ``done()`` also prints them as JSON (``BENCH_JSON``), with the error
counts, and the two must agree.
"""

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.processes import ROOT

LUA_SCRIPT = ROOT / "bench" / "lua" / "request.lua"
_UNITS_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class Request:
    """One request shape: what the Lua script sends, over and over."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    ids: Sequence[str] = ()

    def concrete(self) -> tuple[str, str | None]:
        """The first request the script would send (for probing the real response)."""
        path = self.path.replace("{id}", self.ids[0]) if self.ids else self.path
        body = self.body.replace("{n}", "probe") if self.body is not None else None
        return path, body

    def write_spec(self, directory: Path, name: str, threads: int) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        lines = [f"method {self.method}", f"path {self.path}", f"threads {threads}"]
        lines += [f"header {key}: {value}" for key, value in self.headers.items()]
        if self.body is not None:
            lines.append(f"body {self.body}")
        if self.ids:
            ids_path = directory / f"{name}.ids"
            ids_path.write_text("\n".join(self.ids) + "\n")
            lines.append(f"ids {ids_path}")
        if any("\n" in line for line in lines):
            raise ValueError("a request spec line may not contain a newline")
        spec_path = directory / f"{name}.spec"
        spec_path.write_text("\n".join(lines) + "\n")
        return spec_path


@dataclass(frozen=True)
class LoadSettings:
    duration: float
    warmup: float
    connections: int = 32
    threads: int = 2
    timeout_seconds: int = 10


@dataclass
class WrkResult:
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    non_2xx_3xx: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p75_ms": round(self.p75_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "errors": self.errors,
            "non_2xx_3xx": self.non_2xx_3xx,
        }


def run_wrk(
    base_url: str, spec_path: Path, seconds: float, load: LoadSettings, log_path: Path
) -> WrkResult:
    duration = max(1, round(seconds))
    argv = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{duration}s",
        f"--timeout={load.timeout_seconds}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        f"{base_url}/",
        "--",
        str(spec_path),
    ]
    completed = subprocess.run(  # noqa: S603 - our own argv, no shell
        argv,
        capture_output=True,
        text=True,
        timeout=duration + load.timeout_seconds + 60,
        check=False,
    )
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(argv)}\n{completed.stdout}{completed.stderr}\n")
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse_wrk(completed.stdout)


def _milliseconds(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(match.group(1)) * _UNITS_TO_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """wrk's ``--latency`` report, cross-checked with the script's ``BENCH_JSON`` line."""
    percentiles = {
        int(match.group(1)): _milliseconds(match.group(2))
        for match in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.MULTILINE)
    }
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    if rate is None or total is None or set(percentiles) != {50, 75, 90, 99}:
        raise RuntimeError(f"could not read wrk's report:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    json_line = re.search(r"^BENCH_JSON (.*)$", output, re.MULTILINE)
    if json_line is None:
        raise RuntimeError(f"the wrk script printed no BENCH_JSON line:\n{output}")
    exact = json.loads(json_line.group(1))
    latency = exact["latency_us"]
    requests = int(total.group(1))
    if exact["requests"] != requests:
        raise RuntimeError(f"wrk's report and BENCH_JSON disagree:\n{output}")
    for percentile in (50, 99):
        exact_ms = latency[f"p{percentile}"] / 1000
        if abs(percentiles[percentile] - exact_ms) > max(0.02, exact_ms * 0.01):
            raise RuntimeError(
                f"p{percentile}: wrk printed {percentiles[percentile]} ms, "
                f"its script {exact_ms} ms:\n{output}"
            )
    return WrkResult(
        requests=requests,
        seconds=exact["duration_us"] / 1e6,
        requests_per_second=float(rate.group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        max_ms=latency["max"] / 1000,
        errors={key: int(value) for key, value in exact["errors"].items()},
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        text=output,
    )
