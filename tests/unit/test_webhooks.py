"""Webhook definitions from YAML: every error listed, secrets encrypted, versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from hookstream.control import load_definitions, redacted, validate
from hookstream.errors import InvalidDefinition
from hookstream.policy import SecretBox

TIERS = [10, 60, 600, 3600, 21600]
BOX = SecretBox(Fernet.generate_key().decode())
VALID = {"id": "w1", "instance": "glpi", "name": "n", "itemtype": "Ticket", "event": "new",
         "url": "https://example.com/{{ item.id }}"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hooks.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("change, message", [
    ({"itemtype": "Tikcet"}, "unknown itemtype 'Tikcet'"),
    ({"event": "purge"}, "unknown event 'purge'"),
    ({"url": "ftp://x"}, "url must start with http:// or https://"),
    ({"url": "http://127.0.0.1/x"}, "add it to allowed_networks"),
    ({"url": "http://2130706433/x"}, "add it to allowed_networks"),
    ({"url": "https://x/{{ item.id "}, "template"),
    ({"payload": "{% include 'x' %}", "use_default_payload": False}, "template"),
    ({"filter": [{"field": 999, "searchtype": "equals", "value": 1}]}, "filter"),
    ({"filter": [{"field": 12, "searchtype": "under", "value": 1}]}, "filter"),
    ({"http_method": "delete"}, "http_method 'delete'"),
    ({"signature_scheme": "md5"}, "signature_scheme"),
    ({"retry_policy": "never"}, "retry_policy"),
    ({"ordering": "per_ticket"}, "ordering 'per_ticket' is not none or per_item"),
    ({"ordering": True}, "ordering True is not none or per_item"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"sent_try": -1}, "sent_try"),
    ({"retry_schedule": ["7s"]}, "not a configured retry tier"),
    ({"use_oauth": True}, "use_oauth needs oauth_url"),
    ({"allowed_networks": ["10.0.0.0/33"]}, "allowed_networks"),
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"id": "has space"}, "id 'has space'"),
])
def test_each_invalid_field_is_named(change: dict[str, object], message: str) -> None:
    errors = validate({**VALID, **change}, TIERS)
    assert any(message in e for e in errors), errors


def test_valid_definition_has_no_errors() -> None:
    assert validate({**VALID, "url": "http://127.0.0.1/x", "allowed_networks": ["127.0.0.0/8"],
                     "custom_headers": {"X-A": "{{ item.name }}"}, "retry_schedule": ["1m"],
                     "filter": '[{"field": 12, "searchtype": "equals", "value": "notold"}]',
                     "ordering": "per_item"},
                    TIERS) == []


def test_invalid_file_lists_every_error_of_every_webhook(tmp_path: Path) -> None:
    path = write(tmp_path, """
webhooks:
  - {id: a, instance: g, name: n, itemtype: Nope, event: new, url: "https://x"}
  - {id: b, instance: g, name: n, itemtype: Ticket, event: boom, url: "gopher://x"}
  - {id: a, instance: g, name: n, itemtype: Ticket, event: new, url: "https://x"}
""")
    with pytest.raises(InvalidDefinition) as info:
        load_definitions(path, BOX, {}, TIERS)
    text = str(info.value)
    assert "unknown itemtype 'Nope'" in text and "unknown event 'boom'" in text
    assert "url must start with" in text and "id 'a' is also used by" in text
    assert len(info.value.errors) == 4


def test_secrets_are_generated_encrypted_and_kept_across_applies(tmp_path: Path) -> None:
    path = write(tmp_path, "id: w1\ninstance: g\nname: n\nitemtype: Ticket\nevent: new\n"
                           "url: https://x\nuse_oauth: true\noauth_url: https://t/token\n"
                           "clientid: c\nclientsecret: topsecret\n")
    [first] = load_definitions(path, BOX, {}, TIERS)
    secret = BOX.decrypt(first.secret_encrypted)
    assert len(secret) == 40 and secret.isalnum()
    assert secret not in first.secret_encrypted and "topsecret" not in repr(first)
    assert BOX.decrypt(first.clientsecret_encrypted) == "topsecret"
    [again] = load_definitions(path, BOX, {"w1": first}, TIERS)
    assert again is first  # unchanged: same version, same secret
    path.write_text(path.read_text().replace("url: https://x", "url: https://y"))
    [changed] = load_definitions(path, BOX, {"w1": first}, TIERS)
    assert changed.version == 2 and BOX.decrypt(changed.secret_encrypted) == secret
    shown = redacted(changed)
    assert shown["secret"] == shown["clientsecret"] == "<redacted>"
    assert "topsecret" not in str(shown) and secret not in str(shown)


def test_glpis_retry_rule_unless_the_definition_chooses_the_default(tmp_path: Path) -> None:
    import dataclasses

    path = write(tmp_path, """
webhooks:
  - {id: bare, instance: g, name: n, itemtype: Ticket, event: new, url: "https://x"}
  - {id: chosen, instance: g, name: n, itemtype: Ticket, event: new, url: "https://x",
     retry_policy: default}
  - {id: said, instance: g, name: n, itemtype: Ticket, event: new, url: "https://x",
     retry_policy: glpi}
""")
    loaded = {d.id: d.retry_policy for d in load_definitions(path, BOX, {}, TIERS)}
    assert loaded == {"bare": "glpi", "chosen": "default", "said": "glpi"}
    # a definition stored as `default` (by an earlier release, or by choice) and applied
    # again without the field takes GLPI's rule, as a new version
    [old] = [d for d in load_definitions(path, BOX, {}, TIERS) if d.id == "bare"]
    stored = dataclasses.replace(old, retry_policy="default")
    single = write(tmp_path, "id: bare\ninstance: g\nname: n\nitemtype: Ticket\nevent: new\n"
                             "url: https://x\n")
    [applied] = load_definitions(single, BOX, {"bare": stored}, TIERS)
    assert (applied.retry_policy, applied.version) == ("glpi", stored.version + 1)


def test_ordering_is_kept_and_defaults_to_none(tmp_path: Path) -> None:
    base = "id: w1\ninstance: g\nname: n\nitemtype: Ticket\nevent: update\nurl: https://x\n"
    [plain] = load_definitions(write(tmp_path, base), BOX, {}, TIERS)
    assert plain.ordering == "none"
    [ordered] = load_definitions(write(tmp_path, base + "ordering: per_item\n"), BOX,
                                 {"w1": plain}, TIERS)
    assert ordered.ordering == "per_item" and ordered.version == 2
