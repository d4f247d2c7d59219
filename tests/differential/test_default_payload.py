"""GLPI's default payload against PHP's own json_encode(JSON_PRETTY_PRINT) (php-cli): items
of Latin-1, wider and astral text, slashes, backslashes, DEL, double spaces, floats, empty
and list-like arrays, as the processor encodes them (default_payload: the orjson fast path
and the exact encoder), byte for byte. PHP answers the whole batch from one process."""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
from typing import Any

import pytest

from hookstream.render import default_payload
from tests.unit.test_fast_paths import random_value

PHP = r"""
while (($line = fgets(STDIN)) !== false) {
    $case = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
    $body = ['item' => $case['item'], 'event' => $case['event']];
    if ($case['parent_item'] !== null) {
        $body['parent_item'] = $case['parent_item'];
    }
    echo base64_encode(json_encode($body, JSON_PRETTY_PRINT | JSON_THROW_ON_ERROR)), "\n";
}
"""
TEXTS = ["Réseau sans fil", "Équipe / 2e étage « Rhône »", "a\\b \"q\" \x7f", "ÿ€", "😀 x",
         "l'imprimante  HP", "https://glpi.example/front/ticket.form.php?id=1", "\n\t", "中文"]


def php_decodable(value: Any) -> Any:
    """`value` with integers beyond 64 bits as text: PHP's json_decode reads those as floats,
    so PHP would encode another value than the item holds."""
    if isinstance(value, dict):
        return {k: php_decodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [php_decodable(v) for v in value]
    if type(value) is int and not -(2**63) <= value < 2**63:
        return str(value)
    return value


def cases() -> list[dict[str, Any]]:
    rng = random.Random(20261207)
    out = []
    for n in range(400):
        item: dict[str, Any] = {"id": n, "name": rng.choice(TEXTS),
                                "content": "".join(rng.choice(TEXTS) for _ in range(3)),
                                "entity": {"id": 3, "completename": rng.choice(TEXTS)},
                                "extra": php_decodable(random_value(rng))}
        parent = None if rng.random() < 0.7 else {"id": 1, "name": rng.choice(TEXTS)}
        out.append({"item": item, "event": rng.choice(("new", "update", "delete")),
                    "parent_item": parent})
    return out


def test_default_payload_is_php_json_encode_byte_for_byte() -> None:
    php = shutil.which("php")
    if php is None:
        pytest.fail("php-cli is needed (apt-get install php-cli)")
    # Through JSON both ways: the values PHP decodes are the ones compared (a lone surrogate,
    # which JSON text cannot carry to PHP, is left out).
    all_cases = [json.loads(json.dumps(c)) for c in cases()]
    lines = "".join(json.dumps(c) + "\n" for c in all_cases)
    answer = subprocess.run([php, "-r", PHP], input=lines, capture_output=True, text=True,
                            timeout=120, check=True)
    expected = [base64.b64decode(line) for line in answer.stdout.split()]
    assert len(expected) == len(all_cases)
    differ = [(c, want) for c, want in zip(all_cases, expected, strict=True)
              if default_payload(c["item"], c["event"], c["parent_item"]) != want]
    assert not differ, differ[:3]
