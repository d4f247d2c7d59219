"""hookstream's GLPI API client against a real GLPI 10: one session, renewed when GLPI
expires it, ended on close; GLPI's own errors surface as clear, one-line errors."""

from __future__ import annotations

import time

import httpx
import pytest

from connectors.glpi import GlpiApiError, GlpiClient
from hookstream.devbroker import free_port_pair
from tests.real_glpi.conftest import RealGlpi, raw


def test_one_session_serves_every_call_and_close_ends_it(real_glpi: RealGlpi) -> None:
    client = real_glpi.client()
    with client:
        ticket = client.add_item("Ticket", {"name": "session test", "content": "x"})
        client.update_item("Ticket", ticket, {"urgency": 5})
        assert client.get_item("Ticket", ticket)["urgency"] == 5
        assert len(list(client.list_items("Entity"))) >= 1
        assert client.user_id() > 0
        assert client.sessions_opened == 1
        session = client._session
    assert session is not None
    answer = raw(real_glpi, "GET", f"Ticket/{ticket}", session=session)
    assert (answer.status_code, answer.json()[0]) == (401, "ERROR_SESSION_TOKEN_INVALID")


def test_a_session_glpi_expired_is_renewed_once_and_the_call_repeated(
        real_glpi: RealGlpi) -> None:
    """A PHP server whose sessions live 2 s: the client's session expires between calls."""
    url = real_glpi.start_web(free_port_pair(1), session_lifetime=2)
    with GlpiClient("glpi10", url, real_glpi.app_token, real_glpi.user_token,
                    timeout_s=30) as client:
        first = client.user_id()
        expired = client._session
        time.sleep(3.5)
        # PHP collects expired sessions after reading the caller's: another session's
        # request collects this one, as any user's would on a busy GLPI
        httpx.get(f"{url}/initSession", timeout=30, headers={
            "App-Token": real_glpi.app_token,
            "Authorization": f"user_token {real_glpi.observer_token}"}).raise_for_status()
        assert len(list(client.list_items("Entity"))) >= 1
        assert client.sessions_opened == 2 and client._session != expired
        assert client.user_id() == first


def test_glpis_errors_are_clear_one_line_errors(real_glpi: RealGlpi) -> None:
    with pytest.raises(GlpiApiError) as wrong_app, GlpiClient(
            "glpi10", real_glpi.url, "not-the-app-token", real_glpi.user_token) as client:
        client.user_id()
    assert wrong_app.value.code == "ERROR_WRONG_APP_TOKEN_PARAMETER"
    assert "check the API app token and user token of instance glpi10" in str(wrong_app.value)
    assert "view documentation" not in str(wrong_app.value)
    with pytest.raises(GlpiApiError) as wrong_user, real_glpi.client(
            user_token="not-a-user-token") as client:
        client.user_id()
    assert (wrong_user.value.status, wrong_user.value.code) == (401, "ERROR_GLPI_LOGIN_USER_TOKEN")
    assert real_glpi.user_token not in str(wrong_user.value)

    with real_glpi.client() as client:
        with pytest.raises(GlpiApiError) as missing:
            client.get_item("Ticket", 999_999)
        assert (missing.value.status, missing.value.code) == (404, "ERROR_ITEM_NOT_FOUND")
        with pytest.raises(GlpiApiError) as gone:
            client.update_item("Ticket", 999_999, {"urgency": 2})
        assert (gone.value.status, gone.value.code, gone.value.message) == (
            400, "ERROR_GLPI_UPDATE", "")
        with pytest.raises(GlpiApiError) as unknown:
            list(client.list_items("NoSuchItemtype"))
        assert unknown.value.code == "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM"
        assert str(unknown.value) == ("GLPI glpi10: HTTP 400 ERROR_RESOURCE_NOT_FOUND_NOR_"
                                      "COMMONDBTM: resource not found or not an instance of "
                                      "CommonDBTM")
        ticket = client.add_item("Ticket", {"name": "rights", "content": "x"})

    with real_glpi.client(user_token=real_glpi.observer_token) as observer:
        with pytest.raises(GlpiApiError) as cannot_read:
            list(observer.list_items("Profile"))
        assert (cannot_read.value.status, cannot_read.value.code) == (403, "ERROR_RIGHT_MISSING")
        with pytest.raises(GlpiApiError) as cannot_write:
            observer.update_item("Ticket", ticket, {"urgency": 1})
        assert (cannot_write.value.status, cannot_write.value.code,
                cannot_write.value.message) == (
            400, "ERROR_GLPI_UPDATE", "You don't have permission to perform this action.")
