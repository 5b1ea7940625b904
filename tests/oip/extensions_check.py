#!/usr/bin/env python3
"""The rest of Triton's protocol that its clients call, with tritonclient[http]
against wasi-infer's Open Inference Protocol function (docs/open-inference.md):
the model configuration, classification and statistics extensions,
compressed requests, the raw binary request, and a refused sequence_id.

    python tests/oip/extensions_check.py 127.0.0.1:3000

The server serves the repository tests/e2e/oip_extensions.rs writes: the
Fashion-MNIST CNN as `batched` (batch dimension left dynamic) and as `pinned`
(model.toml pins it to [1, 1, 28, 28]), both with their labels and
`[preprocess] layout = "nchw"`. Prints one line per check; exits 1 on the
first failure.
"""

import gzip
import json
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from checking import ok, run

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
LABELS = ROOT / "models" / "fashion-mnist-cnn" / "labels.txt"
BATCHED, PINNED = "batched", "pinned"


def refused(call):
    """The InferenceServerException `call` raises: (status, message), or None."""
    try:
        call()
    except InferenceServerException as e:
        return e.status(), e.message() or ""
    return None


def images(n):
    """The first n test images, [n, 1, 28, 28] float32, pixel / 255 as the
    model was trained (models/fashion-mnist-cnn/model.toml's [preprocess])."""
    with gzip.open(IMAGES) as f:
        data = f.read()
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16)[: n * 784]
    return (pixels.astype(np.float32) / 255.0).reshape(n, 1, 28, 28)


def infer(client, model, x, outputs=None, **options):
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    return client.infer(model, [tensor], outputs=outputs, **options)


def logits_of(client, model, x, **options):
    out = httpclient.InferRequestedOutput("logits", binary_data=True)
    return infer(client, model, x, [out], **options).as_numpy("logits")


def check_config(client, labels):
    meta = client.get_server_metadata()
    wanted = {"binary_tensor_data", "classification", "model_configuration", "statistics"}
    ok("the server names the extensions", wanted <= set(meta["extensions"]), meta["extensions"])

    # As Triton's image_client.py reads a model (parse_model): one input, one
    # FP32 output, max_batch_size > 0 means the metadata's shape has the
    # batch first and the config's dims do not; an image's format says NCHW.
    meta = client.get_model_metadata(BATCHED)
    config = client.get_model_config(BATCHED)
    inp, out = config["input"][0], config["output"][0]
    ok(
        "get_model_config(batched): a batch dimension",
        config["max_batch_size"] > 0
        and len(meta["inputs"][0]["shape"]) == 1 + len(inp["dims"])
        and inp["dims"] == [1, 28, 28]
        and inp["data_type"] == "TYPE_FP32"
        and inp["format"] == "FORMAT_NCHW"
        and out["dims"] == [10]
        and out["label_filename"] == "labels.txt",
        json.dumps(config),
    )
    config = client.get_model_config(PINNED, model_version="1")
    inp = config["input"][0]
    ok(
        "get_model_config(pinned, version 1): no batch, the full shape",
        config["max_batch_size"] == 0 and inp["dims"] == [1, 1, 28, 28] and config["name"] == PINNED,
        json.dumps(config),
    )
    ok("the labels file has a line per class", len(labels) == 10, len(labels))
    error = refused(lambda: client.get_model_config(PINNED, model_version="9"))
    ok("the config of a version not served is 404", error and error[0] == "404", error)


def check_classification(client, labels):
    x = images(4)
    logits = logits_of(client, BATCHED, x)
    ok("batched logits", logits.shape == (4, 10), logits.shape)
    for binary in (True, False):
        out = httpclient.InferRequestedOutput("logits", binary_data=binary, class_count=3)
        result = infer(client, BATCHED, x, [out])
        classes = result.as_numpy("logits")
        output = result.get_output("logits")
        rows = [[c.decode() if isinstance(c, bytes) else c for c in row] for row in classes]
        good = output["datatype"] == "BYTES" and classes.shape == (4, 3)
        for item, row in enumerate(rows):
            expected = np.argsort(-logits[item], kind="stable")[:3]
            for rank, text in enumerate(row):
                value, index, label = text.split(":", 2)
                index = int(index)
                # The value is the logit, printed as C's %f (6 decimals).
                good &= index == expected[rank]
                good &= abs(float(value) - float(logits[item][index])) <= 5e-7 + 1e-6 * abs(float(value))
                good &= label == labels[index]
        ok(
            f"class_count=3 on a batch of 4 ({'binary' if binary else 'JSON'})",
            good,
            f"{output['datatype']} {list(classes.shape)}: {rows[0]}",
        )
    out = httpclient.InferRequestedOutput("logits", binary_data=True, class_count=2)
    classes = infer(client, PINNED, x[:1], [out]).as_numpy("logits")
    ok("class_count=2 on a model without a batch: shape [2]", classes.shape == (2,), classes)


def check_compression(client):
    x = images(2)
    plain = logits_of(client, BATCHED, x)
    for algorithm in ("gzip", "deflate"):
        got = logits_of(client, BATCHED, x, request_compression_algorithm=algorithm)
        ok(
            f"request_compression_algorithm={algorithm!r}",
            np.array_equal(got, plain),
            f"logits equal to the uncompressed request's: {got[0][:3]}",
        )


def post(address, path, body, headers):
    request = urllib.request.Request(f"http://{address}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def check_raw_and_encodings(client, address):
    x = images(1)
    expected = logits_of(client, PINNED, x)[0]
    status, _, body = post(
        address,
        f"/v2/models/{PINNED}/infer",
        x.tobytes(),
        {"Inference-Header-Content-Length": "0", "Content-Type": "application/octet-stream"},
    )
    answer = json.loads(body) if status == 200 else body
    got = np.array(answer["outputs"][0]["data"], dtype=np.float32) if status == 200 else None
    ok(
        "a raw binary request (Inference-Header-Content-Length: 0)",
        status == 200 and np.allclose(got, expected, rtol=0, atol=1e-6),
        f"[{status}] logits {None if got is None else got[:3]}",
    )
    # The same, gzip-compressed: the header's 0 counts the decompressed body.
    status, _, body = post(
        address,
        f"/v2/models/{BATCHED}/infer",
        gzip.compress(x.tobytes()),
        {"Inference-Header-Content-Length": "0", "Content-Encoding": "gzip"},
    )
    ok("a raw binary request, gzip-compressed, fills the batch of 1", status == 200, f"[{status}]")
    status, headers, body = post(
        address, f"/v2/models/{PINNED}/infer", b"{}", {"Content-Encoding": "br"}
    )
    accept = {k.lower(): v for k, v in headers.items()}.get("accept-encoding")
    ok(
        "an unknown Content-Encoding is 501 with Accept-Encoding",
        status == 501 and accept == "gzip, deflate" and b"br" in body,
        f"[{status}] Accept-Encoding: {accept} {body[:120]!r}",
    )
    bomb = zlib.compress(b" " * (64 << 20))
    status, _, body = post(address, f"/v2/models/{PINNED}/infer", bomb, {"Content-Encoding": "deflate"})
    ok(
        f"a {len(bomb)}-byte body that inflates past the body limit is 413",
        status == 413 and b"expands to more than" in body,
        f"[{status}] {body[:160]!r}",
    )


def check_sequence(client):
    x = images(1)
    error = refused(lambda: infer(client, PINNED, x, sequence_id=42, sequence_start=True))
    ok(
        "sequence_id=42 is refused with a message",
        error is not None and error[0] == "400" and "sequence_id" in error[1],
        error,
    )


def check_statistics(client):
    def stats(version=""):
        answer = client.get_inference_statistics(BATCHED, model_version=version)
        (row,) = answer["model_stats"]
        return row

    before = stats()
    for batch in (1, 3):
        logits_of(client, BATCHED, images(batch))
    # Past the server's --max-batch (the config's max_batch_size): the host
    # refuses it where compute meets the model, which counts as a failure.
    too_many = client.get_model_config(BATCHED)["max_batch_size"] + 1
    error = refused(lambda: logits_of(client, BATCHED, np.zeros((too_many, 1, 28, 28), np.float32)))
    ok(f"a batch of {too_many} is refused", error is not None and error[0] == "413", error)
    after = stats("1")
    s, b = after["inference_stats"], before["inference_stats"]
    ok(
        "get_inference_statistics(batched, version 1): two executions of four inferences",
        after["version"] == "1"
        and after["execution_count"] - before["execution_count"] == 2
        and after["inference_count"] - before["inference_count"] == 4
        and s["success"]["count"] - b["success"]["count"] == 2
        and s["fail"]["count"] - b["fail"]["count"] == 1
        and s["compute_infer"]["count"] - b["compute_infer"]["count"] == 2
        and s["compute_infer"]["ns"] > b["compute_infer"]["ns"]
        and after["last_inference"] >= before["last_inference"] > 0,
        json.dumps(after),
    )
    ok(
        "the phases add up to no more than the computes",
        s["queue"]["ns"] + s["compute_infer"]["ns"] + s["compute_output"]["ns"]
        <= s["success"]["ns"] + s["fail"]["ns"],
        {k: v["ns"] for k, v in s.items()},
    )
    everything = client.get_inference_statistics()
    names = sorted(row["name"] for row in everything["model_stats"])
    ok("get_inference_statistics() lists every model", names == [BATCHED, PINNED], names)
    error = refused(lambda: client.get_inference_statistics("no-such-model"))
    ok("statistics of a model that is not there are 404", error and error[0] == "404", error)


def main(address):
    client = httpclient.InferenceServerClient(address)
    labels = LABELS.read_text().splitlines()
    # First use of each model before the statistics are read.
    check_config(client, labels)
    check_classification(client, labels)
    check_compression(client)
    check_raw_and_encodings(client, address)
    check_sequence(client)
    check_statistics(client)


if __name__ == "__main__":
    run(main, sys.argv[1])
