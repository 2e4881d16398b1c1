"""From measurements to ``results.json`` and ``RESULTS.md``: ratios, targets, the machine."""

import hashlib
import json
import os
import platform
import sqlite3
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.processes import ROOT

PEER = "pypiserver"

SMALL = "1k"
PATH_TITLES = {
    "get": "get token",
    "list": "list, first page of 30",
    "list_deep": "list, page 1000",
    "install": "install: project page `…/pypi/simple/{project}/`",
    "install_index": "install: root index `…/pypi/simple/`",
    "download": "download: the wheel, token without limits",
    "download_quota": "download: the wheel, token with exact quotas",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "install_w2": "install, `--workers 2`",
}
BACKEND_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "pypiserver": "pypiserver"}
PRIMARY_PATHS = ("install", "install_index", "get", "list", "create")
PEER_PATHS = ("install", "install_index", "download")
KIND_TITLES = {"service": "counting", "service_limits_off": "off"}
RSS_LIMIT_MB = 200.0


def size_label(count: int) -> str:
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count % 1_000 == 0:
        return f"{count // 1_000}k"
    return str(count)


# -- the machine -----------------------------------------------------------------------------


def _command_output(argv: list[str]) -> str:
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, capture_output=True, text=True, timeout=30, check=False, cwd=ROOT
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (completed.stdout or completed.stderr).strip()


def machine_info(postgres_admin_url: str | None) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [
        line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line
    ]
    cores = {
        (block.get("physical id"), block.get("core id"))
        for block in (
            dict(
                (part.split(":", 1)[0].strip(), part.split(":", 1)[1].strip())
                for part in chunk.splitlines()
                if ":" in part
            )
            for chunk in cpuinfo.split("\n\n")
            if chunk.strip()
        )
    }
    meminfo = {
        line.split(":")[0]: line.split(":")[1].strip()
        for line in Path("/proc/meminfo").read_text().splitlines()
        if ":" in line
    }
    os_release = {}
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            os_release[key] = value.strip('"')
    postgres = None
    if postgres_admin_url is not None:
        engine = create_engine(postgres_admin_url)
        try:
            with engine.connect() as connection:
                postgres = str(connection.execute(text("SHOW server_version")).scalar())
        finally:
            engine.dispose()
    packages = {}
    for name in ("uvicorn", "uvloop", "httptools", "fastapi", "starlette", "pydantic"):
        packages[name] = version(name)
    for name in ("sqlalchemy", "psycopg", "pypiserver", "passlib"):
        packages[name] = version(name)
    return {
        "cpu_model": models[0] if models else platform.processor(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": len(cores) if cores else None,
        "memory_gb": round(int(meminfo.get("MemTotal", "0 kB").split()[0]) * 1024 / 1e9, 1),
        "kernel": platform.release(),
        "os": os_release.get("PRETTY_NAME", platform.platform()),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "wrk": _command_output(["wrk", "--version"]).split(" Copyright")[0].splitlines()[0:1],
        "packages": packages,
        **code_state(),
    }


def code_state() -> dict[str, Any]:
    """The commit, and a digest of src/'s uncommitted changes (others may edit it while a
    run goes on: the state is taken at the start and at the end of a run)."""
    changes = _command_output(["git", "status", "--porcelain", "--", "src"])
    diff = _command_output(["git", "diff", "HEAD", "--", "src"])
    return {
        "git_commit": _command_output(["git", "rev-parse", "--short", "HEAD"]),
        "src_uncommitted_changes": bool(changes),
        "src_state_sha256": hashlib.sha256((changes + "\n" + diff).encode()).hexdigest()[:16],
    }


def version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# -- ratios and targets ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    key: str
    title: str
    comparison: str  # ">=" or "<="
    threshold: float
    unit: str = ""

    def verdict(self, value: float | None) -> dict[str, Any]:
        if value is None:
            return {"value": None, "met": None, "margin": None}
        if self.comparison == ">=":
            met = value >= self.threshold
            margin = value / self.threshold - 1
        else:
            met = value <= self.threshold
            margin = 1 - value / self.threshold
        # margin > 0: that much better than the target; < 0: that much short of it.
        return {"value": round(value, 3), "met": met, "margin": round(margin, 3)}


# The primary table: req/s over the baseline's, rate limits counting (the shipped
# defaults), then each path with the limits counting over the same path with them off.
RPS_GOALS = {"install": 0.50, "install_index": 0.50, "get": 0.25, "list": 0.15, "create": 0.10}
LIMITS_GOAL = 0.9
# Exact quotas cost one write transaction per download (a token without any pays none);
# the goal bounds what that write may cost a download.
QUOTA_GOAL = 0.5
PRIMARY_TARGETS = tuple(
    Target(f"{path}_rps", f"{PATH_TITLES[path]}: req/s vs baseline", ">=", goal)
    for path, goal in RPS_GOALS.items()
) + tuple(
    Target(
        f"limits_{path}",
        f"{PATH_TITLES[path]}: req/s, limits counting vs off",
        ">=",
        LIMITS_GOAL,
        "x",
    )
    for path in PRIMARY_PATHS
)
OTHER_TARGETS = (
    Target("scale_p50", "every path at 1M vs 1k: p50 latency (worst path)", "<=", 1.25, "x"),
    Target("deep_p50", "list page 1000 vs page 1: p50 latency", "<=", 2.0, "x"),
    Target("workers_rps", "install, --workers 2 vs 1: req/s", ">=", 1.6, "x"),
    Target(
        "quota_rps",
        "download with exact quotas vs without limits: req/s",
        ">=",
        QUOTA_GOAL,
        "x",
    ),
    Target("rss_mb", "peak RSS of one worker after the whole run", "<=", RSS_LIMIT_MB, " MB"),
)
TARGETS = PRIMARY_TARGETS + OTHER_TARGETS
_OTHER = {target.key: target for target in OTHER_TARGETS}


def _pairs(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """(backend, dataset, path, workers) -> {"service": run, "baseline": run}."""
    pairs: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for run in runs:
        key = (run["backend"], run["dataset"], run["path"], run["workers"])
        pairs.setdefault(key, {})[run["kind"]] = run
    return pairs


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def compute_ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ratios = []
    for (backend, dataset, path, workers), pair in _pairs(runs).items():
        service, baseline = pair.get("service"), pair.get("baseline")
        if service is None or baseline is None:
            continue
        s, b = service["wrk"], baseline["wrk"]
        off = pair.get("service_limits_off")
        o = off["wrk"] if off else None
        ratios.append(
            {
                "backend": backend,
                "dataset": dataset,
                "path": path,
                "workers": workers,
                "rps_ratio": _ratio(s["requests_per_second"], b["requests_per_second"]),
                "p50_ratio": _ratio(s["p50_ms"], b["p50_ms"]),
                "p99_ratio": _ratio(s["p99_ms"], b["p99_ms"]),
                # Limits off, over the same baseline; and counting over off.
                "off_rps_ratio": _ratio(
                    o["requests_per_second"] if o else None, b["requests_per_second"]
                ),
                "off_p50_ratio": _ratio(o["p50_ms"] if o else None, b["p50_ms"]),
                "off_p99_ratio": _ratio(o["p99_ms"] if o else None, b["p99_ms"]),
                "limits_on_vs_off_rps": _ratio(
                    s["requests_per_second"], o["requests_per_second"] if o else None
                ),
                "limits_on_vs_off_p50": _ratio(s["p50_ms"], o["p50_ms"] if o else None),
            }
        )
    return ratios


def compute_comparisons(
    runs: list[dict[str, Any]], big: str, backends: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Per backend: big vs 1k per path, page 1000 vs 1, two workers vs one."""
    pairs = _pairs(runs)

    def service(backend: str, dataset: str, path: str, workers: int = 1) -> dict[str, Any] | None:
        found = pairs.get((backend, dataset, path, workers), {}).get("service")
        return found["wrk"] if found else None

    def baseline(backend: str, dataset: str, path: str, workers: int = 1) -> dict[str, Any] | None:
        found = pairs.get((backend, dataset, path, workers), {}).get("baseline")
        return found["wrk"] if found else None

    comparisons: dict[str, dict[str, Any]] = {}
    for backend in backends:
        scaling = {}
        for path in PATH_TITLES:
            if path == "install_w2":
                continue
            small, large = service(backend, SMALL, path), service(backend, big, path)
            if small is None or large is None:
                continue
            scaling[path] = {
                "p50_ratio": _ratio(large["p50_ms"], small["p50_ms"]),
                "p99_ratio": _ratio(large["p99_ms"], small["p99_ms"]),
                "rps_ratio": _ratio(large["requests_per_second"], small["requests_per_second"]),
            }
        deep, first = service(backend, big, "list_deep"), service(backend, big, "list")
        one = service(backend, big, "install")
        two = pairs.get((backend, big, "install_w2", 2), {}).get("service")
        one_base = baseline(backend, big, "install")
        two_base = pairs.get((backend, big, "install_w2", 2), {}).get("baseline")
        free, quota = service(backend, SMALL, "download"), service(backend, SMALL, "download_quota")
        comparisons[backend] = {
            "quota_vs_free_download_rps": _ratio(
                quota["requests_per_second"] if quota else None,
                free["requests_per_second"] if free else None,
            ),
            "quota_vs_free_download_p50": _ratio(
                quota["p50_ms"] if quota else None, free["p50_ms"] if free else None
            ),
            "scaling": scaling,
            "deep_vs_first_p50": _ratio(deep["p50_ms"], first["p50_ms"])
            if deep and first
            else None,
            "workers_2_vs_1_rps": _ratio(
                two["wrk"]["requests_per_second"] if two else None,
                one["requests_per_second"] if one else None,
            ),
            "baseline_workers_2_vs_1_rps": _ratio(
                two_base["wrk"]["requests_per_second"] if two_base else None,
                one_base["requests_per_second"] if one_base else None,
            ),
        }
    return comparisons


def measured_datasets(runs: list[dict[str, Any]], backend: str, big: str) -> list[str]:
    """The datasets a backend was measured on, in order (a quick run has no big one)."""
    found = {run["dataset"] for run in runs if run["backend"] == backend}
    return [dataset for dataset in (SMALL, big) if dataset in found]


def evaluate_targets(
    ratios: list[dict[str, Any]],
    comparisons: dict[str, dict[str, Any]],
    datasets: dict[str, Any],
    runs: list[dict[str, Any]],
    big: str,
) -> list[dict[str, Any]]:
    by_key = {(r["backend"], r["dataset"], r["path"], r["workers"]): r for r in ratios}
    verdicts = []
    for backend, compared in comparisons.items():
        for dataset in measured_datasets(runs, backend, big):
            for path in PRIMARY_PATHS:
                found = by_key.get((backend, dataset, path, 1))
                for target, field in (
                    (f"{path}_rps", "rps_ratio"),
                    (f"limits_{path}", "limits_on_vs_off_rps"),
                ):
                    goal = next(t for t in PRIMARY_TARGETS if t.key == target)
                    verdicts.append(
                        {
                            "target": target,
                            "backend": backend,
                            "dataset": dataset,
                            **goal.verdict(found[field] if found else None),
                        }
                    )
        # Measured on the 1k dataset; shown in the column of the backend's last dataset,
        # as the memory target is (the table has one column per backend).
        verdicts.append(
            {
                "target": "quota_rps",
                "backend": backend,
                "dataset": (measured_datasets(runs, backend, big) or [SMALL])[-1],
                "measured_on": SMALL,
                **_OTHER["quota_rps"].verdict(compared["quota_vs_free_download_rps"]),
            }
        )
        if big not in measured_datasets(runs, backend, big):
            continue
        scaling = compared["scaling"]
        worst = max(
            (item for item in scaling.items() if item[1]["p50_ratio"] is not None),
            key=lambda item: item[1]["p50_ratio"],
            default=None,
        )
        verdicts.append(
            {
                "target": "scale_p50",
                "backend": backend,
                "dataset": big,
                "worst_path": worst[0] if worst else None,
                **_OTHER["scale_p50"].verdict(worst[1]["p50_ratio"] if worst else None),
            }
        )
        for path, figures in scaling.items():
            verdicts.append(
                {
                    "target": f"scale_p50:{path}",
                    "backend": backend,
                    "dataset": big,
                    **_OTHER["scale_p50"].verdict(figures["p50_ratio"]),
                }
            )
        verdicts.append(
            {
                "target": "deep_p50",
                "backend": backend,
                "dataset": big,
                **_OTHER["deep_p50"].verdict(compared["deep_vs_first_p50"]),
            }
        )
        verdicts.append(
            {
                "target": "workers_rps",
                "backend": backend,
                "dataset": big,
                **_OTHER["workers_rps"].verdict(compared["workers_2_vs_1_rps"]),
            }
        )
    for backend in comparisons:
        peaks = [
            run["rss_peak_mb"]
            for run in runs
            if run["backend"] == backend and run["kind"] == "service"
        ]
        last = measured_datasets(runs, backend, big)
        verdicts.append(
            {
                "target": "rss_mb",
                "backend": backend,
                "dataset": last[-1] if last else big,
                **_OTHER["rss_mb"].verdict(max(peaks) if peaks else None),
            }
        )
    return verdicts


def build_results(
    *,
    options_document: dict[str, Any],
    machine: dict[str, Any],
    started: datetime,
    finished: datetime,
    load_average: dict[str, list[float]],
    datasets: dict[str, Any],
    runs: list[dict[str, Any]],
    peer: dict[str, Any],
    failure: str | None,
) -> dict[str, Any]:
    big = str(options_document["big_label"])
    backends = [b for b in options_document["backends"] if b in datasets]
    ratios = compute_ratios(runs)
    comparisons = compute_comparisons(runs, big, backends)
    return {
        "schema": 2,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "elapsed_seconds": round((finished - started).total_seconds()),
        "complete": failure is None,
        "failure": failure,
        "options": options_document,
        "machine": machine,
        "code_at_end": code_state(),
        "load_average": {
            key: [round(v, 2) for v in values] for key, values in load_average.items()
        },
        "datasets": datasets,
        "peer": peer,
        "runs": runs,
        "ratios": ratios,
        "comparisons": comparisons,
        "targets": evaluate_targets(ratios, comparisons, datasets, runs, big),
    }


# -- Markdown --------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def _verdict_cell(verdict: dict[str, Any] | None, target: Target) -> str:
    if verdict is None or verdict["value"] is None:
        return "n/a"
    number = verdict["value"]
    digits = 3 if abs(number) < 0.1 else 2
    value = f"{number:.{digits}f}{target.unit}" if target.unit != " MB" else f"{number:.0f} MB"
    margin = abs(verdict["margin"]) * 100
    by = f"{margin:.1f}%" if margin < 1 else f"{margin:.0f}%"
    if verdict["met"]:
        return f"{value} **met** (by {by})"
    missed_by = "short by" if target.comparison == ">=" else "over by"
    return f"{value} **MISSED** ({missed_by} {by})"


def _targets_table(
    results: dict[str, Any], targets: Iterable[Target], columns: list[tuple[str, str]]
) -> list[str]:
    verdicts = {(v["target"], v["backend"], v["dataset"]): v for v in results["targets"]}
    big = results["options"]["big_label"]
    header = ["target", "goal", *(f"{BACKEND_TITLES[b]} {d}" for b, d in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for target in targets:
        goal = f"{target.comparison} {target.threshold:g}{target.unit}"
        row = [target.title.replace("1M", big), goal]
        for backend, dataset in columns:
            verdict = verdicts.get((target.key, backend, dataset))
            cell = _verdict_cell(verdict, target)
            if verdict and verdict.get("worst_path"):
                cell += f" ({verdict['worst_path']})"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _peer_table(results: dict[str, Any], backends: list[str]) -> list[str]:
    """Us (1k dataset, one worker, limits counting) and the peer, path by path."""
    pairs = _pairs(results["runs"])
    lines = [
        "| path | server | response | req/s | p50 ms | p99 ms | baseline req/s "
        "| req/s vs baseline | req/s vs pypiserver |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in PEER_PATHS:
        peer = pairs.get((PEER, "peer", path, 1), {})
        peer_rps = peer["service"]["wrk"]["requests_per_second"] if "service" in peer else None
        rows = [(f"registry-tokens, {BACKEND_TITLES[b]}", (b, SMALL, path, 1)) for b in backends]
        rows.append(("pypiserver", (PEER, "peer", path, 1)))
        for name, key in rows:
            pair = pairs.get(key, {})
            service, baseline = pair.get("service"), pair.get("baseline")
            if service is None or baseline is None:
                continue
            s, b = service["wrk"], baseline["wrk"]
            lines.append(
                f"| {PATH_TITLES[path]} | {name} | {service['response']['bytes']:,} B "
                f"| {_number(s['requests_per_second'], 1)} | {_number(s['p50_ms'])} "
                f"| {_number(s['p99_ms'])} | {_number(b['requests_per_second'], 1)} "
                f"| {_number(_ratio(s['requests_per_second'], b['requests_per_second']), 3)} "
                f"| {_number(_ratio(s['requests_per_second'], peer_rps), 2, 'x')} |"
            )
    return lines


def markdown_tables(results: dict[str, Any]) -> str:
    """The targets and every figure, as Markdown tables (also printed at the end of a run)."""
    options = results["options"]
    big = options["big_label"]
    backends = [b for b in options["backends"] if b in results["comparisons"]]
    columns = [
        (backend, dataset)
        for backend in backends
        for dataset in measured_datasets(results["runs"], backend, big)
    ]
    lines = []
    lines.append("### The primary table: what a new user gets (one worker, rate limits counting)\n")
    lines.extend(_targets_table(results, PRIMARY_TARGETS, columns))
    lines.append("")
    lines.append(
        "Shipped defaults: rate limits on and counting (set to "
        f"{options.get('limits_counting', 0):,} a window, so that nothing is refused; a "
        "refused or failed request fails the run), the default log level (uvicorn's access "
        "log on). *vs baseline*: the service's requests/s over a bare ASGI app's on the same "
        "server software (uvicorn) serving the same bytes, measured right after it. *limits "
        "counting vs off*: requests/s over a second server's with the limits off (0), "
        "measured right after the baseline. `met (by 20%)`: 20% better than the goal; "
        "`MISSED (short by 40%)`: 40% worse."
    )
    lines.append("")
    peer = results.get("peer") or {}
    if peer:
        lines.append("### Beside a peer: pypiserver\n")
        lines.extend(_peer_table(results, backends))
        lines.append("")
        lines.append(
            f"{peer['software']} on {peer['server']}, one worker, serving the wheel published "
            f"to our registry ({peer['wheel']}); {peer['authentication']}. Measured right "
            f"after the {peer['measured_during']} figures, each with its own baseline (the "
            "same bare app serving pypiserver's bytes). Ours: the 1k dataset, limits counting."
        )
        lines.append("")
    other_columns = [(b, d) for b, d in columns if d == big]
    other_targets: tuple[Target, ...] = OTHER_TARGETS
    if not other_columns:  # no big dataset (a quick run): only the memory target
        other_columns = [(b, d) for b, d in columns if d == SMALL]
        other_targets = (_OTHER["quota_rps"], _OTHER["rss_mb"])
    lines.append("### Other targets\n")
    lines.extend(_targets_table(results, other_targets, other_columns))
    lines.append("")
    lines.append(
        "The quota target compares the two download paths on the 1k dataset: the same wheel, "
        "one token without limits (its download counted after it is sent, in memory, "
        "written once a second), one with quotas (counted in the database before, exactly). "
        "Targets that compare the two datasets or worker counts need the big dataset "
        "(a quick run has none; n/a: not measured). In the tables below, errors are wrk's socket "
        "errors, timeouts and responses of status 400 or more (any fails the run); server "
        "CPU is the serving processes' CPU time over the measurement (100% = one core)."
    )
    lines.append("")
    for backend in backends:
        lines.append(f"### {BACKEND_TITLES[backend]}: every figure\n")
        lines.append(
            "| dataset | path | workers | limits | response | service req/s | p50 ms | p99 ms "
            "| baseline req/s | p50 ms | p99 ms | req/s ratio | p50 ratio | p99 ratio "
            "| peak RSS MB | server CPU % | errors | load avg |"
        )
        lines.append("|" + "---|" * 18)
        pairs = _pairs([run for run in results["runs"] if run["backend"] == backend])
        for (_, dataset, path, workers), pair in pairs.items():
            baseline = pair.get("baseline")
            if baseline is None:
                continue
            b = baseline["wrk"]
            for kind, limits in KIND_TITLES.items():
                service = pair.get(kind)
                if service is None:
                    continue
                s = service["wrk"]
                response = service["response"]
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            dataset,
                            PATH_TITLES.get(path, path),
                            str(workers),
                            limits,
                            f"{response['status']}, {response['bytes']:,} B",
                            _number(s["requests_per_second"], 1),
                            _number(s["p50_ms"]),
                            _number(s["p99_ms"]),
                            _number(b["requests_per_second"], 1),
                            _number(b["p50_ms"]),
                            _number(b["p99_ms"]),
                            _number(_ratio(s["requests_per_second"], b["requests_per_second"]), 3),
                            _number(_ratio(s["p50_ms"], b["p50_ms"]), 1, "x"),
                            _number(_ratio(s["p99_ms"], b["p99_ms"]), 1, "x"),
                            _number(service["rss_peak_mb"], 1),
                            _number(service["cpu_percent"], 0),
                            str(service["failed"]),
                            _number(service["load_average_before"][0], 2),
                        ]
                    )
                    + " |"
                )
        lines.append("")
        compared = results["comparisons"][backend]
        if compared["scaling"]:
            lines.append(f"{BACKEND_TITLES[backend]}, {big} vs {SMALL} (same path, same order):\n")
            lines.append("| path | p50 ratio | p99 ratio | req/s ratio |")
            lines.append("|---|---|---|---|")
            for path, figures in compared["scaling"].items():
                lines.append(
                    f"| {PATH_TITLES[path]} | {_number(figures['p50_ratio'], 2, 'x')} "
                    f"| {_number(figures['p99_ratio'], 2, 'x')} "
                    f"| {_number(figures['rps_ratio'], 2, 'x')} |"
                )
            lines.append("")
            lines.append(
                f"{BACKEND_TITLES[backend]}, {big}: list page 1000 vs page 1 p50: "
                f"{_number(compared['deep_vs_first_p50'], 2, 'x')}; install with 2 workers "
                f"vs 1: {_number(compared['workers_2_vs_1_rps'], 2, 'x')} req/s (the "
                f"baseline: {_number(compared['baseline_workers_2_vs_1_rps'], 2, 'x')}).\n"
            )
    return "\n".join(lines)


def _machine_table(results: dict[str, Any]) -> str:
    machine = results["machine"]
    load = results["load_average"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    rows = [
        ("CPU", f"{machine['cpu_model']}"),
        (
            "cores",
            f"{machine['logical_cpus']} logical CPUs ({machine['physical_cores']} physical cores)",
        ),
        ("memory", f"{machine['memory_gb']} GB"),
        ("OS, kernel", f"{machine['os']}, Linux {machine['kernel']}"),
        ("Python", machine["python"]),
        ("SQLite", machine["sqlite"]),
        ("PostgreSQL", machine["postgresql"] or "not used"),
        ("wrk", " ".join(machine["wrk"]) or "?"),
        ("server software", packages),
        ("code", _code_description(machine, results.get("code_at_end"))),
        ("date", f"{results['started_at']} to {results['finished_at']} (UTC)"),
        (
            "load average",
            f"{' / '.join(str(v) for v in load['start'])} at the start, "
            f"{' / '.join(str(v) for v in load['end'])} at the end (1 / 5 / 15 min)",
        ),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _code_description(start: dict[str, Any], end: dict[str, Any] | None) -> str:
    described = f"commit {start['git_commit']}"
    if start["src_uncommitted_changes"]:
        described += " plus uncommitted changes in src/"
    if end is not None and (
        end["git_commit"] != start["git_commit"]
        or end.get("src_state_sha256") != start.get("src_state_sha256")
    ):
        described += (
            f" at the start; **src/ changed during the run** (commit {end['git_commit']}"
            f"{' plus uncommitted changes' if end['src_uncommitted_changes'] else ''} at the "
            "end): a server started after the change ran the new code"
        )
    return described


def _datasets_table(results: dict[str, Any]) -> str:
    lines = [
        "| backend | dataset | tokens in all | in the main registry | registries with tokens "
        "| inserted | seed time | rows/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, datasets in results["datasets"].items():
        for label, figures in datasets.items():
            if not isinstance(figures, dict) or "total_tokens" not in figures:
                continue
            lines.append(
                f"| {BACKEND_TITLES[backend]} | {label} | {figures['total_tokens']:,} "
                f"| {figures['main_registry_tokens']:,} | {figures['registries_with_tokens']} "
                f"| {figures['inserted']:,} | {figures['seed_seconds']} s "
                f"| {figures['rows_per_second']:,} |"
            )
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    options = results["options"]
    big = options["big_label"]
    quick = options["mode"] == "quick"
    parts = ["# Benchmark results\n"]
    parts.append(
        f"Made by `bench/run{' --quick' if quick else ''}` "
        f"({results['elapsed_seconds'] // 60} min {results['elapsed_seconds'] % 60} s). "
        "How to read it: bench/README.md. The raw figures: bench/results.json.\n"
    )
    if quick:
        dataset = (
            f"a big dataset of {big} tokens, not 1M" if options["big_total"] else "no big dataset"
        )
        parts.append(
            "> **A smoke run (`--quick`)**: short measurements "
            f"({options['duration_seconds']:g} s after {options['warmup_seconds']:g} s of "
            f"warm-up) and {dataset}. It shows the bench works end to end; judge the "
            "service by a full run.\n"
        )
    if not results["complete"]:
        parts.append(f"> **Incomplete run**: {results['failure']}\n")
    parts.append("## Machine\n")
    parts.append(_machine_table(results) + "\n")
    parts.append(
        "The load generator shares the machine with the server: wrk "
        f"`-t{options['wrk_threads']} -c{options['connections']} --latency`, "
        f"{options['duration_seconds']:g} s per measurement after {options['warmup_seconds']:g} s "
        "of warm-up, on loopback. A load average above the number of cores at the start "
        "means other work was running and the absolute figures are noisy; the ratios are "
        "less so, as each baseline runs right after the figure it is compared with.\n"
    )
    parts.append("## Datasets\n")
    parts.append(_datasets_table(results) + "\n")
    deep_needs = (options["deep_page"] - 1) * options["per_page"]
    parts.append(
        f"Reads (get, list, install) use the main registry: {options['small_main']:,} tokens in "
        f"the {SMALL} dataset, {options['big_main']:,} in the {big} one (page "
        f"{options['deep_page']} needs more than {deep_needs:,}). "
        "Writes go to a scratch registry, after the reads; update and delete walk lists of "
        "live tokens inserted just before them, so every delete removes a live token.\n"
    )
    parts.append("## Results\n")
    parts.append(markdown_tables(results))
    logs = {
        backend: data.get("server_log")
        for backend, data in results["datasets"].items()
        if isinstance(data, dict)
    }
    parts.append("### Server logs\n")
    for backend, found in logs.items():
        described = ", ".join(f"{k}: {v}" for k, v in (found or {}).items()) or "nothing"
        parts.append(f"- {BACKEND_TITLES[backend]}: warnings and errors logged: {described}")
    parts.append("")
    parts.append(ANALYSIS_HEADING)
    parts.append(
        f"> **{ANALYSIS_PLACEHOLDER}** from the profiles (py-spy, pyinstrument): for "
        "every missed target, where the time goes (with the rate limits counting: their "
        "share is the *limits counting vs off* row) and what was changed.\n"
    )
    parts.append(
        "The previous round's analysis (`git show 4ca4731:bench/RESULTS.md`) measured with "
        "the rate limits off and described hot routes and prepared reads, which are being "
        "removed; it no longer applies. What it found about the database server itself may "
        "still hold: PostgreSQL runs Debian's defaults (`shared_buffers` 128 MB) while at 1M "
        "the tokens table and its indexes were 352 MB, so lookups by secret digest and "
        "inserts into the digest index leave shared buffers (1M vs 1k on PostgreSQL).\n"
    )
    return "\n".join(parts)


ANALYSIS_HEADING = "## Analysis\n"
ANALYSIS_PLACEHOLDER = "To be filled in by the lead"


def write(results: dict[str, Any], directory: Path) -> None:
    """Writes both files; an Analysis section someone has written in RESULTS.md is kept."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    markdown = render_markdown(results)
    existing = directory / "RESULTS.md"
    if existing.exists():
        old = existing.read_text()
        if ANALYSIS_HEADING in old:
            kept = old[old.index(ANALYSIS_HEADING) :]
            if ANALYSIS_PLACEHOLDER not in kept and "To be filled in by the owner" not in kept:
                markdown = markdown[: markdown.index(ANALYSIS_HEADING)] + kept
    existing.write_text(markdown)
