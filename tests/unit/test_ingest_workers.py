"""`hookstream run ingest --workers N` on the command line, and how many workers by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.ingest.workers import available_cpus
from hookstream.cli import build_parser


def test_workers_is_parsed_for_ingest() -> None:
    assert build_parser().parse_args(["run", "ingest", "--workers", "3"]).workers == 3
    assert build_parser().parse_args(["run", "ingest"]).workers is None


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "delivery", "--workers", "2"], "--workers applies to ingest only"),
    (["run", "ingest", "--workers", "-1"], "--workers must be 0 (the CPU count) or more"),
])
def test_wrong_workers_are_refused(argv: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "hookstream.cli", *argv],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr


@pytest.mark.parametrize(("cpu_max", "expected"), [
    (None, "affinity"),  # no cgroup v2 limit to read
    ("max 100000\n", "affinity"),  # a container without a CPU limit
    ("150000 100000\n", 2),  # 1.5 CPUs: a second worker still gets half a core
    ("50000 100000\n", 1),
    ("100000000 100000\n", "affinity"),  # a limit above the machine
])
def test_workers_default_to_the_cpus_this_process_may_use(
    tmp_path: Path, cpu_max: str | None, expected: int | str
) -> None:
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    want = affinity if expected == "affinity" else min(affinity, int(expected))
    assert available_cpus(path) == want
