#!/usr/bin/env bash
# Builds the wasi-infer container image from what is already built in this
# checkout: target/release/wasi-infer, the components spin.toml names, models/
# and the native libraries in .deps/. It runs no cargo build.
#
#   deploy/container/build.sh [BUILD ARGS...]
#
# BUILD ARGS go to `podman build` / `docker build` as they are, e.g.
# `--build-arg BASE=localhost/wasi-infer-base:bookworm` or `-t other:tag`.
# Environment: IMAGE (the tag; default localhost/wasi-infer:latest),
# CONTAINER_ENGINE (podman or docker; default podman when installed),
# CONTEXT_DIR (where the build context is staged; default
# target/container-context).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
image="${IMAGE:-localhost/wasi-infer:latest}"
context="${CONTEXT_DIR:-$root/target/container-context}"

die() { echo "build.sh: $*" >&2; exit 1; }

if [ -n "${CONTAINER_ENGINE:-}" ]; then
    engine="$CONTAINER_ENGINE"
elif command -v podman >/dev/null; then
    engine=podman
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
else
    die "neither podman nor a running docker found (set CONTAINER_ENGINE)"
fi

# The repository root as a build context would send gigabytes (target/), so
# the image's files are staged in a small directory of their own.
binary=target/release/wasi-infer
[ -x "$binary" ] || die "$binary is missing: run cargo build --release first"
for lib in .deps/onnxruntime/libonnxruntime.so .deps/openvino/libopenvino_c.so; do
    [ -e "$lib" ] || die "$lib is missing: run host/scripts/fetch-onnxruntime.sh and host/scripts/fetch-openvino.sh"
done

# The components the manifest names, and nothing else from target/. The
# image serves spin.toml unchanged, so they keep their relative paths. The
# only directory the manifest mounts must be models/, which has a layer of
# its own.
listed="$(python3 - spin.toml <<'PY'
import sys, tomllib
manifest = tomllib.load(open(sys.argv[1], "rb"))
for name, component in manifest.get("component", {}).items():
    print(component["source"])
    for mount in component.get("files", []):
        source = mount["source"] if isinstance(mount, dict) else mount
        if source.rstrip("/") != "models":
            sys.exit(f"component {name} mounts {source!r}: build.sh copies only models/")
PY
)" || die "cannot read spin.toml"
mapfile -t sources <<<"$listed"
[ -n "$listed" ] || die "spin.toml names no component"
for source in "${sources[@]}"; do
    [ -f "$source" ] || die "$source (named in spin.toml) is missing: run cargo build --release first"
done

rm -rf "$context"
mkdir -p "$context/app" "$context/lib"
# Stripped: the debug info is most of the binary's size (panics then show
# no function names).
strip -o "$context/wasi-infer" "$binary"
# Timestamps kept, so that an unchanged file stays the same to the
# engine's layer cache.
touch -r "$binary" "$context/wasi-infer"
cp -p spin.toml "$context/app/"
for source in "${sources[@]}"; do
    mkdir -p "$context/app/$(dirname "$source")"
    cp -p "$source" "$context/app/$source"
done
cp -a models "$context/models"
cp -a .deps/onnxruntime .deps/openvino "$context/lib/"
# The Intel GPU plugin (42 MB) needs an OpenCL driver and /dev/dri, which a
# container does not have unless it is built for them; CPU is the default.
rm -f "$context/lib/openvino/libopenvino_intel_gpu_plugin.so"
# Readable by the runtime user whatever the umask here was; writable by no one
# but root in the image.
chmod -R u+rwX,go+rX,go-w "$context"

echo "build.sh: context $context ($(du -sh "$context" | cut -f1)); building $image with $engine" >&2
exec "$engine" build -f "$root/deploy/container/Containerfile" -t "$image" "$@" "$context"
