"""A GlpiClient for a published instance: its API URL, and tokens from the definition or
the environment (never the command line)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.glpi.client import GlpiClient
from hookstream.config import Settings
from hookstream.control.instances import UserIds, api_tokens, current_instances
from hookstream.errors import ConfigError
from hookstream.policy import secret_box
from hookstream.records import InstanceRecord


def client_for(
    settings: Settings, name: str, env: Mapping[str, str] | None = None
) -> GlpiClient:
    instance = current_instances(settings).get(name)
    if instance is None:
        raise ConfigError(f"no instance {name!r}: publish it with `hookstream instances apply`")
    if not instance.api_url:
        raise ConfigError(f"instance {name}: no api_url (GLPI's .../apirest.php)")
    app_token, user_token = api_tokens(instance, secret_box(settings), env)
    return GlpiClient(name, instance.api_url, app_token, user_token)


def user_ids_through_glpi(settings: Settings, env: Mapping[str, str] | None = None) -> UserIds:
    """`instances apply`'s login resolver: each instance's own API, with the tokens being
    applied (or the environment's)."""

    def user_ids(instance: InstanceRecord, logins: Sequence[str]) -> dict[str, int]:
        app_token, user_token = api_tokens(instance, secret_box(settings), env)
        with GlpiClient(instance.name, instance.api_url, app_token, user_token) as client:
            return client.user_ids(logins)

    return user_ids
