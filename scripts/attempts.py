"""Summarise `hookstream consume hookstream.attempts` output, one line per attempt."""

import json
import sys

for line in sys.stdin:
    r = json.loads(line)["record"]
    item = f"{r['itemtype']}#{r['items_id']}"
    print(f"   {r['webhook_id']:<28} {item:<18} attempt {r['attempt']}: "
          f"{r['outcome']} {r['status_code'] or ''} {r['error'] or ''}".rstrip())
