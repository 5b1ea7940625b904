"""Static post-training int8 quantisation with ONNX Runtime's own quantiser.

Run by `wasi-infer-train quantize` (train/src/quantize.rs), which writes the
calibration images and checks the result on every backend.

usage: quantize.py FP32_MODEL INT8_MODEL CALIBRATION_F32 N

CALIBRATION_F32 holds N images as raw little-endian f32 [N, 1, 28, 28]
(pixel / 255), drawn from the training images.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Images(CalibrationDataReader):
    """The calibration images, 32 at a time."""

    def __init__(self, images):
        self.batches = iter(np.array_split(images, max(1, len(images) // 32)))

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {"input": np.ascontiguousarray(batch)}


def main():
    source, target, calibration, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    images = np.fromfile(calibration, dtype="<f4").reshape(count, 1, 28, 28)
    with tempfile.TemporaryDirectory() as work:
        # ONNX Runtime's recommended first step: shape inference and graph
        # optimisation, so the quantiser sees every tensor's shape. ONNX's
        # own shape inference covers this graph (every shape but the batch
        # is fixed); the symbolic one would need sympy.
        prepared = str(Path(work) / "prepared.onnx")
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared,
            target,
            Images(images),
            # QDQ: every backend here (ONNX Runtime, OpenVINO, tract) reads
            # QuantizeLinear/DequantizeLinear pairs.
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # 7-bit weights. ONNX Runtime's u8 x s8 kernels on x86 CPUs
            # without VNNI (AVX2 only) add pairs of products in int16, which
            # saturates with full-range per-channel weights: measured here on
            # an AVX2 machine, top-1 agreement with fp32 fell to 91% with
            # 8-bit weights and was 99% with 7-bit ones. With 7 bits the
            # model answers the same on every x86 CPU, VNNI or not.
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


if __name__ == "__main__":
    main()
