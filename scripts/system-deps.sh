#!/usr/bin/env bash
# The Debian packages the pipeline and its tests need, installed only where missing
# (called by `make run`, `make test`, `make bench` and .ci/run). Idempotent; needs root (or sudo) only
# when something is missing.
set -euo pipefail
missing=()
# Java and Maven: the local Kafka broker is fetched from Maven Central and run on the JVM.
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ "${1:-}" = "--test" ]; then
  # PostgreSQL: the log store tests start their own server (tests/pg.py).
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  # PHP 8 and Twig 3: real Twig is the oracle of the differential template tests.
  command -v php >/dev/null || missing+=(php-cli)
  [ -f /usr/share/php/Twig/autoload.php ] || missing+=(php-twig)
  # Prometheus and promtool (metrics, alerts, dashboards); docker-compose (`config` check).
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  # Alertmanager: the real one sends its webhooks to `run alerts` (test_alerts_real.py).
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  # Chromium for the console's browser tests (Playwright drives it by its path).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
if [ "${1:-}" = "--bench" ]; then
  # nginx-light and wrk: the receivers and load generator of bench/delivery.py and
  # bench/ingest.py; PostgreSQL for bench/logstore.py (started by tests/pg.py).
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx-light)
  command -v wrk >/dev/null || missing+=(wrk)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
fi
if [ "${1:-}" = "--real-glpi" ]; then
  # A real GLPI 10 (scripts/real-glpi.sh): MariaDB and PHP with the extensions GLPI requires.
  [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v php >/dev/null || missing+=(php-cli)
  for ext in mysqli intl gd curl mbstring dom zip bz2 ldap bcmath; do
    php -m 2>/dev/null | grep -qix "$ext" || missing+=("php-${ext/dom/xml}")
  done
  missing=("${missing[@]/php-mysqli/php-mysql}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "missing Debian packages (install them as root): ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
