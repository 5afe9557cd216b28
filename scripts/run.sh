#!/usr/bin/env bash
# `make run`: sets up and runs Wasm Wizard on this machine.
#   1. makes sure Postgres and Redis run (scripts/deps.sh),
#   2. migrates the database,
#   3. creates a development account and API key on first run (kept in
#      data/dev.env, which is git-ignored),
#   4. starts the API and one worker,
#   5. uploads the bundled example module, runs it and prints its output and
#      the curl commands to do the same,
#   6. serves until Ctrl-C, then stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
field() { sed -n 's/.*"'"$1"'": *"\([^"]*\)".*/\1/p' | head -n1; }

bash scripts/deps.sh
command -v curl >/dev/null 2>&1 || {
  say "installing curl"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq curl >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq curl >/dev/null; fi
}
[ -x bin/wasmwizard-api ] && [ -x bin/wasmwizard-worker ] || die "run 'make build' first (make run does)"

mkdir -p data
if [ ! -f data/dev.env ]; then
  printf 'WIZARD_ADMIN_TOKEN=%s\n' "dev-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > data/dev.env
  chmod 600 data/dev.env
fi
set -a
# shellcheck disable=SC1091
. data/dev.env
export WIZARD_LOG_FORMAT=${WIZARD_LOG_FORMAT:-console}
export WIZARD_DATA_DIR=${WIZARD_DATA_DIR:-$PWD/data/worker}
# Loopback only: a development API with a known key and admin token must not
# be reachable from the network. Set the addresses to listen elsewhere.
export WIZARD_HTTP_ADDR=${WIZARD_HTTP_ADDR:-127.0.0.1:8080}
export WIZARD_WORKER_HTTP_ADDR=${WIZARD_WORKER_HTTP_ADDR:-127.0.0.1:8081}
set +a
API_ADDR=$WIZARD_HTTP_ADDR
API="http://127.0.0.1:${API_ADDR##*:}"

say "migrating the database"
./bin/wasmwizard-api migrate

pids=()
cleanup() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    say "stopping API and worker"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

say "starting the API on $API_ADDR and a worker (logs: data/api.log, data/worker.log)"
./bin/wasmwizard-api serve >data/api.log 2>&1 & pids+=($!)
./bin/wasmwizard-worker serve >data/worker.log 2>&1 & pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "$API/readyz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { tail -n 20 data/api.log >&2; die "the API did not start (is $API_ADDR taken?)"; }
  sleep 0.1
done
curl -fsS "$API/readyz" >/dev/null || die "the API is not ready; see data/api.log"

# A development account and key, made once and kept in data/dev.env.
if [ -z "${WIZARD_DEV_KEY:-}" ] || [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $WIZARD_DEV_KEY" "$API/v1/modules?limit=1")" != 200 ]; then
  say "creating a development account and API key"
  account=$(./bin/wasmwizard-api accounts create --name development --tier pro | field id)
  WIZARD_DEV_KEY=$(./bin/wasmwizard-api keys create --account "$account" --name dev | field key)
  [ -n "$WIZARD_DEV_KEY" ] || die "could not create a key"
  grep -v '^WIZARD_DEV_KEY=' data/dev.env > data/dev.env.new || true
  printf 'WIZARD_DEV_KEY=%s\n' "$WIZARD_DEV_KEY" >> data/dev.env.new
  mv data/dev.env.new data/dev.env
fi
KEY=$WIZARD_DEV_KEY

say "uploading the example module (shared/fixtures/wasm/echo.wasm) and running it"
module=$(curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/wasm' \
  --data-binary @shared/fixtures/wasm/echo.wasm "$API/v1/modules?name=echo" | field id)
job=$(curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d "{\"module_id\":\"$module\",\"args\":[\"hello\",\"from\",\"wasm\"],\"env\":{\"GREETING\":\"hi\"},\"stdin\":\"and stdin\\n\"}" \
  "$API/v1/jobs" | field id)
result=""
for _ in $(seq 1 100); do
  result=$(curl -fsS -H "Authorization: Bearer $KEY" "$API/v1/jobs/$job")
  case "$result" in *'"status":"queued"'*|*'"status":"running"'*) sleep 0.1 ;; *) break ;; esac
done
echo
echo "Job $job finished:"
echo "$result"
echo
cat <<TXT
Wasm Wizard is running: API $API, worker health on $WIZARD_WORKER_HTTP_ADDR.

Your development API key (also in data/dev.env):
  export WIZARD_API_KEY=$KEY

Run a module with the CLI (uploads it if the account lacks its bytes):
  bin/wizard run shared/fixtures/wasm/hello.wasm

Or with curl (docs/API.md walks through every route):
  curl -s -H "Authorization: Bearer \$WIZARD_API_KEY" -H 'Content-Type: application/wasm' \\
       --data-binary @shared/fixtures/wasm/hello.wasm '$API/v1/modules?name=hello'
  curl -s -H "Authorization: Bearer \$WIZARD_API_KEY" -H 'Content-Type: application/json' \\
       -d '{"module_id":"<id from above>"}' $API/v1/jobs

The example module above: $module. Admin token: see data/dev.env.
Press Ctrl-C to stop.
TXT
wait -n "${pids[@]}" || true
say "a process exited; see data/api.log and data/worker.log"
