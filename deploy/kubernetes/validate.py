"""Validates rendered Kubernetes manifests, one document at a time.

Run by validate.sh with the venv's Python:

    validate.py --kubernetes-version 1.30 --schemas DIR --work DIR NAME=FILE...

Each FILE is one `kubectl kustomize` rendering. Every document in it is
checked, and a document passes only if every check of it passes:

* a core or other built-in kind: `kubernetes-validate --strict` against the
  given Kubernetes version (an unknown apiVersion/kind fails: it would
  otherwise go unchecked);
* a KServe kind (serving.kserve.io): `check-jsonschema` against its schema in
  DIR, and the Kubernetes objects inside it (containers, volumes, pod fields)
  by `kubernetes-validate --strict`, as a core v1 Pod;
* a ConfigMap holding a spin.toml: the manifest parses as TOML and its
  component sources and mounted directories are absolute paths (a relative
  one would be read beside the mounted file, where nothing else is).

Prints each rendering, each document and its result; on a failure, what the
validator said. Exits 1 if any document failed.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib

import yaml
from kubernetes_validate import utils as kv_utils

KSERVE_GROUP = "serving.kserve.io"
KSERVE_SCHEMAS = {
    "ClusterServingRuntime": "clusterservingruntime.schema.json",
    "InferenceService": "inferenceservice.schema.json",
}
# The ModelSpec fields that are KServe's own, not a container's.
KSERVE_MODEL_FIELDS = {
    "modelFormat",
    "protocolVersion",
    "runtime",
    "runtimeVersion",
    "storage",
    "storageUri",
}


class Check:
    """One validator's verdict on one document."""

    def __init__(self, label):
        self.label = label
        self.ok = None
        self.output = []

    def fail(self, line):
        self.ok = False
        self.output.append(line)


class Document:
    def __init__(self, rendering, index, body):
        self.body = body
        kind = body.get("kind", "?") if isinstance(body, dict) else "?"
        name = (body.get("metadata") or {}).get("name", "?") if isinstance(body, dict) else "?"
        self.id = f"{kind}/{name}"
        slug = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{index:02d}-{kind}-{name}").lower()
        self.slug = slug
        self.rendering = rendering
        self.checks = []

    @property
    def ok(self):
        return bool(self.checks) and all(c.ok for c in self.checks)


def write_yaml(path, body):
    with open(path, "w") as f:
        yaml.safe_dump(body, f, sort_keys=False)


def pod_spec_fields(version):
    """The field names of a core v1 PodSpec in the strict schemas of `version`."""
    directory = f"v{version}.0-local-strict" if version.count(".") == 1 else f"v{version}-local-strict"
    defs = kv_utils.schema_contents(f"kubernetes-json-schema/{directory}/_definitions.json", version)
    return set(defs["$defs"]["io.k8s.api.core.v1.PodSpec"]["properties"])


def embedded_pod(doc, pod_fields):
    """The Kubernetes objects inside a KServe resource, as a core v1 Pod."""
    body = doc.body
    spec = body.get("spec") or {}
    name = f"{body['metadata']['name']}-as-pod"
    if body["kind"] == "ClusterServingRuntime":
        pod = {key: spec[key] for key in ("containers", "volumes", "nodeSelector", "affinity",
                                          "tolerations", "imagePullSecrets", "hostIPC") if key in spec}
    elif body["kind"] == "InferenceService":
        predictor = spec.get("predictor") or {}
        pod = {key: value for key, value in predictor.items() if key in pod_fields}
        model = predictor.get("model")
        containers = list(pod.get("containers") or [])
        if model is not None:
            container = {k: v for k, v in model.items() if k not in KSERVE_MODEL_FIELDS}
            container.setdefault("name", "kserve-container")
            containers.insert(0, container)
        pod["containers"] = containers
    else:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod}


def check_spin_toml(doc):
    data = doc.body.get("data") or {}
    if "spin.toml" not in data:
        return None
    check = Check("spin.toml: TOML, absolute paths")
    try:
        manifest = tomllib.loads(data["spin.toml"])
    except tomllib.TOMLDecodeError as e:
        check.fail(f"spin.toml is not TOML: {e}")
        return check
    for cid, component in (manifest.get("component") or {}).items():
        paths = [("source", component.get("source"))]
        for mount in component.get("files") or []:
            paths.append(("files", mount.get("source") if isinstance(mount, dict) else mount))
        for key, path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                check.fail(f"component.{cid}.{key} = {path!r}: not an absolute path")
    if check.ok is None:
        check.ok = True
    return check


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    return result.returncode, (result.stdout + result.stderr).splitlines()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("--schemas", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("renderings", nargs="+", metavar="NAME=FILE")
    args = parser.parse_args()
    version = args.kubernetes_version
    bindir = os.path.dirname(sys.executable)
    kubernetes_validate = os.path.join(bindir, "kubernetes-validate")
    check_jsonschema = os.path.join(bindir, "check-jsonschema")
    pod_fields = pod_spec_fields(version)
    kv_label = f"kubernetes-validate --strict, Kubernetes {version}"

    all_docs = []
    for rendering in args.renderings:
        name, _, path = rendering.partition("=")
        workdir = os.path.join(args.work, re.sub(r"[^A-Za-z0-9.-]+", "-", name))
        os.makedirs(workdir, exist_ok=True)
        with open(path) as f:
            bodies = [b for b in yaml.safe_load_all(f) if b is not None]
        docs = [Document(name, i + 1, body) for i, body in enumerate(bodies)]
        all_docs.extend(docs)

        # Files for kubernetes-validate, each with the check it decides.
        kv_files = {}
        for doc in docs:
            body = doc.body
            if not isinstance(body, dict) or "apiVersion" not in body or "kind" not in body:
                check = Check("a Kubernetes object")
                check.fail("not an object with apiVersion and kind")
                doc.checks.append(check)
                continue
            group = body["apiVersion"].split("/")[0] if "/" in body["apiVersion"] else ""
            if group == KSERVE_GROUP:
                schema = KSERVE_SCHEMAS.get(body["kind"])
                check = Check(f"check-jsonschema {schema or '(no schema)'}")
                doc.checks.append(check)
                if schema is None:
                    check.fail(f"no schema in {args.schemas} for {body['kind']}")
                    continue
                file = os.path.join(workdir, doc.slug + ".yaml")
                write_yaml(file, body)
                schemafile = os.path.join(args.schemas, schema)
                rc, out = run([check_jsonschema, "--schemafile", schemafile, file])
                check.ok = rc == 0
                if not check.ok:
                    check.output = out
                pod = embedded_pod(doc, pod_fields)
                if pod is not None:
                    file = os.path.join(workdir, doc.slug + ".as-pod.yaml")
                    write_yaml(file, pod)
                    check = Check(f"its pod fields as a v1 Pod: {kv_label}")
                    doc.checks.append(check)
                    kv_files[file] = check
            else:
                file = os.path.join(workdir, doc.slug + ".yaml")
                write_yaml(file, body)
                check = Check(kv_label)
                doc.checks.append(check)
                kv_files[file] = check
                if body["kind"] == "ConfigMap":
                    toml_check = check_spin_toml(doc)
                    if toml_check is not None:
                        doc.checks.append(toml_check)

        if kv_files:
            rc, out = run([kubernetes_validate, "--strict", "-k", version, *kv_files])
            for line in out:
                for file, check in kv_files.items():
                    if f" {file} " in f" {line} ":
                        if line.startswith("INFO ") and " passed for resource " in line:
                            if check.ok is None:
                                check.ok = True
                        else:
                            # ERROR, WARN (no schema: an unknown apiVersion or kind), FATAL
                            check.fail(line)
            for file, check in kv_files.items():
                if check.ok is None:
                    check.fail(f"kubernetes-validate said nothing about {file} (exit {rc})")
                    check.output.extend(out)

        print(f"== {name} ({path}): {len(docs)} documents")
        for doc in docs:
            for check in doc.checks:
                result = "PASS" if check.ok else "FAIL"
                print(f"  {result}  {doc.id:<44} {check.label}")
                for line in check.output:
                    print(f"          | {line}")

    passed = sum(doc.ok for doc in all_docs)
    failed = len(all_docs) - passed
    print(f"{len(args.renderings)} renderings, {len(all_docs)} documents, validated against "
          f"Kubernetes {version} and KServe v0.15 CRD schemas")
    print(f"manifests: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
