"""Encryption of webhook secrets at rest (on the webhooks topic), with Fernet.

The key comes from the `secret_key` setting; without one, a key file is created in the
state directory (mode 0600) so that the embedded default works out of the box.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from hookstream.config import Settings
from hookstream.errors import ConfigError

KEY_FILE = "secret.key"


class SecretBox:
    """Encrypts and decrypts secrets; never logs or repeats them."""

    def __init__(self, key: str):
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError) as e:
            raise ConfigError(
                "secret_key is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from e

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode() if secret else ""

    def decrypt(self, token: str) -> str:
        if not token:
            return ""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as e:
            raise ConfigError("a webhook secret cannot be decrypted with this secret_key") from e


def secret_box(settings: Settings) -> SecretBox:
    """The box for these settings: the configured key, or the state directory's key file."""
    if settings.secret_key:
        return SecretBox(settings.secret_key)
    path: Path = settings.state_path / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Fernet.generate_key().decode())
    return SecretBox(path.read_text().strip())
