"""`hookstream run poller --instance NAME ...` and `run writeback` on the command line."""

from __future__ import annotations

import subprocess
import sys

from hookstream.cli import build_parser
from hookstream.cli.pipeline import COMPONENTS


def test_run_poller_takes_repeated_instances_and_writeback_is_a_component() -> None:
    args = build_parser().parse_args(["run", "poller", "--instance", "a", "--instance", "b"])
    assert (args.component, args.instance) == ("poller", ["a", "b"])
    assert COMPONENTS["poller"] == ("connectors.poller", "run_poller")
    assert COMPONENTS["writeback"] == ("connectors.writeback", "run_writeback")


def test_instance_is_refused_for_other_components() -> None:
    done = subprocess.run([sys.executable, "-m", "hookstream.cli", "run", "delivery",
                           "--instance", "x"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--instance applies to the poller only" in done.stderr
