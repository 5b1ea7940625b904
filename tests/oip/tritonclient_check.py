#!/usr/bin/env python3
"""Talks to wasi-infer's Open Inference Protocol (docs/open-inference.md) with
NVIDIA's own client, tritonclient[http], the way a Triton user would.

    python tests/oip/tritonclient_check.py 127.0.0.1:3000

The argument is host:port without a scheme (tritonclient refuses one). Every
check prints one line with what it saw; the first check that fails prints
FAILED with the reason and the script exits 1 (2 when the server cannot be
reached at all). tests/e2e/open_inference.rs runs it against a fresh server;
tests/run.sh installs its requirements (tests/oip/requirements.txt).
"""

import json
import sys
import traceback
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "data" / "images"
PHOTOS = ["chelsea.png", "grace_hopper.jpg"]
CLASSIFIER = "efficientnet-lite0"
CLASSIFIER_INT8 = "efficientnet-lite0-int8"
EMBEDDER = "all-minilm-l6-v2"
# "hello world" in all-MiniLM-L6-v2's WordPiece vocabulary: [CLS] hello world [SEP].
TOKEN_IDS = [101, 7592, 2088, 102]
# The int8 classifier is held to the fp32 reference's top-1 only where that
# reference is decisive (as in tests/e2e/conformance.rs): int8 kernels round
# differently on each backend, and on a close call may swap the first two.
DECISIVE_MARGIN = 0.1


class Failure(Exception):
    pass


class Checks:
    def __init__(self):
        self.passed = 0

    def ok(self, what, condition, seen):
        """One check: prints `ok  what: seen`, or raises Failure."""
        if not condition:
            raise Failure(f"{what}: {seen}")
        self.passed += 1
        print(f"ok    {what}: {seen}", flush=True)


def reference():
    """reference-top5.json: photo -> [[index, label, probability], ...] (fp32 model)."""
    with open(IMAGES / "reference-top5.json") as f:
        return json.load(f)


def labels():
    with open(ROOT / "models" / CLASSIFIER / "labels.txt") as f:
        return [line.split(",")[0].strip() for line in f]


def preprocess(path):
    """models/efficientnet-lite0/model.toml's [preprocess]: resize the shorter
    side to 256 (bilinear), centre crop 224x224, (pixel - 127) / 128, NCHW,
    batch 1, float32.

    Rounded as reference-top5.json was made (which this reproduces to its four
    decimals): the longer side to the nearest pixel (half up), the crop's
    offset down (chelsea.png: 451x300 -> 385x256, crop from x = 80)."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    short = min(width, height)
    size = (int(width * 256 / short + 0.5), int(height * 256 / short + 0.5))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left = (size[0] - 224) // 2
    top = (size[1] - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    pixels = (np.asarray(image, dtype=np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)


def describe(tensors):
    return ", ".join(f"{t['name']} {t['datatype']} {t['shape']}" for t in tensors)


def softmax(logits):
    e = np.exp(logits - logits.max())
    return e / e.sum()


def expect_error(checks, what, status, needles, call):
    """`call` must raise InferenceServerException with HTTP `status` and a
    message that contains one of `needles`."""
    try:
        call()
    except InferenceServerException as e:
        message = e.message() or ""
        checks.ok(
            what,
            e.status() == str(status) and any(n in message for n in needles),
            f"[{e.status()}] {message!r} (expected {status}, naming one of {needles})",
        )
        return
    raise Failure(f"{what}: no error (expected {status})")


def check_server(checks, client):
    checks.ok("is_server_live()", client.is_server_live() is True, True)
    checks.ok("is_server_ready()", client.is_server_ready() is True, True)
    meta = client.get_server_metadata()
    extensions = meta.get("extensions", [])
    checks.ok(
        "get_server_metadata()",
        meta.get("name") == "wasi-infer"
        and isinstance(meta.get("version"), str)
        and meta["version"] != ""
        and "binary_tensor_data" in extensions,
        f"name={meta.get('name')!r} version={meta.get('version')!r} extensions={extensions}",
    )


def check_model(checks, client, name):
    """is_model_ready and get_model_metadata; returns the metadata."""
    checks.ok(f"is_model_ready({name!r})", client.is_model_ready(name) is True, True)
    meta = client.get_model_metadata(name)
    versions = meta.get("versions") or []
    checks.ok(
        f"get_model_metadata({name!r})",
        meta.get("name") == name
        and len(versions) >= 1
        and all(isinstance(v, str) for v in versions)
        and meta.get("inputs")
        and meta.get("outputs"),
        f"platform={meta.get('platform')!r} versions={versions} "
        f"inputs [{describe(meta.get('inputs', []))}] outputs [{describe(meta.get('outputs', []))}]",
    )
    # The same, asking for the version by number.
    checks.ok(
        f"is_model_ready({name!r}, model_version={versions[0]!r})",
        client.is_model_ready(name, model_version=versions[0]) is True,
        True,
    )
    return meta


def classifier_io(checks, name, meta):
    """The classifier's one FP32 image input [N, 3, 224, 224] and its FP32
    [N, 1000] output `logits`, as the metadata states them. The batch N is -1
    (dynamic) in the ONNX files; the int8 model's OpenVINO IR, which OpenVINO
    serves when it wins the start-up trial, fixes it at 1."""
    inputs, outputs = meta["inputs"], meta["outputs"]

    def batched(shape, rest):
        return shape[1:] == rest and shape[0] in (-1, 1)

    input_ok = (
        len(inputs) == 1
        and inputs[0]["datatype"] == "FP32"
        and batched(inputs[0]["shape"], [3, 224, 224])
    )
    logits = [o for o in outputs if o["name"] == "logits"]
    output_ok = (
        len(logits) == 1
        and logits[0]["datatype"] == "FP32"
        and batched(logits[0]["shape"], [1000])
    )
    checks.ok(
        f"{name} takes FP32 [N, 3, 224, 224], answers logits FP32 [N, 1000]",
        input_ok and output_ok,
        f"input {inputs[0]['name']!r} {inputs[0]['shape']}, "
        f"outputs {[(o['name'], o['shape']) for o in outputs]} (platform {meta['platform']})",
    )
    return inputs[0]["name"]


def classify(client, model, input_name, x, binary, request_id, model_version=""):
    """One inference; returns (logits as float32 [1000], the response dict)."""
    tensor = httpclient.InferInput(input_name, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    result = client.infer(
        model,
        [tensor],
        model_version=model_version,
        outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary)],
        request_id=request_id,
    )
    logits = result.as_numpy("logits")
    if logits is None or logits.shape != (1, 1000) or logits.dtype != np.float32:
        raise Failure(
            f"{model} {request_id}: logits should be float32 (1, 1000), got "
            f"{None if logits is None else (logits.dtype, logits.shape)}"
        )
    return logits[0], result.get_response()


def check_classifier(checks, client, meta, photos, names):
    input_name = classifier_io(checks, CLASSIFIER, meta)
    version = meta["versions"][0]
    for photo, x in photos.items():
        expected = reference()[photo][0][0]
        runs = {}
        for binary in (False, True):
            kind = "binary" if binary else "JSON"
            request_id = f"{photo}/{kind}"
            # The binary run names the version, the JSON run does not.
            logits, response = classify(
                client, CLASSIFIER, input_name, x, binary, request_id,
                model_version=version if binary else "",
            )
            output = next(o for o in response["outputs"] if o["name"] == "logits")
            parameters = output.get("parameters") or {}
            if binary:
                form_ok = parameters.get("binary_data_size") == 4000 and "data" not in output
                form = f"binary_data_size={parameters.get('binary_data_size')}"
            else:
                form_ok = "binary_data_size" not in parameters and len(output.get("data", [])) == 1000
                form = f"{len(output.get('data', []))} JSON numbers"
            top = int(np.argmax(logits))
            p = float(softmax(logits)[top])
            checks.ok(
                f"infer {CLASSIFIER} {photo} ({kind} tensors)",
                top == expected
                and response.get("id") == request_id
                and response.get("model_name") == CLASSIFIER
                and form_ok,
                f"top-1 {top} {names[top]!r} p={p:.4f} (reference {expected}); "
                f"id={response.get('id')!r} (sent {request_id!r}); "
                f"model_name={response.get('model_name')!r} model_version={response.get('model_version')!r}; "
                f"logits as {form}",
            )
            runs[kind] = logits
        diff = float(np.max(np.abs(runs["JSON"] - runs["binary"])))
        checks.ok(
            f"{CLASSIFIER} {photo}: JSON and binary logits agree",
            diff <= 1e-4,
            f"max |difference| = {diff:.2e}",
        )


def check_classifier_int8(checks, client, meta, photos, names):
    input_name = classifier_io(checks, CLASSIFIER_INT8, meta)
    for photo, x in photos.items():
        top5 = reference()[photo]
        decisive = top5[0][2] - top5[1][2] >= DECISIVE_MARGIN
        allowed = [top5[0][0]] if decisive else [c[0] for c in top5[:3]]
        logits, response = classify(
            client, CLASSIFIER_INT8, input_name, x, True, f"{photo}/int8"
        )
        top = int(np.argmax(logits))
        checks.ok(
            f"infer {CLASSIFIER_INT8} {photo} (binary tensors)",
            top in allowed and response.get("id") == f"{photo}/int8",
            f"top-1 {top} {names[top]!r} p={float(softmax(logits)[top]):.4f}; "
            f"fp32 reference {'top-1' if decisive else 'top-3 (not decisive)'} {allowed}",
        )


def check_embedder(checks, client, meta):
    inputs, outputs = meta["inputs"], meta["outputs"]
    values = {
        "input_ids": TOKEN_IDS,
        "attention_mask": [1] * len(TOKEN_IDS),
        "token_type_ids": [0] * len(TOKEN_IDS),
    }
    names = [i["name"] for i in inputs]
    embedding = [o for o in outputs if o["name"] == "sentence_embedding"]
    checks.ok(
        f"{EMBEDDER} takes INT64 [-1, -1] token ids, answers sentence_embedding FP32 [-1, 384]",
        sorted(names) == sorted(values)
        and all(i["datatype"] == "INT64" and i["shape"] == [-1, -1] for i in inputs)
        and len(embedding) == 1
        and embedding[0]["datatype"] == "FP32"
        and embedding[0]["shape"] == [-1, 384],
        f"inputs {names}, outputs {[o['name'] for o in outputs]}",
    )

    def tensors(binary):
        # In the order the metadata lists them.
        result = []
        for name in names:
            data = np.array([values[name]], dtype=np.int64)
            tensor = httpclient.InferInput(name, list(data.shape), "INT64")
            tensor.set_data_from_numpy(data, binary_data=binary)
            result.append(tensor)
        return result

    # JSON in, only sentence_embedding out, as JSON.
    result = client.infer(
        EMBEDDER,
        tensors(False),
        outputs=[httpclient.InferRequestedOutput("sentence_embedding", binary_data=False)],
        request_id="hello-world",
    )
    returned = [o["name"] for o in result.get_response()["outputs"]]
    vector = result.as_numpy("sentence_embedding")
    norm = float(np.linalg.norm(vector)) if vector is not None else float("nan")
    checks.ok(
        f"infer {EMBEDDER} INT64 {TOKEN_IDS} (JSON tensors, outputs=[sentence_embedding])",
        vector is not None
        and vector.shape == (1, 384)
        and abs(norm - 1.0) < 1e-3
        and returned == ["sentence_embedding"],
        f"outputs {returned}; sentence_embedding {None if vector is None else list(vector.shape)}, "
        f"L2 norm {norm:.6f}; id={result.get_response().get('id')!r}",
    )

    # Binary in, no outputs named: tritonclient then asks for every output,
    # in binary (the request parameter binary_data_output).
    result = client.infer(EMBEDDER, tensors(True))
    returned = {o["name"]: o for o in result.get_response()["outputs"]}
    hidden = result.as_numpy("last_hidden_state")
    again = result.as_numpy("sentence_embedding")
    cos = (
        float(np.dot(vector[0], again[0]) / (np.linalg.norm(vector) * np.linalg.norm(again)))
        if again is not None and again.shape == (1, 384)
        else float("nan")
    )
    checks.ok(
        f"infer {EMBEDDER} (binary tensors, every output)",
        sorted(returned) == ["last_hidden_state", "sentence_embedding"]
        and all("binary_data_size" in (o.get("parameters") or {}) for o in returned.values())
        and hidden is not None
        and hidden.shape == (1, len(TOKEN_IDS), 384)
        and cos > 0.9999,
        f"outputs {sorted(returned)}; last_hidden_state "
        f"{None if hidden is None else list(hidden.shape)}; "
        f"cosine with the JSON run's embedding {cos:.6f}",
    )


def check_errors(checks, client, input_name):
    missing = "no-such-model"
    checks.ok(
        f"is_model_ready({missing!r})", client.is_model_ready(missing) is False, False
    )
    x = np.zeros((1, 3, 224, 224), dtype=np.float32)

    def infer_missing():
        tensor = httpclient.InferInput(input_name, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        client.infer(missing, [tensor])

    expect_error(checks, f"infer on {missing!r}", 404, [missing], infer_missing)

    expect_error(
        checks,
        f"get_model_metadata({CLASSIFIER!r}, model_version='2')",
        404,
        ["2"],
        lambda: client.get_model_metadata(CLASSIFIER, model_version="2"),
    )

    def infer_int32():
        data = np.zeros((1, 3, 224, 224), dtype=np.int32)
        tensor = httpclient.InferInput(input_name, list(data.shape), "INT32")
        tensor.set_data_from_numpy(data, binary_data=True)
        client.infer(CLASSIFIER, [tensor])

    expect_error(checks, f"infer {CLASSIFIER} with INT32 {input_name!r}", 400, ["INT32", "FP32"], infer_int32)


def main():
    if len(sys.argv) != 2 or "://" in sys.argv[1]:
        print(f"usage: {sys.argv[0]} HOST:PORT   (no scheme, e.g. 127.0.0.1:3000)", file=sys.stderr)
        return 2
    url = sys.argv[1]
    print(f"tritonclient {version('tritonclient')}, numpy {np.__version__}, "
          f"Pillow {version('Pillow')}; server http://{url}", flush=True)
    checks = Checks()
    client = httpclient.InferenceServerClient(url, network_timeout=120.0)
    # What is being checked, for a failure that is not a check's own.
    doing = "connecting"
    try:
        try:
            client.is_server_live()
        except InferenceServerException:
            raise
        except Exception as e:  # socket errors: nothing listens there
            print(f"FAILED cannot reach a server at http://{url}: {type(e).__name__}: {e}")
            return 2
        doing = "the server's health and metadata"
        check_server(checks, client)
        names = labels()
        photos = {photo: preprocess(IMAGES / photo) for photo in PHOTOS}
        doing = CLASSIFIER
        meta = check_model(checks, client, CLASSIFIER)
        check_classifier(checks, client, meta, photos, names)
        doing = CLASSIFIER_INT8
        meta_int8 = check_model(checks, client, CLASSIFIER_INT8)
        check_classifier_int8(checks, client, meta_int8, photos, names)
        doing = EMBEDDER
        check_embedder(checks, client, check_model(checks, client, EMBEDDER))
        doing = "the errors"
        check_errors(checks, client, meta["inputs"][0]["name"])
    except Failure as e:
        print(f"FAILED {e}")
        return 1
    except InferenceServerException as e:
        print(f"FAILED ({doing}) the server answered an error: {e}")
        return 1
    except Exception as e:
        traceback.print_exc()
        print(f"FAILED ({doing}) {type(e).__name__}: {e}")
        return 1
    finally:
        client.close()
    print(f"all {checks.passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
