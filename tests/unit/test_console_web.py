"""The console's sessions and actions against the admin app (FastAPI TestClient): cookie
flags, no token in the cookie, CSRF refusals, read-only and scoped tokens, login refusals.
The admin context is a small fake over a real SQLite log store: these tests are about the
HTTP layer; tests/integration/test_console_browser.py runs the real pipeline."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert

from connectors.admin import create_app, new_token, parse_tokens, server_options, token_hash
from connectors.console.session import COOKIE, FLASH_COOKIE, Flash, Signer
from connectors.delivery.redrive import RedriveCount
from connectors.logstore import migrate
from connectors.logstore.schema import audit, deliveries
from hookstream.config import Settings
from hookstream.policy import SecretBox, rotated
from hookstream.records import WebhookDefinition

NOW = 1_800_000_000.0
BOX = SecretBox(Fernet.generate_key().decode())


@dataclass
class FakeContext:
    engine: Any
    sent: list[str] = field(default_factory=list)
    redriven: list[tuple[str | None, int, float, Any]] = field(default_factory=list)
    audited: list[tuple[str, str, str, str, str | None, str]] = field(default_factory=list)
    answer: tuple[str, int | None, str | None] = ("delivered", 200, None)
    dead: dict[int | None, int] = field(default_factory=lambda: {401: 4, 500: 8})
    hooks: dict[str, WebhookDefinition] = field(default_factory=dict)

    def clock(self) -> float:
        return NOW

    def webhooks(self) -> dict[str, Any]:
        return {}

    def webhook(self, webhook_id: str) -> Any:
        return self.hooks.get(webhook_id)

    def rotate_secret(self, webhook: WebhookDefinition, new_secret: str,
                      grace_s: int) -> WebhookDefinition:
        done = rotated(webhook, new_secret, grace_s, int(NOW * 1000), BOX)
        self.hooks[webhook.id] = done
        return done

    def force_send(self, delivery_id: str, actor: str | None = None) -> Any:
        self.sent.append(delivery_id)
        outcome, status, error = self.answer
        return type("Record", (), {"outcome": outcome, "status_code": status, "error": error})()

    def redrive(self, webhook_id: str | None, since_ms: int, rate: float,
                instances: Any = None) -> int:
        self.redriven.append((webhook_id, since_ms, rate, instances))
        return sum(self.dead.values())

    def count_redrive(self, webhook_id: str | None, since_ms: int, instances: Any = None
                      ) -> RedriveCount:
        return RedriveCount(dict(self.dead))

    def audit(self, who: Any, action: Any, target: str, result: str,
              instance: str | None = None, via: str = "api") -> None:
        self.audited.append((who.name, str(action), target, result, instance, via))

    def ready(self) -> bool:
        return True


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, FakeContext, dict[str, str], str]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    migrate(engine)
    with engine.begin() as conn:
        for delivery_id, instance, state in (("a1", "glpi-a", "dead_lettered"),
                                             ("b1", "glpi-b", "dead_lettered"),
                                             ("a2", "glpi-a", "delivered")):
            conn.execute(insert(deliveries).values(
                delivery_id=delivery_id, instance=instance, webhook_id=f"hook-{instance}",
                itemtype="Ticket", items_id=1, event="update", created_at=int(NOW * 1000),
                attempts=0, state=state))
    plain, lines = {}, []
    for name, instances, mode in (("admin", "*", "rw"), ("reader", "*", "ro"),
                                  ("team-a", "glpi-a", "rw")):
        plain[name], line = new_token(name, instances, mode)
        lines.append(line)
    ctx = FakeContext(engine)
    client = TestClient(create_app(ctx, parse_tokens(lines)),  # type: ignore[arg-type]
                        base_url="http://console.test", follow_redirects=False)
    return client, ctx, plain, "\n".join(lines)


def login(client: TestClient, token: str) -> str:
    """Logs in; the session's CSRF token (from a page's form)."""
    form = client.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    answer = client.post("/login", data={"nonce": nonce.group(1), "token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/queue"
    page = client.get("/queue")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return csrf.group(1)


def set_cookie_headers(answer: Any, name: str) -> list[str]:
    return [h for h in answer.headers.get_list("set-cookie") if h.startswith(name + "=")]


def test_pages_need_a_session(setup: Any) -> None:
    client, *_ = setup
    for path in ("/", "/queue", "/webhooks", "/deliveries/a1", "/items/glpi-a/Ticket/1"):
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == ("/queue" if path == "/" else "/login")
    poll = client.get("/queue/live", headers={"HX-Request": "true"})
    assert poll.status_code == 401 and poll.headers["hx-redirect"] == "/login"


def test_the_session_cookie_is_httponly_strict_and_holds_no_token(setup: Any) -> None:
    client, _, plain, _ = setup
    form = client.get("/login")
    [login_cookie] = set_cookie_headers(form, "hookstream_login")
    assert "HttpOnly" in login_cookie and "SameSite=strict" in login_cookie
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/login", data={"nonce": nonce, "token": plain["admin"]})
    [header] = set_cookie_headers(answer, COOKIE)
    flags = [f.strip().lower() for f in header.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "secure" not in flags  # plain HTTP here; see the HTTPS test below
    value = SimpleCookie(header)[COOKIE].value
    for secret in (plain["admin"], token_hash(plain["admin"])):
        assert secret not in value and secret not in header
    assert plain["admin"] not in client.get("/queue").text


def test_over_https_the_cookie_is_secure(setup: Any) -> None:
    client, _, plain, _ = setup
    client.base_url = "https://console.test"  # type: ignore[assignment]
    form = client.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/login", data={"nonce": nonce, "token": plain["admin"]})
    [header] = set_cookie_headers(answer, COOKIE)
    assert "secure" in [f.strip().lower() for f in header.split(";")]


@pytest.mark.parametrize(("peer", "origin", "secure"), [
    ("10.0.3.7", "https://console.test", True),  # the Ingress controller, TLS terminated
    ("10.9.0.7", "http://console.test", False),  # a client claiming https itself
])
def test_forwarded_https_counts_only_from_a_trusted_proxy(
    setup: Any, peer: str, origin: str, secure: bool,
) -> None:
    client, _, plain, _ = setup
    settings = Settings(trusted_proxies=("10.0.0.0/16",))
    config = uvicorn.Config(client.app, **server_options(settings))
    config.load()  # the app as the admin process serves it, behind uvicorn's proxy middleware
    proxied = TestClient(config.loaded_app, base_url="http://console.test", client=(peer, 4000),
                         follow_redirects=False)
    proxied.headers.update({"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9",
                            "Origin": origin})
    form = proxied.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    [login_cookie] = set_cookie_headers(form, "hookstream_login")
    proxied.cookies.clear()  # the client is on http: it would not send a Secure cookie back
    answer = proxied.post("/login", data={"nonce": nonce, "token": plain["admin"]},
                          headers={"Cookie": login_cookie.split(";")[0]})
    assert answer.status_code == 303, answer.text
    [header] = set_cookie_headers(answer, COOKIE)
    assert ("secure" in [f.strip().lower() for f in header.split(";")]) is secure


def test_a_wrong_token_or_a_forged_login_is_refused(setup: Any) -> None:
    client, _, plain, _ = setup
    form = client.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    for token in ("nope", "hsk_" + "x" * 43, "", plain["admin"] + "x"):
        answer = client.post("/login", data={"nonce": nonce, "token": token})
        assert answer.status_code == 401 and "This token is not valid." in answer.text
        assert not set_cookie_headers(answer, COOKIE)
        nonce = re.search(r'name="nonce" value="([^"]+)"', answer.text).group(1)  # type: ignore[union-attr]
    client.cookies.clear()  # another site's form: no login nonce cookie of ours
    forged = client.post("/login", data={"nonce": nonce, "token": plain["admin"]})
    assert forged.status_code == 403 and not set_cookie_headers(forged, COOKIE)


def test_actions_without_the_csrf_token_are_refused(setup: Any) -> None:
    client, ctx, plain, _ = setup
    csrf = login(client, plain["admin"])
    for data, headers in (({}, {}), ({"csrf": "wrong"}, {}), ({"csrf": csrf[:-1]}, {}),
                          ({"csrf": csrf}, {"Origin": "https://evil.example"})):
        for path in ("/deliveries/a1/send", "/dlq/redrive"):
            answer = client.post(path, data=data, headers=headers)
            assert answer.status_code == 403, (path, data, headers)
            assert "refused" in answer.text.lower() or "security token" in answer.text
    assert ctx.sent == [] and ctx.redriven == []
    sent = client.post("/deliveries/a1/send", data={"csrf": csrf},
                       headers={"Origin": "http://console.test"})
    assert sent.status_code == 303
    assert sent.headers["location"] == "/deliveries/a1"  # the result is not in the URL
    assert ctx.sent == ["a1"]


def test_a_read_only_token_cannot_act_and_a_scoped_one_sees_its_instance_only(
        setup: Any) -> None:
    client, ctx, plain, _ = setup
    csrf = login(client, plain["reader"])
    assert "Send now" not in client.get("/deliveries/a1").text
    answer = client.post("/deliveries/a1/send", data={"csrf": csrf})
    assert answer.status_code == 403 and "read-only" in answer.text
    assert ctx.sent == []
    client.cookies.clear()
    csrf = login(client, plain["team-a"])
    assert client.get("/deliveries/a1").status_code == 200
    hidden = client.get("/deliveries/b1")
    assert hidden.status_code == 404 and "glpi-b" not in hidden.text
    assert client.post("/deliveries/b1/send", data={"csrf": csrf}).status_code == 404
    assert client.get("/items/glpi-b/Ticket/1").status_code == 404
    queue = client.get("/queue").text
    assert "hook-glpi-a" in queue and "hook-glpi-b" not in queue
    # a scoped token redrives within its instances: the count first, then only its own
    asked = client.post("/dlq/redrive", data={"csrf": csrf, "webhook": ""})
    assert asked.status_code == 200 and ctx.redriven == []
    assert "every webhook of glpi-a" in asked.text
    done = client.post("/dlq/redrive", data={"csrf": csrf, "webhook": "", "confirm": "yes"})
    assert done.status_code == 303 and ctx.sent == []
    assert [r[3] for r in ctx.redriven] == [frozenset({"glpi-a"})]
    assert ctx.audited[-1] == ("team-a", "dlq.redrive", "dlq of glpi-a", "redriven 12",
                               "glpi-a", "console")


def test_a_tampered_expired_or_foreign_session_is_no_session(setup: Any) -> None:
    client, _, plain, _ = setup
    login(client, plain["admin"])
    value = client.cookies[COOKIE]
    data, mac = value.split(".")
    for bad in (data + "." + mac[:-2] + "AA", data[:-2] + "AA." + mac, "x", ""):
        client.cookies.set(COOKIE, bad)
        assert client.get("/queue").status_code == 303
    foreign = Signer(b"k" * 32).new_session(token_hash(plain["admin"]), NOW)[1]
    client.cookies.set(COOKIE, foreign)  # signed by another process's key
    assert client.get("/queue").status_code == 303


def test_signer_sessions_expire_and_end_with_their_token() -> None:
    signer = Signer(b"s" * 32)
    plain, line = new_token("x", "*", "rw")
    tokens = parse_tokens([line])
    session, cookie = signer.new_session(token_hash(plain), NOW)
    found = signer.session(cookie, NOW + 60)
    assert found == session and signer.principal(tokens, session) is not None
    assert signer.session(cookie, NOW + 8 * 3600 + 1) is None
    assert signer.principal(parse_tokens([new_token("y")[1]]), session) is None
    with pytest.raises(ValueError):
        Signer(b"short")


def flash_of(page: Any) -> tuple[str, str] | None:
    found = re.search(r'<p class="flash flash-(\w+)"[^>]*>([^<]*)</p>', page.text)
    return None if found is None else (found.group(1), found.group(2))


def test_a_send_result_is_a_flash_of_the_session_shown_once(setup: Any) -> None:
    client, ctx, plain, _ = setup
    csrf = login(client, plain["admin"])
    sent = client.post("/deliveries/a1/send", data={"csrf": csrf})
    [cookie] = set_cookie_headers(sent, FLASH_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert flash_of(client.get("/deliveries/a1")) == ("success", "Sent now: delivered (HTTP 200).")
    assert flash_of(client.get("/deliveries/a1")) is None  # gone on reload
    # a failure is styled as one
    ctx.answer = ("failed", 500, None)
    client.post("/deliveries/a1/send", data={"csrf": csrf})
    assert flash_of(client.get("/deliveries/a1")) == ("failure", "Sent now: failed (HTTP 500).")
    # the URL says nothing
    page = client.get("/deliveries/a1?sent=delivered&status=200")
    assert flash_of(page) is None and "Sent now" not in page.text
    assert client.get("/queue?redriven=99").text.count("Redriven") == 0


def test_a_flash_is_for_its_own_session_only() -> None:
    signer = Signer(b"f" * 32)
    value = signer.new_flash(Flash("failure", "Sent now: failed (HTTP 401)."), "sid-1", NOW)
    assert signer.flash(value, "sid-1", NOW + 1) == Flash("failure", "Sent now: failed (HTTP 401).")
    assert signer.flash(value, "sid-2", NOW + 1) is None
    assert signer.flash(value, "sid-1", NOW + 301) is None  # expired
    assert Signer(b"g" * 32).flash(value, "sid-1", NOW) is None


def test_resending_a_delivered_delivery_asks_first(setup: Any) -> None:
    client, ctx, plain, _ = setup
    csrf = login(client, plain["admin"])
    asked = client.post("/deliveries/a2/send", data={"csrf": csrf})
    assert asked.status_code == 200 and ctx.sent == []
    assert "already <b>delivered</b>" in asked.text and 'name="confirm" value="yes"' in asked.text
    done = client.post("/deliveries/a2/send", data={"csrf": csrf, "confirm": "yes"})
    assert done.status_code == 303 and ctx.sent == ["a2"]
    assert ctx.audited == [("admin", "token.login", "console", "ok", None, "console"),
                           ("admin", "delivery.send", "a2", "delivered (HTTP 200)", "glpi-a",
                            "console")]


def test_a_redrive_shows_its_count_before_it_runs(setup: Any) -> None:
    client, ctx, plain, _ = setup
    csrf = login(client, plain["admin"])
    asked = client.post("/dlq/redrive", data={"csrf": csrf, "since_hours": "2"})
    assert asked.status_code == 200 and ctx.redriven == []
    assert ("12 deliveries, 8 of them to a target answering 500, 4 to one answering 401"
            in asked.text)
    since = re.search(r'name="since_ms" value="(\d+)"', asked.text).group(1)  # type: ignore[union-attr]
    assert abs(int(since) / 1000 - (time.time() - 7200)) < 60  # the console's own clock
    done = client.post("/dlq/redrive", data={"csrf": csrf, "since_ms": since, "confirm": "yes"})
    assert done.headers["location"] == "/queue"
    assert ctx.redriven == [(None, int(since), 0.0, None)]
    assert flash_of(client.get("/queue")) == (
        "success", "Redriven: 12 dead-lettered deliveries sent again.")


def test_the_audit_page_filters_by_token_and_action_within_the_scope(setup: Any) -> None:
    client, ctx, plain, _ = setup
    with ctx.engine.begin() as conn:
        for n, (token, action, instance) in enumerate((
                ("alice", "delivery.send", "glpi-a"), ("bob", "dlq.redrive", "glpi-b"),
                ("alice", "webhook.put", "glpi-b"), ("alice", "token.login", None))):
            conn.execute(insert(audit).values(
                audit_id=f"{n:032x}", at_ms=int(NOW * 1000) + n, token=token, action=action,
                target=f"t{n}", result="ok", instance=instance, via="api"))
    login(client, plain["admin"])

    def tokens(path: str) -> list[str]:
        return re.findall(r'<td class="token">([^<]+)</td>', client.get(path).text)

    assert tokens("/audit") == ["alice", "alice", "bob", "alice"]  # newest first
    assert tokens("/audit?token=alice") == ["alice", "alice", "alice"]
    assert tokens("/audit?token=alice&action=webhook.put") == ["alice"]
    client.cookies.clear()
    login(client, plain["team-a"])
    assert tokens("/audit") == ["alice"]  # glpi-a's writes only


def test_rotating_a_secret_from_the_console_is_audited_and_repeats_no_secret(
        setup: Any) -> None:
    client, ctx, plain, _ = setup
    for instance in ("glpi-a", "glpi-b"):
        ctx.hooks[f"hook-{instance}"] = WebhookDefinition(
            f"hook-{instance}", 1, instance, "n", "Ticket", "new", "https://example.test/h",
            BOX.encrypt("old-secret-old-secret"))
    csrf = login(client, plain["team-a"])
    done = client.post("/webhooks/hook-glpi-a/rotate-secret",
                       data={"csrf": csrf, "secret": "new-secret-new-secret", "grace": "2h"})
    assert done.status_code == 303 and done.headers["location"] == "/webhooks/hook-glpi-a"
    assert flash_of(client.get("/queue")) == (
        "success", "Secret rotated (v2): the previous secret also signs Standard Webhooks "
        "signatures for 2h.")
    rotated_hook = ctx.hooks["hook-glpi-a"]
    assert BOX.decrypt(rotated_hook.previous_secret_encrypted) == "old-secret-old-secret"
    assert rotated_hook.previous_secret_until_ms == int(NOW * 1000) + 7_200_000
    assert ctx.audited[-1] == ("team-a", "webhook.rotate_secret", "hook-glpi-a", "rotated, v2",
                               "glpi-a", "console")
    again = client.post("/webhooks/hook-glpi-a/rotate-secret",
                        data={"csrf": csrf, "secret": "new-secret-new-secret"})
    assert again.status_code == 422 and "the new secret is the current one" in again.text
    assert "new-secret-new-secret" not in again.text
    bad = client.post("/webhooks/hook-glpi-a/rotate-secret",
                      data={"csrf": csrf, "secret": "third", "grace": "soon"})
    assert bad.status_code == 422 and "grace &#39;soon&#39; is not a period" in bad.text
    assert client.post("/webhooks/hook-glpi-b/rotate-secret",  # another instance's
                       data={"csrf": csrf, "secret": "x"}).status_code == 404
    assert client.post("/webhooks/hook-glpi-a/rotate-secret",
                       data={"secret": "x"}).status_code == 403  # no CSRF token
    assert [a[1] for a in ctx.audited] == ["token.login", "webhook.rotate_secret"]
    assert ctx.hooks["hook-glpi-a"].version == 2
    reader = login(client, plain["reader"])
    assert client.post("/webhooks/hook-glpi-a/rotate-secret",
                       data={"csrf": reader, "secret": "x"}).status_code == 403
