"""The GLPI API client and `glpi sync-entities`, against the fake GLPI on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from connectors.glpi import GlpiApiError, GlpiClient, GlpiUnavailable, sync_entities
from connectors.glpi.entities import published_entities
from hookstream.config import Settings
from hookstream.control import instances
from hookstream.io import create_topics, read_all
from hookstream.records import ENTITIES
from tests.fake_glpi import FakeGlpiApi, RunningGlpiApi
from tests.integration.harness import cli_env

APP, USER = "app-token-1234", "user-token-5678"


@pytest.fixture
def glpi() -> Iterator[tuple[FakeGlpiApi, str]]:
    api = FakeGlpiApi(APP, USER)
    api.add("Entity", id=0, name="Root entity", entities_id=None)
    api.add("Entity", id=1, name="Europe", entities_id=0)
    api.add("Entity", id=2, name="France", entities_id=1)
    with RunningGlpiApi(api) as url:
        yield api, url


def client(url: str, app: str = APP, user: str = USER) -> GlpiClient:
    return GlpiClient("glpi-a", url, app, user, timeout_s=5, backoff_s=0.01)


def test_one_session_serves_every_call_and_pages_follow_content_range(
    glpi: tuple[FakeGlpiApi, str],
) -> None:
    api, url = glpi
    for n in range(3, 1203):
        api.add("Entity", id=n, name=f"E{n}", entities_id=2)
    with client(url) as c:
        rows = list(c.list_items("Entity", page=500))
        assert [r["id"] for r in rows] == list(range(1203))
        assert c.get_item("Entity", 2)["name"] == "France"
    assert api.sessions_opened == 1 and api.sessions_killed == 1
    pages = [p for m, p in api.calls if p == "Entity"]
    assert len(pages) == 3  # 0-499, 500-999, 1000-1499 (the last one answered 200)


def test_an_expired_session_is_reopened_once(glpi: tuple[FakeGlpiApi, str]) -> None:
    api, url = glpi
    with client(url) as c:
        assert c.get_item("Entity", 1)["name"] == "Europe"
        api.sessions.clear()  # GLPI dropped the session
        assert c.get_item("Entity", 2)["name"] == "France"
        assert c.sessions_opened == 2


def test_5xx_and_connection_errors_are_retried_4xx_are_not(
    glpi: tuple[FakeGlpiApi, str],
) -> None:
    api, url = glpi
    with client(url) as c:
        api.fail_next = [503, 500]
        assert c.get_item("Entity", 0)["name"] == "Root entity"
        api.fail_next = [502] * 10
        with pytest.raises(GlpiUnavailable, match="HTTP 502"):
            c.get_item("Entity", 0)
        api.fail_next = []
        before = len(api.calls)
        with pytest.raises(GlpiApiError) as info:
            c.get_item("Entity", 999)
        assert (info.value.status, info.value.code) == (404, "ERROR_ITEM_NOT_FOUND")
        assert len(api.calls) == before + 1
    with pytest.raises(GlpiUnavailable, match="ConnectError"):
        GlpiClient("glpi-a", "http://127.0.0.1:1/apirest.php", APP, USER,
                   backoff_s=0.01).get_item("Entity", 0)


@pytest.mark.parametrize(("app", "user", "code"), [
    ("bad-app-7f3a", USER, "ERROR_WRONG_APP_TOKEN_PARAMETER"),
    (APP, "bad-user-7f3a", "ERROR_GLPI_LOGIN_USER_TOKEN"),
])
def test_bad_credentials_give_one_clear_error_naming_the_instance(
    glpi: tuple[FakeGlpiApi, str], app: str, user: str, code: str
) -> None:
    _, url = glpi
    with pytest.raises(GlpiApiError) as info, client(url, app, user) as c:
        c.get_item("Entity", 0)
    text = str(info.value)
    assert code in text and "glpi-a" in text and "\n" not in text
    assert "7f3a" not in text  # the token itself is never repeated


def publish_instance(settings: Settings, tmp_path: Path, url: str, app: str = APP) -> None:
    create_topics(settings)
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": url,
                                    "app_token": app, "user_token": USER}))
    instances.apply_instances(settings, path)


def test_sync_entities_publishes_the_tree_then_only_differences(
    settings: Settings, tmp_path: Path, glpi: tuple[FakeGlpiApi, str]
) -> None:
    api, url = glpi
    publish_instance(settings, tmp_path, url)
    with client(url) as c:
        assert sync_entities(settings, c) == (3, 3, 0)
        assert sync_entities(settings, c) == (3, 0, 0)  # idempotent
        api.items["Entity"].pop(2)
        api.items["Entity"][1]["name"] = "EMEA"
        assert sync_entities(settings, c) == (2, 1, 1)
    latest = published_entities(settings, "glpi-a")
    assert sorted(latest) == ["glpi-a:0", "glpi-a:1"]
    assert latest["glpi-a:1"].completename == "Root entity > EMEA"
    last = [(m.key(), m.value()) for m in read_all(settings, settings.topic(ENTITIES))][-1]
    assert last == (b"glpi-a:2", None)  # a tombstone: compaction forgets France


def test_cli_sync_entities_wrong_app_token_is_one_line_and_exit_1(
    settings: Settings, tmp_path: Path, glpi: tuple[FakeGlpiApi, str]
) -> None:
    _, url = glpi
    publish_instance(settings, tmp_path, url, app="not-the-app-token")
    done = subprocess.run(
        [sys.executable, "-m", "hookstream.cli", "glpi", "sync-entities", "--instance",
         "glpi-a"], env=cli_env(settings), capture_output=True, text=True, timeout=120,
    )
    errors = [line for line in done.stderr.splitlines() if not line.startswith("%")]
    assert done.returncode == 1, done.stderr
    assert len(errors) == 1 and "ERROR_WRONG_APP_TOKEN_PARAMETER" in errors[0], done.stderr
    assert "glpi-a" in errors[0] and "not-the-app-token" not in done.stderr


def test_provision_creates_once_then_changes_nothing_and_tunes_the_cron(
    glpi: tuple[FakeGlpiApi, str],
) -> None:
    from connectors.glpi.provision import provision

    api, url = glpi
    api.add("CronTask", id=7, name="queuedwebhook", itemtype="QueuedWebhook",
            frequency=60, param=50)
    api.add("Webhook", id=40, name="admin's own", itemtype="Ticket", event="new",
            url="https://elsewhere.example/hook", is_active=1)
    with client(url) as c:
        first = provision(c, "https://hs.example/", "the-secret", ("Ticket", "Computer"))
        assert [a.verb for a in first.actions] == ["create"] * 6
        assert first.cron == ["queuedwebhook: param 50 -> 1000"] and not first.refused
        second = provision(c, "https://hs.example/", "the-secret", ("Ticket", "Computer"))
        assert [a.verb for a in second.actions] == ["unchanged"] * 6
    hooks = [h for h in api.items["Webhook"].values() if h["id"] != 40]
    assert len(hooks) == 6 and len(api.items["Webhook"]) == 7  # the admin's own is kept
    assert {(h["url"], h["event"]) for h in hooks} == {
        (f"https://hs.example/glpi/glpi-a/{t}", e)
        for t in ("Ticket", "Computer") for e in ("new", "update", "delete")
    }
    assert all(h["secret"] == "the-secret" and h["use_default_payload"] == 1
               and h["is_active"] == 1 for h in hooks)


def test_provision_updates_drift_reports_refusals_and_dry_run_changes_nothing(
    glpi: tuple[FakeGlpiApi, str],
) -> None:
    from connectors.glpi.provision import provision, table

    api, url = glpi
    api.add("CronTask", id=7, name="queuedwebhook", frequency=300, param=50)
    api.read_only.add("CronTask")
    with client(url) as c:
        provision(c, "https://hs.example", "s", ("Ticket",))
        hook = next(h for h in api.items["Webhook"].values() if h["event"] == "update")
        hook["is_active"] = 0  # an admin switched one off
        calls = len(api.calls)
        dry = provision(c, "https://hs.example", "s", ("Ticket",), dry_run=True)
        assert [a.verb for a in dry.actions] == ["unchanged", "update", "unchanged"]
        assert all(m == "GET" for m, _ in api.calls[calls:]) and hook["is_active"] == 0
        assert "update     Ticket               update" in table(dry.actions)
        again = provision(c, "https://hs.example", "s", ("Ticket",))
    assert hook["is_active"] == 1
    assert again.refused == ["queuedwebhook frequency, param: ERROR_GLPI_UPDATE "
                             "You don't have permission to perform this action."]


def glpi_with_webhooks(api: FakeGlpiApi) -> None:
    common = {"entities_id": 0, "is_recursive": 1, "is_active": 1, "http_method": "post",
              "use_default_payload": 1, "sent_try": 3, "secret": "glpi-only-secret"}
    api.add("Webhook", id=11, name="Open tickets", itemtype="Ticket", event="new",
            url="https://hooks.example.com/tickets",
            custom_headers='{"X-Team": "{{ item.entity.name }}"}', **common)
    api.add("Webhook", id=12, name="Odd filter", itemtype="Ticket", event="update",
            url="https://hooks.example.com/odd", **common)
    api.add("Webhook", id=13, name="Internal", itemtype="Computer", event="update",
            url="http://10.1.2.3/cmdb", **common)
    api.add("CriteriaFilter", itemtype="Webhook", items_id=11, search_criteria=json.dumps(
        [{"link": "AND", "field": "12", "searchtype": "equals", "value": "notold"}]))
    api.add("CriteriaFilter", itemtype="Webhook", items_id=12, search_criteria=json.dumps(
        [{"link": "AND", "field": "99999", "searchtype": "equals", "value": "1"}]))


def test_import_webhooks_writes_yaml_that_applies_and_notes_what_is_not_carried(
    settings: Settings, tmp_path: Path, glpi: tuple[FakeGlpiApi, str]
) -> None:
    from connectors.glpi.importer import import_webhooks, write
    from hookstream.control import load_definitions
    from hookstream.policy import secret_box

    api, url = glpi
    glpi_with_webhooks(api)
    with client(url) as c:
        imported = import_webhooks(c, settings.retry_tiers_s)
    path = write(imported, tmp_path / "out", "glpi-a")
    text = path.read_text()
    assert "glpi-only-secret" not in text
    assert text.count("# NOT CARRIED: secret") == 3
    assert "field 99999" in text or "99999" in text.split("NOT CARRIED: filter")[1]
    loaded = {d.id: d for d in load_definitions(path, secret_box(settings), {},
                                                settings.retry_tiers_s)}
    assert sorted(loaded) == ["glpi-a-11", "glpi-a-12"]  # 13 is commented out
    first = loaded["glpi-a-11"]
    assert (first.itemtype, first.event, first.url, first.is_active, first.is_recursive) == (
        "Ticket", "new", "https://hooks.example.com/tickets", True, True)
    assert json.loads(first.filter)[0]["value"] == "notold"
    assert {d.retry_policy for d in loaded.values()} == {"glpi"}
    assert first.custom_headers == {"X-Team": "{{ item.entity.name }}"}
    assert loaded["glpi-a-12"].filter == ""  # the unknown search option stayed a comment
    [internal] = [i for i in imported if i.glpi_id == 13]
    assert internal.commented and any("allowed_networks" in n for n in internal.notes)


def test_cli_import_with_disable_in_glpi_applies_then_switches_off(
    settings: Settings, tmp_path: Path, glpi: tuple[FakeGlpiApi, str]
) -> None:
    from hookstream.control import admin

    api, url = glpi
    glpi_with_webhooks(api)
    publish_instance(settings, tmp_path, url)
    done = subprocess.run(
        [sys.executable, "-m", "hookstream.cli", "glpi", "import-webhooks", "--instance",
         "glpi-a", "-o", str(tmp_path / "imported"), "--disable-in-glpi"],
        env=cli_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "not carried: secret" in done.stdout and "switched off 2 webhook(s)" in done.stdout
    assert sorted(admin.current_webhooks(settings)) == ["glpi-a-11", "glpi-a-12"]
    assert [api.items["Webhook"][i]["is_active"] for i in (11, 12, 13)] == [0, 0, 1]


def test_import_says_so_when_glpi_does_not_list_filters(glpi: tuple[FakeGlpiApi, str]) -> None:
    from connectors.glpi.importer import import_webhooks

    api, url = glpi
    glpi_with_webhooks(api)
    del api.items["CriteriaFilter"]  # a GLPI whose API does not expose the itemtype
    with client(url) as c:
        imported = import_webhooks(c, (10, 60))
    assert len(imported) == 3
    assert all(any("ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM" in n for n in i.notes)
               for i in imported)
    assert all("filter" not in i.definition for i in imported)
