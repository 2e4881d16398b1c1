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

SMALL = "1k"
PATH_TITLES = {
    "get": "get token",
    "list": "list, first page of 30",
    "list_deep": "list, page 1000",
    "install": "install (simple index, registry token)",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "install_w2": "install, `--workers 2`",
}
BACKEND_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
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
        packages[name] = _version(name)
    for name in ("sqlalchemy", "psycopg"):
        packages[name] = _version(name)
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


def _version(name: str) -> str | None:
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


TARGETS = (
    Target("install_rps", "install: req/s vs baseline", ">=", 0.50),
    Target("get_rps", "get token: req/s vs baseline", ">=", 0.25),
    Target("list_rps", "list, first page of 30: req/s vs baseline", ">=", 0.15),
    Target("create_rps", "create: req/s vs baseline", ">=", 0.10),
    Target("scale_p50", "every path at 1M vs 1k: p50 latency (worst path)", "<=", 1.25, "x"),
    Target("deep_p50", "list page 1000 vs page 1: p50 latency", "<=", 2.0, "x"),
    Target("workers_rps", "install, --workers 2 vs 1: req/s", ">=", 1.6, "x"),
    Target("rss_mb", "peak RSS of one worker after the whole run", "<=", RSS_LIMIT_MB, " MB"),
)


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
        ratios.append(
            {
                "backend": backend,
                "dataset": dataset,
                "path": path,
                "workers": workers,
                "rps_ratio": _ratio(s["requests_per_second"], b["requests_per_second"]),
                "p50_ratio": _ratio(s["p50_ms"], b["p50_ms"]),
                "p99_ratio": _ratio(s["p99_ms"], b["p99_ms"]),
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
        comparisons[backend] = {
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
        for dataset in (SMALL, big):
            for target, path in (
                (TARGETS[0], "install"),
                (TARGETS[1], "get"),
                (TARGETS[2], "list"),
                (TARGETS[3], "create"),
            ):
                found = by_key.get((backend, dataset, path, 1))
                verdicts.append(
                    {
                        "target": target.key,
                        "backend": backend,
                        "dataset": dataset,
                        **target.verdict(found["rps_ratio"] if found else None),
                    }
                )
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
                **TARGETS[4].verdict(worst[1]["p50_ratio"] if worst else None),
            }
        )
        for path, figures in scaling.items():
            verdicts.append(
                {
                    "target": f"scale_p50:{path}",
                    "backend": backend,
                    "dataset": big,
                    **TARGETS[4].verdict(figures["p50_ratio"]),
                }
            )
        verdicts.append(
            {
                "target": "deep_p50",
                "backend": backend,
                "dataset": big,
                **TARGETS[5].verdict(compared["deep_vs_first_p50"]),
            }
        )
        verdicts.append(
            {
                "target": "workers_rps",
                "backend": backend,
                "dataset": big,
                **TARGETS[6].verdict(compared["workers_2_vs_1_rps"]),
            }
        )
        peaks = [
            run["rss_peak_mb"]
            for run in runs
            if run["backend"] == backend and run["kind"] == "service"
        ]
        verdicts.append(
            {
                "target": "rss_mb",
                "backend": backend,
                "dataset": big,
                **TARGETS[7].verdict(max(peaks) if peaks else None),
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
    failure: str | None,
) -> dict[str, Any]:
    big = str(options_document["big_label"])
    backends = [b for b in options_document["backends"] if b in datasets]
    ratios = compute_ratios(runs)
    comparisons = compute_comparisons(runs, big, backends)
    return {
        "schema": 1,
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
    if verdict["met"]:
        return f"{value} **met** (by {margin:.0f}%)"
    missed_by = "short by" if target.comparison == ">=" else "over by"
    return f"{value} **MISSED** ({missed_by} {margin:.0f}%)"


def markdown_tables(results: dict[str, Any]) -> str:
    """The targets and every figure, as Markdown tables (also printed at the end of a run)."""
    options = results["options"]
    big = options["big_label"]
    backends = [b for b in options["backends"] if b in results["comparisons"]]
    verdicts = {(v["target"], v["backend"], v["dataset"]): v for v in results["targets"]}
    lines = []
    lines.append("### Targets (ratios to the baseline measured in the same run)\n")
    header = ["target", "goal"]
    columns = []
    for backend in backends:
        for dataset in (SMALL, big):
            header.append(f"{BACKEND_TITLES[backend]} {dataset}")
            columns.append((backend, dataset))
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for target in TARGETS:
        goal = f"{target.comparison} {target.threshold:g}{target.unit}"
        row = [target.title.replace("1M", big), goal]
        for backend, dataset in columns:
            verdict = verdicts.get((target.key, backend, dataset))
            cell = _verdict_cell(verdict, target)
            if verdict and verdict.get("worst_path"):
                cell += f" ({verdict['worst_path']})"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        "Ratios are the service's figure over the baseline's (requests/s: higher is better). "
        f"Targets that compare the two datasets or worker counts appear under {big}; "
        "n/a: not measured in this run. In the tables below, errors are wrk's socket "
        "errors, timeouts (no answer within 10 s: such requests are missing from the "
        "latency figures) and responses of status 400 or more; server CPU is the serving "
        "processes' CPU time over the measurement (100% = one core)."
    )
    lines.append("")
    for backend in backends:
        lines.append(f"### {BACKEND_TITLES[backend]}: every figure\n")
        lines.append(
            "| dataset | path | workers | response | service req/s | p50 ms | p99 ms "
            "| baseline req/s | p50 ms | p99 ms | req/s ratio | p50 ratio | p99 ratio "
            "| peak RSS MB | server CPU % | errors | load avg |"
        )
        lines.append("|" + "---|" * 17)
        ratios = {
            (r["dataset"], r["path"], r["workers"]): r
            for r in results["ratios"]
            if r["backend"] == backend
        }
        pairs = _pairs([run for run in results["runs"] if run["backend"] == backend])
        for (_, dataset, path, workers), pair in pairs.items():
            service, baseline = pair.get("service"), pair.get("baseline")
            if service is None or baseline is None:
                continue
            s, b = service["wrk"], baseline["wrk"]
            r = ratios[(dataset, path, workers)]
            response = service["response"]
            lines.append(
                "| "
                + " | ".join(
                    [
                        dataset,
                        PATH_TITLES.get(path, path),
                        str(workers),
                        f"{response['status']}, {response['bytes']:,} B",
                        _number(s["requests_per_second"], 1),
                        _number(s["p50_ms"]),
                        _number(s["p99_ms"]),
                        _number(b["requests_per_second"], 1),
                        _number(b["p50_ms"]),
                        _number(b["p99_ms"]),
                        _number(r["rps_ratio"], 3),
                        _number(r["p50_ratio"], 1, "x"),
                        _number(r["p99_ratio"], 1, "x"),
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
            f"{_number(compared['deep_vs_first_p50'], 2, 'x')}; install with 2 workers vs 1: "
            f"{_number(compared['workers_2_vs_1_rps'], 2, 'x')} req/s (the baseline: "
            f"{_number(compared['baseline_workers_2_vs_1_rps'], 2, 'x')}).\n"
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
        parts.append(
            "> **A smoke run (`--quick`)**: short measurements "
            f"({options['duration_seconds']:g} s after {options['warmup_seconds']:g} s of "
            f"warm-up) and a big dataset of {big} tokens, not 1M. It shows the bench works "
            "end to end; judge the service by a full run.\n"
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
        "> **To be filled in by the owner from the profiles** (py-spy, pyinstrument): for "
        "every missed target, where the time goes and what was changed.\n"
    )
    return "\n".join(parts)


ANALYSIS_HEADING = "## Analysis\n"


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
            if "To be filled in by the owner" not in kept:
                markdown = markdown[: markdown.index(ANALYSIS_HEADING)] + kept
    existing.write_text(markdown)
