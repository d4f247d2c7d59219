"""A Confluent Schema Registry client (REST API v1), for the Confluent wire format.

Any registry that speaks that API works: Confluent's, Karapace, Apicurio's `ccompat` API
(`.../apis/ccompat/v7`). Credentials are settings of their own (basic or bearer), never
part of the URL, and never appear in an error: errors name the method, path and status.
"""

from __future__ import annotations

import json
import ssl

import httpx

from hookstream.config import Settings
from hookstream.errors import ConfigError, DecodeError, TransientError
from hookstream.records import Codec

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY_LEVELS = (
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
    "FULL_TRANSITIVE",
)


class HttpSchemaRegistry:
    """Schema ids for `<topic>-value` subjects and schemas by id, both cached.

    With `auto_register` (the default) a schema is registered on first use; without it,
    only a schema registered ahead (`hookstream schemas register`) is found, and a missing
    one is a ConfigError naming its subject.
    """

    def __init__(self, url: str, *, username: str = "", password: str = "", token: str = "",
                 ca_location: str = "", auto_register: bool = True, timeout_s: float = 10.0):
        headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=timeout_s,
            headers=headers,
            auth=(username, password) if username else None,
            verify=ssl.create_default_context(cafile=ca_location or None),
        )
        self._auto_register = auto_register
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}

    def register(self, subject: str, schema_json: str) -> int:
        """The id of `schema_json` under `subject`: registered if allowed, else looked up."""
        key = (subject, schema_json)
        if key not in self._ids:
            if self._auto_register:
                answer = self._call("POST", f"/subjects/{subject}/versions",
                                    {"schema": schema_json})
            else:
                answer = self._call("POST", f"/subjects/{subject}", {"schema": schema_json},
                                    missing=f"schema not registered under subject {subject} "
                                    "(schema_registry_auto_register is off): run `hookstream "
                                    "schemas register`")
            self._ids[key] = int(str(answer["id"]))
        return self._ids[key]

    def set_compatibility(self, subject: str, level: str) -> None:
        """Set the compatibility level of `subject` (Confluent's names: BACKWARD, FULL...)."""
        self._call("PUT", f"/config/{subject}", {"compatibility": level})

    def schema_by_id(self, schema_id: int) -> str:
        if schema_id not in self._schemas:
            answer = self._call("GET", f"/schemas/ids/{schema_id}",
                                missing=f"unknown schema id {schema_id}", not_found=DecodeError)
            self._schemas[schema_id] = str(answer["schema"])
        return self._schemas[schema_id]

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, body: object = None,
              missing: str = "", not_found: type[Exception] = ConfigError) -> dict[str, object]:
        """One request; errors translated by how the caller must react."""
        try:
            response = self._client.request(
                method, path, content=None if body is None else json.dumps(body)
            )
        except httpx.HTTPError as e:  # includes TLS failures: the cause says which
            cause = str(e.__cause__ or e)[:200]
            raise TransientError(f"schema registry unreachable ({type(e).__name__}: "
                                 f"{cause})") from e
        status = response.status_code
        if status in (401, 403):
            raise ConfigError(f"schema registry {method} {path}: HTTP {status}, the credentials "
                              "were refused (schema_registry_username and _password, or "
                              "schema_registry_token)")
        if status == 404 and missing:
            raise not_found(missing)
        if status in (409, 422):  # incompatible or invalid schema: retrying cannot help
            raise ConfigError(f"schema registry {method} {path}: HTTP {status}: "
                              f"{_message(response)}")
        if status >= 300:
            raise TransientError(f"schema registry {method} {path}: HTTP {status}")
        data = response.json()
        if not isinstance(data, dict):
            raise TransientError(f"schema registry {method} {path}: unexpected answer")
        return data


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except (ValueError, AttributeError):
        return ""


def registry_for(settings: Settings) -> HttpSchemaRegistry:
    """The registry client the settings describe."""
    return HttpSchemaRegistry(
        settings.schema_registry_url,
        username=settings.schema_registry_username,
        password=settings.schema_registry_password,
        token=settings.schema_registry_token,
        ca_location=settings.schema_registry_ca_location,
        auto_register=settings.schema_registry_auto_register,
    )


def codec_for(settings: Settings) -> Codec:
    """The codec the settings ask for: Confluent wire format when a registry is set."""
    if settings.schema_registry_url:
        return Codec(registry_for(settings))
    return Codec()
