"""Real Twig (PHP 8.2, Debian's php-twig) as an oracle: one PHP process per test session,
answering batches of renders as JSON lines (twig_oracle.php)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["Oracle", "Result"]

SCRIPT = Path(__file__).with_name("twig_oracle.php")
Result = tuple[str, str]  # ("out", text) or ("error", "Class: message")


class Oracle:
    def __init__(self) -> None:
        php = shutil.which("php")
        if php is None or not Path("/usr/share/php/Twig/autoload.php").exists():
            raise RuntimeError("php-cli and php-twig are needed (apt-get install php-cli php-twig)")
        self.process = subprocess.Popen([php, str(SCRIPT)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, encoding="utf-8")

    def render(self, cases: list[dict[str, Any]]) -> list[Result]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"cases": cases}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the PHP oracle stopped")
        results: list[Result] = []
        for answer in json.loads(line)["results"]:
            if "out" in answer:
                results.append(("out", base64.b64decode(answer["out"]).decode("utf-8",
                                                                              "replace")))
            else:
                results.append(("error", answer["error"]))
        return results

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)
