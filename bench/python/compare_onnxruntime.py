"""Times every model of models/ on the ONNX Runtime release this Python has.

Inference only, one intra-op thread (as each session of the host's pool runs),
graph optimisations "all" (the host's default), the trial inputs the host uses
(a batch of 1, 16 in any other dynamic dimension). Prints one JSON object:
{"version": ..., "models": {name: median ms}}. bench/scripts/compare-onnxruntime.sh
runs it under two releases, alternating.
"""
import json
import pathlib
import statistics
import sys
import time
import tomllib

import numpy as np
import onnxruntime as ort

TYPES = {"f32": np.float32, "i64": np.int64, "i32": np.int32, "u8": np.uint8, "f16": np.float16}


def trial(spec):
    shape = [d if d > 0 else (1 if i == 0 else 16) for i, d in enumerate(spec["shape"])]
    ty = TYPES[spec["type"]]
    if np.issubdtype(ty, np.integer):
        return np.ones(shape, dtype=ty)
    return np.random.default_rng(0).random(shape, dtype=np.float32).astype(ty)


def main(root, seconds):
    out = {"version": ort.__version__, "models": {}}
    for config in sorted(pathlib.Path(root, "models").glob("*/model.toml")):
        model = tomllib.loads(config.read_text())
        if model.get("format", "onnx") != "onnx":
            continue
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(config.parent / model["file"]), options)
        feed = {spec["name"]: trial(spec) for spec in model["inputs"]}
        for _ in range(3):
            session.run(None, feed)
        times = []
        started = time.perf_counter()
        while len(times) < 10 or (time.perf_counter() - started < seconds and len(times) < 2000):
            t = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - t) * 1e3)
        out["models"][config.parent.name] = statistics.median(times)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
