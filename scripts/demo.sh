#!/usr/bin/env bash
# The main job end to end on the embedded default: a local Kafka broker, the topics,
# sample GLPI events published and read back from the topic.
set -euo pipefail
cd "$(dirname "$0")/.."
export HOOKSTREAM_STATE_DIR="${HOOKSTREAM_STATE_DIR:-$PWD/.hookstream}"
port="${HOOKSTREAM_BROKER_PORT:-9092}"
export HOOKSTREAM_BOOTSTRAP_SERVERS="${HOOKSTREAM_BOOTSTRAP_SERVERS:-127.0.0.1:$port}"

echo "== starting the local Kafka broker"
hookstream kafka start
echo "== creating topics"
hookstream topics create
echo "== publishing sample GLPI events (examples/events.jsonl)"
hookstream produce --instance glpi-demo --file examples/events.jsonl
echo "== reading them back from glpi.item-changes"
hookstream consume glpi.item-changes --max 1000 --timeout 3 \
  | python3 -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line)["record"]
    print(f"{r[\"instance\"]} {r[\"itemtype\"]} #{r[\"items_id\"]} {r[\"event\"]}: {json.loads(r[\"item\"]).get(\"name\") or json.loads(r[\"item\"]).get(\"content\", \"\")[:40]!r}")'
echo "== done; stop the broker with: HOOKSTREAM_STATE_DIR=$HOOKSTREAM_STATE_DIR hookstream kafka stop"
