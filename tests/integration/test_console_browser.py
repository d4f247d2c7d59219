"""The web console in a real browser (Debian's chromium driven by Playwright) over the real
pipeline: processor, delivery, log store and the admin app with its console, all on the
test broker, delivering to a loopback receiver. Each test saves a screenshot of the page it
checks under tests/screenshots/console/ (ignored by git and by pytest), for a person to
look at."""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from connectors.admin import AdminContext, create_app, new_token, parse_tokens, server_options
from connectors.logstore import open_engine
from hookstream.control.instances import apply_instances
from hookstream.records import (
    ALERT_ACTIONS,
    ALERT_RULES,
    ITEM_CHANGES,
    AlertRule,
    TicketAction,
    alert_key,
    make_event,
)
from processors.processor import Processor
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    publish,
    request_for,
    wait_until,
)
from tests.integration.logstore_harness import RunningLogStore
from tests.receiver import Receiver
from tests.reverse_proxy import ReverseProxy, self_signed

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[1] / "screenshots" / "console"
SECRET = "console-secret-Hq7p2"  # a webhook secret: shown on no page
BEARER = "bearer-token-of-the-target-0123456789abcdefghij"  # a credential: shown masked
WAIT_MS = 30_000
TRUSTED_PROXY, UNTRUSTED_PROXY = "127.0.0.2", "127.0.0.3"  # loopback addresses of proxies
GLPI_A_API = "https://glpi-a.example.org/apirest.php"
ALERT_RULES_SHOWN = [
    AlertRule("disk-full", 1, "glpi-a", "Disk full on {{ alert.labels.instance }}",
              "{{ alert.annotations.summary }}", match_sources=["alertmanager"],
              match_labels={"alertname": "DiskFull"}, entities_id=2, groups_id_assign=5),
    AlertRule("net-b", 1, "glpi-b", "Network", "down", match_sources=["zabbix"]),
]
DISK = alert_key("glpi-a", "alertmanager", "3f9a1c0d2b4e5f60")


def _ticket_action(n: int, action: str, status: str, tickets_id: int, **more: Any
                   ) -> TicketAction:
    at = int(time.time() * 1000) - 60_000 + 1000 * n
    return TicketAction(f"{n:032x}", f"event-{n}", DISK, "glpi-a", "alertmanager",
                        "3f9a1c0d2b4e5f60", "DiskFull", status, action, at, "disk-full",
                        tickets_id, **more)


# an Alertmanager alert that opened ticket 77, fired again, then resolved (solved); and one
# of glpi-b that GLPI refused
ALERT_ACTIONS_SHOWN = [
    _ticket_action(1, "opened", "firing", 77, latency_ms=420),
    _ticket_action(2, "unchanged", "firing", 77),
    _ticket_action(3, "solved", "resolved", 77),
    TicketAction("f" * 32, "event-b", alert_key("glpi-b", "zabbix", "10042"), "glpi-b",
                 "zabbix", "10042", "Link down", "firing", "refused", int(time.time() * 1000),
                 "net-b", message="ERROR_RIGHT_MISSING"),
]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (.ci/run installs it)")


@dataclasses.dataclass
class Console:
    url: str
    tokens: dict[str, str]
    receiver: Receiver
    settings: Any
    dead: list[str]  # delivery ids dead-lettered at start
    b: str  # a delivery of instance glpi-b
    browser: Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def console(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from playwright.sync_api import sync_playwright

    from tests.conftest import settings_for

    tmp = tmp_path_factory.mktemp("console")
    plain, lines = {}, []
    for name, instances, mode in (("admin", "*", "rw"), ("team-a", "glpi-a", "rw")):
        plain[name], line = new_token(name, instances, mode)
        lines.append(line)
    settings = dataclasses.replace(settings_for(kafka_bootstrap, tmp), admin_tokens=tuple(lines))
    SHOTS.mkdir(parents=True, exist_ok=True)
    with Receiver() as receiver:
        receiver.on("/ok", statuses=[200])
        receiver.on("/dead", statuses=[410])
        receiver.on("/unauthorized", statuses=[401])
        receiver.on("/flaky", statuses=[500, 200])
        receiver.on("/picture", statuses=[500, 410, 200])  # then 200 on every request
        net = {"allowed_networks": ["127.0.0.0/8"], "entities_id": 0, "is_recursive": True}
        apply_webhooks(settings, tmp,
                       {"id": "to-ok", "event": "update", "url": receiver.url("/ok"),
                        "secret": SECRET, "signature_scheme": "both",
                        "custom_headers": {"Authorization": f"Bearer {BEARER}"}, **net},
                       {"id": "to-dead", "url": receiver.url("/dead"), "sent_try": 0,
                        "save_response_body": True, **net},
                       {"id": "to-401", "url": receiver.url("/unauthorized"), "sent_try": 3,
                        "retry_policy": "default", **net},
                       {"id": "to-flaky", "url": receiver.url("/flaky"), **net},
                       {"id": "to-b", "instance": "glpi-b", "url": receiver.url("/ok"), **net},
                       {"id": "to-picture", "instance": "glpi-b", "url": receiver.url("/picture"),
                        **net})
        dead = [request_for("to-dead", receiver.url("/dead"), n) for n in (1, 2)]
        b = dataclasses.replace(request_for("to-b", receiver.url("/ok"), 3), instance="glpi-b")
        publish(settings, [*dead, b])
        publish(settings, ALERT_RULES_SHOWN, ALERT_RULES)
        publish(settings, ALERT_ACTIONS_SHOWN, ALERT_ACTIONS)
        instances = tmp / "instances.yaml"
        instances.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": GLPI_A_API}))
        apply_instances(settings, instances)
        processor = Processor(settings)
        thread = threading.Thread(target=processor.run, daemon=True)
        engine = open_engine(settings)
        ctx = AdminContext(settings, engine)
        port = _free_port()
        # served as `hookstream run admin` serves it; 127.0.0.2 is the trusted proxy
        served = dataclasses.replace(settings, admin_host="127.0.0.1", admin_port=port,
                                     log_level="WARNING", trusted_proxies=(TRUSTED_PROXY,))
        server = uvicorn.Server(uvicorn.Config(create_app(ctx, parse_tokens(lines)),
                                               **server_options(served)))
        web = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            with RunningDelivery(settings), RunningLogStore(settings), sync_playwright() as p:
                ctx.wait_ready()
                web.start()
                assert wait_until(lambda: server.started, 30)
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    yield Console(f"http://127.0.0.1:{port}", plain, receiver, settings,
                                  [r.delivery_id for r in dead], b.delivery_id, browser)
                finally:
                    browser.close()
                    server.should_exit = True
                    web.join(30)
        finally:
            processor.stopping.set()
            thread.join(30)
            ctx.close()
            engine.dispose()


def logged_in(console: Console, token: str = "admin") -> Any:
    """A new browser context (own cookies) in Tokyo time, logged in; its page."""
    context = console.browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(console.url + "/")
    assert page.url.endswith("/login")
    page.get_by_label("Admin token").fill(console.tokens[token])
    page.keyboard.press("Enter")  # keyboard only
    page.wait_for_url("**/queue")
    return page


def reload_until(page: Any, condition: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not seen on {page.url} within {timeout_s}s"
        time.sleep(0.5)
        page.reload()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_wrong_token_is_refused(console: Console) -> None:
    context = console.browser.new_context()
    page = context.new_page()
    page.goto(console.url + "/queue")
    assert page.url.endswith("/login")
    page.get_by_label("Admin token").fill("hsk_" + "x" * 43)
    page.get_by_role("button", name="Log in").click()
    assert page.locator("#login-error").inner_text() == "This token is not valid."
    shot(page, "login-refused")
    assert not [c for c in context.cookies() if c["name"] == "hookstream_session"]
    page.goto(console.url + "/webhooks")
    assert page.url.endswith("/login")
    context.close()


def test_a_delivery_arrives_in_the_queue_and_opens(console: Console) -> None:
    page = logged_in(console)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "hookstream_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert console.tokens["admin"] not in cookie["value"]
    # An item change enters the pipeline while the queue page is open: polling shows it.
    publish(console.settings, [make_event(
        "glpi-a", "Ticket", 4242, "update", {"id": 4242, "name": "printer on fire"},
        occurred_at=int(time.time() * 1000), entities_id=0)], ITEM_CHANGES)  # type: ignore[list-item]
    row = page.locator("#live tr", has_text="Ticket 4242")
    row.wait_for()
    assert "to-ok" in row.inner_text()
    shot(page, "queue-delivery-arrived")
    row.get_by_role("link", name=re.compile("^[0-9a-f]{12}$")).click()
    page.wait_for_url("**/deliveries/*")
    reload_until(page, lambda: page.locator("li.attempt").count() >= 1)
    attempt = page.locator("li.attempt").first
    assert "delivered" in attempt.inner_text() and "HTTP 200" in attempt.inner_text()
    assert "printer on fire" in page.locator("#request-h + p + table + pre, pre").first.inner_text()
    assert SECRET not in page.content()
    stamp = page.locator("time[data-local]").first  # shown in the browser's zone
    assert "UTC" in (stamp.get_attribute("title") or "")
    assert re.search(r"GMT\+9|JST", stamp.inner_text()), stamp.inner_text()
    shot(page, "delivery-detail")
    page.get_by_role("link", name="Ticket 4242").click()  # the item view
    page.wait_for_url("**/items/glpi-a/Ticket/4242")
    assert page.locator("table.log tbody tr").count() == 1
    shot(page, "item-view")
    page.context.close()


def flash(page: Any) -> tuple[str, str] | None:
    """The page's flash message: (kind, text), or None."""
    shown = page.locator("#flash")
    if shown.count() == 0:
        return None
    return shown.get_attribute("data-kind"), shown.inner_text()


def test_force_send_results_are_flashed_once_and_a_failure_looks_like_one(
        console: Console) -> None:
    page = logged_in(console)
    first = console.dead[0]
    page.goto(f"{console.url}/deliveries/{first}")
    reload_until(page, lambda: "dead_lettered" in page.locator("#state").inner_text())
    assert page.locator("li.attempt").count() == 1
    assert "HTTP 410" in page.locator("li.attempt").first.inner_text()
    page.get_by_role("button", name="Send now").click()  # the receiver still answers 410
    page.wait_for_url(f"**/deliveries/{first}")
    assert flash(page) == ("failure", "Sent now: failed (HTTP 410).")
    assert page.locator("#flash").get_attribute("role") == "alert"
    assert page.locator("#flash").evaluate("e => getComputedStyle(e).color") == "rgb(164, 22, 26)"
    shot(page, "force-send-failed")
    page.reload()
    assert flash(page) is None  # shown once
    console.receiver.on("/dead", statuses=[200])  # the receiver is fixed
    page.get_by_role("button", name="Send now").click()
    page.wait_for_url(f"**/deliveries/{first}")
    assert flash(page) == ("success", "Sent now: delivered (HTTP 200).")
    assert page.locator("#flash").evaluate("e => getComputedStyle(e).color") == "rgb(30, 107, 52)"
    shot(page, "force-send")
    page.reload()
    assert flash(page) is None  # gone on reload
    reload_until(page, lambda: page.locator("li.attempt").count() == 3)
    # a result in the URL does nothing
    page.goto(f"{console.url}/deliveries/{first}?sent=delivered&status=200")
    assert flash(page) is None and "Sent now" not in page.content()
    page.context.close()


def test_resending_a_delivered_delivery_asks_for_confirmation(console: Console) -> None:
    page = logged_in(console)
    page.goto(f"{console.url}/deliveries/{console.b}")
    reload_until(page, lambda: page.locator("#state").inner_text().startswith("delivered"))
    before = len(console.receiver.requests("/ok"))
    page.get_by_role("button", name="Send now").click()
    page.locator("#confirm-send").wait_for()
    assert "already delivered" in page.locator("#confirm-send").inner_text()
    shot(page, "confirm-send")
    time.sleep(0.5)
    assert len(console.receiver.requests("/ok")) == before  # nothing sent yet
    page.get_by_role("button", name="Yes, send it again").click()
    page.wait_for_url(f"**/deliveries/{console.b}")
    assert flash(page) == ("success", "Sent now: delivered (HTTP 200).")
    assert len(console.receiver.requests("/ok")) == before + 1
    page.context.close()


def test_redrive_from_the_dead_letter_queue(console: Console) -> None:
    page = logged_in(console)
    page.goto(console.url + "/queue?state=dead_lettered")
    # The second dead-lettered delivery (the first was force-sent by the test above, but
    # its record is still on the DLQ topic: a redrive sends both again, each once).
    page.locator("#total-dead", has_text=re.compile("^1$")).wait_for()
    row = page.locator("#live tr[data-delivery]")
    assert row.count() == 1 and row.get_attribute("data-delivery") == console.dead[1]
    before = len(console.receiver.requests("/dead"))
    page.locator("#redrive-webhook").select_option("to-dead")
    page.get_by_role("button", name="Redrive").click()
    # the count first, by the targets' last answers; nothing sent yet
    assert page.locator("#redrive-count").inner_text() == (
        "2 deliveries, 2 of them to a target answering 410.")
    shot(page, "redrive-confirm")
    assert len(console.receiver.requests("/dead")) == before
    page.get_by_role("button", name="Redrive 2").click()
    page.wait_for_url("**/queue")
    assert flash(page) == ("success", "Redriven: 2 dead-lettered deliveries sent again.")
    # The redriven deliveries succeed; the live counts follow without a reload.
    page.locator("#total-dead", has_text=re.compile("^0$")).wait_for()
    assert wait_until(lambda: len(console.receiver.requests("/dead")) >= before + 2, 30)
    shot(page, "redrive")
    page.context.close()


def test_the_audit_page_lists_the_actions_with_the_token_name(console: Console) -> None:
    page = logged_in(console, "team-a")  # another token logs in
    page.goto(console.url + "/queue")
    page.get_by_role("button", name="Redrive").click()  # every webhook of glpi-a
    assert page.locator("#redrive-count").inner_text() == "0 deliveries."  # all redriven
    page.get_by_role("link", name="Back to the queue").click()
    page.context.close()
    page = logged_in(console)
    page.goto(console.url + "/audit")
    reload_until(page, lambda: page.locator("#audit tr[data-action='dlq.redrive']").count() >= 1)
    sends = page.locator("#audit tr[data-action='delivery.send']")
    assert sends.count() >= 3 and "admin" in sends.first.inner_text()
    page.locator("#audit-action").select_option("delivery.send")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit?**action=delivery.send**")
    actions = {page.locator("#audit tbody tr").nth(i).get_attribute("data-action")
               for i in range(page.locator("#audit tbody tr").count())}
    assert actions == {"delivery.send"}
    page.locator("#audit-token").fill("team-a")
    page.locator("#audit-action").select_option("")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit?token=team-a**")
    tokens = page.locator("#audit td.token").all_inner_texts()
    assert tokens and set(tokens) == {"team-a"}
    shot(page, "audit")
    page.context.close()


def test_preview_a_webhook(console: Console) -> None:
    page = logged_in(console)
    page.get_by_role("link", name="Webhooks").click()
    row = page.locator("tr[data-webhook=to-ok]")
    assert row.locator("td.delivered").inner_text() != "0"
    assert row.locator("td.ratio").inner_text() == "100.0 %"
    shot(page, "webhooks")
    row.get_by_role("link", name="to-ok").click()
    page.wait_for_url("**/webhooks/to-ok")
    assert "<redacted>" in page.locator("#definition").inner_text()
    assert page.locator("#preview-request").inner_text() == f"POST {console.receiver.url('/ok')}"
    assert "printer on fire" in page.locator("#preview-body").inner_text()
    assert SECRET not in page.content()
    shot(page, "webhook-preview")
    page.goto(console.url + "/webhooks/to-dead")  # an update does not match a "new" webhook
    assert page.locator("#preview-nomatch").is_visible()
    page.context.close()


def test_rotate_a_secret_from_the_webhook_page(console: Console) -> None:
    new_secret = "console-rotated-secret-4Qx"
    page = logged_in(console)
    page.goto(console.url + "/webhooks/to-flaky")
    form = page.locator("#rotate-secret")
    form.get_by_label("New secret").fill(new_secret)
    form.get_by_label("Grace period").fill("2h")
    form.get_by_role("button", name="Rotate secret").click()
    page.wait_for_url("**/webhooks/to-flaky")
    assert page.locator("#flash").inner_text() == (
        "Secret rotated (v2): the previous secret also signs Standard Webhooks signatures "
        "for 2h.")
    definition = page.locator("#definition").inner_text()
    assert re.search(r"previous_secret\s+<redacted>", definition)
    assert re.search(r"previous_secret_until_ms\s+[1-9][0-9]{12}", definition)
    assert new_secret not in page.content() and SECRET not in page.content()
    shot(page, "webhook-rotated")
    page.context.close()


def test_a_token_scoped_to_instance_a_sees_nothing_of_b(console: Console) -> None:
    page = logged_in(console, "team-a")
    page.goto(console.url + "/webhooks")
    ids = page.locator("tr[data-webhook]").evaluate_all(
        "rows => rows.map(r => r.dataset.webhook)")
    assert sorted(ids) == ["to-401", "to-dead", "to-flaky", "to-ok"]
    page.goto(console.url + "/queue")
    assert "glpi-b" not in page.content() and "to-b" not in page.content()
    shot(page, "scoped-queue")
    for path in (f"/deliveries/{console.b}", "/webhooks/to-b", "/items/glpi-b/Ticket/3"):
        answer = page.goto(console.url + path)
        assert answer is not None and answer.status == 404, path
        assert page.locator("#not-found").is_visible()
    shot(page, "scoped-not-found")
    page.context.close()


def session_cookies(context: Any) -> list[dict[str, Any]]:
    return [c for c in context.cookies() if c["name"] == "hookstream_session"]


def log_in_through(console: Console, proxy: ReverseProxy) -> Any:
    """Logs in as admin through `proxy`, with the keyboard; the page, on the queue."""
    context = console.browser.new_context(ignore_https_errors=True)  # the self-signed proxy
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(proxy.url + "/queue")
    assert page.url == proxy.url + "/login"
    page.get_by_label("Admin token").fill(console.tokens["admin"])
    page.keyboard.press("Enter")
    page.wait_for_url(proxy.url + "/queue")
    return page


def test_behind_a_trusted_tls_proxy_login_works_and_the_cookie_is_secure(
    console: Console, tmp_path: Path,
) -> None:
    upstream = int(console.url.rsplit(":", 1)[1])
    with ReverseProxy(upstream, TRUSTED_PROXY, tls=self_signed(tmp_path)) as proxy:
        page = log_in_through(console, proxy)
        [cookie] = session_cookies(page.context)
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.locator("#live").is_visible()
        shot(page, "behind-tls-proxy")
        page.get_by_role("button", name="Log out").click()  # an action: the same-origin check
        page.wait_for_url(proxy.url + "/login")
        assert not session_cookies(page.context)
        page.context.close()


def test_forwarded_headers_from_an_untrusted_address_do_not_count(console: Console) -> None:
    # A plain-HTTP proxy claiming https from an address not in trusted_proxies: if the
    # claim counted, the console would see https behind an http page and refuse the login
    # as coming from another site; it logs in over plain HTTP, the cookie not Secure.
    upstream = int(console.url.rsplit(":", 1)[1])
    with ReverseProxy(upstream, UNTRUSTED_PROXY, proto="https") as proxy:
        page = log_in_through(console, proxy)
        [cookie] = session_cookies(page.context)
        assert cookie["secure"] is False
        page.context.close()


SCREENS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1366, "height": 768}}
# what sticks out of the window, apart from what is inside a table or its .table-scroll box
# (they scroll); the scrolling boxes: a table in no .table-scroll, or a .table-scroll
OVERFLOW = """() => {
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
    + (typeof e.className === 'string' && e.className ? '.' + e.className : '');
  const boxes = 'table, .table-scroll';
  const outside = [...document.body.querySelectorAll('*')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.right > innerWidth + 1 && !e.parentElement.closest(boxes);
  }).map(name);
  const tables = [...document.querySelectorAll(boxes)].filter(
    t => !t.parentElement.closest('.table-scroll'));
  return {scroll: document.documentElement.scrollWidth, width: innerWidth, outside,
          scrolling: tables.filter(t => t.scrollWidth > t.clientWidth + 1).map(name),
          stuck: tables.filter(t => t.scrollWidth > t.clientWidth + 1
            && !['auto', 'scroll'].includes(getComputedStyle(t).overflowX)).map(name)};
}"""


def test_an_alert_opens_on_its_ticket_and_history(console: Console) -> None:
    page = logged_in(console)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    page.wait_for_url("**/alerts")
    reload_until(page, lambda: page.locator("#alerts tbody tr").count() == 2)
    rule = page.locator("#alert-rules tr[data-rule=disk-full]")
    assert 'alertname="DiskFull"' in rule.inner_text()
    assert "assigned to group 5" in rule.inner_text()
    row = page.locator(f'#alerts tr[data-alert="{DISK}"]')
    assert [row.locator("td").nth(i).inner_text() for i in (4, 5)] == ["resolved", "solved"]
    ticket = row.get_by_role("link", name="#77")
    assert ticket.get_attribute("href") == (
        "https://glpi-a.example.org/front/ticket.form.php?id=77")
    refused = page.locator("#alerts tr.action-refused")
    assert "ERROR_RIGHT_MISSING" in refused.inner_text()
    shot(page, "alerts")
    page.get_by_label("Last action").select_option("refused")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"/alerts\?.*action=refused"))
    assert page.locator("#alerts tbody tr").count() == 1
    page.go_back()
    page.locator(f'#alerts tr[data-alert="{DISK}"]').get_by_role("link", name="DiskFull").click()
    page.wait_for_url("**/alerts/glpi-a*")
    assert [a.get_attribute("data-action") for a in page.locator("#history tbody tr").all()
            ] == ["opened", "unchanged", "solved"]
    assert "0.42 s" in page.locator("#history").inner_text()
    assert page.locator("#ticket a").inner_text() == "#77 in GLPI"
    shot(page, "alert-history")
    # a token of glpi-a does not see glpi-b's alert nor its rule
    scoped = logged_in(console, "team-a")
    scoped.goto(console.url + "/alerts")
    assert scoped.locator("#alerts tbody tr").count() == 1
    assert scoped.locator("#alert-rules tr[data-rule=net-b]").count() == 0
    page.context.close()
    scoped.context.close()


@pytest.fixture(scope="module")
def screen_shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("console-screens")
    print(f"screenshots at each width: {folder}")
    return folder


@pytest.mark.parametrize("screen", SCREENS)
def test_every_main_page_fits_the_screen(console: Console, screen: str,
                                         screen_shots: Path) -> None:
    context = console.browser.new_context(viewport=SCREENS[screen])
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    pages = {"login": "/login", "queue": "/queue", "delivery": f"/deliveries/{console.dead[0]}",
             "webhooks": "/webhooks", "webhook": "/webhooks/to-ok", "alerts": "/alerts",
             "alert": f"/alerts/{DISK}"}
    scrolling: dict[str, list[str]] = {}
    for name, path in pages.items():
        if name == "queue":
            page.get_by_label("Admin token").fill(console.tokens["admin"])
            page.keyboard.press("Enter")
            page.wait_for_url("**/queue")
            page.locator("#live table").first.wait_for()
        else:
            page.goto(console.url + path)
        found = page.evaluate(OVERFLOW)
        assert found["scroll"] <= found["width"] and not found["outside"], (name, found)
        assert not found["stuck"], (name, found)  # a wide table scrolls inside itself
        scrolling[name] = found["scrolling"]
        page.screenshot(path=str(screen_shots / f"{screen}-{name}.png"), full_page=True)
    if screen == "phone":  # the check above had something to check: the queue's log is wide
        assert scrolling["queue"], scrolling
    context.close()


def test_the_timeline_shows_the_request_sent_and_each_decision(console: Console) -> None:
    """After the tests above: Ticket 4242 was delivered at once; the second dead delivery
    answered 410 (not retried), then was redriven and delivered."""
    import hashlib

    r401 = request_for("to-401", console.receiver.url("/unauthorized"), 11)
    flaky = request_for("to-flaky", console.receiver.url("/flaky"), 12)
    publish(console.settings, [r401, flaky])
    page = logged_in(console)
    page.goto(console.url + "/queue")
    page.locator("#live tr", has_text="Ticket 4242").get_by_role(
        "link", name=re.compile("^[0-9a-f]{12}$")).click()
    page.wait_for_url("**/deliveries/*")
    first = page.locator("li.attempt").first
    assert "Attempt 1" in first.inner_text() and "first send" in first.inner_text()
    assert first.locator(".decision").inner_text() == "HTTP 200: delivered."
    first.locator("details.sent summary").click()
    sent = first.locator("table.request-headers").inner_text()
    # the request this attempt sent, among those /ok got (an earlier test resent it too)
    got = next(r for r in console.receiver.requests("/ok")
               if r.headers["x-glpi-signature"] in sent)
    # the signature headers, exactly as the receiver got them; the bearer token masked
    for name in ("x-glpi-signature", "x-glpi-timestamp", "webhook-signature"):
        assert got.headers[name] in sent, name
    assert f"Bearer ••••({len(BEARER)} chars)" in sent
    assert BEARER not in page.content() and SECRET not in page.content()
    # the body: the exact bytes, downloaded, are those the receiver got
    assert page.locator("#body-sha256").inner_text() == hashlib.sha256(got.body).hexdigest()
    page.locator("#body-raw-view summary").click()  # the raw toggle: the bytes as sent
    assert page.locator("#body-raw").inner_text() == got.body.decode()
    with page.expect_download() as download:
        page.locator("#body-download").click()
    data = Path(download.value.path()).read_bytes()
    assert hashlib.sha256(data).digest() == hashlib.sha256(got.body).digest()
    shot(page, "timeline-delivered")

    page.goto(f"{console.url}/deliveries/{console.dead[1]}")
    reload_until(page, lambda: page.locator("li.attempt").count() >= 2)
    entries = page.locator("li.attempt")
    assert "Attempt 1" in entries.nth(0).inner_text()
    assert "HTTP 410: not retried under this webhook's retry policy" in (
        entries.nth(0).locator(".decision").inner_text())
    assert "Attempt 2" in entries.nth(1).inner_text()
    assert "redrive" in entries.nth(1).locator(".trigger").inner_text()
    assert "delivered" in entries.nth(1).locator(".decision").inner_text()
    shot(page, "timeline-redriven")
    page.goto(f"{console.url}/deliveries/{console.dead[0]}")  # force-sent above, by "admin"
    manual = page.locator("li.attempt").nth(1)
    assert "manual send by admin" in manual.locator(".trigger").inner_text()
    manual.locator("details.response-body summary").click()  # save_response_body is on
    assert manual.locator("details.response-body pre").inner_text() == '{"ok": true}'

    # 401 under the default policy, sent_try 3: one attempt, and why it was not retried
    page.goto(f"{console.url}/deliveries/{r401.delivery_id}")
    reload_until(page, lambda: "dead_lettered" in page.locator("#state").inner_text())
    assert page.locator("li.attempt").count() == 1
    assert page.locator("#last-error").inner_text() == "Last error: HTTP 401"
    assert page.locator("li.attempt .decision").inner_text() == (
        "HTTP 401: not retried under this webhook's retry policy (default: only no answer, "
        "408, 425, 429 and 5xx are retried); dead-lettered.")
    assert page.locator("li.attempt .retry-policy").inner_text() == (
        "under the default retry policy")
    shot(page, "timeline-401")

    # 500 then 200: a retry on the first tier, numbered 2, as the queue's column says
    page.goto(f"{console.url}/deliveries/{flaky.delivery_id}")
    reload_until(page, lambda: "delivered" in page.locator("#state").inner_text())
    entries = page.locator("li.attempt")
    assert entries.count() == 2
    assert entries.nth(0).locator(".decision").inner_text() == (
        "HTTP 500: retried on the 1 s tier (attempt 1 of 4).")
    assert "Attempt 2" in entries.nth(1).inner_text()
    assert entries.nth(1).locator(".trigger").inner_text() == "retry (1s tier)"
    assert "(2 attempts sent)" in page.locator("#attempts-h").inner_text()
    page.goto(f"{console.url}/deliveries?webhook=to-flaky")
    assert page.locator(f"tr[data-delivery='{flaky.delivery_id}'] td").nth(7).inner_text() == "2"
    shot(page, "timeline-retried")
    page.context.close()


def test_each_webhook_shows_its_last_delivery_circuit_and_last_24_hours(
        console: Console) -> None:
    """to-picture: two deliveries answered 500 (retried, then 200) and 410 (dead-lettered),
    then a third, the last created, answered 200."""
    url = console.receiver.url("/picture")
    now = int(time.time() * 1000)
    first, second, last = (dataclasses.replace(request_for("to-picture", url, 30 + n),
                                               instance="glpi-b", created_at=now + n)
                           for n in range(3))
    publish(console.settings, [first, second])
    assert wait_until(lambda: len(console.receiver.requests("/picture")) >= 3, 30)
    publish(console.settings, [last])
    assert wait_until(lambda: len(console.receiver.requests("/picture")) >= 4, 30)
    label = "Last 24 hours: 2 delivered, 1 retried, 1 dead-lettered"
    page = logged_in(console)
    page.goto(console.url + "/webhooks")
    row = page.locator("tr[data-webhook=to-picture]")
    reload_until(page, lambda: row.locator("svg.chart").get_attribute("aria-label") == label)
    assert row.locator("svg.chart > title").text_content() == label
    assert row.locator("svg.chart rect.dead_lettered").count() == 1
    cell = row.locator("td.last")
    assert "delivered" in cell.locator(".state").inner_text()
    assert cell.locator(".status").inner_text() == "HTTP 200"
    assert cell.get_by_role("link").get_attribute("href") == f"/deliveries/{last.delivery_id}"
    assert row.locator(".circuit-state").inner_text() == "closed"
    # every webhook has its chart; one that sent nothing says zeros
    assert page.locator("#webhooks tbody tr").count() == page.locator("#webhooks svg.chart").count()
    shot(page, "webhooks-picture")
    row.get_by_role("link", name="to-picture").click()
    page.wait_for_url("**/webhooks/to-picture")
    assert page.locator("#activity-chart svg").get_attribute("aria-label") == label
    assert "HTTP 200" in page.locator("#last-delivery").inner_text()
    circuit = page.locator("#circuit").inner_text()
    assert circuit.startswith("closed, as last seen by delivery at"), circuit
    assert "derived from the log store" in page.locator("#circuit-how").inner_text()
    shot(page, "webhook-picture")
    page.context.close()


def test_replay_into_a_webhook_added_after_the_fact(console: Console, tmp_path: Path) -> None:
    """Last in this module: it adds a webhook. Events that reached Kafka before the webhook
    existed, replayed into it from its page: the count first, then the progress and the
    final count."""
    console.receiver.on("/late", statuses=[200])
    now_ms = int(time.time() * 1000)
    publish(console.settings, [make_event(
        "glpi-a", "Ticket", 7000 + n, "update", {"id": 7000 + n, "name": f"before the hook {n}"},
        occurred_at=now_ms, entities_id=0) for n in range(3)], ITEM_CHANGES)  # type: ignore[list-item]
    apply_webhooks(console.settings, tmp_path, {
        "id": "to-late", "event": "update", "url": console.receiver.url("/late"),
        "allowed_networks": ["127.0.0.0/8"], "entities_id": 0, "is_recursive": True,
        "filter": [{"field": 1, "searchtype": "contains", "value": "before the hook"}]})
    page = logged_in(console)
    page.goto(console.url + "/webhooks/to-late")
    reload_until(page, lambda: page.locator("#replay-start").count() == 1)
    page.get_by_label("Events of the last").fill("1")
    page.get_by_label("At most").fill("0")
    page.locator("#replay-start").click()
    page.wait_for_url("**/webhooks/to-late/replay")
    assert re.fullmatch(r"Events since .+: \d+ read, 3 matching the webhook as it is defined "
                        r"now, 3 to replay\.", page.locator("#replay-count").inner_text())
    shot(page, "replay-confirm")
    page.locator("#confirm").click()
    page.wait_for_url("**/webhooks/to-late/replays/*")
    page.locator("#replay-state", has_text="finished").wait_for()  # polled, no reload
    assert re.fullmatch(r"(\d+) of \1 events of the range read: 3 matched, 3 replayed, "
                        r"0 already replayed before, 0 skipped\.",
                        page.locator("#replay-count").inner_text())
    shot(page, "replay-finished")
    got = console.receiver.wait_for(3, path="/late", timeout_s=60)
    assert sorted(r.body.count(b"before the hook") for r in got) == [1, 1, 1]
