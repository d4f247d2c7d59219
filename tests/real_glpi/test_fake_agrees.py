"""The fake GLPI of the fast suite (tests/fake_glpi*.py) answers as the real GLPI 10 does:
the same requests to both, the same statuses, error codes, messages, range headers and
answer shapes. A difference found here is fixed in the fake (and in hookstream when
hookstream relied on the fake's answer)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fake_glpi import RunningGlpiApi
from tests.fake_glpi_items import FakeGlpiItems
from tests.real_glpi.conftest import RealGlpi

Answer = dict[str, Any]
FAR = "2100-01-01 00:00:00"


def search(itemtype: str, *criteria: tuple[str, str, str], shown: tuple[str, ...] = (),
           **params: str) -> str:
    """search/:itemtype with criteria (field, searchtype, value) and columns shown."""
    query = [f"criteria[{n}][field]={f}&criteria[{n}][searchtype]={t}&criteria[{n}][value]={v}"
             for n, (f, t, v) in enumerate(criteria)]
    query += [f"forcedisplay[{n}]={option}" for n, option in enumerate(shown)]
    query += [f"{k}={v}" for k, v in params.items()]
    return f"search/{itemtype}?" + "&".join(query)


# (what is asked, method, path, body, whose session: "user", "observer", "none", "bogus")
REQUESTS: list[tuple[str, str, str, Any, str]] = [
    ("an item that does not exist", "GET", "Ticket/999999", None, "user"),
    ("an update of an item that does not exist", "PUT", "Ticket/999999",
     {"input": {"urgency": 2}}, "user"),
    ("a purge of an item that does not exist", "DELETE", "Ticket/999999?force_purge=true",
     None, "user"),
    ("an itemtype GLPI does not have", "GET", "NoSuchItemtype/", None, "user"),
    ("an itemtype GLPI 10 does not have", "GET", "Webhook/", None, "user"),
    ("a session token GLPI never gave", "GET", "Ticket/", None, "bogus"),
    ("no session token", "GET", "Ticket/", None, "none"),
    ("a search that finds nothing", "GET", search("Ticket", ("19", "morethan", FAR),
                                                  shown=("2",)), None, "user"),
    ("a search with a searchtype GLPI does not know", "GET",
     search("Ticket", ("19", "nosuchtype", "x"), shown=("2",), sort="19", order="ASC"),
     None, "user"),
    ("a search on a ticket's opening date (15)", "GET",
     search("Ticket", ("15", "morethan", FAR), shown=("2",)), None, "user"),
    ("a search on option 15 of a Computer, which has none", "GET",
     search("Computer", ("15", "morethan", "2020-01-01")), None, "user"),
    ("a page of a search", "GET", search("Ticket", ("19", "morethan", "2000-01-01 00:00:00"),
                                         shown=("2", "19"), sort="19",
                                         order="ASC", range="0-0"), None, "user"),
    ("an empty list", "GET", "Monitor/", None, "user"),
    ("a range past the end", "GET", "Ticket/?range=5000-5010", None, "user"),
    ("a whole list", "GET", "Entity/?range=0-999", None, "user"),
    ("a write without the right", "PUT", "Ticket/{ticket}", {"input": {"urgency": 1}},
     "observer"),
    ("a read without the right", "GET", "Profile/", None, "observer"),
]


def shape(response: httpx.Response, api_url: str) -> Answer:
    """What a client can rely on in an answer, with the server's own URL blanked."""
    body = response.json()
    out: Answer = {"status": response.status_code,
                   "content-range": "content-range" in response.headers,
                   "accept-range": response.headers.get("accept-range", "").split(" ")[0]}
    if isinstance(body, list) and body and isinstance(body[0], str):
        message = body[1] if len(body) > 1 else None
        out["error"] = [body[0], message.replace(api_url, "<api>") if isinstance(
            message, str) else message]
    elif isinstance(body, dict) and "totalcount" in body:  # a search
        out["search"] = {k: type(v).__name__ for k, v in body.items()}
        out["rows"] = [sorted(row) for row in body.get("data", [])]
        out["counts"] = (body["totalcount"] > 0, body["count"])
    elif isinstance(body, list):
        out["list"] = [type(row).__name__ for row in body][:1]
        out["root parent"] = [row.get("entities_id") for row in body
                              if isinstance(row, dict) and row.get("id") == 0]
    return out


def ask(url: str, app: str, session: str | None, request: tuple[str, str, str, Any, str],
        ticket: int) -> Answer:
    _what, method, path, body, _who = request
    headers = {"App-Token": app, **({"Session-Token": session} if session else {})}
    response = httpx.request(method, f"{url}/{path.format(ticket=ticket)}", headers=headers,
                             json=body, timeout=30)
    return shape(response, url)


def session(url: str, app: str, user_token: str) -> str:
    answer = httpx.get(f"{url}/initSession", timeout=30, headers={
        "App-Token": app, "Authorization": f"user_token {user_token}"})
    return str(answer.json()["session_token"])


def test_the_fake_answers_every_request_as_the_real_glpi_does(real_glpi: RealGlpi) -> None:
    with real_glpi.client() as client:
        ticket = client.add_item("Ticket", {"name": "agreement", "content": "x"})
        entities = list(client.list_items("Entity"))
        tickets = len(list(client.list_items("Ticket")))
    opened = {"none": None, "bogus": "no-such-session",
              "user": session(real_glpi.url, real_glpi.app_token, real_glpi.user_token),
              "observer": session(real_glpi.url, real_glpi.app_token, real_glpi.observer_token)}
    real = [ask(real_glpi.url, real_glpi.app_token, opened[r[4]], r, ticket) for r in REQUESTS]

    # the fake holds what the real one holds for these requests: as many tickets and
    # entities, no computer; its one user gets the Observer's rights for "observer"
    api = FakeGlpiItems("app", "user", seed=None)
    del api.items["Webhook"], api.items["CriteriaFilter"]  # GLPI 11's: the fake as GLPI 10
    api.add("Entity", id=0, name="Root entity", entities_id=None, completename="Root entity")
    for row in entities[1:]:
        api.add("Entity", id=int(row["id"]), name="e", entities_id=0, completename="e")
    api.items["Profile"], api.items["Monitor"] = {}, {}
    for _ in range(tickets - 1):  # other tests' tickets
        api.create("Ticket", name="other", content="x", entities_id=0)
    fake_ticket = api.create("Ticket", name="agreement", content="x", entities_id=0)
    with RunningGlpiApi(api) as url:
        user = session(url, "app", "user")
        for request, glpi in zip(REQUESTS, real, strict=True):
            observer = request[4] == "observer"
            api.read_only = {"Ticket"} if observer else set()
            api.unreadable = {"Profile"} if observer else set()
            who = user if request[4] in ("user", "observer") else opened[request[4]]
            answer = ask(url, "app", who, request, fake_ticket)
            assert answer == glpi, f"{request[0]}: the fake answers {answer}, GLPI {glpi}"
