"""Webhook filters: a table of GLPI criteria over the item fixtures, then compile errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from hookstream.errors import InvalidCriteria
from hookstream.matching import (
    MATCH_ALL,
    CriteriaResult,
    EntityTable,
    build_tree,
    compile_criteria,
    criteria_problems,
    evaluate,
)
from tests.conftest import fixture_item

# Root entity(0) > Europe(1) > France(3) (the ITIL fixtures) and
# Europe > Deutschland(2) > München(7) (the Computer fixture).
ENTITIES = EntityTable()
for _entity in build_tree("glpi", [(0, -1, "Root entity"), (1, 0, "Europe"),
                                   (2, 1, "Deutschland"), (3, 1, "France"), (7, 2, "München")]):
    ENTITIES.put(_entity)
# Category Imprimantes(12) sits under Matériel(10); support group 5 under DSI(2).
OTHER_TREES = {("category", 12): (10,), ("group", 5): (2,)}
NOW = datetime(2025, 11, 4, 12, 0, tzinfo=UTC)


def ancestors_of(kind: str, node: int) -> tuple[int, ...]:
    if kind == "entity":
        return ENTITIES.ancestors("glpi", node)
    return OTHER_TREES.get((kind, node), ())


def item(name: str, **changes: Any) -> dict[str, Any]:
    data = fixture_item(name)
    data.update(changes)
    return data


TICKET = item("Ticket.json")
TICKET_CLOSED = item("Ticket.json", status={"id": 6, "name": "Closed"})
TICKET_BARE = item("Ticket.json", category=None, location=None, team=[])
TICKET_LATEST = fixture_item("latest/Ticket.json")
CHANGE = item("Change.json")
CHANGE_CANCELLED = item("Change.json", status={"id": 14, "name": "Cancelled"})
PROBLEM = item("Problem.json")
PROBLEM_OBSERVED = item("Problem.json", status={"id": 8, "name": "Under observation"})
COMPUTER = item("Computer.json")


def c(field: int | str, searchtype: str, value: Any = None, link: str = "AND") -> dict[str, Any]:
    row: dict[str, Any] = {"link": link, "field": field, "searchtype": searchtype}
    if value is not None:
        row["value"] = value
    return row


YES = c(12, "equals", "notold")  # true for TICKET
NO = c(12, "equals", "old")  # false for TICKET

CASES: list[tuple[str, str, dict[str, Any], list[dict[str, Any]], bool]] = [
    # ---- status keywords, per itemtype
    ("ticket notold", "Ticket", TICKET, [c(12, "equals", "notold")], True),
    ("ticket old", "Ticket", TICKET, [c(12, "equals", "old")], False),
    ("ticket notclosed", "Ticket", TICKET, [c(12, "equals", "notclosed")], True),
    ("ticket process", "Ticket", TICKET, [c(12, "equals", "process")], True),
    ("ticket status id", "Ticket", TICKET, [c("12", "equals", "2")], True),
    ("ticket notequals all", "Ticket", TICKET, [c(12, "notequals", "all")], False),
    ("ticket notequals old", "Ticket", TICKET, [c(12, "notequals", "old")], True),
    ("closed ticket notold", "Ticket", TICKET_CLOSED, [c(12, "equals", "notold")], False),
    ("closed ticket old", "Ticket", TICKET_CLOSED, [c(12, "equals", "old")], True),
    ("closed ticket notclosed", "Ticket", TICKET_CLOSED, [c(12, "equals", "notclosed")], False),
    ("change evaluation notold", "Change", CHANGE, [c(12, "equals", "notold")], True),
    ("change evaluation process", "Change", CHANGE, [c(12, "equals", "process")], False),
    ("change cancelled old", "Change", CHANGE_CANCELLED, [c(12, "equals", "old")], True),
    ("change cancelled notclosed", "Change", CHANGE_CANCELLED,
     [c(12, "equals", "notclosed")], False),
    ("problem accepted process", "Problem", PROBLEM, [c(12, "equals", "process")], True),
    ("problem observed old", "Problem", PROBLEM_OBSERVED, [c(12, "equals", "old")], True),
    ("problem observed notold", "Problem", PROBLEM_OBSERVED, [c(12, "equals", "notold")], False),
    # ---- priority, urgency, impact: 0 all, -n at least n, n exactly n
    ("priority at least 4", "Ticket", TICKET, [c(3, "equals", -4)], True),
    ("priority at least 5", "Ticket", TICKET, [c(3, "equals", "-5")], False),
    ("priority exactly 4", "Ticket", TICKET, [c(3, "equals", 4)], True),
    ("priority exactly 3", "Ticket", TICKET, [c(3, "equals", 3)], False),
    ("priority all", "Ticket", TICKET, [c(3, "equals", 0)], True),
    ("priority not 4", "Ticket", TICKET, [c(3, "notequals", 4)], False),
    ("urgency 4", "Ticket", TICKET, [c(10, "equals", 4)], True),
    ("impact at least 3", "Change", CHANGE, [c(11, "equals", -3)], True),
    ("ticket type incident", "Ticket", TICKET, [c(14, "equals", 1)], True),
    # ---- numbers: contains is "is"
    ("id is", "Ticket", TICKET, [c(2, "contains", 4211)], True),
    ("id is not", "Ticket", TICKET, [c(2, "notcontains", "4211")], False),
    ("id > 4000", "Ticket", TICKET, [c(2, "contains", ">4000")], True),
    ("id <= 4210", "Ticket", TICKET, [c(2, "contains", "<= 4210")], False),
    # ---- text: case- and accent-insensitive substring with ^ and $ anchors
    ("title contains", "Ticket", TICKET, [c(1, "contains", "BOURRAGE")], True),
    ("title accent folded", "Ticket", TICKET, [c(1, "contains", "etage")], True),
    ("title ^ anchor", "Ticket", TICKET, [c(1, "contains", "^imprimante")], True),
    ("title ^ anchor misses", "Ticket", TICKET, [c(1, "contains", "^bourrage")], False),
    ("title $ anchor", "Ticket", TICKET, [c(1, "contains", "répétition$")], True),
    ("title notcontains", "Ticket", TICKET, [c(1, "notcontains", "wifi")], True),
    ("description contains", "Problem", PROBLEM, [c(21, "contains", "v8.10")], True),
    # ---- dropdowns and trees
    ("category equals", "Ticket", TICKET, [c(7, "equals", 12)], True),
    ("category notequals", "Ticket", TICKET, [c(7, "notequals", 12)], False),
    ("category contains", "Ticket", TICKET, [c(7, "contains", "imprim")], True),
    ("category under parent", "Ticket", TICKET, [c(7, "under", 10)], True),
    ("category under itself", "Ticket", TICKET, [c(7, "under", 12)], True),
    ("category notunder other", "Ticket", TICKET, [c(7, "notunder", 11)], True),
    ("null category equals", "Ticket", TICKET_BARE, [c(7, "equals", 12)], False),
    ("null category notequals", "Ticket", TICKET_BARE, [c(7, "notequals", 12)], True),
    ("null category contains", "Ticket", TICKET_BARE, [c(7, "contains", "x")], False),
    ("null category notcontains", "Ticket", TICKET_BARE, [c(7, "notcontains", "x")], True),
    ("null category contains NULL", "Ticket", TICKET_BARE, [c(7, "contains", "NULL")], True),
    ("null category empty", "Ticket", TICKET_BARE, [c(7, "empty")], True),
    ("null category under", "Ticket", TICKET_BARE, [c(7, "under", 12)], False),
    ("category not empty", "Ticket", TICKET, [c(7, "empty")], False),
    ("location equals", "Ticket", TICKET, [c(83, "equals", 8)], True),
    ("change null location notequals", "Change", CHANGE, [c(83, "notequals", 3)], True),
    ("request source contains", "Ticket", TICKET, [c(9, "contains", "mail")], True),
    ("entity equals", "Ticket", TICKET, [c(80, "equals", 3)], True),
    ("entity under Europe", "Ticket", TICKET, [c(80, "under", 1)], True),
    ("entity under root", "Ticket", TICKET, [c(80, "under", 0)], True),
    ("entity under Deutschland", "Ticket", TICKET, [c(80, "under", 2)], False),
    ("entity notunder Deutschland", "Ticket", TICKET, [c(80, "notunder", 2)], True),
    ("entity notunder Europe", "Problem", PROBLEM, [c(80, "notunder", 1)], False),
    ("entity contains completename", "Ticket", TICKET, [c(80, "contains", "Europe > France")],
     True),
    ("entity under unsynced", "Ticket", item("Ticket.json", entity={"id": 99, "name": "x"}),
     [c(80, "under", 1)], False),
    # ---- actors from item.team (ids from href on 2.0 items, from id/type later)
    ("requester user id", "Ticket", TICKET, [c(4, "equals", 57)], True),
    ("requester login", "Ticket", TICKET, [c(4, "contains", "lefevre")], True),
    ("technician not requester", "Ticket", TICKET, [c(5, "equals", 57)], False),
    ("technician id", "Ticket", TICKET, [c(5, "equals", 23)], True),
    ("technician id, latest", "Ticket", TICKET_LATEST, [c(5, "equals", 23)], True),
    ("technician group", "Ticket", TICKET, [c(8, "equals", 5)], True),
    ("technician group under", "Ticket", TICKET, [c(8, "under", 2)], True),
    ("technician group ^", "Ticket", TICKET, [c(8, "contains", "^support")], True),
    ("no requester group", "Ticket", TICKET, [c(71, "empty")], True),
    ("no team: technician empty", "Ticket", TICKET_BARE, [c(5, "empty")], True),
    ("no team: technician notequals", "Ticket", TICKET_BARE, [c(5, "notequals", 23)], True),
    ("change technician login", "Change", CHANGE, [c(5, "contains", "girard")], True),
    ("problem observer group", "Problem", PROBLEM, [c(65, "equals", 5)], True),
    ("problem observer group not", "Problem", PROBLEM, [c(65, "notequals", 5)], False),
    ("problem no requester", "Problem", PROBLEM, [c(4, "empty")], True),
    # ---- dates: prefix equals on GLPI's stored wall clock, instants for aware values
    ("date equals day", "Ticket", TICKET, [c(15, "equals", "2025-11-04")], True),
    ("date equals minute", "Ticket", TICKET, [c(15, "equals", "2025-11-04 09:15:00")], True),
    ("date equals d/m/Y", "Ticket", TICKET, [c(15, "equals", "04/11/2025")], True),
    ("date notequals day", "Ticket", TICKET, [c(15, "notequals", "2025-11-04")], False),
    ("date lessthan wall clock", "Ticket", TICKET, [c(15, "lessthan", "2025-11-04 09:20")], True),
    ("date morethan instant", "Ticket", TICKET,
     [c(15, "morethan", "2025-11-04T08:15:00Z")], True),
    ("date lessthan instant", "Ticket", TICKET,
     [c(15, "lessthan", "2025-11-04T08:15:00Z")], False),
    ("date mod morethan -1DAY", "Change", CHANGE, [c(19, "morethan", "-1DAY")], True),
    ("date morethan -1MONTH", "Change", CHANGE, [c(15, "morethan", "-1MONTH")], True),
    ("date morethan -1WEEK", "Change", CHANGE, [c(15, "morethan", "-1WEEK")], False),
    ("date lessthan NOW", "Ticket", TICKET, [c(15, "lessthan", "NOW")], True),
    ("date contains", "Problem", PROBLEM, [c(15, "contains", "2025-10")], True),
    ("closing date absent: empty", "Ticket", TICKET, [c(16, "empty")], True),
    ("closing date absent: lessthan", "Ticket", TICKET, [c(16, "lessthan", "NOW")], False),
    # ---- Computer (asset search options)
    ("computer status", "Computer", COMPUTER, [c(31, "equals", 2)], True),
    ("computer status name", "Computer", COMPUTER, [c(31, "contains", "in use")], True),
    ("computer type", "Computer", COMPUTER, [c(4, "equals", 1)], True),
    ("computer manufacturer", "Computer", COMPUTER, [c(23, "contains", "^hp")], True),
    ("computer model", "Computer", COMPUTER, [c(40, "notequals", 44)], False),
    ("computer serial", "Computer", COMPUTER, [c(5, "contains", "5cg3")], True),
    ("computer inventory number", "Computer", COMPUTER, [c(6, "contains", "^INV-MUC")], True),
    ("computer comment", "Computer", COMPUTER, [c(16, "contains", "jurgen")], True),
    ("computer user", "Computer", COMPUTER, [c(70, "equals", 88)], True),
    ("computer group list", "Computer", COMPUTER, [c(71, "equals", 9)], True),
    ("computer group in charge", "Computer", COMPUTER, [c(49, "under", 2)], True),
    ("computer location", "Computer", COMPUTER, [c(3, "equals", 31)], True),
    ("computer entity under", "Computer", COMPUTER, [c(80, "under", 2)], True),
    ("computer entity not France", "Computer", COMPUTER, [c(80, "under", 3)], False),
    ("computer network empty", "Computer", COMPUTER, [c(32, "empty")], True),
    ("computer last update", "Computer", COMPUTER, [c(19, "morethan", "2025-11-01")], True),
    # ---- paths into the item
    ("path status.id", "Ticket", TICKET, [c("status.id", "equals", 2)], True),
    ("path status.name", "Change", CHANGE, [c("status.name", "equals", "evaluation")], True),
    ("path category.name", "Ticket", TICKET, [c("category.name", "contains", "imprim")], True),
    ("path entity.id under", "Computer", COMPUTER, [c("entity.id", "under", 1)], True),
    ("path location.id notunder", "Ticket", TICKET, [c("location.id", "notunder", 8)], False),
    ("path name equals", "Computer", COMPUTER, [c("name", "equals", "pc-muc-0042")], True),
    ("path number morethan", "Change", CHANGE, [c("actiontime", "morethan", 3600)], True),
    ("path number contains is", "Ticket", TICKET, [c("urgency", "contains", 4)], True),
    ("path bool", "Ticket", TICKET, [c("is_deleted", "equals", "false")], True),
    ("path through list", "Ticket", TICKET, [c("team.role", "equals", "observer")], False),
    ("path list index", "Ticket", TICKET, [c("team.0.name", "equals", "h.lefevre")], True),
    ("path group list", "Computer", COMPUTER, [c("group_tech.name", "contains", "niveau")],
     True),
    ("path missing empty", "Ticket", TICKET, [c("no.such.key", "empty")], True),
    ("path missing notequals", "Ticket", TICKET, [c("no_such", "notequals", "x")], True),
    ("path date lessthan", "Ticket", TICKET, [c("date_mod", "lessthan", "2025-12-01")], True),
    ("path dropdown object", "Ticket", TICKET, [c("category", "equals", 12)], True),
    ("path on other itemtype", "TicketTask", fixture_item("TicketTask.json"),
     [c("state", "equals", 2)], True),
    # ---- links, precedence, nesting
    ("AND both", "Ticket", TICKET, [YES, YES], True),
    ("AND one false", "Ticket", TICKET, [YES, NO], False),
    ("OR one true", "Ticket", TICKET, [NO, c(12, "equals", "process", "OR")], True),
    ("OR both false", "Ticket", TICKET, [NO, c(7, "equals", 99, "OR")], False),
    ("AND NOT", "Ticket", TICKET, [YES, c(12, "equals", "old", "AND NOT")], True),
    ("AND NOT fails", "Ticket", TICKET, [YES, c(12, "equals", "notold", "AND NOT")], False),
    ("OR NOT", "Ticket", TICKET, [NO, c(12, "equals", "old", "OR NOT")], True),
    ("leading AND NOT negates", "Ticket", TICKET, [c(12, "equals", "notold", "AND NOT")], False),
    ("leading OR is ignored", "Ticket", TICKET, [c(12, "equals", "old", "OR"), YES], False),
    ("AND binds tighter: T OR F AND F", "Ticket", TICKET,
     [YES, c(12, "equals", "old", "OR"), NO], True),
    ("AND binds tighter: F AND F OR T", "Ticket", TICKET,
     [NO, NO, c(12, "equals", "notold", "OR")], True),
    ("AND binds tighter: F OR T AND F", "Ticket", TICKET,
     [NO, c(12, "equals", "notold", "OR"), NO], False),
    ("missing link is AND", "Ticket", TICKET,
     [YES, {"field": 12, "searchtype": "equals", "value": "old"}], False),
    ("nested OR group", "Ticket", TICKET,
     [YES, {"link": "AND", "criteria": [NO, c(4, "equals", 57, "OR")]}], True),
    ("nested group false", "Ticket", TICKET,
     [YES, {"link": "AND", "criteria": [NO, c(4, "equals", 1, "OR")]}], False),
    ("AND NOT group", "Ticket", TICKET,
     [YES, {"link": "AND NOT", "criteria": [NO, c(4, "equals", 57, "OR")]}], False),
    ("OR NOT group", "Ticket", TICKET,
     [NO, {"link": "OR NOT", "criteria": [NO]}], True),
    ("two levels deep", "Ticket", TICKET,
     [{"criteria": [YES, {"link": "AND", "criteria": [NO, YES | {"link": "OR"}]}]}], True),
    ("blank value is skipped", "Ticket", TICKET, [c(12, "equals", "")], True),
    ("skipped first: next link ignored", "Ticket", TICKET,
     [c(7, "equals", ""), c(12, "equals", "old", "OR")], False),
    ("empty group is skipped", "Ticket", TICKET, [{"criteria": []}, NO | {"link": "OR"}],
     False),
]


@pytest.mark.parametrize(("itemtype", "obj", "criteria", "expected"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_criteria_table(itemtype: str, obj: dict[str, Any], criteria: list[dict[str, Any]],
                        expected: bool) -> None:
    result = evaluate(compile_criteria(itemtype, criteria), obj, ancestors_of, now=NOW)
    assert result.matched is expected, result.failed
    assert (result.failed is None) is expected


def test_under_without_a_fed_tree_matches_the_node_itself_only() -> None:
    def nothing(kind: str, node: int) -> tuple[int, ...]:
        return ()

    under_parent = compile_criteria("Ticket", [c(7, "under", 10)])
    under_self = compile_criteria("Ticket", [c(7, "under", 12)])
    assert not evaluate(under_parent, TICKET, nothing).matched
    assert evaluate(under_self, TICKET, nothing).matched


@pytest.mark.parametrize("raw", [None, "", "  ", "null", "[]", [], {"criteria": []}])
def test_empty_filters_match_everything(raw: Any) -> None:
    criteria = compile_criteria("Ticket", raw)
    assert criteria.root is None
    assert evaluate(criteria, TICKET, ancestors_of) == CriteriaResult(True, None)
    assert evaluate(MATCH_ALL, {}, ancestors_of).matched


def test_json_text_and_saved_search_shapes() -> None:
    text = '[{"link":"AND","field":"12","searchtype":"equals","value":"notold"}]'
    assert evaluate(compile_criteria("Ticket", text), TICKET, ancestors_of).matched
    saved = {"criteria": [c(12, "equals", "old")], "sort": 19}
    assert not evaluate(compile_criteria("Ticket", saved), TICKET, ancestors_of).matched


@pytest.mark.parametrize(
    ("obj", "criteria", "failed"),
    [
        (TICKET_CLOSED, [c(12, "equals", "notold")],
         "status (12) equals notold: item status is 6 (Closed)"),
        (TICKET, [YES, c(12, "equals", "notold", "AND NOT")],
         "NOT status (12) equals notold: item status is 2 (Processing (assigned))"),
        (TICKET, [YES, {"criteria": [YES, c(7, "equals", 3)]}],
         "category (7) equals 3: item category is 12 (Imprimantes)"),
        (TICKET_BARE, [c(5, "equals", 23)], "technician (5) equals 23: item technician is empty"),
        (TICKET, [YES, {"link": "AND NOT", "criteria": [YES]}], "NOT (criteria[1]) matched"),
        (TICKET, [c("priority", "lessthan", 2)], "priority lessthan 2: item priority is 4"),
    ],
)
def test_failure_explains_the_first_failed_condition(
    obj: dict[str, Any], criteria: list[dict[str, Any]], failed: str
) -> None:
    assert evaluate(compile_criteria("Ticket", criteria), obj, ancestors_of).failed == failed


def test_compile_errors_list_every_problem() -> None:
    criteria: list[Any] = [
        c(99, "equals", 1),  # unknown field
        c(12, "contains", "x"),  # searchtype not allowed for status
        c(12, "equals", "bogus", "XOR"),  # bad link and unknown keyword
        c(7, "equals", "abc"),  # not an id
        5,  # not an object
        {"field": "a..b", "searchtype": "nope"},  # bad path, unknown searchtype
        {"link": "AND", "criteria": [c(3, "equals", 7), c(4, "equals", "myself")]},
        c("name", "under", 1),  # under on a non-tree path
        c(15, "lessthan", "yesterday"),
        c(2, "contains", "abc"),
        {"field": 12, "value": "old"},  # no searchtype
        {"meta": True, "itemtype": "User", "field": 1, "searchtype": "contains", "value": "x"},
        c(1, "contains", ["x"]),
    ]
    with pytest.raises(InvalidCriteria) as raised:
        compile_criteria("Ticket", criteria)
    message = str(raised.value)
    problems = criteria_problems("Ticket", criteria)
    assert message.startswith(f"filter for Ticket: {len(problems)} problem(s)")
    assert all(p in message for p in problems)
    expected = [
        "criteria[0]: unknown field 99 for Ticket",
        "criteria[1]: searchtype 'contains' is not allowed for status (12)",
        "criteria[2]: link 'XOR'",
        "criteria[2]: status (12) equals bogus: unknown status",
        "criteria[3]: category (7) equals abc: expected an item id",
        "criteria[4]: expected an object",
        "criteria[5]: unknown searchtype 'nope'",
        "criteria[5]: field 'a..b' is neither an option id nor a path",
        "criteria[6].criteria[0]: priority (3) equals 7: expected an integer from -6 to 6",
        "criteria[6].criteria[1]: requester (4) equals myself: session values",
        "criteria[7]: under needs a tree field",
        "criteria[8]: opening date (15) lessthan yesterday: expected a date",
        "criteria[9]: id (2) contains abc: expected a number",
        "criteria[10]: searchtype is missing",
        "criteria[11]: meta criteria",
        "criteria[12]: value must be a string or a number",
    ]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem


@pytest.mark.parametrize(
    ("itemtype", "raw", "problem"),
    [
        ("Change", [c(12, "equals", 2)], "unknown status"),  # 2 is a Ticket status only
        ("Change", [c(14, "equals", 1)], "unknown field 14 for Change"),
        ("Computer", [c(12, "equals", "notold")], "unknown field 12 for Computer"),
        ("Computer", [c(31, "under", 1)], "not allowed for status (31)"),
        ("TicketTask", [c(1, "contains", "x")], "none are known for it; use a dotted path"),
        ("Ticket", "[{", "not JSON"),
        ("Ticket", '{"field": 12}', "expected a list"),
        ("Ticket", [{"criteria": "x"}], "criteria[0].criteria: expected a list"),
        ("Ticket", [c(15, "equals", "tomorrow")], "expected a date such as"),
        ("Ticket", [c(14, "equals", 3)], "expected an integer from 1 to 2"),
        ("Ticket", [c(1, "equals", "x")], "not allowed for title (1)"),
    ],
)
def test_compile_errors(itemtype: str, raw: Any, problem: str) -> None:
    with pytest.raises(InvalidCriteria, match=re.escape(problem)):
        compile_criteria(itemtype, raw)


def test_relative_dates_follow_the_given_clock() -> None:
    # date_mod is 09:15:32+01:00, i.e. 08:15:32Z; NOW is 12:00Z.
    recent = compile_criteria("Ticket", [c(19, "morethan", "-5HOUR")])
    very_recent = compile_criteria("Ticket", [c(19, "morethan", "-2HOUR")])
    assert evaluate(recent, TICKET, ancestors_of, now=NOW).matched
    assert not evaluate(very_recent, TICKET, ancestors_of, now=NOW).matched
    # Months are calendar months, clamped: 31 March minus one month is 28 February.
    last_month = compile_criteria("Ticket", [c(15, "morethan", "-1MONTH")])
    march_31 = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
    february = item("Ticket.json", date="2025-02-28T13:00:00+00:00")
    assert evaluate(last_month, february, ancestors_of, now=march_31).matched
