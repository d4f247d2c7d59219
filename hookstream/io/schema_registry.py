"""A Confluent Schema Registry client (REST API v1), for the Confluent wire format."""

from __future__ import annotations

import json

import httpx

from hookstream.config import Settings
from hookstream.errors import TransientError
from hookstream.records import Codec

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class HttpSchemaRegistry:
    """Registers schemas under `<topic>-value` subjects and fetches them by id, cached."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        self._client = httpx.Client(
            base_url=url.rstrip("/"), timeout=timeout_s, headers={"Accept": CONTENT_TYPE}
        )
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}

    def register(self, subject: str, schema_json: str) -> int:
        key = (subject, schema_json)
        if key not in self._ids:
            answer = self._call("POST", f"/subjects/{subject}/versions", {"schema": schema_json})
            self._ids[key] = int(str(answer["id"]))
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> str:
        if schema_id not in self._schemas:
            self._schemas[schema_id] = str(self._call("GET", f"/schemas/ids/{schema_id}")["schema"])
        return self._schemas[schema_id]

    def _call(self, method: str, path: str, body: object = None) -> dict[str, object]:
        try:
            response = self._client.request(
                method,
                path,
                content=None if body is None else json.dumps(body),
                headers={"Content-Type": CONTENT_TYPE},
            )
        except httpx.HTTPError as e:
            raise TransientError(f"schema registry unreachable: {type(e).__name__}") from e
        if response.status_code >= 300:
            raise TransientError(f"schema registry {method} {path}: HTTP {response.status_code}")
        data = response.json()
        if not isinstance(data, dict):
            raise TransientError(f"schema registry {method} {path}: unexpected answer")
        return data


def codec_for(settings: Settings) -> Codec:
    """The codec the settings ask for: Confluent wire format when a registry is set."""
    if settings.schema_registry_url:
        return Codec(HttpSchemaRegistry(settings.schema_registry_url))
    return Codec()
