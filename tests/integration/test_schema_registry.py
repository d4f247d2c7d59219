"""The Confluent wire format against a real schema registry (Apicurio's Confluent API, basic
auth enforced by the registry, a TLS port with the test's own CA) and a real Kafka broker."""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fastavro
import httpx
import pytest

from hookstream.config import Settings, load_settings
from hookstream.errors import ConfigError, TransientError
from hookstream.io import codec_for, create_topics, flush, producer, read_all
from hookstream.io.schema_registry import CONTENT_TYPE
from hookstream.records import (
    ITEM_CHANGES,
    WEBHOOKS,
    OperationType,
    PollCursor,
    WebhookDefinition,
    avro_topics,
    operational_event,
)
from hookstream.records.codec import RECORD_TYPES, load_schema_text, older_schema_texts
from tests.apicurio import RunningRegistry
from tests.integration.harness import cli_env
from tests.unit.test_codec import alert_samples, sample_records


def with_registry(settings: Settings, registry: RunningRegistry, **more: object) -> Settings:
    values: dict[str, object] = {"schema_registry_url": registry.url,
                                 "schema_registry_username": registry.username,
                                 "schema_registry_password": registry.password}
    return dataclasses.replace(settings, **{**values, **more})  # type: ignore[arg-type]


def registry_get(registry: RunningRegistry, path: str) -> object:
    answer = httpx.get(f"{registry.url}{path}", auth=(registry.username, registry.password),
                       headers={"Accept": CONTENT_TYPE}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def one_record_per_schema() -> dict[str, object]:
    records: dict[str, object] = {type(r).schema_name: r  # type: ignore[attr-defined]
                                  for r in sample_records("Ticket.json")}
    records["PollCursor"] = PollCursor("glpi-lyon", "Ticket", "changes", ids_at=[1, 2])
    records["OperationalEvent"] = operational_event(
        OperationType.DELIVERY_DEAD_LETTERED, 1_800_000_000_000, "glpi-lyon", "hook-a",
        "HTTP 410", "d1:1", delivery_id="d1")
    records.update(alert_samples())
    assert set(records) == set(RECORD_TYPES)
    return records


def test_every_topic_in_wire_format_schemas_registered_on_first_use(
        settings: Settings, schema_registry: RunningRegistry) -> None:
    settings = with_registry(settings, schema_registry)
    create_topics(settings)
    records, codec, prod = one_record_per_schema(), codec_for(settings), producer(settings)
    topics = avro_topics(settings)
    assert len(topics) == 15 + len(settings.retry_tiers)
    for topic, name in topics.items():
        value, headers = codec.encode(records[name], topic)  # type: ignore[arg-type]
        prod.produce(topic, value, b"k", headers=headers)
    flush(prod)
    fresh = codec_for(settings)  # no cache: every writer schema fetched by id
    for topic, name in topics.items():
        [msg] = list(read_all(settings, topic))
        magic, schema_id = struct.unpack(">bI", msg.value()[:5])
        latest = registry_get(schema_registry, f"/subjects/{topic}-value/versions/latest")
        assert isinstance(latest, dict)
        assert (magic, schema_id) == (0, latest["id"])
        assert json.loads(str(latest["schema"])) == json.loads(load_schema_text(name))
        decoded = fresh.decode(msg.value(), msg.headers(), RECORD_TYPES[name])
        assert decoded == records[name]


def test_a_second_schema_version_is_read_by_old_and_new_readers(
        settings: Settings, schema_registry: RunningRegistry) -> None:
    settings = with_registry(settings, schema_registry)
    topic = settings.topic(WEBHOOKS)
    subject = f"{topic}-value"
    v1_text = older_schema_texts("WebhookDefinition")[1]
    v1 = fastavro.parse_schema(json.loads(v1_text))
    registry = httpx.Client(base_url=schema_registry.url, timeout=10,
                            auth=(schema_registry.username, schema_registry.password),
                            headers={"Content-Type": CONTENT_TYPE})
    # an older hookstream registered v1 and wrote with it; the subject is BACKWARD
    v1_id = registry.post(f"/subjects/{subject}/versions", json={"schema": v1_text}).json()["id"]
    assert registry.put(f"/config/{subject}", json={"compatibility": "BACKWARD"}).is_success
    webhook = next(r for r in sample_records("Ticket.json") if isinstance(r, WebhookDefinition))
    old = {k: v for k, v in webhook.to_dict().items()
           if k in {f["name"] for f in json.loads(v1_text)["fields"]}}
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, v1_id))
    fastavro.schemaless_writer(buf, v1, old)

    # the new reader reads the v1 record: the fields v2 added take their defaults
    new_codec = codec_for(settings)
    read_new = new_codec.decode(buf.getvalue(), [], WebhookDefinition)
    assert read_new == WebhookDefinition.from_dict(old)
    # the new writer registers v2, which the real registry accepts as BACKWARD compatible
    value, _ = new_codec.encode(webhook, topic)
    versions = registry.get(f"/subjects/{subject}/versions").json()
    assert len(versions) == 2
    (v2_id,) = struct.unpack(">I", value[1:5])
    assert v2_id != v1_id
    # an old reader (v1) reads the v2 record with the writer schema the registry gives by id
    writer = json.loads(registry.get(f"/schemas/ids/{v2_id}").json()["schema"])
    read_old = fastavro.schemaless_reader(io.BytesIO(value[5:]), fastavro.parse_schema(writer),
                                          v1)
    assert read_old == old


def test_the_registry_enforces_credentials_and_none_leaks(
        settings: Settings, schema_registry: RunningRegistry) -> None:
    event = sample_records("Ticket.json")[0]
    topic = settings.topic(ITEM_CHANGES)
    anonymous = dataclasses.replace(settings, schema_registry_url=schema_registry.url)
    with pytest.raises(ConfigError, match="HTTP 401, the credentials were refused"):
        codec_for(anonymous).encode(event, topic)  # type: ignore[arg-type]
    wrong = with_registry(settings, schema_registry, schema_registry_password="Wr0ng-s3cret")
    with pytest.raises(ConfigError) as refused:
        codec_for(wrong).encode(event, topic)  # type: ignore[arg-type]
    assert "Wr0ng-s3cret" not in str(refused.value)
    assert schema_registry.password not in str(refused.value)

    # TLS: the registry's certificate is trusted through the CA setting, and only then
    tls = with_registry(settings, schema_registry, schema_registry_ca_location=str(
        schema_registry.ca_file))
    tls = dataclasses.replace(tls, schema_registry_url=schema_registry.tls_url)
    value, _ = codec_for(tls).encode(event, topic)  # type: ignore[arg-type]
    assert value[0] == 0
    untrusted = dataclasses.replace(tls, schema_registry_ca_location="")
    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED") as failed:
        codec_for(untrusted).encode(event, topic)  # type: ignore[arg-type]
    assert schema_registry.password not in str(failed.value)


def test_schemas_register_ahead_then_clients_only_look_up(
        settings: Settings, schema_registry: RunningRegistry, tmp_path: Path) -> None:
    event = sample_records("Ticket.json")[0]
    topic = settings.topic(ITEM_CHANGES)
    lookup_only = with_registry(settings, schema_registry, schema_registry_auto_register=False)
    with pytest.raises(ConfigError) as missing:
        codec_for(lookup_only).encode(event, topic)  # type: ignore[arg-type]
    assert str(missing.value) == (
        f"schema not registered under subject {topic}-value (schema_registry_auto_register is "
        "off): run `hookstream schemas register`")

    password_file = tmp_path / "registry-password"
    password_file.write_text(schema_registry.password + "\n")  # as a mounted Secret
    env = cli_env(dataclasses.replace(lookup_only, schema_registry_password=""))
    del env["HOOKSTREAM_SCHEMA_REGISTRY_PASSWORD"]
    env["HOOKSTREAM_SCHEMA_REGISTRY_PASSWORD_FILE"] = str(password_file)
    done = subprocess.run([sys.executable, "-m", "hookstream.cli", "schemas", "register",
                           "--compatibility", "FULL"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(avro_topics(settings))
    assert f"{topic}-value  ItemChangeEvent  id " in done.stdout
    for subject in (f"{t}-value" for t in avro_topics(settings)):
        config = registry_get(schema_registry, f"/config/{subject}")
        assert config == {"compatibilityLevel": "FULL"}

    latest = registry_get(schema_registry, f"/subjects/{topic}-value/versions/latest")
    assert isinstance(latest, dict)
    value, _ = codec_for(lookup_only).encode(event, topic)  # type: ignore[arg-type]
    assert struct.unpack(">bI", value[:5]) == (0, latest["id"])

    wrong_file = tmp_path / "wrong"
    wrong_file.write_text("Wr0ng-s3cret")
    env["HOOKSTREAM_SCHEMA_REGISTRY_PASSWORD_FILE"] = str(wrong_file)
    refused = subprocess.run([sys.executable, "-m", "hookstream.cli", "schemas", "register"],
                             env=env, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2
    assert "credentials were refused" in refused.stderr
    assert "Wr0ng-s3cret" not in refused.stderr + refused.stdout


def test_a_registry_url_with_credentials_is_refused_at_start_up(
        schema_registry: RunningRegistry) -> None:
    url = schema_registry.url.replace("http://", f"http://hookstream:{schema_registry.password}@")
    with pytest.raises(ConfigError) as refused:
        load_settings(env={"HOOKSTREAM_SCHEMA_REGISTRY_URL": url})
    assert "schema_registry_username and schema_registry_password" in str(refused.value)
    assert schema_registry.password not in str(refused.value)


class BearerOnly(BaseHTTPRequestHandler):
    """Apicurio checks bearer tokens only with an OIDC provider: this stand-in checks the
    header the client sends, and answers as the registry does."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.headers.get("Authorization") == "Bearer t0ken-1"
        body = json.dumps({"id": 7} if ok else {"error_code": 401}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_bearer_token_is_sent_and_never_echoed(settings: Settings) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BearerOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        event, topic = sample_records("Ticket.json")[0], settings.topic(ITEM_CHANGES)
        bearer = dataclasses.replace(settings, schema_registry_url=url,
                                     schema_registry_token="t0ken-1")
        value, _ = codec_for(bearer).encode(event, topic)  # type: ignore[arg-type]
        assert value[:5] == b"\x00\x00\x00\x00\x07"
        wrong = dataclasses.replace(bearer, schema_registry_token="t0ken-2")
        with pytest.raises(ConfigError) as refused:
            codec_for(wrong).encode(event, topic)  # type: ignore[arg-type]
        assert "t0ken" not in str(refused.value)
    finally:
        server.shutdown()
