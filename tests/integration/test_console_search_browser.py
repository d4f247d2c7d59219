"""Finding deliveries in the console in a real browser (Debian's chromium driven by
Playwright): the search box, the filters kept in the URL across "Older" pages, and a shared
link. The admin app with its console is served by uvicorn over a SQLite log store of 260
deliveries, with webhooks from memory (what is tested is the finding, not the pipeline:
tests/integration/test_console_browser.py runs that). Screenshots go to
tests/screenshots/console/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, insert

from connectors.admin import create_app, new_token, parse_tokens
from connectors.logstore import migrate
from connectors.logstore.schema import deliveries
from tests.integration.harness import wait_until
from tests.integration.test_console_browser import ARGS, CHROMIUM, SHOTS, WAIT_MS, _free_port
from tests.unit.test_console_search import SearchContext

T0 = 1_790_000_000_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (.ci/run installs it)")


@dataclass
class Site:
    url: str
    token: str
    rows: list[dict[str, Any]]
    browser: Any


def row(n: int) -> dict[str, Any]:
    dead = n % 3 == 0
    return {"delivery_id": f"{n * 7919:08x}{n:024x}", "instance": "glpi-a",
            "webhook_id": "to-crm" if n % 2 else "to-helpdesk", "itemtype": "Ticket",
            "items_id": n % 5, "event": "update", "created_at": T0 + n * 1000, "attempts": 1,
            "state": "dead_lettered" if dead else "delivered",
            "last_status": 401 if dead else 200}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from playwright.sync_api import sync_playwright

    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('find') / 'log.db'}")
    migrate(engine)
    rows = [row(n) for n in range(260)]
    with engine.begin() as conn:
        conn.execute(insert(deliveries), rows)
    token, line = new_token("finder", "*", "ro")
    port = _free_port()
    app = create_app(SearchContext(engine), parse_tokens([line]))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    web = threading.Thread(target=server.run, daemon=True)
    web.start()
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        assert wait_until(lambda: server.started, 30)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                yield Site(f"http://127.0.0.1:{port}", token, rows, browser)
            finally:
                browser.close()
    finally:
        server.should_exit = True
        web.join(30)
        engine.dispose()


def logged_in(site: Site) -> Any:
    context = site.browser.new_context(locale="en-GB")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(site.url + "/")
    page.get_by_label("Admin token").fill(site.token)
    page.keyboard.press("Enter")
    page.wait_for_url("**/queue")
    return page


def search(page: Any, text: str) -> None:
    box = page.get_by_role("searchbox", name="Search")
    box.fill(text)
    box.press("Enter")
    page.wait_for_load_state()


def shown(page: Any) -> list[str]:
    return [str(d) for d in page.locator("tr[data-delivery]").evaluate_all(
        "rows => rows.map(r => r.dataset.delivery)")]


def test_search_by_delivery_id_prefix_item_and_webhook_name(site: Site) -> None:
    page = logged_in(site)
    wanted = site.rows[123]["delivery_id"]
    search(page, wanted[:8].upper())
    page.wait_for_url(f"**/deliveries/{wanted}")
    assert wanted in page.content()
    page.screenshot(path=str(SHOTS / "search-delivery.png"), full_page=True)
    search(page, "glpi-a:Ticket:3")
    page.wait_for_url("**/items/glpi-a/Ticket/3")
    assert set(shown(page)) <= {r["delivery_id"] for r in site.rows if r["items_id"] == 3}
    assert len(shown(page)) == 50
    search(page, "crm")
    page.wait_for_url("**/webhooks/to-crm")
    assert page.get_by_role("heading", level=1).inner_text() == "Webhook to-crm"
    search(page, "to-")  # several webhooks: a list of them
    assert page.locator("#search-webhooks li").count() == 4
    page.screenshot(path=str(SHOTS / "search-several.png"), full_page=True)
    page.context.close()


def test_filters_are_kept_in_the_url_across_older_pages_and_a_shared_link(site: Site) -> None:
    page = logged_in(site)
    page.goto(site.url + "/deliveries")
    form = page.locator("#filters")
    form.get_by_label("State").select_option("dead_lettered")
    form.get_by_label("Webhook").select_option("to-helpdesk")
    form.get_by_label("Status").fill("401")
    form.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/deliveries?*state=dead_lettered*")
    want = [r["delivery_id"] for r in sorted(site.rows, key=lambda r: -r["created_at"])
            if r["state"] == "dead_lettered" and r["webhook_id"] == "to-helpdesk"]
    assert len(want) == 44
    assert shown(page) == want[:44]  # fits one page of 50: no "Older"
    assert page.locator("#page-older").count() == 0

    page.goto(site.url + "/deliveries?state=delivered")
    seen = shown(page)
    page.locator("#page-older").click()
    page.wait_for_url("**cursor=*")
    assert "state=delivered" in page.url
    assert form.get_by_label("State").input_value() == "delivered"  # the form keeps it
    second = shown(page)
    assert second and not set(second) & set(seen)
    page.reload()
    assert shown(page) == second
    before = page.url
    page.locator("#page-older").click()
    page.wait_for_url(lambda url: url != before)
    seen += second + shown(page)
    delivered = [r["delivery_id"] for r in sorted(site.rows, key=lambda r: -r["created_at"])
                 if r["state"] == "delivered"]
    assert seen == delivered[:len(seen)] and len(seen) > 100
    shared = page.url
    page.screenshot(path=str(SHOTS / "filters-older-page.png"), full_page=True)

    other = logged_in(site)  # another person opens the link
    other.goto(shared)
    assert shown(other) == shown(page)
    assert other.locator("#filters").get_by_label("State").input_value() == "delivered"
    other.locator("#page-newer").click()
    other.wait_for_url("**newer=1*")
    assert shown(other) == second
    other.context.close()
    page.context.close()
