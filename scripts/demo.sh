#!/usr/bin/env bash
# The main job end to end on the embedded default: a local Kafka broker, the topics,
# sample webhook definitions, entity tree and GLPI instance; a script acting as GLPI posts
# signed native webhooks -> ingest -> processor -> delivery requests -> delivery -> a
# local receiver that verifies GLPI's signatures; then one Alertmanager alert -> run alerts ->
# run ticketer -> a ticket in the fake GLPI, solved when the alert resolves.
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

started_ms=$(date +%s%3N)  # step 7 shows this run's attempts, not earlier runs' as well
echo "== 1. the local Kafka broker (fetched from Maven Central on first use)"
hookstream kafka start
echo "== 2. topics"
hookstream topics create | sed 's/^/   /'
echo "== 3. webhook definitions and the entity tree"
hookstream webhooks apply -f examples/webhooks.yaml | sed 's/^/   /'
hookstream entities apply -f examples/entities.yaml | sed 's/^/   /'
# the tokens of the demo's GLPI (step 8), as production passes them: from the environment
export HOOKSTREAM_INSTANCE_GLPI_DEMO_APP_TOKEN=demoAppToken HOOKSTREAM_INSTANCE_GLPI_DEMO_USER_TOKEN=demoUserToken
hookstream instances apply -f examples/instances.yaml | sed 's/^/   /'
hookstream webhooks list | sed 's/^/   /'
echo "== 4. preview: what demo-ticket-new sends for the sample ticket (secrets redacted)"
head -1 examples/events.jsonl > "$HOOKSTREAM_STATE_DIR/ticket-event.json"
hookstream preview --webhook demo-ticket-new --event "$HOOKSTREAM_STATE_DIR/ticket-event.json" \
  > "$HOOKSTREAM_STATE_DIR/preview.txt"
head -12 "$HOOKSTREAM_STATE_DIR/preview.txt" | cut -c1-120 | sed 's/^/   /'
echo "   ..."

echo "== 5. receiver, ingest, processor and delivery"
python3 examples/receiver.py --port 8787 --secret demoSecretDemoSecretDemoSecretDemoSecret \
  --expect 4 --timeout 90 &
receiver=$!
hookstream run processor >"$logs/processor.log" 2>&1 & pids+=($!)
hookstream run delivery >"$logs/delivery.log" 2>&1 & pids+=($!)
ingest_port="${HOOKSTREAM_INGEST_PORT:-8480}"
HOOKSTREAM_INGEST_HOST=127.0.0.1 HOOKSTREAM_INGEST_PORT="$ingest_port" \
  hookstream run ingest >"$logs/ingest.log" 2>&1 & pids+=($!)
python3 - "$ingest_port" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:  # the ingest endpoint is ready once it has read the instances topic
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("ingest did not become ready; see its log")
        time.sleep(0.3)
PY

echo "== 6. GLPI posts its native webhooks (examples/glpi_webhooks.py, signed as GLPI signs)"
python3 examples/glpi_webhooks.py --url "http://127.0.0.1:$ingest_port" --instance glpi-demo \
  --secret glpiDemoSecretGlpiDemoSecretGlpiDemo0001 --file examples/events.jsonl \
  | sed 's/^/   /'
echo "   waiting for the 4 expected deliveries (Ticket, Change, Computer, ITILFollowup;"
echo "   the Problem does not pass its filter and TicketTask has no webhook)"
status=0
wait "$receiver" || status=$?
echo "== 7. attempts recorded on hookstream.attempts"
hookstream consume hookstream.attempts --max 1000 --timeout 3 \
  | python3 scripts/attempts.py "$started_ms"
echo "== 8. an alert becomes a GLPI ticket: Alertmanager's notification -> run alerts ->"
echo "   hookstream.alerts -> run ticketer -> GLPI (the tests' fake GLPI on :8499)"
python3 -m tests.fake_glpi_items 8499 demoAppToken demoUserToken >"$logs/glpi.log" 2>&1 & pids+=($!)
hookstream alerts apply -f examples/demo-alert-rules.yaml | sed 's/^/   /'
alerts_port="${HOOKSTREAM_ALERTS_PORT:-8490}"
HOOKSTREAM_ALERTS_HOST=127.0.0.1 HOOKSTREAM_ALERTS_PORT="$alerts_port" \
  hookstream run alerts >"$logs/alerts.log" 2>&1 & pids+=($!)
hookstream run ticketer >"$logs/ticketer.log" 2>&1 & pids+=($!)
python3 examples/alert_to_ticket.py --alerts "http://127.0.0.1:$alerts_port" --instance glpi-demo \
  --token demoAlertmanagerToken0001 --glpi http://127.0.0.1:8499/apirest.php \
  --app-token demoAppToken --user-token demoUserToken --file examples/alertmanager-firing.json \
  || status=$?
echo "== done (logs in $logs); stop the broker with:"
echo "   HOOKSTREAM_STATE_DIR=$HOOKSTREAM_STATE_DIR .venv/bin/hookstream kafka stop"
exit $status
