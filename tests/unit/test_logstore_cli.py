"""`hookstream deliveries list|show`, `queue`, `logstore migrate|prune` and `admin token`
on a SQLite log store (no broker needed: they read the store only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.admin import parse_tokens, token_hash
from connectors.logstore import LogStore, open_engine
from connectors.logstore.rows import Source, from_attempt, from_request
from hookstream.cli.logstore import table
from hookstream.cli.main import main
from hookstream.config import load_settings
from hookstream.records import DeliveryRequest, delivery_id_for

T0 = 1_700_000_000_000


def request(n: int, webhook: str = "hook") -> DeliveryRequest:
    return DeliveryRequest(
        delivery_id=delivery_id_for(f"e{n}", webhook), webhook_id=webhook, instance="glpi-a",
        event_id=f"e{n}", itemtype="Ticket", items_id=n, event="new", method="POST",
        url="https://example.test/in", body=b"{}", created_at=T0 + n,
        headers={"X-GLPI-signature": "abc"},
    )


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[DeliveryRequest]:
    monkeypatch.setenv("HOOKSTREAM_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("HOOKSTREAM_LOGSTORE_URL", raising=False)
    engine = open_engine(load_settings(env={"HOOKSTREAM_STATE_DIR": str(tmp_path)},
                                       check_dns=False))
    requests = [request(n, "hook" if n < 3 else "other") for n in range(4)]
    rows = [from_request(r, Source.DELIVERIES, None, 100) for r in requests]
    fragment, attempt = from_attempt(
        requests[0].attempt_record(1, T0 + 5, T0 + 9, "dead_lettered", status_code=404,
                                   error="404 Not Found", retry_policy="default"), 0, 0, 100)
    LogStore(engine).write([*rows, fragment], [attempt])
    engine.dispose()
    return requests


def test_deliveries_list_as_a_table_and_as_json(store: list[DeliveryRequest],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deliveries", "list", "--webhook", "hook"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["DELIVERY", "CREATED", "(UTC)"]
    assert len(lines) == 4 and "dead_lettered" in lines[-1] and "404 Not Found" in lines[-1]
    assert main(["deliveries", "list", "--item", "glpi-a:Ticket:3", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["webhook_id"] == "other" and row["state"] == "pending"
    assert main(["deliveries", "list", "--state", "pending", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_bad_item_is_one_clear_line(store: list[DeliveryRequest],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deliveries", "list", "--item", "Ticket:3"]) == 2
    assert "expected INSTANCE:ITEMTYPE:ID" in capsys.readouterr().err


def test_deliveries_show(store: list[DeliveryRequest], capsys: pytest.CaptureFixture[str]
                         ) -> None:
    assert main(["deliveries", "show", store[0].delivery_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["request"]["headers"] == {"X-GLPI-signature": "abc"}  # not a secret
    assert shown["attempt_log"][0]["status_code"] == 404
    assert shown["attempt_log"][0]["retry_policy"] == "default"  # the rule that decided
    assert main(["deliveries", "show", "feed"]) == 1
    assert "no delivery feed" in capsys.readouterr().err


def test_queue(store: list[DeliveryRequest], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue"]) == 0
    out = capsys.readouterr().out
    assert "pending 3; waiting 0; dead-lettered 1;" in out
    assert main(["queue", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["totals"]["pending"] == 3 and view["oldest_undelivered_at"] == T0 + 1


def test_logstore_migrate_and_prune(store: list[DeliveryRequest],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logstore", "migrate"]) == 0
    assert "schema up to date" in capsys.readouterr().out
    assert main(["logstore", "prune"]) == 0  # T0 is far older than 30 days
    assert "deleted 4 delivery(ies)" in capsys.readouterr().out


def test_admin_token_prints_a_token_and_its_hashed_settings_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "token", "--name", "team-a", "--instances", "glpi-a|glpi-c",
                 "--mode", "rw"]) == 0
    out = capsys.readouterr().out.splitlines()
    token = out[0].rsplit(" ", 1)[1]
    line = out[1].rsplit(" ", 1)[1]
    assert token not in line and token_hash(token) in line
    [principal] = parse_tokens([line]).values()
    assert principal.instances == {"glpi-a", "glpi-c"} and principal.writable


def test_bad_token_lines_are_all_listed_without_their_content() -> None:
    from hookstream.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        parse_tokens(["a:nothex:*:rw", "b:" + "0" * 64 + ":*:admin", "c-only"])
    text = str(e.value)
    assert "#1 (a)" in text and "#2 (b): mode" in text and "#3" in text
    assert "nothex" not in text


def test_table_aligns_columns() -> None:
    assert table([("a", None), ("long", 1)], ("X", "Y")).splitlines() == [
        "X     Y", "a     -", "long  1"]


def test_an_unreachable_database_is_one_line_without_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HOOKSTREAM_LOGSTORE_URL",
                       f"postgresql://hook:pa55word-xyz@127.0.0.1:{port}/log")
    assert main(["queue"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hookstream: log store database postgresql+psycopg://hook:***@")
    assert "pa55word-xyz" not in err and len(err.strip().splitlines()) <= 3


def test_deliveries_list_filters_and_pages_with_a_cursor(
        store: list[DeliveryRequest], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deliveries", "list", "--status-code", "404", "--outcome", "dead_lettered",
                 "--instance", "glpi-a", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["delivery_id"] == store[0].delivery_id
    assert main(["deliveries", "list", "--since", str(T0 + 1), "--until",
                 "2023-11-14T22:13:20.003", "--json"]) == 0  # T0 + 3, in ISO
    assert [json.loads(line)["delivery_id"] for line in capsys.readouterr().out.splitlines()
            ] == [store[2].delivery_id, store[1].delivery_id]
    assert main(["deliveries", "list", "--id", store[3].delivery_id[:10].upper(), "--json"]) == 0
    assert [json.loads(line)["items_id"] for line in capsys.readouterr().out.splitlines()] == [3]
    seen: list[str] = []
    args = ["deliveries", "list", "--limit", "3", "--json"]
    while True:
        assert main(args) == 0
        out, err = capsys.readouterr()
        seen += [json.loads(line)["delivery_id"] for line in out.splitlines()]
        older = [line.split()[-1] for line in err.splitlines() if line.startswith("older:")]
        if not older:
            break
        args = ["deliveries", "list", "--limit", "3", "--json", "--cursor", older[0]]
    assert seen == [r.delivery_id for r in reversed(store)]


@pytest.mark.parametrize("option, value", [("--state", "lost"), ("--outcome", "maybe"),
                                           ("--since", "yesterday"), ("--cursor", "!!")])
def test_deliveries_list_refuses_an_unknown_value_in_one_line(
        store: list[DeliveryRequest], capsys: pytest.CaptureFixture[str], option: str,
        value: str) -> None:
    assert main(["deliveries", "list", option, value]) == 2
    err = capsys.readouterr().err
    assert option.strip("-") in err and "Traceback" not in err
