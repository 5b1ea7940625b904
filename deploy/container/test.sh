#!/usr/bin/env bash
# Tests the container image as a user would run it: builds a Debian base
# image and the wasi-infer image (deploy/container/build.sh), runs it with a
# read-only root filesystem, no capabilities, a memory limit and a published
# port, and checks through that port that it becomes ready, classifies a
# photo right, exports metrics and drains in-flight requests on SIGTERM.
# It compares the request latency with the same binary run outside the
# container, and prints a summary.
#
# Needs what `cargo build --release --workspace` leaves in target/ and the
# libraries in .deps/ (host/scripts/fetch-*.sh). Installs podman and the rest
# with apt-get when missing (as root). Meant for a Debian bookworm machine.
#
# Environment: IMAGE (default localhost/wasi-infer:latest), BASE_IMAGE
# (default localhost/wasi-infer-base:bookworm; built with mmdebstrap when
# podman does not have it), SUITE (default bookworm), CONTAINERS_CONF (when
# set, used instead of the one this script writes).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
image="${IMAGE:-localhost/wasi-infer:latest}"
suite="${SUITE:-bookworm}"
base_image="${BASE_IMAGE:-localhost/wasi-infer-base:$suite}"
photo=tests/data/images/grace_hopper.jpg
model=efficientnet-lite0
container="wasi-infer-test-$$"
memory=2g
# The server's default --shutdown-grace, and the drain delay this test sets
# (WASI_INFER_DRAIN_DELAY, as a Kubernetes manifest would): long enough that
# the checks made in it (a probe and one classification, well under a second)
# never outlast it on a loaded machine.
grace_s=10
drain_s=4

work="$(mktemp -d)"
bare_pid=""
started=$SECONDS

step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - started)); }

show_logs() {
    if podman container exists "$container" 2>/dev/null; then
        echo "---- container logs (last 60 lines) ----" >&2
        podman logs --tail 60 "$container" >&2 || true
    fi
    if [ -s "$work/bare.log" ]; then
        echo "---- bare server log (last 30 lines) ----" >&2
        tail -n 30 "$work/bare.log" >&2
    fi
}

fail() {
    echo "FAIL: $*" >&2
    show_logs
    exit 1
}

cleanup() {
    if [ -n "$bare_pid" ]; then kill "$bare_pid" 2>/dev/null || true; fi
    podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

millis() { date +%s%3N; }

# ---------------------------------------------------------------------------
step "tools"
# command -> Debian package. iptables: podman's CNI port mapping runs it.
# python3: build.sh reads spin.toml with it, and the JSON checks here.
declare -A packages=(
    [podman]=podman [runc]=runc [mmdebstrap]=mmdebstrap [iptables]=iptables
    [curl]=curl [python3]=python3 [strip]=binutils
)
missing=()
for command in "${!packages[@]}"; do
    command -v "$command" >/dev/null || missing+=("${packages[$command]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "missing ${missing[*]}; install them or run as root"
    echo "installing ${missing[*]}"
    # --no-install-recommends: as root podman needs neither slirp4netns,
    # fuse-overlayfs nor uidmap; the package lists are refreshed only when
    # the install cannot find something.
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$work/apt.log" 2>&1; then
        apt-get update -qq >>"$work/apt.log" 2>&1 || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$work/apt.log" 2>&1 ||
            { cat "$work/apt.log" >&2; fail "apt-get install ${missing[*]}"; }
    fi
fi
for file in target/release/wasi-infer .deps/onnxruntime/libonnxruntime.so .deps/openvino/libopenvino_c.so; do
    [ -e "$file" ] || fail "$file is missing: build first (tests/run.sh builds it and fetches the libraries)"
done

# Podman's defaults fail on this kind of machine: crun cannot set up cgroups
# in hybrid (v1) mode while runc can, and podman asks for ulimits above the
# machine's hard limits, which root in a sandbox may not raise. This file
# applies to every podman call below, builds included.
if [ -z "${CONTAINERS_CONF:-}" ]; then
    nofile="$(ulimit -Hn)"
    # Podman itself lowers its own nproc limit to 32768; more is refused.
    nproc="$(ulimit -Hu)"
    if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
    ulimits="\"nproc=$nproc:$nproc\""
    if [ "$nofile" != unlimited ]; then ulimits="\"nofile=$nofile:$nofile\", $ulimits"; fi
    cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = [$ulimits]
[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF="$work/containers.conf"
fi

# ---------------------------------------------------------------------------
step "base image $base_image"
if podman image exists "$base_image"; then
    echo "already there"
else
    # The suite's sources as this machine's apt has them (its mirror or
    # proxy); without any, mmdebstrap uses deb.debian.org.
    sources=()
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] && grep -Eq "^[^#]*\b$suite\b" "$file" && grep -Eq '^[^#]*/debian' "$file" &&
            sources+=("$file")
    done
    echo "mmdebstrap minbase $suite from ${sources[*]:-deb.debian.org}"
    # minbase has glibc and libstdc++ (apt needs it), all the native
    # libraries need. Documentation and translations are left out, as in
    # debian:bookworm-slim.
    mmdebstrap --quiet --variant=minbase \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        "$suite" - "${sources[@]}" | podman import --quiet - "$base_image" >/dev/null ||
        fail "could not build the base image with mmdebstrap"
fi

# ---------------------------------------------------------------------------
step "image $image"
IMAGE="$image" deploy/container/build.sh --build-arg "BASE=$base_image" ||
    fail "image build"

# The images earlier runs left untagged (each new binary leaves one behind).
podman image prune -f --filter label=org.opencontainers.image.title=wasi-infer >/dev/null

inspect() { podman image inspect --format "$1" "$image"; }
[ "$(inspect '{{.Config.User}}')" = "10001:10001" ] || fail "the image's user is $(inspect '{{.Config.User}}'), not 10001:10001"
[ "$(inspect '{{json .Config.Entrypoint}}')" = '["wasi-infer","serve"]' ] || fail "entrypoint $(inspect '{{json .Config.Entrypoint}}')"
# Every native library finds what it links against in the base image.
unresolved="$(podman run --rm --entrypoint sh "$image" -c \
    'ldd /usr/local/bin/wasi-infer /opt/wasi-infer/lib/*/*.so* | grep "not found"' || true)"
[ -z "$unresolved" ] || fail "libraries the base image lacks: $unresolved"

# ---------------------------------------------------------------------------
step "run"
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port="$(free_port)"
url="http://127.0.0.1:$port"

# Waits for GET $1/health/ready to answer 200; $2: a command that fails once
# the server is gone for good.
wait_ready() {
    local deadline=$((SECONDS + 90))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/health/ready")" = 200 ]; do
        "$2" || fail "the server exited before it was ready"
        [ "$SECONDS" -lt "$deadline" ] || fail "not ready within 90 s"
        sleep 0.1
    done
}
container_running() {
    [ "$(podman inspect --format '{{.State.Running}}' "$container" 2>/dev/null)" = true ]
}

# As a user would: the image's own user, entrypoint, arguments and
# environment (WASI_INFER_LISTEN=0.0.0.0:8080). --read-only-tmpfs=false: not
# even /tmp is writable, as with docker's --read-only; the server writes
# nothing (its compile cache was filled at build time).
run_start=$(millis)
podman run -d --name "$container" \
    --read-only --read-only-tmpfs=false \
    --cap-drop ALL --security-opt no-new-privileges \
    --memory "$memory" \
    -e "WASI_INFER_DRAIN_DELAY=${drain_s}s" \
    -p "127.0.0.1:$port:8080" \
    "$image" >/dev/null || fail "podman run"
started_ms=$(($(millis) - run_start))
wait_ready "$url" container_running
ready_ms=$(($(millis) - run_start))
echo "ready $ready_ms ms after podman run (which returned after $started_ms ms)"

uid="$(podman top "$container" huser | tail -n 1 | tr -d ' ')"
[ "$uid" = 10001 ] || fail "the server runs as uid $uid, not 10001"
# (grep without -q reads all its input: with pipefail, a writer cut off
# early would fail the pipeline.)
if podman logs "$container" 2>&1 | grep '"compiled":"now"' >/dev/null; then
    fail "a component was compiled at start-up: the image's compile cache was not used"
fi

# ---------------------------------------------------------------------------
step "classify $photo"
expected="$(python3 -c '
import json, sys
index, label, _ = json.load(open(sys.argv[1]))[sys.argv[2]][0]
print(index, label.split(",")[0])' tests/data/images/reference-top5.json "$(basename "$photo")")"
# Prints the top class of an answer on stdin as "index label".
top1() { python3 -c 'import json, sys; p = json.load(sys.stdin)["predictions"][0]; print(p["index"], p["label"])'; }

# What people type first: curl's --data-binary (which says
# application/x-www-form-urlencoded) and a form upload.
answer="$(curl --fail -s --data-binary "@$photo" "$url/classify/$model")" ||
    fail "POST /classify/$model"
got="$(top1 <<<"$answer")"
[ "$got" = "$expected" ] || fail "top class $got, expected $expected: $answer"
answer="$(curl --fail -s -F "file=@$photo" "$url/classify/$model")" ||
    fail "POST /classify/$model as a form upload"
[ "$(top1 <<<"$answer")" = "$expected" ] || fail "form upload: $answer"
echo "top class: $got (raw body and form upload)"

# Prints the median and 90th percentile, in ms, of 30 classifications sent
# one after another on one connection (after 5 to warm up).
latency() {
    local args=() i
    for i in $(seq 35); do args+=(-o /dev/null "$1/classify/$model"); done
    curl -s -H 'content-type: image/jpeg' --data-binary "@$photo" \
        -w '%{http_code} %{time_total}\n' "${args[@]}" >"$work/latency" || return 1
    python3 - "$work/latency" <<'PY'
import sys
lines = [line.split() for line in open(sys.argv[1])]
if len(lines) != 35 or any(code != "200" for code, _ in lines):
    sys.exit(f"not 35 answers of 200: {lines}")
times = sorted(float(t) * 1000 for _, t in lines[5:])
print(f"median {times[len(times) // 2]:.1f} ms, p90 {times[int(len(times) * 0.9)]:.1f} ms")
PY
}
container_latency="$(latency "$url")" || fail "latency run in the container"
echo "in the container: $container_latency"

# ---------------------------------------------------------------------------
step "metrics"
curl --fail -s "$url/metrics" >"$work/metrics" || fail "GET /metrics"
grep -q "^wasi_infer_requests_total{route=\"/classify/...\",component=\"image-classify\",status=\"200\"} " "$work/metrics" ||
    fail "/metrics has no wasi_infer_requests_total for the classifications: $(grep requests_total "$work/metrics")"
grep -q '^wasi_infer_ready 1' "$work/metrics" || fail "/metrics does not say wasi_infer_ready 1"
grep -E '^wasi_infer_requests_total\{route="/classify' "$work/metrics"
memory_use="$(podman stats --no-stream --format '{{.MemUsage}}' "$container")"
echo "memory: $memory_use"

# ---------------------------------------------------------------------------
step "the same binary outside the container"
# Same manifest, models, libraries and log format; its own compile cache,
# kept between runs so that a rerun starts as the image does, from the cache.
bare_cache=target/container-test/bare-cache
mkdir -p "$(dirname "$bare_cache")"
mkdir -p -m 700 "$bare_cache"
: >"$work/bare.log"
bare_start=$(millis)
ORT_DYLIB_PATH="$root/.deps/onnxruntime/libonnxruntime.so" \
OPENVINO_DYLIB_PATH="$root/.deps/openvino/libopenvino_c.so" \
WASI_INFER_LOG_FORMAT=json \
    target/release/wasi-infer serve --manifest spin.toml --listen 127.0.0.1:0 \
    --cache-dir "$bare_cache" >"$work/bare.log" 2>&1 &
bare_pid=$!
bare_running() { kill -0 "$bare_pid" 2>/dev/null; }
until grep -q '^listening on http://' "$work/bare.log"; do
    bare_running || fail "the bare server exited"
    sleep 0.05
done
bare_url="$(sed -n 's|^listening on \(http://[^ ]*\).*|\1|p' "$work/bare.log")"
wait_ready "$bare_url" bare_running
bare_ready_ms=$(($(millis) - bare_start))
[ "$(curl --fail -s -H 'content-type: image/jpeg' --data-binary "@$photo" "$bare_url/classify/$model" | top1)" = "$expected" ] ||
    fail "the bare server's top class differs"
bare_latency="$(latency "$bare_url")" || fail "latency run on the bare server"
echo "bare: ready in $bare_ready_ms ms; $bare_latency"
kill -TERM "$bare_pid"
wait "$bare_pid" || fail "the bare server exited with status $? on SIGTERM"
bare_pid=""

# Which backend each server chose for the model (timed at start-up), since
# the latencies are only comparable on the same one.
backend() { sed -n "s/.*\"message\":\"serving model\",\"model\":\"$model\",\"backend\":\"\([a-z]*\)\".*/\1/p"; }
container_backend="$(podman logs "$container" 2>&1 | backend)"
bare_backend="$(backend <"$work/bare.log")"

# ---------------------------------------------------------------------------
step "SIGTERM with 8 requests in flight"
# The uploads are throttled to ~2 s each, so that all 8 are certainly still
# in flight when SIGTERM comes 0.5 s after they start.
for i in $(seq 8); do
    (
        code="$(curl -s -o "$work/drain.$i.json" -w '%{http_code}' --limit-rate 30k \
            -H 'content-type: image/jpeg' --data-binary "@$photo" "$url/classify/$model")" || true
        echo "$code $(millis)" >"$work/drain.$i"
    ) &
done
sleep 0.5
term_at=$(millis)
podman kill --signal TERM "$container" >/dev/null || fail "podman kill --signal TERM"
# Through the drain delay: not ready (a load balancer lets go), yet serving.
sleep 0.3
ready_code="$(curl -s -o /dev/null -w '%{http_code}' "$url/health/ready")"
[ "$ready_code" = 503 ] || fail "/health/ready answered $ready_code during the drain delay, not 503"
drain_answer="$(curl --fail -s --data-binary "@$photo" "$url/classify/$model")" ||
    fail "a request sent during the drain delay was refused"
[ "$(top1 <<<"$drain_answer")" = "$expected" ] || fail "during the drain delay: $drain_answer"
exit_code="$(timeout $((drain_s + grace_s + 20)) podman wait "$container")" ||
    fail "the container did not exit within $((drain_s + grace_s + 20)) s of SIGTERM"
exited_ms=$(($(millis) - term_at))
wait
completed=0
for i in $(seq 8); do
    read -r code done_at <"$work/drain.$i"
    [ "$code" = 200 ] || fail "request $i in flight at SIGTERM got $code"
    [ "$(top1 <"$work/drain.$i.json")" = "$expected" ] || fail "request $i: wrong answer $(cat "$work/drain.$i.json")"
    [ "$done_at" -gt "$term_at" ] && completed=$((completed + 1))
done
[ "$completed" = 8 ] || fail "only $completed of 8 requests were still in flight at SIGTERM; the drain was not tested"
[ "$exit_code" = 0 ] || fail "the container exited with status $exit_code after SIGTERM"
[ "$exited_ms" -ge $((drain_s * 1000)) ] || fail "the container exited $exited_ms ms after SIGTERM, before the ${drain_s} s drain delay"
[ "$exited_ms" -le $(((drain_s + grace_s) * 1000)) ] || fail "the container took $exited_ms ms to exit, past the drain delay and grace"
echo "during the ${drain_s} s drain: /health/ready 503, a new request answered 200"
echo "8 of 8 answered 200 after SIGTERM; exit status 0, $exited_ms ms after SIGTERM"

# ---------------------------------------------------------------------------
step "one model folder, as KServe mounts it"
# The arguments deploy/kubernetes's ClusterServingRuntime gives: the model at
# /mnt/models, named by the InferenceService; here one of the image's models.
podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
podman run -d --name "$container" --read-only --read-only-tmpfs=false \
    --cap-drop ALL --security-opt no-new-privileges --memory "$memory" \
    -v "$root/models/fashion-mnist-cnn:/mnt/models:ro" \
    -p "127.0.0.1:$port:8080" \
    "$image" --models /mnt/models --model-name clothes >/dev/null || fail "podman run --models"
wait_ready "$url" container_running
metadata="$(curl --fail -s "$url/v2/models/clothes")" || fail "GET /v2/models/clothes"
python3 -c 'import json, sys; m = json.loads(sys.argv[1]); assert m["name"] == "clothes" and m["inputs"][0]["shape"] == [1, 1, 28, 28], m' "$metadata" ||
    fail "model metadata: $metadata"
echo "served /mnt/models as clothes: $metadata"
podman stop -t 15 "$container" >/dev/null

# ---------------------------------------------------------------------------
size_bytes="$(inspect '{{.Size}}')"
cat <<EOF

== summary ($((SECONDS - started)) s)
image:            $image on $base_image, $((size_bytes / 1000000)) MB
ready:            $ready_ms ms from podman run, $started_ms ms of them in podman run (read-only root, no capabilities, uid 10001, memory $memory)
answer:           $photo -> $expected
latency, $model (container: $container_backend, bare: $bare_backend):
  in container:   $container_latency
  bare server:    $bare_latency (ready in $bare_ready_ms ms)
memory in use:    $memory_use
SIGTERM:          ${drain_s} s drain (not ready, still serving), 8 in-flight requests answered 200; exit 0 in $exited_ms ms
PASS
EOF
