"""The processor's transactional id slot: an unusable temporary directory is a clear
configuration error, not a traceback (integration: tests/integration/test_processor_identity.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from hookstream.config import load_settings
from hookstream.errors import ConfigError
from processors.clients import TransactionalId


def test_an_unusable_temporary_directory_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(not_a_folder))
    with pytest.raises(ConfigError, match=r"cannot lock a transactional id slot in .*file"):
        TransactionalId(load_settings(env={}), "hookstream-processor")


def test_slots_in_one_process_differ_and_a_released_one_is_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    settings = load_settings(env={}, topic_prefix="unit.")
    first, second = TransactionalId(settings, "g"), TransactionalId(settings, "g")
    assert first.value.endswith("-0") and second.value.endswith("-1")
    assert first.value.startswith("unit.g-")
    first.release()
    third = TransactionalId(settings, "g")
    assert third.value == first.value
    second.release()
    third.release()
