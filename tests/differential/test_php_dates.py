"""PHP's date parser (timelib, through php-cli) against hookstream's (php_strtotime and the
Twig `date` conversion built on it): every string of php_dates_corpus.txt, at several fixed
"now"s and default time zones, must give the same instant, wall-clock time and zone, or be
refused by both. PHP answers the whole batch from one process (php_dates_oracle.php)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hookstream.render.php_date import format_date
from hookstream.render.php_strtotime import ParseError, strtotime
from hookstream.render.twig.dates import to_datetime
from hookstream.render.twig.php import PhpError

HERE = Path(__file__).parent
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]
NOWS_S = [
    1_762_245_332,  # 2025-11-04 08:35:32 UTC, a Tuesday (the Twig corpus' now)
    1_738_367_999,  # 2025-01-31 23:59:59 UTC: a month's last second (February in Paris)
    1_743_296_400,  # 2025-03-30 01:00:00 UTC: Paris moves to summer time
    1_741_500_000,  # 2025-03-09 06:00:00 UTC: New York moves to summer time within the hour
    1_709_164_800,  # 2024-02-29 00:00:00 UTC: a leap day
]


def _corpus() -> list[str]:
    texts = []
    for line in (HERE / "php_dates_corpus.txt").read_text().split("\n"):
        if line.startswith("# ") or line == "":
            continue
        texts.append(json.loads(line) if line.startswith('"') else line)
    return texts


CORPUS = _corpus()


@pytest.fixture(scope="module")
def php_answers() -> dict[tuple[str, int, str], dict[str, Any]]:
    php = shutil.which("php")
    if php is None:
        pytest.fail("php-cli is needed (apt-get install php-cli)")
    cases = [{"text": t, "now": n, "zone": z} for t in CORPUS for n in NOWS_S for z in ZONES]
    answer = subprocess.run([php, str(HERE / "php_dates_oracle.php")], check=True,
                            input=json.dumps({"cases": cases}), capture_output=True,
                            text=True, timeout=60)
    results = json.loads(answer.stdout)["results"]
    return {(c["text"], c["now"], c["zone"]): r for c, r in zip(cases, results, strict=True)}


def _ours(parse: Any) -> dict[str, Any]:
    try:
        when: datetime = parse()
    except (ParseError, PhpError) as e:
        return {"error": str(e)}
    return {"ts": int(when.timestamp() // 1), "local": format_date(when, "Y-m-d H:i:s"),
            "zone": format_date(when, "e|T|P")}


def _beyond_python(theirs: dict[str, Any]) -> bool:
    """PHP's years before 1 or after 9999 ("0000-00-00" is -0001-11-30) and offsets of a day
    or more ("+24:00"), which Python's datetime cannot hold: hookstream refuses them."""
    if "local" not in theirs:
        return False
    hours = int(theirs["zone"].rsplit("|", 1)[1][1:3])
    local_year = re.match(r"([0-9]{4})-", theirs["local"])
    return (hours >= 24 or local_year is None or local_year[1] == "0000"
            or not -62_135_596_800 <= theirs["ts"] <= 253_402_300_799)  # UTC years 1-9999


def _differences(theirs: dict[str, Any], ours: dict[str, Any], keys: tuple[str, ...]) -> bool:
    if _beyond_python(theirs):
        return "error" not in ours
    if "error" in theirs or "error" in ours:
        return ("error" in theirs) != ("error" in ours)
    return any(theirs[k] != ours[k] for k in keys)


def test_corpus_is_large_and_php_refuses_some(
        php_answers: dict[tuple[str, int, str], dict[str, Any]]) -> None:
    refused = {text for (text, _, _), r in php_answers.items() if "error" in r}
    assert len(set(CORPUS)) == len(CORPUS) >= 300
    assert 30 <= len(refused) <= len(CORPUS) // 2
    assert all("strtotime" not in r or r["strtotime"] is False for r in php_answers.values())


def test_strtotime_reads_as_php(php_answers: dict[tuple[str, int, str], dict[str, Any]]) -> None:
    wrong = []
    for (text, now_s, zone), theirs in php_answers.items():
        ours = _ours(lambda: strtotime(text, now_s, ZoneInfo(zone)))  # noqa: B023
        # PHP names a mis-cased zone identifier as written ("Europe/PARIS"), zoneinfo cannot.
        theirs_zone = {**theirs, "zone": theirs.get("zone", "").lower()}
        ours_zone = {**ours, "zone": ours.get("zone", "").lower()}
        if _differences(theirs_zone, ours_zone, ("ts", "local", "zone")):
            wrong.append(f"{text!r} now={now_s} {zone}: php {theirs}, ours {ours}")
    assert not wrong, f"{len(wrong)} differences:\n" + "\n".join(wrong[:40])


def test_twig_date_conversion_reads_as_php(
        php_answers: dict[tuple[str, int, str], dict[str, Any]]) -> None:
    """to_datetime, with its cached ISO path: the instant (Twig then shows it in the
    target zone). Strings of digits are timestamps there, not dates (twig_date_converter)."""
    wrong = []
    for (text, now_s, zone), theirs in php_answers.items():
        if re.fullmatch(r"-?\d+", text):
            continue
        ours = _ours(lambda: to_datetime(text, now_s, zone))  # noqa: B023
        if _differences(theirs, ours, ("ts",)):
            wrong.append(f"{text!r} now={now_s} {zone}: php {theirs}, ours {ours}")
    assert not wrong, f"{len(wrong)} differences:\n" + "\n".join(wrong[:40])
