"""`make bench`'s runner (bench/run.py), summary and history (bench/summary.py), plots
(bench/plot.py): fed the records bench/report.py's `write` really produces, and real
bench processes (small scripts written here) for the runner's outcomes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bench import report, run, summary
from bench.plot import plot
from bench.report import Target

REPO = Path(__file__).resolve().parents[2]


def written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, component: str,
            **kwargs: Any) -> dict[str, Any]:
    """The record `report.write` appends to $HOOKSTREAM_BENCH_OUT, read back as run.py does."""
    out = tmp_path / f"{component}.jsonl"
    monkeypatch.setenv(report.OUT_ENV, str(out))
    report.write(component, **kwargs)
    record: dict[str, Any] = json.loads(out.read_text().splitlines()[-1])
    return record


@pytest.fixture
def processor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    return written(
        monkeypatch, tmp_path, "processor",
        targets=[Target("processor vs Faust agent (exactly once)", 5.4, "x", ">=", 5),
                 Target("processor vs bare transactional loop", 46.2, "%", ">=", 70)],
        figures={"cpu_us_per_event": {"decode": 6.5, "render": 21.0}, "rss_mib": 151,
                 "variants": ["bare-txn", "processor", "faust"]},
        throughput={"processor": 7691.0, "bare-txn": 16874.0, "faust": 1424.3},
    )


@pytest.fixture
def delivery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    return written(
        monkeypatch, tmp_path, "delivery",
        targets=[Target("delivery, produce to receipt at 1,000/s, p99", 41.0, "ms", "<", 50)],
        figures={},
        throughput={"delivery": 3006.0, "bare aiohttp": 7012.0},
        throughput_unit="requests/s",
        latency_ms={"p50": 5.0, "p99": 41.0, "max": 77.5},
    )


def bench(component: str, records: list[dict[str, Any]], error: str = "") -> dict[str, Any]:
    return {"component": component, "script": f"bench/{component}.py", "args": ["--quick"],
            "status": "failed" if error else "ok", "error": error, "duration_s": 31.2,
            "timeout_s": 180.0, "records": records}


def run_document(stem: str, benches: list[dict[str, Any]], mode: str = "quick",
                 commit: str = "4e9f4a2") -> dict[str, Any]:
    return {"stem": stem, "date": stem[:10], "mode": mode, "commit": commit,
            "started": f"{stem[:10]}T20:00:00Z", "finished": f"{stem[:10]}T20:03:10Z",
            "duration_s": 190.0,
            "machine": {"cpus": 2, "cpu_model": "Test CPU", "python": "3.11.2",
                        "load_avg_before": [0.52, 0.4, 0.3],
                        "load_avg_after": [1.5, 0.9, 0.5]},
            "benches": benches}


FAILED = "exit 2: usage: fleet.py [-h]\nfleet.py: error: unrecognized arguments: --quick"


def test_one_row_per_target_and_per_failed_bench(
    processor: dict[str, Any], delivery: dict[str, Any],
) -> None:
    doc = run_document("2026-12-07", [bench("processor", [processor]),
                                      bench("delivery", [delivery]),
                                      bench("fleet", [], FAILED)])
    assert summary.target_rows(doc) == [
        ["processor", "processor vs Faust agent (exactly once)", "5.4x", ">= 5x", "met"],
        ["processor", "processor vs bare transactional loop", "46.2%", ">= 70%", "missed"],
        ["delivery", "delivery, produce to receipt at 1,000/s, p99", "41 ms", "< 50 ms", "met"],
        ["fleet", "(the whole bench)", f"failed ({FAILED})", "", "failed"],
    ]


def test_the_summary_holds_the_targets_the_plots_and_each_components_tables(
    processor: dict[str, Any], delivery: dict[str, Any],
) -> None:
    doc = run_document("2026-12-07-2", [bench("processor", [processor]),
                                        bench("delivery", [delivery]),
                                        bench("fleet", [], FAILED)])
    lines = summary.markdown(doc).splitlines()
    assert lines[0] == "# make bench, 2026-12-07-2 (quick)"
    assert lines[2] == (
        "Commit 4e9f4a2, 2 CPUs (Test CPU), load average 0.52 0.40 0.30 before, "
        "1.50 0.90 0.50 after; 3 benches in 3 min 10 s. 2 of 3 targets met; failed: fleet."
    )
    assert "| --- | --- | --- | --- | --- |" in lines
    assert ("| processor | processor vs bare transactional loop | 46.2% | >= 70% | missed |"
            in lines)
    # the failed bench's stderr stays in its one row: lines joined, pipes escaped
    assert ("| fleet | (the whole bench) | failed (exit 2: usage: fleet.py [-h]<br>fleet.py: "
            "error: unrecognized arguments: --quick) |  | failed |") in lines
    assert "![processor: throughput and latency](2026-12-07-2-processor.png)" in lines
    assert "![delivery: throughput and latency](2026-12-07-2-delivery.png)" in lines
    # throughput: hookstream first, then how it compares with each ceiling and peer
    assert "| variant | throughput | processor is |" in lines
    assert "| processor | 7,691 events/s | 1.00x |" in lines
    assert "| bare-txn | 16,874 events/s | 0.46x |" in lines
    assert "| faust | 1,424 events/s | 5.40x |" in lines
    assert "| delivery | 3,006 requests/s | 1.00x |" in lines
    assert "| p99 | 41 |" in lines and "| max | 77.5 |" in lines
    assert "| cpu_us_per_event.decode | 6.5 |" in lines
    assert '| variants | ["bare-txn", "processor", "faust"] |' in lines
    assert "`bench/fleet.py --quick`: failed, 31 s." in lines


def test_each_missed_target_says_what_is_left_and_a_met_one_says_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    left = "budget 60 µs per event; " + report.costs({"decode": 10.9, "render": 25.2})
    record = written(
        monkeypatch, tmp_path, "processor",
        targets=[Target("vs Faust", 5.4, "x", ">=", 5, left="not shown: met"),
                 Target("vs bare", 46.2, "%", ">=", 70, left=left)],
        figures={})
    lines = summary.markdown(run_document("2026-12-08", [bench("processor", [record])]))
    assert left == "budget 60 µs per event; render 25, decode 11 µs"
    assert "## What is left of each missed target" in lines
    assert f"- **processor: vs bare** (46.2%, goal >= 70%): {left}" in lines.splitlines()
    assert "not shown: met" not in lines
    # runs recorded before targets had a remainder read as before
    del record["targets"][1]["left"]
    older = summary.markdown(run_document("2026-12-07", [bench("processor", [record])]))
    assert "What is left" not in older


def test_a_stopped_run_says_so() -> None:
    doc = run_document("2026-12-07", [bench("processor", [], "missing: bench/processor.py")])
    doc["finished"] = None
    first = summary.markdown(doc).splitlines()[0]
    assert first == "# make bench, 2026-12-07 (quick) (unfinished: the run was stopped)"


def test_a_runs_files_are_never_overwritten() -> None:
    assert summary.result_stem("2026-12-07", []) == "2026-12-07"
    assert summary.result_stem("2026-12-07", ["2026-12-06.json", "2026-12-06.md"]) == "2026-12-07"
    taken = ["2026-12-07.json", "2026-12-07.md", "2026-12-07-processor.png"]
    assert summary.result_stem("2026-12-07", taken) == "2026-12-07-2"
    taken += ["2026-12-07-2.json", "2026-12-07-2-processor.png", "2026-12-07-3.md"]
    assert summary.result_stem("2026-12-07", taken) == "2026-12-07-4"


def test_one_plot_per_component_and_a_suffix_for_a_second_record(
    processor: dict[str, Any], delivery: dict[str, Any],
) -> None:
    doc = run_document("2026-12-07-2", [bench("processor", [processor, processor]),
                                        bench("delivery", [delivery])])
    assert [name for _, name in summary.plot_names(doc)] == [
        "2026-12-07-2-processor.png", "2026-12-07-2-processor-2.png",
        "2026-12-07-2-delivery.png",
    ]


def test_the_history_is_a_table_per_component_a_row_per_run(
    processor: dict[str, Any], delivery: dict[str, Any],
) -> None:
    faster = processor | {"targets": [t | {"figure": 6.1} for t in processor["targets"][:1]],
                          "load_avg": [0.31, 0.2, 0.1]}
    looser = delivery | {"targets": [delivery["targets"][0] | {"goal": 100.0}]}
    runs = [  # out of order: the history sorts them
        run_document("2026-12-07-2", [bench("processor", [faster])], "full", "9abcdef"),
        run_document("2026-12-07", [bench("processor", [processor]),
                                    bench("delivery", [looser]), bench("fleet", [], FAILED)]),
        run_document("2026-12-08", [bench("delivery", [delivery])], "full", "1234567"),
    ]
    text = summary.history(runs)
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## processor", "## delivery", "## fleet"]
    processor_table = text.split("## processor\n\n")[1].split("\n\n")[0].splitlines()
    load = processor["load_avg"][0]
    assert processor_table == [
        "| run | commit | mode | load avg | bench | processor vs Faust agent (exactly once) "
        "(>= 5x) | processor vs bare transactional loop (>= 70%) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| [2026-12-07](results/2026-12-07.md) | 4e9f4a2 | quick | {load:.2f} | ok | "
        "5.4x met | 46.2% missed |",
        "| [2026-12-07-2](results/2026-12-07-2.md) | 9abcdef | full | 0.31 | ok | 6.1x met | - |",
    ]
    delivery_rows = text.split("## delivery\n\n")[1].split("\n\n")[0].splitlines()[2:]
    assert delivery_rows[0].endswith("| ok | 41 ms met (goal < 100 ms) |")
    assert delivery_rows[1].endswith("| 1234567 | full | " + f"{delivery['load_avg'][0]:.2f}"
                                     " | ok | 41 ms met |")
    assert text.split("## fleet\n\n")[1].splitlines()[2] == (
        "| [2026-12-07](results/2026-12-07.md) | 4e9f4a2 | quick | 0.52 | failed (exit 2) |")


def test_a_plot_is_a_png(
    tmp_path: Path, processor: dict[str, Any], delivery: dict[str, Any],
) -> None:
    for record in (processor, delivery, processor | {"throughput": {}, "latency_ms": {}}):
        path = tmp_path / f"{record['component']}-{len(record['throughput'])}.png"
        plot(record, f"{record['component']}: 2026-12-07 (quick)", path)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def script(root: Path, name: str, body: str, expected_s: float = 0.5) -> run.Bench:
    """A bench of the test's making in `root`/bench, with the real bench/report.py."""
    (root / "bench").mkdir(exist_ok=True)
    (root / "bench" / f"{name}.py").write_text(
        f"import sys, time\nsys.path.insert(0, {str(REPO)!r})\n"
        "from bench.report import Target, write\n" + textwrap.dedent(body))
    return run.Bench(name, f"bench/{name}.py", full_s=60, quick_s=expected_s)


def test_a_bench_that_writes_its_record_is_ok(tmp_path: Path) -> None:
    ok = script(tmp_path, "tiny", """
        assert sys.argv[1:] == ["--quick"], sys.argv
        write("tiny", targets=[Target("tiny vs nothing", 2.0, "x", ">=", 3)], figures={"n": 1},
              throughput={"tiny": 10.0, "ceiling": 20.0})
    """)
    outcome = run.run_bench(ok, quick=True, root=tmp_path)
    assert outcome["status"] == "ok" and outcome["error"] == ""
    assert outcome["args"] == ["--quick"] and outcome["timeout_s"] == 1.5
    [record] = outcome["records"]
    assert record["component"] == "tiny" and record["targets"][0]["met"] is False
    assert record["throughput"] == {"tiny": 10.0, "ceiling": 20.0}


def test_a_failing_missing_silent_or_endless_bench_is_a_failed_outcome(tmp_path: Path) -> None:
    failing = script(tmp_path, "failing", """
        print("starting", file=sys.stderr)
        print("the broker did not answer", file=sys.stderr)
        sys.exit(3)
    """)
    outcome = run.run_bench(failing, quick=False, root=tmp_path)
    assert outcome["status"] == "failed"
    assert outcome["error"] == "exit 3: starting\nthe broker did not answer"
    assert outcome["args"] == [] and outcome["timeout_s"] == 180

    missing = run.Bench("fleet", "bench/fleet.py", full_s=60, quick_s=20)
    assert run.run_bench(missing, quick=True, root=tmp_path)["error"] == (
        "missing: bench/fleet.py is not in this tree")

    odd = script(tmp_path, "odd", """
        import json, os
        with open(os.environ["HOOKSTREAM_BENCH_OUT"], "a") as out:
            out.write(json.dumps({"component": "odd", "throughput": {"odd": None}}) + "\\n")
    """)
    assert run.run_bench(odd, quick=True, root=tmp_path)["error"] == (
        'unreadable record: {"component": "odd", "throughput": {"odd": null}}')

    silent = script(tmp_path, "silent", 'print("done", file=sys.stderr)\n')
    assert run.run_bench(silent, quick=True, root=tmp_path)["error"] == (
        "no record: exit 0 without bench/report.py's write: done")

    # stopped at three times its expected 1 s by SIGINT, so its own clean-up still runs
    cleaned = tmp_path / "cleaned"
    endless = script(tmp_path, "endless", f"""
        print("waiting for a broker", file=sys.stderr, flush=True)
        try:
            time.sleep(600)
        finally:
            open({str(cleaned)!r}, "w").close()
    """, expected_s=1)
    outcome = run.run_bench(endless, quick=True, root=tmp_path)
    assert outcome["status"] == "failed"
    assert outcome["error"].startswith("timed out after 3 s: waiting for a broker")
    assert cleaned.exists()


def test_a_run_writes_its_document_summary_and_plots_then_the_next_one_its_own(
    tmp_path: Path,
) -> None:
    benches = [
        script(tmp_path, "tiny", """
            write("tiny", targets=[Target("tiny p99", 4.0, "ms", "<", 5)], figures={},
                  throughput={"tiny": 10.0, "ceiling": 20.0}, latency_ms={"p99": 4.0})
        """),
        script(tmp_path, "broken", "sys.exit(1)\n"),
    ]
    results = tmp_path / "results"
    first = run.run_all(benches, quick=True, results=results, root=tmp_path)
    second = run.run_all(benches[:1], quick=False, results=results, root=tmp_path)
    assert second["stem"] == summary.result_stem(first["date"], [f"{first['stem']}.json"])
    assert (run.exit_status(first), run.exit_status(second)) == (1, 0)
    saved = json.loads((results / f"{first['stem']}.json").read_text())
    assert saved["mode"] == "quick" and saved["finished"]
    assert saved["machine"]["cpus"] >= 1 and len(saved["machine"]["load_avg_after"]) == 3
    assert [b["status"] for b in saved["benches"]] == ["ok", "failed"]
    assert saved["benches"][0]["records"][0]["latency_ms"] == {"p99": 4.0}
    assert (results / f"{first['stem']}.md").read_text() == summary.markdown(saved)
    assert sorted(p.name for p in results.iterdir()) == sorted([
        f"{first['stem']}.json", f"{first['stem']}.md", f"{first['stem']}-tiny.png",
        f"{second['stem']}.json", f"{second['stem']}.md", f"{second['stem']}-tiny.png",
    ])
    run.write_history(results, tmp_path / "HISTORY.md")
    history = (tmp_path / "HISTORY.md").read_text()
    assert f"[{second['stem']}](results/{second['stem']}.md)" in history
    assert "| failed (exit 1) |" in history


def test_a_bench_that_failed_after_its_record_keeps_its_figures(
    processor: dict[str, Any],
) -> None:
    late = "exit 1: the broker did not stop"
    doc = run_document("2026-12-07", [bench("processor", [processor], late)])
    assert summary.target_rows(doc)[:2] == [
        ["processor", "(the whole bench)", f"failed ({late})", "", "failed"],
        ["processor", "processor vs Faust agent (exactly once)", "5.4x", ">= 5x", "met"],
    ]
    [row] = summary.history([doc]).split("## processor\n\n")[1].splitlines()[2:]
    assert row.endswith("| failed (exit 1) | 5.4x met | 46.2% missed |")


def test_figures_read_as_written() -> None:
    assert [summary.with_unit(v, u) for v, u in [
        (3.51, "x"), (46.2, "%"), (120.0, "x lower"), (41.0, "ms"), (1591.4, "deliveries/s"),
        (0.046, "s"), (7.0, ""), (0.0, "ms"),
    ]] == ["3.51x", "46.2%", "120x lower", "41 ms", "1,591 deliveries/s", "0.046 s", "7", "0 ms"]
