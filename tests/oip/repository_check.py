#!/usr/bin/env python3
"""Drives wasi-infer's model repository API (docs/models.md) with NVIDIA's
own client, tritonclient[http], as a Triton user would:

    python tests/oip/repository_check.py 127.0.0.1:3000 TOKEN

The server serves a repository with the models "m" and "other" (the
Fashion-MNIST CNN) and was started with --admin-token-file holding TOKEN.
Every check prints one line; the first that fails prints FAILED and the
script exits 1. tests/e2e/model_store.rs runs it.
"""

import sys

import numpy as np

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from checking import ok, run


def refused(call):
    """The message of the InferenceServerException `call` raises, or None."""
    try:
        call()
    except InferenceServerException as e:
        return str(e)
    return None


def infer(client, model):
    image = np.linspace(0, 1, 784, dtype=np.float32).reshape(1, 1, 28, 28)
    tensor = httpclient.InferInput("input", [1, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(image)
    return client.infer(model, [tensor]).as_numpy("logits")


def main(address, token):
    client = httpclient.InferenceServerClient(url=address)
    admin = {"Authorization": f"Bearer {token}"}
    wrong = {"Authorization": "Bearer " + "x" * len(token)}

    message = refused(lambda: client.get_model_repository_index())
    ok("the index without a token is refused", message is not None and "token" in message, message)
    message = refused(lambda: client.unload_model("other", headers=wrong))
    ok("an unload with a wrong token is refused", message is not None, message)
    ok("and changed nothing", client.is_model_ready("other"), "other is ready")

    index = client.get_model_repository_index(headers=admin)
    rows = {(row["name"], row.get("version")): row for row in index}
    ok("the index lists every model and version", ("m", "1") in rows and ("other", "1") in rows, index)
    ok("loaded models are READY", rows[("m", "1")]["state"] == "READY", rows[("m", "1")])

    client.unload_model("other", headers=admin)
    ok("unload_model: not ready", not client.is_model_ready("other"), "is_model_ready False")
    message = refused(lambda: infer(client, "other"))
    ok("an unloaded model refuses requests", message is not None and "unloaded" in message, message)
    index = client.get_model_repository_index(headers=admin)
    state = [row for row in index if row["name"] == "other"]
    ok("the index says why", state and state[0]["state"] == "UNAVAILABLE", state)

    client.load_model("other", headers=admin)
    ok("load_model: ready again", client.is_model_ready("other"), "is_model_ready True")
    logits = infer(client, "other")
    ok("and it answers", logits.shape == (1, 10), logits.shape)

    message = refused(lambda: client.load_model("no-such-model", headers=admin))
    ok("loading a model that is not there names it", message is not None and "no-such-model" in message, message)
    ok("is_model_ready of a version", client.is_model_ready("m", "1"), "m version 1 ready")


if __name__ == "__main__":
    run(main, sys.argv[1], sys.argv[2])
