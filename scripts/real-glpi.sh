#!/usr/bin/env bash
# A real GLPI 10 on loopback, for the conformance suite (`make conformance`) and for trying
# hookstream against the real thing. GLPI's tree is never copied into this repository:
# SOURCE_DIR is a GLPI 10 release tree with its vendor/ folder (README: "A real GLPI 10").
#
#   scripts/real-glpi.sh start SOURCE_DIR [--port P] [--state DIR] [--session-lifetime S]
#   scripts/real-glpi.sh stop [--state DIR]
#
# start is idempotent: the first run installs GLPI into an empty MariaDB of its own (a few
# seconds); later runs only start what is not running. GLPI's config, files and database live
# in the state directory (GLPI_CONFIG_DIR, GLPI_VAR_DIR), so the source tree is only read,
# and a tree that carries its previous owner's config/ or files/ is harmless. It prints the
# API's URL and tokens as shell assignments, also kept in DIR/glpi.env.
# --session-lifetime S: PHP sessions (GLPI's API sessions) expire after S idle seconds,
# collected on every request, so that a test can watch a session expire.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command="${1:-}"; shift || true
source_dir=""
if [ "$command" = "start" ]; then source_dir="${1:?usage: real-glpi.sh start SOURCE_DIR [--port P]}"; shift; fi
port=8088
state="${XDG_CACHE_HOME:-$HOME/.cache}/hookstream/real-glpi"
session_lifetime=1440
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --state) state="$2"; shift 2 ;;
    --session-lifetime) session_lifetime="$2"; shift 2 ;;
    *) echo "real-glpi.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
  for pidfile in "$state"/web-*.pid "$state"/db.pid; do
    [ -f "$pidfile" ] || continue
    # PHP's server forks its workers: its whole process group (setsid) goes
    alive "$pidfile" && { kill -- "-$(cat "$pidfile")" 2>/dev/null || kill "$(cat "$pidfile")"; } 2>/dev/null || true
    for _ in $(seq 50); do alive "$pidfile" || break; sleep 0.2; done
    rm -f "$pidfile"
  done
  echo "real GLPI stopped ($state)" >&2
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

sql() { mariadb --no-defaults -S "$state/db.sock" -uroot "$@"; }

start_db() {
  mkdir -p "$state"
  if [ ! -d "$state/db/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$state/db" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$state/db-install.log" 2>&1
    free_port >"$state/db.port"
  fi
  alive "$state/db.pid" && return
  /usr/sbin/mariadbd --no-defaults --datadir="$state/db" --socket="$state/db.sock" \
    --port="$(cat "$state/db.port")" --bind-address=127.0.0.1 --user="$(id -un)" \
    --pid-file="$state/db.pid" --log-error="$state/db.err" --skip-log-bin \
    --innodb-buffer-pool-size=256M >/dev/null 2>&1 &
  for _ in $(seq 150); do sql -e "select 1" >/dev/null 2>&1 && return; sleep 0.2; done
  echo "MariaDB did not start; its log: $state/db.err" >&2; tail -5 "$state/db.err" >&2; exit 1
}

glpi_env() {
  export GLPI_CONFIG_DIR="$state/config" GLPI_VAR_DIR="$state/files" \
    GLPI_MARKETPLACE_DIR="$state/marketplace"
}

token() { head -c 64 /dev/urandom | sha1sum | cut -c1-40; }

install_glpi() {
  [ -f "$state/installed" ] && return
  # Git keeps no empty folders: GLPI's console fails without plugins/, and the files/_*
  # folders must exist before the install writes to them.
  mkdir -p "$source_dir/plugins" "$state/config" "$state/marketplace"
  for folder in _cache _cron _dumps _graphs _inventories _locales _lock _log _pictures \
      _plugins _rss _sessions _tmp _uploads; do mkdir -p "$state/files/$folder"; done
  sql -e "create database if not exists glpi character set utf8mb4 collate utf8mb4_unicode_ci;
          create user if not exists glpi@'127.0.0.1' identified by 'glpi';
          grant all on glpi.* to glpi@'127.0.0.1';"
  (cd "$source_dir" && php bin/console database:install --db-host=127.0.0.1 \
    --db-port="$(cat "$state/db.port")" --db-name=glpi --db-user=glpi --db-password=glpi \
    --no-interaction --no-telemetry --reconfigure --force >"$state/install.log" 2>&1) \
    || { echo "GLPI's install failed; its log: $state/install.log" >&2; tail -20 "$state/install.log" >&2; exit 1; }
  local url="http://127.0.0.1:$port"
  for setting in "enable_api 1" "enable_api_login_credentials 1" \
      "enable_api_login_external_token 1" "url_base $url" "url_base_api $url/apirest.php"; do
    (cd "$source_dir" && php bin/console config:set $setting >/dev/null)
  done
  local app_token user_token observer_token human_token
  app_token="$(token)"; user_token="$(token)"; observer_token="$(token)"; human_token="$(token)"
  # The tasks that would reach the internet, off; the API client needs an App-Token; the
  # integration's service user is Super-Admin on the root entity, recursively, an Observer
  # (reads, no writes) shows GLPI's answers to a missing right, and GLPI's own `glpi`
  # administrator gets a token too: the changes a person makes, which hookstream must see.
  sql glpi -e "
    update glpi_crontasks set state = 0
      where name in ('checkupdate', 'telemetry', 'checkAllUpdates', 'mailgate');
    update glpi_users set api_token = '$human_token', api_token_date = now() where name = 'glpi';
    update glpi_apiclients set app_token = '$app_token', app_token_date = now() where id = 1;
    insert into glpi_users (name, realname, api_token, api_token_date, is_active, authtype,
                            profiles_id, entities_id, date_creation, date_mod)
      values ('hookstream', 'hookstream integration', '$user_token', now(), 1, 1, 4, 0, now(), now()),
             ('hookstream-observer', 'hookstream observer', '$observer_token', now(), 1, 1, 2, 0, now(), now());
    insert into glpi_profiles_users (users_id, profiles_id, entities_id, is_recursive, is_dynamic,
                                     is_default_profile)
      select id, profiles_id, 0, 1, 0, 1 from glpi_users
        where name in ('hookstream', 'hookstream-observer');"
  cat >"$state/glpi.env.tokens" <<EOF
GLPI_APP_TOKEN=$app_token
GLPI_USER_TOKEN=$user_token
GLPI_OBSERVER_TOKEN=$observer_token
GLPI_HUMAN_TOKEN=$human_token
EOF
  touch "$state/installed"
}

start_web() {
  local pidfile="$state/web-$port.pid"
  if ! alive "$pidfile"; then
    # PHP's built-in server: GLPI's router (public/index.php) answers 403 unless it is the
    # script named in SCRIPT_NAME, hence router.php; sessions collected on every request so
    # that --session-lifetime is exact.
    cat >"$state/router.php" <<'EOF'
<?php
$public = getenv('GLPI_PUBLIC_DIR');
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path !== '/' && !str_ends_with($path, '.php') && is_file($public . $path)) {
    return false;
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['PHP_SELF'] = '/index.php';
require $public . '/index.php';
EOF
    GLPI_PUBLIC_DIR="$source_dir/public" PHP_CLI_SERVER_WORKERS=4 setsid php \
      -d session.gc_maxlifetime="$session_lifetime" -d session.gc_probability=1 \
      -d session.gc_divisor=1 -d memory_limit=512M \
      -S "127.0.0.1:$port" -t "$source_dir/public" "$state/router.php" \
      >"$state/web-$port.log" 2>&1 &
    echo $! >"$pidfile"
  fi
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/apirest.php/" -H "App-Token: x" 2>/dev/null && break
    curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/apirest.php/" | grep -q '^[1-5]' && break
    sleep 0.1
  done
}

case "$command" in
  start)
    [ -f "$source_dir/bin/console" ] && [ -d "$source_dir/vendor" ] \
      || { echo "$source_dir is not a GLPI release tree with vendor/ (see README)" >&2; exit 2; }
    version="$(ls "$source_dir/version")"
    case "$version" in 10.*) ;; *) echo "GLPI $version: this script runs GLPI 10" >&2; exit 2 ;; esac
    source_dir="$(cd "$source_dir" && pwd)"
    bash "$here/system-deps.sh" --real-glpi
    glpi_env
    start_db
    install_glpi
    start_web
    {
      echo "GLPI_VERSION=$version"
      echo "GLPI_URL=http://127.0.0.1:$port/apirest.php"
      cat "$state/glpi.env.tokens"
      echo "GLPI_STATE=$state"
    } | tee "$state/glpi.env"
    ;;
  stop) stop ;;
  *) echo "usage: real-glpi.sh start SOURCE_DIR [--port P] [--state DIR] [--session-lifetime S] | stop [--state DIR]" >&2; exit 2 ;;
esac
