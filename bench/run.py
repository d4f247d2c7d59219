"""`make bench`: every component's bench, one at a time, into one dated summary with plots.

    python bench/run.py [--quick] [--only processor,delivery] [--results DIR]
    python bench/run.py --history      # only regenerate bench/HISTORY.md from bench/results

Each bench (BENCHES, in that order) runs as its own process with `--quick` when asked and
HOOKSTREAM_BENCH_OUT naming a file of its own, where bench/report.py's `write` appends its
record. A bench that is missing, exits non-zero, outlives its time limit (three times its
expected duration) or writes no record is a failed row with its exit and the last lines
of its stderr, and the run goes on to the next one. Written to bench/results/ (after
every bench, so a stopped run keeps what it measured): `<stem>.json` (the run document,
see bench/summary.py), `<stem>.md` (the summary) and `<stem>-<component>.png`, where the
stem is the UTC date, `-2`, `-3`... for later runs that day; then bench/HISTORY.md.
Exit status 1 when a bench failed; a missed target is a figure, not a failure.

It installs nothing: `make bench` first installs the `[test,bench]` extras and the Debian
packages (scripts/system-deps.sh --bench). On a machine shared with other benches, run it
under one lock with them (`flock /tmp/hookstream-bench.lock make bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import OUT_ENV, ROOT
from bench.summary import Run, history, markdown, plot_names, result_stem

RESULTS = ROOT / "bench" / "results"
TIME_LIMIT_FACTOR = 3  # a bench's time limit, in multiples of its expected duration
STDERR_LINES = 8  # kept for a failed bench's row
INTERRUPT_GRACE_S = 30  # a stopped bench's time to stop its broker and servers itself


@dataclass(frozen=True)
class Bench:
    component: str
    script: str  # relative to the repository
    full_s: float  # expected duration at full size
    quick_s: float  # expected duration with --quick (the contract: 20-40 s, plus start-up)


BENCHES = (
    Bench("processor", "bench/processor.py", full_s=180, quick_s=60),
    Bench("delivery", "bench/delivery.py", full_s=150, quick_s=60),
    Bench("ingest", "bench/ingest.py", full_s=120, quick_s=60),
    Bench("logstore", "bench/logstore.py", full_s=180, quick_s=60),
    Bench("pipeline", "bench/pipeline.py", full_s=150, quick_s=60),
    Bench("fleet", "bench/fleet.py", full_s=420, quick_s=60),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each bench's short run")
    parser.add_argument("--only", help="comma-separated components, e.g. processor,delivery")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--history", action="store_true",
                        help="only regenerate the history from the results")
    parser.add_argument("--history-file", type=Path,
                        help="default: HISTORY.md beside the results folder")
    a = parser.parse_args(argv)
    a.history_file = a.history_file or a.results.parent / "HISTORY.md"
    if a.history:
        write_history(a.results, a.history_file)
        print(f"wrote {a.history_file}")
        return 0
    benches = list(BENCHES)
    if a.only:
        wanted = a.only.split(",")
        if unknown := set(wanted) - {b.component for b in BENCHES}:
            parser.error(f"unknown component(s): {', '.join(sorted(unknown))}")
        benches = [b for b in BENCHES if b.component in wanted]
    run = run_all(benches, quick=a.quick, results=a.results)
    write_history(a.results, a.history_file)
    summary = a.results / f"{run['stem']}.md"
    print(summary.read_text().split("\n\n## ", 1)[0])
    print(f"\nwrote {summary} (and .json, plots), {a.history_file}")
    return exit_status(run)


def exit_status(run: Run) -> int:
    """1 when a bench failed; a missed target is a figure, not a failure."""
    return 1 if any(b["status"] != "ok" for b in run["benches"]) else 0


def run_all(benches: Iterable[Bench], *, quick: bool, results: Path, root: Path = ROOT) -> Run:
    """Run the benches one after the other, saving the run document, its summary and the
    plots of each bench's records in `results` as soon as that bench ends."""
    results.mkdir(parents=True, exist_ok=True)
    started = time.time()
    date = time.strftime("%Y-%m-%d", time.gmtime(started))
    run: Run = {
        "stem": result_stem(date, (p.name for p in results.iterdir())),
        "date": date,
        "mode": "quick" if quick else "full",
        "commit": _commit(root),
        "started": _utc(started),
        "finished": None,
        "duration_s": 0.0,
        "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(),
                    "python": platform.python_version(),
                    "load_avg_before": _load_avg(), "load_avg_after": None},
        "benches": [],
    }
    _save(run, results)  # takes the stem before the first bench starts
    for bench in benches:
        outcome = run_bench(bench, quick=quick, root=root)
        run["benches"].append(outcome)
        run["duration_s"] = round(time.time() - started, 1)
        _plot(run, outcome["records"], results)
        _save(run, results)
    run["finished"] = _utc(time.time())
    run["machine"]["load_avg_after"] = _load_avg()
    _save(run, results)
    return run


def run_bench(bench: Bench, *, quick: bool, root: Path = ROOT) -> dict[str, Any]:
    """Run one bench to its end or its time limit; its outcome with the records it wrote."""
    args = ["--quick"] if quick else []
    limit_s = TIME_LIMIT_FACTOR * (bench.quick_s if quick else bench.full_s)
    outcome: dict[str, Any] = {
        "component": bench.component, "script": bench.script, "args": args,
        "status": "failed", "error": "", "duration_s": 0.0, "timeout_s": limit_s,
        "records": [],
    }
    command = " ".join([bench.script, *args])
    print(f"\n== {bench.component}: {command} (time limit {limit_s:.0f} s)",
          file=sys.stderr, flush=True)
    script = root / bench.script
    if not script.is_file():
        outcome["error"] = f"missing: {bench.script} is not in this tree"
        print(outcome["error"], file=sys.stderr, flush=True)
        return outcome
    with tempfile.TemporaryDirectory(prefix="hookstream-bench-") as work:
        out = Path(work) / "records.jsonl"
        env = os.environ | {
            OUT_ENV: str(out),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(script), *args], cwd=root, env=env,
            stderr=subprocess.PIPE, text=True, errors="replace",
            start_new_session=True,  # its own process group: stopped whole at the limit
        )
        assert proc.stderr is not None
        tail: deque[str] = deque(maxlen=STDERR_LINES)
        echo = threading.Thread(target=_echo, args=(proc.stderr, tail), daemon=True)
        echo.start()
        try:
            code: int | None = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _stop(proc)  # after a timeout, or on Ctrl-C here (the bench has its own session)
        echo.join(timeout=5)
        outcome["duration_s"] = round(time.monotonic() - started, 1)
        records, bad = _records(out)
    last = "\n".join(tail)
    if code is None:
        outcome["error"] = f"timed out after {limit_s:.0f} s: {last}"
    elif code != 0:
        outcome["error"] = f"exit {code}: {last}"
    elif bad:
        outcome["error"] = f"unreadable record: {bad[:200]}"
    elif not records:
        outcome["error"] = f"no record: exit 0 without bench/report.py's write: {last}"
    else:
        outcome["status"] = "ok"
    outcome["records"] = records
    return outcome


def write_history(results: Path, path: Path) -> None:
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    path.write_text(history(runs, os.path.relpath(results, path.parent)))


def _echo(stream: IO[str], tail: deque[str]) -> None:
    """Pass the bench's stderr through as it comes, keeping its last lines."""
    for line in stream:
        sys.stderr.write(line)
        if line.strip():
            tail.append(line.strip()[:300])
    sys.stderr.flush()


def _stop(proc: subprocess.Popen[str]) -> None:
    """End the bench's process group if it still runs: SIGINT first, so the bench's own
    clean-up (its broker, nginx, PostgreSQL) runs, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, grace_s in ((signal.SIGINT, INTERRUPT_GRACE_S), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _records(path: Path) -> tuple[list[dict[str, Any]], str]:
    """The records a bench appended, and the first line that is not one as report.write
    makes them (or ""): the summary and the plots rely on that shape."""
    records: list[dict[str, Any]] = []
    lines = path.read_text().splitlines() if path.exists() else []
    for line in filter(str.strip, lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return records, line
        if not _shaped(record):
            return records, line
        records.append(record)
    return records, ""


def _shaped(record: Any) -> bool:
    def numbers(values: Any) -> bool:
        return isinstance(values, dict) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values.values())

    return (
        isinstance(record, dict)
        and isinstance(record.get("component"), str)
        and isinstance(record.get("figures"), dict)
        and isinstance(record.get("load_avg"), list)
        and numbers(record.get("throughput")) and numbers(record.get("latency_ms"))
        and isinstance(record.get("targets"), list)
        and all(isinstance(t, dict) and numbers({k: t.get(k) for k in ("figure", "goal")})
                and {"name", "unit", "op", "met"} <= t.keys() for t in record["targets"])
    )


def _plot(run: Run, records: list[dict[str, Any]], results: Path) -> None:
    if not records:
        return
    from bench.plot import plot  # matplotlib: imported only once there is a record to draw

    for record, name in plot_names(run):
        if any(record is r for r in records):
            plot(record, f"{record['component']}: {run['stem']} ({run['mode']})", results / name)


def _save(run: Run, results: Path) -> None:
    for suffix, text in ((".json", json.dumps(run, indent=1) + "\n"), (".md", markdown(run))):
        path = results / f"{run['stem']}{suffix}"
        partial = path.with_suffix(suffix + ".partial")
        partial.write_text(text)
        partial.replace(path)


def _commit(root: Path) -> str:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args],
                              capture_output=True, text=True, timeout=10)

    try:
        commit = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
        modified = git("diff", "--quiet", "HEAD").returncode == 1
    except OSError:
        return "unknown"
    return f"{commit} (modified)" if modified else commit


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


if __name__ == "__main__":
    sys.exit(main())
