#!/usr/bin/env bash
# Installs the ONNX Runtime shared library into .deps/onnxruntime/ from the PyPI
# wheel (no Python is needed at run time: the wheel is only unzipped).
# wasi-infer finds it there, or wherever ORT_DYLIB_PATH points.
set -euo pipefail

# The version `ort = "=2.0.0-rc.10"` is built against.
VERSION="${ONNXRUNTIME_VERSION:-1.22.1}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.deps/onnxruntime"

if [ -f "$dest/libonnxruntime.so" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$VERSION" ]; then
    echo "onnxruntime $VERSION already in $dest"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$VERSION"
wheel="$(ls "$tmp"/onnxruntime-*.whl)"
python3 - "$wheel" "$tmp/x" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith("onnxruntime/capi/libonnxruntime"):
            z.extract(name, sys.argv[2])
PY
rm -rf "$dest"
mkdir -p "$dest"
lib="$(ls "$tmp"/x/onnxruntime/capi/libonnxruntime.so.* | head -n 1)"
cp "$lib" "$dest/"
ln -sf "$(basename "$lib")" "$dest/libonnxruntime.so.1"
ln -sf "$(basename "$lib")" "$dest/libonnxruntime.so"
echo "$VERSION" > "$dest/VERSION"
echo "onnxruntime $VERSION installed in $dest"
