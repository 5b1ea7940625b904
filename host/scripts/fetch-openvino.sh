#!/usr/bin/env bash
# Installs the OpenVINO runtime (C API, CPU/GPU/AUTO plugins, ONNX and IR readers)
# into .deps/openvino/ from the PyPI wheel (no Python is needed at run time: the
# wheel is only unzipped). wasi-infer finds it there, or through
# OPENVINO_INSTALL_DIR / LD_LIBRARY_PATH.
set -euo pipefail

VERSION="${OPENVINO_VERSION:-2026.4.1}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.deps/openvino"

if [ -f "$dest/libopenvino_c.so" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$VERSION" ]; then
    echo "openvino $VERSION already in $dest"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "openvino==$VERSION"
wheel="$(ls "$tmp"/openvino-*.whl)"
rm -rf "$dest"
mkdir -p "$dest"
# The runtime and what it loads at run time; the frameworks' frontends other
# than ONNX and IR are left out.
python3 - "$wheel" "$dest" <<'PY'
import os, re, sys, zipfile
keep = re.compile(
    r"openvino/libs/(libopenvino\.so|libopenvino_c\.so|libopenvino_(ir|onnx)_frontend\.so"
    r"|libopenvino_(intel_cpu|intel_gpu|auto|auto_batch|hetero)_plugin\.so|libtbb|libhwloc)"
)
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        if keep.match(info.filename):
            target = os.path.join(sys.argv[2], os.path.basename(info.filename))
            with z.open(info) as src, open(target, "wb") as dst:
                dst.write(src.read())
PY
# The `openvino` crate's finder looks for the unversioned name.
c_api="$(cd "$dest" && ls libopenvino_c.so.* | head -n 1)"
ln -sf "$c_api" "$dest/libopenvino_c.so"
echo "$VERSION" > "$dest/VERSION"
echo "openvino $VERSION installed in $dest"
