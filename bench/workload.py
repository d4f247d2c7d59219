"""The benchmark's workload: 50 GLPI instances, 1,000 webhooks, GLPI-shaped events.

Every instance has the same entity tree and 20 webhooks over Ticket, Change, Problem
and Computer, new and update. Matching events (every other one) are open items in a
European entity: two webhooks fire. The others are closed items in the Americas: their
candidates are checked (entity scope, filter) and rejected.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml

from hookstream.records import ItemChangeEvent, make_event

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
INSTANCES = 50
WEBHOOKS_PER_INSTANCE = 20
ITEMTYPES = ("Ticket", "Change", "Problem", "Computer")
# id, parent, name: Europe (1) holds France and Deutschland, Americas (2) USA and Brasil.
TREE = ((0, None, "Root entity"), (1, 0, "Europe"), (2, 0, "Americas"), (3, 1, "France"),
        (4, 1, "Deutschland"), (5, 2, "USA"), (6, 2, "Brasil"))
COMPLETENAME = {0: "Root entity", 1: "Root entity > Europe", 2: "Root entity > Americas",
                3: "Root entity > Europe > France", 4: "Root entity > Europe > Deutschland",
                5: "Root entity > Americas > USA", 6: "Root entity > Americas > Brasil"}
OPEN = {"Ticket": 2, "Change": 9, "Problem": 2, "Computer": 2}  # Computer: state "In use"
CLOSED = {"Ticket": 6, "Change": 6, "Problem": 6, "Computer": 1}
# Webhook filters, GLPI saved-search criteria: open items only, or (variant 1) a second test.
OPEN_FILTER = {
    "Computer": [{"field": 31, "searchtype": "equals", "value": "2"}],
    **{t: [{"field": 12, "searchtype": "equals", "value": "notold"}] for t in ITEMTYPES[:3]},
}
SECOND_FILTER = {
    "Computer": [{"field": 1, "searchtype": "contains", "value": "PC"}],
    **{t: [{"field": 12, "searchtype": "equals", "value": "notclosed"}] for t in ITEMTYPES[:3]},
}
JSON_PAYLOAD = """{
  "id": {{ item.id }},
  "title": "{{ item.name }}",
  "status": "{{ item.status.name }}",
  "entity": "{{ item.entity.completename }}",
  "event": "{{ event }}",
  "link": "https://glpi.example.com/front/{{ item.id }}"
}"""
TEXT_PAYLOAD = "{{ event|upper }} {{ item.name }} ({{ item.entity.completename }})"


def instance_name(n: int) -> str:
    return f"glpi-{n:02d}"


def webhooks_yaml() -> str:
    """1,000 webhook definitions in hookstream's YAML format."""
    hooks = []
    for n in range(INSTANCES):
        for j in range(WEBHOOKS_PER_INSTANCE):
            itemtype, event, variant = ITEMTYPES[j % 4], ("new", "update")[j // 4 % 2], j // 8
            hook: dict[str, Any] = {
                "id": f"{instance_name(n)}-{j:02d}",
                "instance": instance_name(n),
                "name": f"{itemtype} {event} variant {variant}",
                "itemtype": itemtype,
                "event": event,
                "is_active": True,
                "secret": f"bench-secret-{n}-{j}",
                "url": f"https://hooks.example.com/{instance_name(n)}/{{{{ item.id }}}}",
            }
            if variant == 0:  # the whole tree, GLPI's default payload, open items only
                hook |= {"entities_id": 0, "is_recursive": True, "filter": OPEN_FILTER[itemtype]}
            elif variant == 1:  # Europe and below, custom JSON body and headers
                hook |= {
                    "entities_id": 1,
                    "is_recursive": True,
                    "use_default_payload": False,
                    "payload": JSON_PAYLOAD,
                    "custom_headers": {"X-Item": "{{ item.id }}", "X-Event": "{{ event }}"},
                    "signature_scheme": "both",
                }
                if event == "new":
                    hook["filter"] = SECOND_FILTER[itemtype]
            else:  # USA only, a text body by PUT, items whose name says urgent
                hook |= {
                    "entities_id": 5,
                    "is_recursive": False,
                    "http_method": "put",
                    "use_default_payload": False,
                    "payload": TEXT_PAYLOAD,
                    "filter": [{"field": 1, "searchtype": "contains", "value": "urgent"}],
                }
            hooks.append(hook)
    return yaml.safe_dump({"webhooks": hooks}, sort_keys=False)


def entities_yaml() -> str:
    return yaml.safe_dump_all(
        {
            "instance": instance_name(n),
            "entities": [{"id": i, "parent_id": p, "name": name} for i, p, name in TREE],
        }
        for n in range(INSTANCES)
    )


def events(count: int, seed: int = 7) -> list[ItemChangeEvent]:
    """`count` events; even ones match (two webhooks fire), odd ones match none."""
    templates = {t: json.loads((FIXTURES / f"{t}.json").read_text()) for t in ITEMTYPES}
    rng = random.Random(seed)
    out = []
    for i in range(count):
        itemtype, matches = rng.choice(ITEMTYPES), i % 2 == 0
        items_id = 100_000 + i
        entity = rng.choice((3, 4) if matches else (5, 6))
        status = (OPEN if matches else CLOSED)[itemtype]
        prefix = "PC" if itemtype == "Computer" else itemtype
        item = {
            **templates[itemtype],
            "id": items_id,
            "name": f"{prefix}-{items_id} {rng.choice(('printer', 'mail', 'VPN', 'laptop'))}",
            "status": {"id": status, "name": f"status {status}"},
            "entity": {"id": entity, "name": TREE[entity][2],
                       "completename": COMPLETENAME[entity]},
            "date_mod": f"2025-11-{1 + i % 28:02d}T10:{i % 60:02d}:00+01:00",
        }
        out.append(
            make_event(
                instance_name(rng.randrange(INSTANCES)),
                itemtype,
                items_id,
                rng.choice(("new", "update")),
                item,
                occurred_at=1_762_250_000_000 + i,
                source="bench",
            )
        )
    return out
