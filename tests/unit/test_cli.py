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


# ------------------------------------------------- files named on the command line
# Each command that reads a file ends, when it cannot, with one line naming the option and
# the file and exit code 2, before any wait for Kafka (nothing listens on 127.0.0.1:1) or
# GLPI.

MISSING = "cannot read: No such file or directory"
HOOKS = str(ROOT / "examples" / "webhooks.yaml")


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("hookstream: ").removesuffix("\n")


@pytest.mark.parametrize(("argv", "option"), [
    (["preview", "--webhook", HOOKS, "--event", "{missing}"], "--event"),
    (["preview", "--webhook", "{missing}", "--event", HOOKS], "--webhook"),
    (["webhooks", "apply", "-f", "{missing}"], "-f"),
    (["instances", "apply", "-f", "{missing}"], "-f"),
    (["entities", "apply", "-f", "{missing}"], "-f"),
    (["produce", "--instance", "glpi-a", "--file", "{missing}"], "--file"),
], ids=["preview-event", "preview-webhook", "webhooks-apply", "instances-apply",
        "entities-apply", "produce"])
def test_a_missing_file_is_one_line_naming_it(argv: list[str], option: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.yaml")
    assert main([a.replace("{missing}", missing) for a in argv]) == 2
    assert one_line(capsys) == f"{option} {missing}: {MISSING}"


@pytest.mark.parametrize("argv", [
    ["preview", "--webhook", HOOKS, "--event", "{bad}"],
    ["webhooks", "apply", "-f", "{bad}"],
    ["instances", "apply", "-f", "{bad}"],
    ["entities", "apply", "-f", "{bad}"],
    ["produce", "--instance", "glpi-a", "--file", "{bad}"],
], ids=["preview-event", "webhooks-apply", "instances-apply", "entities-apply", "produce"])
def test_an_unreadable_file_is_one_line_naming_it(argv: list[str], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    binary = tmp_path / "latin1.yaml"
    binary.write_bytes(b"name: caf\xe9\n")
    for bad, why in ((folder, "Is a directory"), (binary, "not UTF-8 text (byte 9)")):
        if argv[:2] == ["webhooks", "apply"] and bad == folder:
            continue  # a folder of definitions is read file by file: the next test
        assert main([a.replace("{bad}", str(bad)) for a in argv]) == 2
        option = argv[argv.index("{bad}") - 1]
        assert one_line(capsys) == f"{option} {bad}: cannot read: {why}"


def test_a_folder_of_definitions_names_the_file_it_cannot_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text((ROOT / "examples" / "webhooks.yaml").read_text())
    (tmp_path / "b.yml").write_bytes(b"id: caf\xe9\n")
    assert main(["webhooks", "apply", "-f", str(tmp_path)]) == 2
    assert one_line(capsys) == f"-f {tmp_path / 'b.yml'}: cannot read: not UTF-8 text (byte 7)"


def test_an_event_that_is_not_json_is_one_line(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"itemtype": "Ticket",\n')
    assert main(["preview", "--webhook", HOOKS, "--event", str(event)]) == 2
    assert one_line(capsys) == (
        f"--event {event}: not JSON: Expecting property name enclosed in double quotes "
        "at line 2 column 1")


def test_an_entity_file_of_the_wrong_shape_names_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "entities.yaml"
    tree.write_text("instance: glpi-a\nitems: []\n")
    assert main(["entities", "apply", "-f", str(tree)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hookstream: {tree}: 1 error(s)\n") and "Traceback" not in err
    assert "expected {instance: NAME, entities: [{id, parent_id, name}, ...]}" in err


def test_an_import_into_a_folder_that_cannot_be_made_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "out"
    assert main(["glpi", "import-webhooks", "--instance", "glpi-a", "-o", str(out)]) == 2
    assert one_line(capsys) == f"-o {out}: cannot create: Not a directory"


def test_a_missing_settings_file_is_one_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "hookstream.yaml"
    assert main(["--config", str(missing), "settings"]) == 2
    assert one_line(capsys) == (
        f"cannot read settings file {missing}: [Errno 2] No such file or directory: "
        f"'{missing}'")


def test_preview_event_missing_as_a_process(tmp_path: Path) -> None:
    """The command as a user runs it: no traceback, exit code 2."""
    import os
    import subprocess
    import sys

    missing = tmp_path / "missing.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "hookstream.cli", "preview", "--webhook", HOOKS,
                           "--event", str(missing)], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == f"hookstream: --event {missing}: {MISSING}\n"
