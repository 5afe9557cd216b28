#!/usr/bin/env bash
# Makes sure the services Wasm Wizard needs are running on this machine:
# PostgreSQL (with the wasmwizard role and database) and Redis, and that the
# Chromium the console's browser tests drive and the curl the files
# walk-through test runs are installed. Installs them
# with apt on Debian/Ubuntu when they are missing, starts them when they are
# stopped, and otherwise says exactly what to do.
#
# When WIZARD_DATABASE_URL / WIZARD_REDIS_URL point elsewhere, this script
# only checks that they answer.
set -euo pipefail

PGHOST_DEFAULT=127.0.0.1
PGPORT_DEFAULT=5432
REDIS_PORT_DEFAULT=6379
DB_ROLE=wasmwizard
DB_NAME=wasmwizard

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else die "need root to run: $*  (run it yourself, or install sudo)"; fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing $*; this is not a Debian/Ubuntu machine, install them yourself"
  say "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") >/dev/null 2>&1; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" "$2" && return 0; sleep 0.5; done
  return 1
}

ensure_postgres() {
  if [ -n "${WIZARD_DATABASE_URL:-${DATABASE_URL:-}}" ]; then
    say "using the Postgres at WIZARD_DATABASE_URL (not managed by this script)"
    return
  fi
  if ! port_open "$PGHOST_DEFAULT" "$PGPORT_DEFAULT"; then
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
      apt_install postgresql postgresql-client
    fi
    say "starting PostgreSQL"
    local ver
    ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    if ! pg_lsclusters 2>/dev/null | grep -q "^$ver *main"; then
      as_root pg_createcluster "$ver" main >/dev/null
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null \
      || as_root pg_ctlcluster "$ver" main start
    wait_port "$PGHOST_DEFAULT" "$PGPORT_DEFAULT" || die "PostgreSQL did not start on $PGHOST_DEFAULT:$PGPORT_DEFAULT; see /var/log/postgresql/"
  fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  # Create the role and database as the postgres superuser: over the local
  # socket as the postgres OS user, or over TCP where trust auth allows it.
  local sql="DO \$\$BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_ROLE') THEN
      CREATE ROLE $DB_ROLE LOGIN PASSWORD '$DB_ROLE' CREATEDB;
    ELSE
      ALTER ROLE $DB_ROLE LOGIN CREATEDB;
    END IF;
  END\$\$;"
  local psql_su
  if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 && runuser -u postgres -- psql -qAtc 'SELECT 1' >/dev/null 2>&1; then
    psql_su=(runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAt)
  elif command -v sudo >/dev/null 2>&1 && sudo -n -u postgres psql -qAtc 'SELECT 1' >/dev/null 2>&1; then
    psql_su=(sudo -n -u postgres psql -v ON_ERROR_STOP=1 -qAt)
  elif psql -h "$PGHOST_DEFAULT" -U postgres -d postgres -qAtc 'SELECT 1' >/dev/null 2>&1; then
    psql_su=(psql -h "$PGHOST_DEFAULT" -U postgres -v ON_ERROR_STOP=1 -qAt)
  else
    die "cannot reach PostgreSQL as a superuser to create the '$DB_ROLE' role. Create it yourself:
  CREATE ROLE $DB_ROLE LOGIN PASSWORD '$DB_ROLE' CREATEDB; CREATE DATABASE $DB_NAME OWNER $DB_ROLE;
or set WIZARD_DATABASE_URL to a database you own."
  fi
  "${psql_su[@]}" -d postgres -c "$sql" >/dev/null
  if [ "$("${psql_su[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
    "${psql_su[@]}" -d postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_ROLE" >/dev/null
  fi
  # Password login over TCP must work for the application's URL.
  if ! PGPASSWORD=$DB_ROLE psql -h "$PGHOST_DEFAULT" -U "$DB_ROLE" -d "$DB_NAME" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    die "the '$DB_ROLE' role cannot log in over TCP with its password; allow md5/scram-sha-256 (or trust) for 127.0.0.1 in pg_hba.conf"
  fi
  say "PostgreSQL ready: postgres://$DB_ROLE:***@$PGHOST_DEFAULT:$PGPORT_DEFAULT/$DB_NAME"
}

ensure_redis() {
  if [ -n "${WIZARD_REDIS_URL:-${REDIS_URL:-}}" ]; then
    say "using the Redis at WIZARD_REDIS_URL (not managed by this script)"
    return
  fi
  if port_open 127.0.0.1 "$REDIS_PORT_DEFAULT"; then
    say "Redis ready on 127.0.0.1:$REDIS_PORT_DEFAULT"
    return
  fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  say "starting Redis"
  local dir=/var/lib/redis log=/var/log/redis/wasmwizard.log
  if [ ! -w /var/lib/redis ] 2>/dev/null; then dir=${TMPDIR:-/tmp}; log=$dir/wasmwizard-redis.log; fi
  mkdir -p "$(dirname "$log")" 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT_DEFAULT" \
    --save "" --appendonly no --maxmemory-policy noeviction --dir "$dir" --logfile "$log"
  wait_port 127.0.0.1 "$REDIS_PORT_DEFAULT" || die "Redis did not start; see $log"
  say "Redis ready on 127.0.0.1:$REDIS_PORT_DEFAULT"
}

# The console's browser tests (platformtest/console_test.go) drive a headless
# Chromium. WIZARD_CHROMIUM names one to use instead.
ensure_chromium() {
  if [ -n "${WIZARD_CHROMIUM:-}" ]; then
    [ -x "$WIZARD_CHROMIUM" ] || die "WIZARD_CHROMIUM=$WIZARD_CHROMIUM is not an executable"
    return
  fi
  for c in chromium chromium-browser google-chrome headless-shell; do
    if command -v "$c" >/dev/null 2>&1; then say "Chromium ready: $(command -v "$c")"; return; fi
  done
  apt_install chromium
  command -v chromium >/dev/null 2>&1 || die "chromium did not install"
  say "Chromium ready: $(command -v chromium)"
}

# The files walk-through test (platformtest/walkthrough_test.go) runs the
# curl commands of docs/API.md as written.
ensure_curl() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  command -v curl >/dev/null 2>&1 || die "curl did not install"
}

case "${1:-all}" in
  postgres) ensure_postgres ;;
  redis) ensure_redis ;;
  chromium) ensure_chromium ;;
  all) ensure_postgres; ensure_redis; ensure_chromium; ensure_curl ;;
  *) die "usage: $0 [all|postgres|redis|chromium]" ;;
esac
