"""The `run alerts` handler with a sink whose acknowledgements the test controls (no Kafka)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from connectors.alerts import Alerts
from hookstream.alerting.auth import AlertInstance, AlertRoute, sign
from hookstream.config import Settings
from hookstream.errors import TransientError
from hookstream.io import metrics
from hookstream.records import AlertEvent
from tests.conftest import FIXTURES

TOKEN = "am-token-0123456789abcdef"
KEY = "grafana-hmac-key-0123456789"
AM_BODY = (FIXTURES / "alerts" / "alertmanager.json").read_bytes()
NOW = 1_765_120_000.0
INSTANCES = {"glpi-a": AlertInstance("glpi-a", {"alertmanager": AlertRoute("bearer", TOKEN),
                                                "grafana": AlertRoute("hmac", KEY)})}


class Sink:
    """Produces nothing: `verdicts` says, per submitted event, ack (None), fail or hold."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []
        self.verdicts: list[str] = []  # "ack", "fail", "hold" or "full"; default ack

    def submit(self, event: AlertEvent) -> asyncio.Future[None]:
        verdict = self.verdicts.pop(0) if self.verdicts else "ack"
        if verdict == "full":
            raise TransientError("Kafka producer queue full")
        self.events.append(event)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if verdict == "ack":
            future.set_result(None)
        elif verdict == "fail":
            future.set_exception(TransientError("broker gone"))
        return future


Post = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


async def serving(test: Callable[[Post, Sink], Awaitable[None]]) -> None:
    settings = dataclasses.replace(Settings(), alerts_max_body_bytes=8000,
                                   alerts_produce_timeout_s=0.2)
    sink = Sink()
    alerts = Alerts(settings, INSTANCES.get, sink, clock=lambda: NOW)  # type: ignore[arg-type]
    runner = web.ServerRunner(web.Server(alerts.route))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:

        async def post(path: str, body: bytes = AM_BODY, method: str = "POST",
                       **headers: str) -> tuple[int, dict[str, Any]]:
            async with session.request(method, f"http://127.0.0.1:{port}{path}", data=body,
                                       headers=headers) as r:
                return r.status, await r.json(content_type=None)

        try:
            await test(post, sink)
        finally:
            await runner.cleanup()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
AM = "/alerts/glpi-a/alertmanager"


def rejected(source: str, reason: str) -> float:
    return metrics.ALERTS_REJECTED.labels(source, reason)._value.get()  # type: ignore[no-any-return]


def test_each_answer_and_its_metric() -> None:
    async def test(post: Post, sink: Sink) -> None:
        before = {r: rejected("alertmanager", r) for r in (
            "unauthorized", "invalid", "too_large", "unknown_instance", "kafka_unavailable")}
        firing = metrics.ALERTS_RECEIVED.labels("glpi-a", "alertmanager", "firing")._value.get()
        status, answer = await post(AM, **AUTH)
        assert (status, answer["accepted"], len(answer["event_ids"])) == (200, 3, 3)
        assert [e.event_id for e in sink.events] == answer["event_ids"]
        assert {e.received_at for e in sink.events} == {int(NOW * 1000)}
        assert metrics.ALERTS_RECEIVED.labels(
            "glpi-a", "alertmanager", "firing")._value.get() == firing + 2
        assert (await post(AM, method="PUT", **AUTH))[0] == 200  # Grafana may be set to PUT

        assert await post(AM) == (401, {"error": "unauthorized: missing Authorization: "
                                                 "Bearer header"})
        status, answer = await post(AM, Authorization="Bearer not-the-token")
        assert (status, answer) == (401, {"error": "unauthorized: bearer token does not match"})
        assert await post("/alerts/glpi-a/zabbix", **AUTH) == (
            401, {"error": "unauthorized: no zabbix route on this instance"})
        assert (await post(AM, b'{"version": "4", "alerts": []}', **AUTH)) == (
            400, {"error": "alerts must be a non-empty list"})
        assert (await post(AM, b"x" * 8001, **AUTH)) == (413, {"error": "body over 8000 bytes"})
        assert (await post("/alerts/glpi-z/alertmanager", **AUTH))[0] == 404
        assert (await post("/alerts/glpi-a/nagios", **AUTH))[0] == 404
        assert (await post(AM, method="DELETE", **AUTH))[0] == 405
        after = {r: rejected("alertmanager", r) - before[r] for r in before}
        assert after == {"unauthorized": 2, "invalid": 1, "too_large": 1,
                         "unknown_instance": 1, "kafka_unavailable": 0}
        assert rejected("zabbix", "unauthorized") >= 1

    asyncio.run(serving(test))


def test_a_signed_grafana_notification_is_accepted() -> None:
    body = (FIXTURES / "alerts" / "grafana.json").read_bytes()

    async def test(post: Post, sink: Sink) -> None:
        path = "/alerts/glpi-a/grafana"
        status, _ = await post(path, body, **{"X-Grafana-Alerting-Signature": sign(KEY, body)})
        assert status == 200 and [e.fingerprint for e in sink.events] == [
            "c6eadffa33fcdf37", "bc97ff14869b13e3"]
        forged = sign(KEY, body + b" ")
        assert (await post(path, body, **{"X-Grafana-Alerting-Signature": forged}))[0] == 401

    asyncio.run(serving(test))


def test_2xx_only_once_every_alert_of_the_request_is_acknowledged() -> None:
    async def test(post: Post, sink: Sink) -> None:
        for verdicts in (["ack", "fail", "ack"], ["ack", "ack", "hold"], ["ack", "full"]):
            sink.verdicts = list(verdicts)
            assert await post(AM, **AUTH) == (503, {"error": "Kafka unavailable; retry later"})
        assert (await post(AM, **AUTH))[0] == 200  # Kafka back: the whole group again

    asyncio.run(serving(test))


def test_answers_never_carry_a_secret() -> None:
    async def test(post: Post, sink: Sink) -> None:
        answers = [await post(AM, Authorization="Bearer x"), await post(AM),
                   await post("/alerts/glpi-a/grafana", AM_BODY,
                              **{"X-Grafana-Alerting-Signature": "00"})]
        text = repr(answers)
        assert all(status == 401 for status, _ in answers)
        assert TOKEN not in text and KEY not in text

    asyncio.run(serving(test))
