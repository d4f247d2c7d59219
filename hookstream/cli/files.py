"""Files named on the command line, read before any other work.

A missing or unreadable file ends the command with one line on stderr naming the option
and the file, and exit code 2 (a UsageError), never with a traceback, and never after a
wait for Kafka or GLPI:

    hookstream: --event missing.json: cannot read: No such file or directory
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from hookstream.errors import UsageError


def read_text(option: str, value: str | Path) -> str:
    """The UTF-8 text of the file `value` given as `option` ("--event", "-f"...)."""
    try:
        return Path(value).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{option} {value}: cannot read: not UTF-8 text "
                         f"(byte {e.start})") from None
    except OSError as e:
        raise UsageError(f"{option} {value}: cannot read: {e.strerror or e}") from None


def checked(option: str, value: str, files: Iterable[Path] | None = None) -> Path:
    """The path `value`, once each file it stands for has been read: itself, or `files`
    (the YAML files of a directory, as the command will read them). For commands that
    hand the path on, so that a file they cannot read stops them before they start."""
    path = Path(value)
    for file in [path] if files is None else files:
        read_text(option, file)
    return path


def output_directory(option: str, value: str) -> Path:
    """The directory `value` given as `option`, created if missing, checked writable."""
    path = Path(value)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option} {value}: cannot create: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {value}: cannot write: Permission denied")
    return path
