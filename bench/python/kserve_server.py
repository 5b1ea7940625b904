#!/usr/bin/env python3
"""The KServe contender of the benchmark: KServe's own Python model server (PyPI
`kserve`) serving ONNX models with ONNX Runtime, over the Open Inference Protocol
(v2 REST) with its binary tensor data extension.

`POST /v2/models/<model>/infer` takes a v2 inference request for the model's input
tensor (`input`, FP32 [1,3,224,224], already preprocessed) and answers the
requested outputs (`logits`, FP32 [1,1000]). The tensor can come as JSON
(`"data": [...]`, `Content-Type: application/json`) or, with the binary tensor
data extension, as raw little-endian bytes after the JSON header:

    POST /v2/models/efficientnet-lite0/infer
    Content-Type: application/octet-stream
    Inference-Header-Content-Length: <length of the JSON header in bytes>

    {"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32",
                "parameters":{"binary_data_size":602112}}],
     "outputs":[{"name":"logits","parameters":{"binary_data":false}}]}<602112 bytes>

kserve 0.21 takes that path when the body is not JSON (any content type but
application/json) and the `inference-header-content-length` header is there:
`V2Endpoints.infer` (kserve/protocol/rest/v2_endpoints.py) hands the bytes to
`DataPlane.decode_inference_request` (kserve/protocol/dataplane.py), which calls
`InferRequest.from_bytes` (kserve/protocol/infer_type.py) to split the JSON header
from the tensors by each input's `binary_data_size`. An output asked for with
`"binary_data": false` (or none) is answered as JSON (`"data": [...]`); with
`true`, `InferResponse.to_rest` appends its bytes and sets the same header on the
answer. Other endpoints: `GET /v2/health/live`, `/v2/health/ready`,
`/v2/models/<model>/ready`, `/v2/models/<model>` (metadata).

The binary extension saves the client and the wire, not the server: `from_bytes`
turns each binary input into a Python list of floats (`InferInput.
set_data_from_numpy(..., binary_data=False)`, one `.item()` per element) and
`as_numpy()` turns it back. For the 150,528 floats of one image that took ~115 ms
of the ~130 ms a request took (2 busy cores, ONNX Runtime ~12 ms of it): a JSON
request of the same tensor (pydantic parses it) took ~66 ms.

Set up with bench/scripts/setup-kserve.sh, then from the repository root:

    .deps/bench-kserve/bin/python bench/python/kserve_server.py --host 127.0.0.1 \\
        --port 8091 --models models --model efficientnet-lite0 \\
        [--model efficientnet-lite0-int8] [--workers N]

It is a KServe custom model as KServe documents them ("Deploy Custom Python Model
Server"; the "KServe Python Serving Runtime API"): a `kserve.Model` subclass whose
`load()` creates the model and sets `self.ready`, and whose `predict(payload:
InferRequest, headers)` reads the inputs with `InferInput.as_numpy()` and answers an
`InferResponse` of `InferOutput`s, served by `kserve.ModelServer(http_port=...,
workers=..., ...).start([models])`. What this file adds to that, and why:

  * Workers: `ModelServer(workers=N)` (default here: one per core) runs kserve's
    `RESTServerMultiProcess`: the parent loads the models, binds the one listening
    socket, and starts N *spawned* (not forked) uvicorn processes that all accept on
    it; each gets the models by pickling. An ONNX Runtime session does not pickle,
    so `OnnxModel.__getstate__` leaves it out and `__setstate__` loads it again in
    the worker: one session per process, one ONNX thread each (as the `workers` and
    `reuseport` modes of bench/python/server.py). The parent serves no request.
    With `--workers 1` kserve serves from the parent itself, on asyncio's loop
    rather than uvloop.
  * Host: kserve 0.21's REST server binds 0.0.0.0 whatever one asks (its
    uvicorn.Config is built with host="0.0.0.0"); `bind_rest_server_to` sets the
    asked host on that config before the socket is bound.
  * Quiet: kserve and uvicorn log at INFO, uvicorn one access line per request.
    `kserve.logging.configure_logging` with a warning-level config, in every
    process, keeps them quiet; no access log at all, nor FastAPI's warning that
    kserve's ORJSONResponse is deprecated. gRPC (`enable_grpc`), the per-request
    latency log (`enable_latency_logging`) and /docs are off.
  * kserve.model_server parses the command line at import with its own parser (it
    would read `--workers`, and `--model` as an abbreviation of its `--model_name`):
    it is imported with our arguments hidden from it.
  * Stopping: kserve's ModelServer catches SIGTERM and SIGINT, sends SIGTERM to its
    workers, waits for them (at most `grace_period`, 5 s here, then SIGKILL) and
    exits. A worker also gets SIGTERM if the parent dies without doing so
    (PR_SET_PDEATHSIG). The workers' command line is multiprocessing's
    (`python -c "from multiprocessing.spawn import spawn_main; ..."`), not this
    file's: `pgrep -f kserve_server` finds the parent only, `pgrep -P <parent>` the
    rest.

Connections are refused until the parent has loaded the models and bound the socket,
then wait in its backlog until a worker has started (a spawned process imports kserve
and loads the models again: a second or two); a model that is not ready answers 503.
kserve's parent pings each worker every half second and kills and respawns one that
does not answer within 5 s, also while it starts.
"""

import argparse
import ctypes
import os
import signal
import sys
import tomllib
import warnings

import numpy as np
import onnxruntime as ort

# kserve.model_server parses sys.argv when it is imported (it builds ModelServer's
# defaults from it, parse_known_args): show it no arguments. Spawned workers import
# this file again, with the same sys.argv, so this runs there too.
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve
    import kserve.logging
    import kserve.protocol.rest.server
    from kserve import InferOutput, InferRequest, InferResponse
    from kserve.errors import InvalidInput
    from kserve.utils.numpy_codec import from_np_dtype, to_np_dtype
    from kserve.utils.utils import generate_uuid
finally:
    sys.argv = _argv

# Warnings and errors only, to stderr. Configured here, at import, so it holds in
# the parent and in every spawned worker: kserve configures logging only where its
# logger has no handler yet (kserve.logging.configure_logging(None), ModelServer).
# uvicorn.access has no handler and does not propagate, so uvicorn writes no access
# log at all (it checks `hasHandlers()` once per connection); the per-request
# timings of kserve's middleware (kserve.trace, INFO) are dropped by level.
QUIET_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                   "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "kserve": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "kserve.trace": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}
kserve.logging.configure_logging(QUIET_LOG_CONFIG)
# kserve's app answers with FastAPI's ORJSONResponse, which FastAPI deprecates with a
# warning on stderr in each worker's first request.
warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")

if __name__ == "__mp_main__":  # this file imported by a worker kserve spawned
    # Linux: SIGTERM this worker when the parent dies, even by SIGKILL.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# --------------------------------------------------------------------------- model


class OnnxModel(kserve.Model):
    """One ONNX model of the model repository (`DIR/NAME/model.toml`, its `file`)
    served as the kserve model NAME."""

    def __init__(self, name, directory):
        super().__init__(name)
        self.directory = directory
        self.session = None
        self.load()

    def load(self):
        with open(os.path.join(self.directory, "model.toml"), "rb") as f:
            spec = tomllib.load(f)
        options = ort.SessionOptions()
        # One process per core, one image at a time: one intra-op thread, none for
        # independent branches (the graph is a chain); the options of the other
        # Python contender (bench/python/server.py), so both run the same kernels.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            os.path.join(self.directory, spec["file"]), options,
            providers=["CPUExecutionProvider"],
        )
        # name -> numpy dtype of each input; the output names, in the graph's order.
        self.inputs = {i.name: np.dtype(ort_numpy_type(i.type)) for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        # The first run allocates and plans: do it now, not on the first request.
        self.session.run(None, {
            i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape],
                             self.inputs[i.name])
            for i in self.session.get_inputs()
        })
        self.ready = True
        return self.ready

    # The tensors of the model's metadata (GET /v2/models/<model>); -1: any size.
    def get_input_types(self):
        return tensor_types(self.session.get_inputs())

    def get_output_types(self):
        return tensor_types(self.session.get_outputs())

    # kserve's workers are spawned processes that get the models pickled, and an ONNX
    # Runtime session does not pickle: send the rest, and load the session there.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["session"] = None
        state["ready"] = False
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.load()

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        """Runs the model on the request's tensors and answers the outputs asked for
        (all of them when the request names none). kserve calls a plain `def`
        predict on its event loop; a process holds one core's worth of work."""
        feeds = {}
        for infer_input in payload.inputs:
            dtype = self.inputs.get(infer_input.name)
            if dtype is None:
                raise InvalidInput(f"model {self.name!r} has no input {infer_input.name!r}: "
                                   f"its inputs are {sorted(self.inputs)}")
            if to_np_dtype(infer_input.datatype) != dtype:
                raise InvalidInput(f"input {infer_input.name!r} of model {self.name!r} is "
                                   f"{from_np_dtype(dtype)}, not {infer_input.datatype}")
            feeds[infer_input.name] = infer_input.as_numpy()
        missing = sorted(set(self.inputs) - set(feeds))
        if missing:
            raise InvalidInput(f"the request lacks the inputs {missing} of model {self.name!r}")
        if payload.request_outputs:
            names = [output.name for output in payload.request_outputs]
            unknown = [name for name in names if name not in self.output_names]
            if unknown:
                raise InvalidInput(f"model {self.name!r} has no outputs {unknown}: "
                                   f"its outputs are {self.output_names}")
        else:
            names = self.output_names
        try:
            results = self.session.run(names, feeds)
        except ort.capi.onnxruntime_pybind11_state.InvalidArgument as e:  # a bad shape
            raise InvalidInput(str(e)) from None
        outputs = [
            InferOutput(name=name, shape=list(result.shape),
                        datatype=from_np_dtype(result.dtype), data=result)
            for name, result in zip(names, results)
        ]
        return InferResponse(
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=outputs,
            # JSON or binary per output, as the request's parameters ask.
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def ort_numpy_type(ort_type):
    """ONNX Runtime's type name of a tensor ("tensor(float)") to numpy's."""
    return {
        "tensor(float)": np.float32, "tensor(double)": np.float64,
        "tensor(float16)": np.float16, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
        "tensor(int16)": np.int16, "tensor(uint16)": np.uint16, "tensor(int32)": np.int32,
        "tensor(uint32)": np.uint32, "tensor(int64)": np.int64, "tensor(uint64)": np.uint64,
        "tensor(bool)": np.bool_,
    }[ort_type]


def tensor_types(args):
    """ONNX Runtime's NodeArgs as the v2 protocol's tensor metadata."""
    return [
        {"name": a.name, "datatype": from_np_dtype(np.dtype(ort_numpy_type(a.type))),
         "shape": [d if isinstance(d, int) else -1 for d in a.shape]}
        for a in args
    ]


# -------------------------------------------------------------------------- launch


def bind_rest_server_to(host):
    """kserve 0.21's RESTServer builds its uvicorn.Config with host="0.0.0.0" and
    takes no host: set `host` on that config once it is built, before kserve binds
    the socket (in ModelServer.start; the workers inherit the parent's socket)."""
    rest_server = kserve.protocol.rest.server.RESTServer
    init = rest_server.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.config.host = host

    rest_server.__init__ = __init__


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--models", default="models",
                        help="the model repository (default: models)")
    parser.add_argument("--model", action="append", required=True,
                        help="a model of the repository to serve (repeatable)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="server processes (default: one per core)")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    models_dir = os.path.abspath(args.models)
    for name in args.model:
        if not os.path.isfile(os.path.join(models_dir, name, "model.toml")):
            parser.error(f"no model {name!r} in {models_dir}")

    # Loaded in this process (kserve starts only with a ready model), then again in
    # each worker (see OnnxModel.__setstate__).
    models = [OnnxModel(name, os.path.join(models_dir, name)) for name in args.model]
    bind_rest_server_to(args.host)
    kserve.ModelServer(
        http_port=args.port,
        workers=args.workers,
        enable_grpc=False,
        enable_docs_url=False,
        enable_latency_logging=False,
        event_loop="uvloop",
        grace_period=5,
    ).start(models)


if __name__ == "__main__":
    main()
