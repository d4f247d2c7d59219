#!/usr/bin/env bash
# The main job end to end on the embedded default: a local Kafka broker, the topics,
# sample webhook definitions and entity tree, sample GLPI events -> processor ->
# delivery requests -> delivery -> a local receiver that verifies GLPI's signatures.
set -euo pipefail
cd "$(dirname "$0")/.."
export HOOKSTREAM_STATE_DIR="${HOOKSTREAM_STATE_DIR:-$PWD/.hookstream}"
port="${HOOKSTREAM_BROKER_PORT:-9092}"
export HOOKSTREAM_BOOTSTRAP_SERVERS="${HOOKSTREAM_BOOTSTRAP_SERVERS:-127.0.0.1:$port}"
logs="$HOOKSTREAM_STATE_DIR/logs"
mkdir -p "$logs"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== 1. the local Kafka broker (fetched from Maven Central on first use)"
hookstream kafka start
echo "== 2. topics"
hookstream topics create | sed 's/^/   /'
echo "== 3. webhook definitions and the entity tree"
hookstream webhooks apply -f examples/webhooks.yaml | sed 's/^/   /'
hookstream entities apply -f examples/entities.yaml | sed 's/^/   /'
hookstream webhooks list | sed 's/^/   /'
echo "== 4. preview: what demo-ticket-new sends for the sample ticket (secrets redacted)"
head -1 examples/events.jsonl > "$HOOKSTREAM_STATE_DIR/ticket-event.json"
hookstream preview --webhook demo-ticket-new --event "$HOOKSTREAM_STATE_DIR/ticket-event.json" \
  > "$HOOKSTREAM_STATE_DIR/preview.txt"
head -12 "$HOOKSTREAM_STATE_DIR/preview.txt" | cut -c1-120 | sed 's/^/   /'
echo "   ..."

echo "== 5. receiver, processor and delivery"
python3 examples/receiver.py --port 8787 --secret demoSecretDemoSecretDemoSecretDemoSecret \
  --expect 4 --timeout 90 &
receiver=$!
hookstream run processor >"$logs/processor.log" 2>&1 & pids+=($!)
hookstream run delivery >"$logs/delivery.log" 2>&1 & pids+=($!)

echo "== 6. publishing sample GLPI events (examples/events.jsonl)"
hookstream produce --instance glpi-demo --file examples/events.jsonl | sed 's/^/   /'
echo "   waiting for the 4 expected deliveries (Ticket, Change, Computer, ITILFollowup;"
echo "   the Problem does not pass its filter and TicketTask has no webhook)"
status=0
wait "$receiver" || status=$?
echo "== 7. attempts recorded on hookstream.attempts"
hookstream consume hookstream.attempts --max 1000 --timeout 3 | python3 scripts/attempts.py
echo "== done (logs in $logs); stop the broker with:"
echo "   HOOKSTREAM_STATE_DIR=$HOOKSTREAM_STATE_DIR .venv/bin/hookstream kafka stop"
exit $status
