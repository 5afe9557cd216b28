#!/usr/bin/env bash
# Rebuilds the WASM test fixtures in shared/fixtures/wasm/ from the sources in
# shared/fixtures/src/:
#
#   src/<name>.c          -> wasm/<name>.wasm  (clang, wasm32-wasi, wasi-libc)
#   src/<name>.wat        -> wasm/<name>.wasm  (wat2wasm from wabt)
#   src/<name>/main.go    -> wasm/<name>.wasm  (GOOS=wasip1 GOARCH=wasm go build)
#
# Usage (from anywhere, typically the repo root):  bash scripts/fixtures.sh
#
# Missing tools are installed from Debian (apt-get) if possible. The outputs
# are stripped of all custom sections (names, producers, go:buildid) so that
# rebuilding with the same toolchain versions yields byte-identical files.
#
# Environment:
#   WASI_SYSROOT  optional WASI sysroot passed to clang via --sysroot (not
#                 needed on Debian, where wasi-libc lives in /usr/lib/wasm32-wasi
#                 and /usr/include/wasm32-wasi and clang finds it by itself).
#   CC_WASM       clang binary to use (default: clang).
#   GO            go binary to use (default: go).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FIXTURES_DIR="shared/fixtures"
SRC_DIR="$FIXTURES_DIR/src"
OUT_DIR="$FIXTURES_DIR/wasm"

CC_WASM="${CC_WASM:-clang}"
GO="${GO:-go}"
APT_PACKAGES=(clang lld wasi-libc libclang-rt-dev-wasm32 wabt)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'fixtures.sh: error: %s\n' "$*" >&2; exit 1; }

sysroot_flags=()
if [[ -n "${WASI_SYSROOT:-}" ]]; then
    sysroot_flags=(--sysroot="$WASI_SYSROOT")
fi

# toolchain_ok reports whether everything needed to build the fixtures is
# installed: clang that can link wasm32-wasi commands (wasm-ld, wasi-libc,
# compiler-rt builtins for wasm32) and wabt.
toolchain_ok() {
    command -v "$CC_WASM" >/dev/null 2>&1 || return 1
    command -v wasm-ld >/dev/null 2>&1 || return 1
    command -v wat2wasm >/dev/null 2>&1 || return 1
    command -v wasm-strip >/dev/null 2>&1 || return 1
    command -v wasm-validate >/dev/null 2>&1 || return 1
    # wasi-libc: clang prints a full path only if it finds the file.
    local libc
    libc="$("$CC_WASM" --target=wasm32-wasi "${sysroot_flags[@]}" -print-file-name=libc.a 2>/dev/null)" || return 1
    [[ "$libc" == /* && -f "$libc" ]] || return 1
    # compiler-rt builtins for wasm32.
    local rt
    rt="$("$CC_WASM" --target=wasm32-wasi "${sysroot_flags[@]}" -print-libgcc-file-name 2>/dev/null)" || return 1
    [[ -f "$rt" ]] || return 1
}

install_toolchain() {
    command -v apt-get >/dev/null 2>&1 ||
        die "missing WASM toolchain and apt-get is not available; install: ${APT_PACKAGES[*]}"
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing WASM toolchain; run as root or install: ${APT_PACKAGES[*]}"
        sudo=(sudo)
    fi
    log "installing ${APT_PACKAGES[*]}"
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
}

if ! toolchain_ok; then
    install_toolchain
    toolchain_ok || die "WASM toolchain still incomplete after installing ${APT_PACKAGES[*]}"
fi
command -v "$GO" >/dev/null 2>&1 || die "go not found (needed for the Go fixtures)"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

build_c() { # name src
    log "clang  $2 -> $1.wasm"
    "$CC_WASM" --target=wasm32-wasi "${sysroot_flags[@]}" \
        -std=c11 -O2 -Wall -Wextra -Werror \
        -Wl,--strip-all \
        -o "$TMP/$1.wasm" "$2"
}

build_wat() { # name src
    log "wat2wasm $2 -> $1.wasm"
    # No --debug-names: the output carries no custom sections.
    wat2wasm -o "$TMP/$1.wasm" "$2"
}

build_go() { # name pkgdir
    log "go build ./$2 -> $1.wasm"
    GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 GOFLAGS='' \
        "$GO" build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' \
        -o "$TMP/$1.wasm" "./$2"
}

shopt -s nullglob
built=()
for src in "$SRC_DIR"/*.c; do
    name="$(basename "$src" .c)"
    build_c "$name" "$src"
    built+=("$name")
done
for src in "$SRC_DIR"/*.wat; do
    name="$(basename "$src" .wat)"
    build_wat "$name" "$src"
    built+=("$name")
done
for main in "$SRC_DIR"/*/main.go; do
    dir="$(dirname "$main")"
    name="$(basename "$dir")"
    build_go "$name" "$dir"
    built+=("$name")
done
[[ ${#built[@]} -gt 0 ]] || die "no fixture sources found in $SRC_DIR"

dups="$(printf '%s\n' "${built[@]}" | sort | uniq -d)"
[[ -z "$dups" ]] || die "fixture name(s) defined by more than one source: $dups"

# Drop every custom section (names, producers, go:buildid, ...) so the bytes
# depend only on the code and toolchain versions, then validate.
for name in "${built[@]}"; do
    wasm-strip "$TMP/$name.wasm"
    wasm-validate "$TMP/$name.wasm"
    chmod 0644 "$TMP/$name.wasm"
done

# Everything built: replace the old outputs (removing stale fixtures too).
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/*.wasm
for name in "${built[@]}"; do
    mv "$TMP/$name.wasm" "$OUT_DIR/$name.wasm"
done

log "built ${#built[@]} fixtures into $OUT_DIR:"
(cd "$OUT_DIR" && for name in "${built[@]}"; do
    printf '    %-10s %8d bytes\n' "$name" "$(wc -c <"$name.wasm")"
done) >&2
