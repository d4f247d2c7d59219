"""The GLPI page of an alert's ticket, from the instance's API URL."""

from __future__ import annotations

import pytest

from hookstream.alerting.links import ticket_url


@pytest.mark.parametrize("api_url, tickets_id, expected", [
    ("https://glpi.example.org/apirest.php", 42,
     "https://glpi.example.org/front/ticket.form.php?id=42"),
    ("https://glpi.example.org/apirest.php/", 7,
     "https://glpi.example.org/front/ticket.form.php?id=7"),
    ("https://example.org/glpi/apirest.php", 3, "https://example.org/glpi/front/ticket.form.php?id=3"),
    ("http://127.0.0.1:8080/", 5, "http://127.0.0.1:8080/front/ticket.form.php?id=5"),
    ("", 42, None),
    ("https://glpi.example.org/apirest.php", 0, None),
])
def test_the_ticket_page_is_beside_the_api(api_url: str, tickets_id: int,
                                           expected: str | None) -> None:
    assert ticket_url(api_url, tickets_id) == expected
