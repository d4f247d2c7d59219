"""`hookstream run writeback` on the real broker against the fake GLPI: one note per attempt."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml

from hookstream.config import Settings
from hookstream.control import instances
from hookstream.io import codec_for, create_topics, delivery_callback, flush, producer
from hookstream.records import ATTEMPTS, WEBHOOKS, AttemptRecord, Record, WebhookDefinition
from tests.fake_glpi import RunningGlpiApi
from tests.fake_glpi_items import FakeGlpiItems
from tests.integration.harness import cli_env, wait_until

APP, USER = "app-token-1234", "user-token-5678"
SECRET = "s3cr3t-webhook-key-0123456789abcdefghij"


def publish(settings: Settings, topic: str, records: list[tuple[str, Record]]) -> None:
    codec, prod, errors = codec_for(settings), producer(settings), list[str]()
    for key, record in records:
        value, headers = codec.encode(record, settings.topic(topic))
        prod.produce(settings.topic(topic), value, key.encode(), headers=headers,
                     on_delivery=delivery_callback(errors))
    flush(prod)
    assert not errors


def attempt(delivery: str, n: int, status: int | None, webhook: str = "wh-1",
            outcome: str = "delivered") -> AttemptRecord:
    return AttemptRecord(delivery_id=delivery, webhook_id=webhook, instance="glpi-a",
                         itemtype="Computer", items_id=1532, event="update", attempt=n,
                         started_at=1_762_243_200_000, finished_at=1_762_243_200_150,
                         outcome=outcome, status_code=status,
                         response_headers={"set-cookie": "x"}, response_body=b"body")


def test_attempts_are_written_once_each_as_notes_without_secrets(
    settings: Settings, tmp_path: Path
) -> None:
    api = FakeGlpiItems(APP, USER)
    api.create("Computer", id=1532, name="PC-MUC-0042", entities_id=0)
    api.items.setdefault("Notepad", {})
    with RunningGlpiApi(api) as url:
        create_topics(settings)
        path = tmp_path / "instances.yaml"
        path.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": url,
                                        "app_token": APP, "user_token": USER}))
        instances.apply_instances(settings, path)
        hook = WebhookDefinition(id="wh-1", version=1, instance="glpi-a", name="CMDB sync",
                                 itemtype="Computer", event="update",
                                 url="https://cmdb.example/hook?token=abc",
                                 secret_encrypted=SECRET, log_in_item_history=True)
        quiet = WebhookDefinition(id="wh-2", version=1, instance="glpi-a", name="quiet",
                                  itemtype="Computer", event="update", url="https://x",
                                  secret_encrypted="")
        publish(settings, WEBHOOKS, [("wh-1", hook), ("wh-2", quiet)])
        publish(settings, ATTEMPTS, [
            ("d1", attempt("d1", 1, 503, outcome="retry_scheduled")),
            ("d1", attempt("d1", 2, 200)),
            ("d1", attempt("d1", 2, 200)),  # the same attempt again (at least once upstream)
            ("d2", attempt("d2", 1, None, outcome="retry_scheduled")),  # no response: no entry
            ("d3", attempt("d3", 1, 200, webhook="wh-2")),  # the flag is off
        ])
        command = [sys.executable, "-m", "hookstream.cli", "run", "writeback"]
        env = cli_env(settings)

        def notes() -> list[str]:
            return [str(n["content"]) for n in api.items["Notepad"].values()]

        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        try:
            written = wait_until(lambda: len(notes()) >= 2, timeout_s=120)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        assert written
        # a restart before or after the commit writes nothing twice
        publish(settings, ATTEMPTS, [("d1", attempt("d1", 2, 200))])
        second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        try:
            wait_until(lambda: api.calls_to("Computer/1532/Notepad") >= 3, timeout_s=120)
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
    assert sorted(notes()) == sorted([
        "[hookstream d1#1] Webhook 'CMDB sync' (wh-1), event update: attempt 1 answered "
        "HTTP 503 (retry_scheduled) at 2025-11-04 08:00:00 UTC",
        "[hookstream d1#2] Webhook 'CMDB sync' (wh-1), event update: attempt 2 answered "
        "HTTP 200 (delivered) at 2025-11-04 08:00:00 UTC",
    ])
    for row in api.items["Notepad"].values():
        assert (row["itemtype"], row["items_id"]) == ("Computer", 1532)
    text = " ".join(notes()) + err.decode()
    for secret in (SECRET, "token=abc", APP, USER, "set-cookie"):
        assert secret not in text
