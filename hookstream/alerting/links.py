"""Where an alert's ticket is in GLPI's web interface, from the instance's API URL."""

from __future__ import annotations


def ticket_url(api_url: str, tickets_id: int) -> str | None:
    """GLPI's page of ticket `tickets_id`: the instance's `api_url` without `apirest.php`
    (and what follows it), then `/front/ticket.form.php?id=N`. None without an API URL or
    a ticket."""
    if not api_url or tickets_id <= 0:
        return None
    base = api_url.split("/apirest.php", 1)[0].rstrip("/")
    return f"{base}/front/ticket.form.php?id={tickets_id}"
