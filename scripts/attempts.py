"""Summarise `hookstream consume hookstream.attempts` output, one line per attempt.

An optional argument, a time in Unix milliseconds, leaves out attempts started before it
(the demo's state directory keeps the attempts of earlier runs)."""

import json
import sys

since_ms = int(sys.argv[1]) if len(sys.argv) > 1 else 0
for line in sys.stdin:
    r = json.loads(line)["record"]
    if r["started_at"] < since_ms:
        continue
    item = f"{r['itemtype']}#{r['items_id']}"
    print(f"   {r['webhook_id']:<28} {item:<18} attempt {r['attempt']}: "
          f"{r['outcome']} {r['status_code'] or ''} {r['error'] or ''}".rstrip())
