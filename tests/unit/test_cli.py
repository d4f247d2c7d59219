"""Wrong arguments give one line naming the argument and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookstream.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOOKSTREAM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOOKSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens


@pytest.mark.parametrize(("argv", "message"), [
    (["dlq", "redrive", "--rate", "fast"], "--rate 'fast': not a rate such as 20/s"),
    (["dlq", "redrive", "--rate", "0/s"], "--rate '0/s': not a rate such as 20/s"),
    (["dlq", "redrive", "--rate", "-3"], "--rate '-3': not a rate such as 20/s"),
    (["dlq", "list", "--since", "yesterday"],
     "--since 'yesterday': not a date-time nor a duration like 2h"),
    (["webhooks", "apply"], "hookstream webhooks apply needs -f FILE_OR_DIR"),
    (["webhooks", "delete"], "hookstream webhooks delete needs a webhook ID"),
    (["webhooks", "rotate-secret"], "hookstream webhooks rotate-secret needs a webhook ID"),
    (["webhooks", "rotate-secret", "w", "--grace", "2x"],
     "--grace '2x' is not a period such as 24h, 90m, 7d or 0 (at most 30d)"),
    (["webhooks", "rotate-secret", "w", "--grace", "31d"],
     "--grace '31d' is not a period such as 24h, 90m, 7d or 0 (at most 30d)"),
    (["instances", "apply"], "hookstream instances apply needs -f FILE"),
    (["instances", "delete"], "hookstream instances delete needs an instance NAME"),
])
def test_bad_or_missing_arguments(argv: list[str], message: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"hookstream: {message}\n"


def test_preview_with_an_unknown_id(capsys: pytest.CaptureFixture[str]) -> None:
    hooks = ROOT / "examples" / "webhooks.yaml"
    event = ROOT / "examples" / "events.jsonl"
    assert main(["preview", "--webhook", str(hooks), "--id", "nope", "--event", str(event)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hookstream: --id 'nope': no such webhook in ")
    assert "demo-ticket-new" in err and err.count("\n") == 1


def test_preview_with_an_unknown_timezone(capsys: pytest.CaptureFixture[str]) -> None:
    hooks = ROOT / "examples" / "webhooks.yaml"
    event = ROOT / "examples" / "events.jsonl"
    assert main(["preview", "--webhook", str(hooks), "--event", str(event),
                 "--timezone", "Mars/Olympus"]) == 2
    assert capsys.readouterr().err == (
        "hookstream: --timezone 'Mars/Olympus' is not an IANA time zone such as Europe/Paris\n")


def test_invalid_settings_exit_2_with_every_problem(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOOKSTREAM_PARTITIONS", "many")
    monkeypatch.setenv("HOOKSTREAM_MAX_IN_FLIGHT", "1.5")
    assert main(["topics", "create"]) == 2
    err = capsys.readouterr().err
    assert "setting partitions" in err and "setting max_in_flight" in err
    assert "Traceback" not in err
