#!/usr/bin/env bash
# Rebuilds flite.wasm and voices.tar.gz in this directory from the source of
# Debian's flite 2.2-5 package (see README.md). `make test` does not run it:
# the two outputs are checked in.
#
#   flite.wasm      flite 2.2 for wasm32-wasi (clang, wasi-libc), with the
#                   8 kHz diphone voice cmu_us_kal built in
#   voices.tar.gz   cmu_us_slt.flitevox, flite's 16 kHz clustergen voice as a
#                   file flite loads with -voice, dumped by a native build of
#                   the same source, as a tar for PUT /v1/modules/{id}/assets
#
# Usage (from anywhere):  bash platformtest/testdata/flite/build.sh
#
# Needs Debian 12 (bookworm) packages: clang lld wasi-libc
# libclang-rt-dev-wasm32 llvm (llvm-strip), gcc, make, patch and curl; it
# installs the missing ones with apt-get. The same package versions give
# byte-identical outputs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ORIG=flite_2.2.orig.tar.gz
# The checksums flite_2.2-5.dsc gives for it.
ORIG_SHA256=ab1555fe5adc3f99f1d4a1a0eb1596d329fd6d74f1464a0097c81f53c0cf9e5c
ORIG_SHA1=687cace51875b15d2f10dba0732dfc0634571bb8
ORIG_URLS=(
  "http://deb.debian.org/debian/pool/main/f/flite/$ORIG"
  "https://snapshot.debian.org/file/$ORIG_SHA1" # once the pool no longer has it
)
APT_PACKAGES=(clang lld wasi-libc libclang-rt-dev-wasm32 llvm gcc make patch curl)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

missing=()
for tool in clang wasm-ld llvm-strip gcc make patch curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ -f /usr/include/wasm32-wasi/stdio.h ]] || missing+=(wasi-libc)
[[ -n "$(find /usr/lib/llvm-*/lib/clang -path '*wasi*' -name 'libclang_rt.builtins-wasm32.a' 2>/dev/null)" ]] || missing+=(libclang-rt-dev-wasm32)
if ((${#missing[@]})); then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}; install ${APT_PACKAGES[*]} (Debian names)"
  log "installing ${APT_PACKAGES[*]}"
  sudo=(); [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log "fetching $ORIG"
for url in "${ORIG_URLS[@]}"; do
  if curl -fsSL -o "$WORK/$ORIG" "$url"; then break; fi
  rm -f "$WORK/$ORIG"
done
[[ -f "$WORK/$ORIG" ]] || die "could not download $ORIG"
echo "$ORIG_SHA256  $WORK/$ORIG" | sha256sum -c --quiet - || die "$ORIG does not have the expected SHA-256"

# unpack DIR: a patched source tree in $WORK/DIR.
unpack() {
  mkdir -p "$WORK/$1"
  tar -xzf "$WORK/$ORIG" -C "$WORK/$1" --strip-components=1
  patch -s -d "$WORK/$1" -p1 <"$HERE/wasi.patch"
}

# flite.wasm: US English, the cmulex lexicon and the cmu_us_kal voice. The
# configure script does not know wasm32, so it is told a CPU and OS that
# select nothing (no audio device, no mmap); the compiler flags target WASI.
log "building flite for wasm32-wasi"
unpack wasm
printf 'LEXES = cmulex\nLANGS = usenglish\nVOXES = cmu_us_kal\nEXTRABINS =\n' >"$WORK/wasm/config/wasi.lv"
(
  cd "$WORK/wasm"
  ./configure --build=x86_64-pc-linux-gnu --host=i686-pc-none --with-langvox=wasi \
    --with-audio=none --with-mmap=none --disable-shared \
    CC=clang AR=llvm-ar RANLIB=llvm-ranlib \
    CFLAGS='--target=wasm32-wasi -nostdlibinc -isystem /usr/include/wasm32-wasi -O2 -DCST_NO_SOCKETS' \
    LDFLAGS='--target=wasm32-wasi' >configure.log 2>&1 || { tail -n 30 configure.log >&2; exit 1; }
  make -j"$(nproc)" >make.log 2>&1 || { grep -E 'error|Error' make.log | head -n 30 >&2; exit 1; }
)
# All custom sections (names, debug information) out: the bytes then depend
# only on the source and the toolchain's versions.
llvm-strip -o "$HERE/flite.wasm" "$WORK/wasm/bin/flite"
chmod 644 "$HERE/flite.wasm"

# voices.tar.gz: a native build with cmu_us_slt built in dumps it to a file
# (the same bytes as the WebAssembly build would write).
log "building flite natively to dump cmu_us_slt"
unpack native
printf 'LEXES = cmulex\nLANGS = usenglish\nVOXES = cmu_us_slt\nEXTRABINS =\n' >"$WORK/native/config/wasi.lv"
(
  cd "$WORK/native"
  ./configure --with-langvox=wasi --with-audio=none --disable-shared >configure.log 2>&1 || { tail -n 30 configure.log >&2; exit 1; }
  make -j"$(nproc)" >make.log 2>&1 || { grep -E 'error|Error' make.log | head -n 30 >&2; exit 1; }
)
mkdir "$WORK/voices"
"$WORK/native/bin/flite" -voice slt -voicedump "$WORK/voices/cmu_us_slt.flitevox"
tar -C "$WORK/voices" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=a+r,u+w,go-w \
  --format=ustar -cf - cmu_us_slt.flitevox | gzip -9n >"$HERE/voices.tar.gz"

cp "$WORK/wasm/COPYING" "$HERE/COPYING"
cp /usr/share/doc/wasi-libc/copyright "$HERE/COPYING.wasi-libc"

log "done"
(cd "$HERE" && sha256sum flite.wasm voices.tar.gz && wc -c flite.wasm voices.tar.gz)
