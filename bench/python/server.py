#!/usr/bin/env python3
"""The Python contender of the benchmark: FastAPI + uvicorn + Pillow + ONNX Runtime.

`POST /classify/<model>?top_k=K` with an encoded image (JPEG, PNG, ...) as the body
answers `{"model": "<model>", "predictions": [{"index", "label", "score"}, ...]}`,
best first, like the Rust server; errors answer `{"error": "..."}` (400 for a bad
request or image, 404 for a model that is not loaded).

Set up with bench/scripts/setup-python.sh, then from the repository root:

    .deps/bench-python/bin/python bench/python/server.py --mode reuseport \\
        --port 8090 --model efficientnet-lite0 [--model efficientnet-lite0-int8]

Modes (`serve_*` below say more); every one runs the work of a request in a thread
of its process (see `create_app`):
  single     one uvicorn process; ONNX Runtime spreads each inference over every
             core (`--threads`, default: all).
  workers    uvicorn's own `--workers N` (`--processes`, default: one per core):
             N processes accepting on one shared socket, one ONNX thread each.
  reuseport  N independent single-process servers, each with its own SO_REUSEPORT
             socket on the same port, one ONNX thread each.

The server prints `listening on http://HOST:PORT` once every process has loaded its
models, and stops (children included) on SIGTERM or SIGINT.
"""

import argparse
import atexit
import ctypes
import functools
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

import numpy as np
import onnxruntime as ort
import uvicorn
import uvicorn.supervisors
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORES = len(os.sched_getaffinity(0))
DEFAULT_TOP_K = 5


# --------------------------------------------------------------------------- model


def half_up(x):
    """Rounds halves away from zero, as Rust's f64::round does (Python's round()
    rounds halves to even, which would shift some crops by a pixel)."""
    return int(x + 0.5)


class Classifier:
    """One ONNX image classifier of the model repository, read from its model.toml."""

    def __init__(self, directory, threads):
        with open(os.path.join(directory, "model.toml"), "rb") as f:
            spec = tomllib.load(f)
        with open(os.path.join(directory, spec["labels"]), encoding="utf-8") as f:
            # The label is the first name of a class's line ("tiger cat, ...").
            self.labels = [line.split(",")[0].strip() for line in f.read().splitlines()]
        p = spec["preprocess"]
        self.short_side = p["resize_shorter_side"]
        self.crop_w, self.crop_h = p["crop"]
        self.mode = "L" if p.get("color", "rgb") == "gray" else "RGB"
        self.nchw = p.get("layout", "nchw") == "nchw"
        # (x - mean) / std per channel, shaped to broadcast over the layout.
        shape = (-1, 1, 1) if self.nchw else (1, 1, -1)
        self.mean = np.array(p["mean"], np.float32).reshape(shape)
        self.std = np.array(p["std"], np.float32).reshape(shape)
        self.input_name = spec["inputs"][0]["name"]
        self.output_name = spec["outputs"][0]["name"]

        options = ort.SessionOptions()
        # One image at a time: all of a process's cores go to one operator at a time
        # (intra-op), none to running independent branches (the graph is a chain).
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads sleep rather than spin: spinning ones take the cores
        # that decoding the next image needs (single mode: 75 against 56 req/s at
        # 4 connections). With one thread there is no pool, and nothing spins.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            os.path.join(directory, spec["file"]), options, providers=["CPUExecutionProvider"]
        )
        # The first run allocates and plans: do it now, not on the first request.
        self.session.run(None, {self.input_name: self.preprocess(self.blank_image())})

    def blank_image(self):
        buf = io.BytesIO()
        Image.new("RGB", (self.short_side, self.short_side)).save(buf, "PNG")
        return buf.getvalue()

    def preprocess(self, data):
        """Encoded bytes to the input tensor: decode, resize (bilinear, antialiased)
        so the shorter side is `short_side`, centre-crop, normalise. Raises
        ValueError for bytes that are no image."""
        try:
            image = Image.open(io.BytesIO(data)).convert(self.mode)  # decodes
        except UnidentifiedImageError:
            raise ValueError("cannot decode the image: not an image format Pillow knows") from None
        except Exception as e:  # a truncated or corrupt image: OSError, SyntaxError, ...
            raise ValueError(f"cannot decode the image: {e}") from None
        w, h = image.size
        if w <= h:
            rw, rh = self.short_side, max(1, half_up(h * self.short_side / w))
        else:
            rw, rh = max(1, half_up(w * self.short_side / h)), self.short_side
        sx, sy = rw / w, rh / h
        left, top = half_up((rw - self.crop_w) / 2), half_up((rh - self.crop_h) / 2)
        # Resample the crop straight from the source (`box`, in source pixels): the
        # same filter and sample positions as resizing the whole image then cropping,
        # without making the whole resized image.
        box = (left / sx, top / sy, (left + self.crop_w) / sx, (top + self.crop_h) / sy)
        crop = image.resize((self.crop_w, self.crop_h), Image.BILINEAR, box=box)
        pixels = np.asarray(crop).reshape(self.crop_h, self.crop_w, -1)  # HWC uint8
        if self.nchw:
            pixels = pixels.transpose(2, 0, 1)
        x = pixels.astype(np.float32, order="C")  # contiguous, as ONNX Runtime needs
        x -= self.mean
        x /= self.std
        return x[None]

    def classify(self, data, k):
        return self.top_k(self.infer(self.preprocess(data)), k)

    def infer(self, tensor):
        return self.session.run([self.output_name], {self.input_name: tensor})[0][0]

    def top_k(self, logits, k):
        e = np.exp(logits - logits.max())
        p = e / e.sum()
        k = min(k, len(p))
        best = np.argpartition(-p, k - 1)[:k]
        best = best[np.argsort(-p[best], kind="stable")]
        return [
            {"index": int(i), "label": self.labels[i] if i < len(self.labels) else "",
             "score": float(p[i])}
            for i in best
        ]


# ----------------------------------------------------------------------------- app


def error(status, message):
    return JSONResponse({"error": message}, status_code=status)


def create_app(models_dir, names, threads, ready_dir=None):
    """The FastAPI app serving the models `names` of `models_dir`. Every server
    process builds its own (uvicorn's workers too, from a pickled partial)."""
    if ready_dir:  # a child of the launcher (workers and reuseport modes)
        # Linux: SIGTERM this process when the launcher dies, even by SIGKILL.
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    models = {name: Classifier(os.path.join(models_dir, name), threads) for name in names}
    if ready_dir:  # tell the launcher that this process has its models
        open(os.path.join(ready_dir, str(os.getpid())), "w").close()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    # The endpoint reads the body on the event loop, then decodes, resizes and
    # infers in anyio's threadpool (what FastAPI does with a sync `def` endpoint).
    # Pillow and ONNX Runtime release the GIL, so the requests of one process run
    # on all cores, and the loop goes on reading other requests meanwhile. Measured
    # on 2 cores against doing the work inline on the loop: inline starves the
    # connections whose bodies are still arriving (p99 at 16 connections: 1 s
    # against 0.3 s), and a process that holds several connections (uvicorn's
    # workers race for them) uses one core: --workers 2 at 4 connections made 38
    # req/s inline, 78 with the threadpool. A one-thread executor
    # (run_in_executor) was no better than inline.
    @app.post("/classify/{model}")
    async def classify(model: str, request: Request):
        classifier = models.get(model)
        if classifier is None:
            return error(404, f"no model named {model!r}: loaded are {sorted(models)}")
        top_k = request.query_params.get("top_k")
        if top_k is None:
            k = DEFAULT_TOP_K
        elif top_k.isascii() and top_k.isdigit() and int(top_k) >= 1:
            k = int(top_k)
        else:
            return error(400, f"top_k must be a whole number of at least 1, got {top_k!r}")
        body = await request.body()
        if not body:
            return error(400, "the request body is empty: send the encoded image as the body")
        try:
            predictions = await run_in_threadpool(classifier.classify, body, k)
        except ValueError as e:
            return error(400, str(e))
        # A JSONResponse skips FastAPI's jsonable_encoder: the data are plain already.
        return JSONResponse({"model": model, "predictions": predictions})

    return app


class NoDelayHttpTools(HttpToolsProtocol):
    """uvicorn's fast (httptools) HTTP/1.1 protocol with TCP_NODELAY on every accepted
    connection. uvicorn writes the status line and headers, then the body, as two
    writes; with Nagle on, the body would wait for the client's (delayed) ACK of
    the headers. uvloop sets TCP_NODELAY itself (checked: getsockopt answers 1
    before this runs); this makes sure of it whatever the loop."""

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def uvicorn_config(args, ready_dir=None, **extra):
    return uvicorn.Config(
        functools.partial(create_app, args.models, args.model, args.threads, ready_dir),
        factory=True,
        loop="uvloop",
        http=NoDelayHttpTools,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
        **extra,
    )


# -------------------------------------------------------------------------- launch


def listen_socket(host, port, reuse_port):
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def announce_when_ready(args):
    """Prints the `listening on` line once all `--processes` server processes have
    loaded their models (each leaves a file named by its pid in the returned
    folder), from a thread, so the caller can go on to supervise them."""
    ready_dir = tempfile.mkdtemp(prefix="bench-python-")
    atexit.register(shutil.rmtree, ready_dir, ignore_errors=True)

    def wait():
        while len(os.listdir(ready_dir)) < args.processes:
            time.sleep(0.05)
        print(f"listening on http://{args.host}:{args.port}", flush=True)

    threading.Thread(target=wait, daemon=True).start()
    return ready_dir


def serve_single(args):
    """One process, one event loop; ONNX Runtime spreads each inference over
    `--threads` cores (all of them by default), so one request alone is served
    fastest (2 cores: 50 req/s at 1 connection, against 37 for the one-thread
    processes of the other modes), and concurrent requests still fill every core
    through the threadpool. With `--reuse-port` (the children of `--mode
    reuseport`) the socket is bound with SO_REUSEPORT."""
    ready_dir = os.environ.get("BENCH_PY_READY_DIR") if args.reuse_port else None
    sock = listen_socket(args.host, args.port, args.reuse_port)
    config = uvicorn_config(args, ready_dir)
    config.load()  # builds the app: loads the models
    if not args.reuse_port:
        print(f"listening on http://{args.host}:{args.port}", flush=True)
    # uvicorn catches SIGTERM and SIGINT, shuts down gracefully, then restores these
    # handlers and raises the signal again: exit with status 0 then, not 143.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    uvicorn.Server(config).run(sockets=[sock])


def serve_workers(args):
    """uvicorn's own `--workers N`: its supervisor binds one socket and N worker
    processes accept on it. Which worker takes a new connection is a race, and with
    keep-alive a connection stays on the worker that won it: often one worker
    holds them all. One ONNX thread per process (two per process on 2 cores:
    46 instead of 37 req/s at 1 connection, 68 instead of 73 at 16)."""
    config = uvicorn_config(args, announce_when_ready(args), workers=args.processes)
    uvicorn.supervisors.Multiprocess(config, sockets=[listen_socket(args.host, args.port, False)]).run()


def serve_reuseport(args):
    """N independent `--mode single --reuse-port` processes, each with its own
    SO_REUSEPORT listening socket on the port: the kernel hashes each new connection
    to one of them, so no process races the others for connections (a hash can
    still put two of few connections on one process). One ONNX thread per process
    (two on 2 cores: 50 instead of 38 req/s at 1 connection, 64 instead of 71 at
    16)."""
    os.environ["BENCH_PY_READY_DIR"] = announce_when_ready(args)
    command = [sys.executable, os.path.abspath(__file__), "--mode", "single", "--reuse-port",
               "--host", args.host, "--port", str(args.port), "--models", args.models,
               "--threads", str(args.threads)]
    for name in args.model:
        command += ["--model", name]
    children = [subprocess.Popen(command) for _ in range(args.processes)]
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Wait for all; if one ends by itself, stop the others rather than limp on.
    failed = False
    while any(child.poll() is None for child in children):
        if not stopping and any(child.poll() is not None for child in children):
            failed = True
            stop()
        time.sleep(0.2)
    sys.exit(1 if failed else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["single", "workers", "reuseport"], default="single")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--models", default=os.path.join(ROOT, "models"),
                        help="the model repository (default: models/ of the repository)")
    parser.add_argument("--model", action="append", required=True,
                        help="a model of the repository to serve (repeatable)")
    parser.add_argument("--processes", type=int, default=CORES,
                        help="server processes of workers and reuseport (default: cores)")
    parser.add_argument("--threads", type=int,
                        help="ONNX Runtime intra-op threads per process "
                             "(default: cores / processes, at least 1)")
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "single":
        args.processes = 1
    if args.threads is None:
        args.threads = max(1, CORES // args.processes)
    args.models = os.path.abspath(args.models)
    for name in args.model:
        if not os.path.isfile(os.path.join(args.models, name, "model.toml")):
            parser.error(f"no model {name!r} in {args.models}")
    {"single": serve_single, "workers": serve_workers, "reuseport": serve_reuseport}[args.mode](args)


if __name__ == "__main__":
    main()
