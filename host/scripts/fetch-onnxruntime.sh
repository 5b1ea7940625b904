#!/usr/bin/env bash
# Installs the ONNX Runtime shared library into .deps/onnxruntime/ from the PyPI
# wheel (no Python is needed at run time: the wheel is only unzipped).
# wasi-infer finds it there, or wherever ORT_DYLIB_PATH points.
set -euo pipefail

# The newest release, tested with `ort = "=2.0.0-rc.15"`, which is built for
# the C API of 1.31 (`api-31`): the host refuses older releases at start-up
# (ort rc.15 asks 1.22 for its execution-provider devices, and 1.22 aborts).
VERSION="${ONNXRUNTIME_VERSION:-1.32.0}"
# `onnxruntime-gpu` adds the CUDA execution provider (it needs CUDA and cuDNN
# on the machine); `device = "gpu"` in a model's [onnxruntime] uses it.
PACKAGE="${ONNXRUNTIME_PACKAGE:-onnxruntime}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.deps/onnxruntime"

if [ -f "$dest/libonnxruntime.so" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$PACKAGE $VERSION" ]; then
    echo "$PACKAGE $VERSION already in $dest"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$PACKAGE==$VERSION"
wheel="$(ls "$tmp"/*.whl)"
python3 - "$wheel" "$tmp/x" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith("onnxruntime/capi/libonnxruntime"):
            z.extract(name, sys.argv[2])
PY
rm -rf "$dest"
mkdir -p "$dest"
# The runtime, and the execution providers' libraries where the wheel has them.
cp "$tmp"/x/onnxruntime/capi/libonnxruntime* "$dest/"
lib="$(ls "$tmp"/x/onnxruntime/capi/libonnxruntime.so.* | head -n 1)"
ln -sf "$(basename "$lib")" "$dest/libonnxruntime.so.1"
ln -sf "$(basename "$lib")" "$dest/libonnxruntime.so"
echo "$PACKAGE $VERSION" > "$dest/VERSION"
echo "$PACKAGE $VERSION installed in $dest"
