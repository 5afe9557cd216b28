#!/usr/bin/env bash
# scripts/lint-deploy.sh: offline checks of the container and Kubernetes
# packaging (Dockerfile.api, Dockerfile.worker, .dockerignore, charts/wasmwizard).
# The checks are the Go program tools/lintdeploy: its package comment says what
# it checks and which environment variables it reads (WIZARD_TOOLS_DIR,
# KUBE_VERSION, LINT_DEPLOY_OUT, LINT_DEPLOY_BUILD). This runs its tests, builds
# it into the tool cache and runs it from the repository's root. No Docker
# engine and no cluster are needed; the tools come from the Go module proxy only.
#
# Usage: bash scripts/lint-deploy.sh            (from anywhere; exits non-zero on problems)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WIZARD_TOOLS_DIR=${WIZARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmwizard-tools}
command -v go >/dev/null || { echo "lint-deploy: Go is required (https://go.dev/dl/ or the Debian golang package)" >&2; exit 2; }
mkdir -p "$WIZARD_TOOLS_DIR/bin" "$WIZARD_TOOLS_DIR/logs"

# tools/lintdeploy is a module of its own (BuildKit and the Kubernetes API types
# stay out of the platform's go.mod), built with the tool cache's own build
# cache, without a workspace or VCS stamping.
gotool() { (cd "$ROOT/tools/lintdeploy" && env GOCACHE="$WIZARD_TOOLS_DIR/gocache" GOFLAGS=-buildvcs=false GOWORK=off "$@"); }
log=$WIZARD_TOOLS_DIR/logs/lintdeploy.log
if ! gotool go test ./... >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "lint-deploy: the tests of tools/lintdeploy failed (log: $log)" >&2
  exit 2
fi
if ! gotool go build -trimpath -o "$WIZARD_TOOLS_DIR/bin/lintdeploy" . >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "lint-deploy: building tools/lintdeploy failed (log: $log)" >&2
  exit 2
fi
cd "$ROOT"
exec "$WIZARD_TOOLS_DIR/bin/lintdeploy"
