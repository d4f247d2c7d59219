"""Bearer tokens of the admin API: stored hashed, each with a scope and a mode.

A settings line is `NAME:SHA256:INSTANCES:MODE`: the SHA-256 of the token (hex), `*` or
instance names joined by `|`, and `ro` or `rw`. Only the hash is configured, so the
settings, Helm values and logs never hold a usable token. Tokens are 32 random bytes,
so a plain SHA-256 is enough (a slow password hash protects guessable secrets; these are
not guessable).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hookstream.errors import ConfigError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a token's name, the instances it may see (None: all), and whether
    it may act (force send, redrive, change webhooks)."""

    name: str
    instances: frozenset[str] | None
    writable: bool

    def sees(self, instance: str) -> bool:
        return self.instances is None or instance in self.instances

    @property
    def scope(self) -> Sequence[str] | None:
        return None if self.instances is None else sorted(self.instances)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(lines: Iterable[str]) -> dict[str, Principal]:
    """Settings lines to {sha256: Principal}; ConfigError lists every bad line (by name,
    never by content)."""
    found: dict[str, Principal] = {}
    errors = []
    for number, line in enumerate(lines, 1):
        parts = line.strip().split(":")
        name = parts[0] if parts else ""
        if len(parts) != 4:
            errors.append(f"admin_tokens #{number} ({name}): expected NAME:SHA256:INSTANCES:MODE")
            continue
        _, digest, instances, mode = parts
        if not name:
            errors.append(f"admin_tokens #{number}: the name is empty")
        if not _HEX64.match(digest):
            errors.append(f"admin_tokens #{number} ({name}): the hash is not 64 hex digits")
        if mode not in ("ro", "rw"):
            errors.append(f"admin_tokens #{number} ({name}): mode must be ro or rw")
        names = frozenset(i for i in instances.split("|") if i)
        if instances != "*" and not names:
            errors.append(f"admin_tokens #{number} ({name}): no instance (use * for all)")
        found[digest] = Principal(name, None if instances == "*" else names, mode == "rw")
    if errors:
        raise ConfigError("invalid settings:\n" + "\n".join(f"  - {e}" for e in errors))
    return found


def new_token(name: str, instances: str = "*", mode: str = "ro") -> tuple[str, str]:
    """A fresh token and its settings line."""
    token = "hsk_" + secrets.token_urlsafe(32)
    line = f"{name}:{token_hash(token)}:{instances}:{mode}"
    parse_tokens([line])  # the same checks as at start-up
    return token, line


def authenticate(tokens: dict[str, Principal], authorization: str | None) -> Principal | None:
    """The principal of an `Authorization: Bearer ...` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = token_hash(token.strip())
    for known, principal in tokens.items():  # constant time per comparison
        if hmac.compare_digest(known, digest):
            return principal
    return None
