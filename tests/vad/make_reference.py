#!/usr/bin/env python3
"""Makes the voice activity test recording and what Silero's own package
finds in it: tests/data/vad/speech.wav and tests/data/vad/reference.json.

Run once by a developer (it needs torch, which CI does not install):

    python3 -m venv venv && venv/bin/pip install torch==2.8.0 numpy silero-vad==6.2.3 onnxruntime
    apt-get install espeak-ng
    venv/bin/python tests/vad/make_reference.py

The recording: sentences spoken by espeak-ng (en-us), resampled to 16 kHz,
between stretches of silence, of noise alone, and one sentence under noise
(white noise from a fixed seed), as 16-bit PCM. The reference is
`silero_vad.get_speech_timestamps` with the package's default model
(`load_silero_vad(onnx=True)`, silero_vad.onnx run by onnxruntime), with its
default parameters and with a second set, and each 32 ms frame's speech
probability, as the package's OnnxWrapper computes them. It also records
how far the 16 kHz-only export this repository serves
(silero_vad_openvino_16k.onnx) is from the package's model on the same frames,
and a few runs of `get_speech_timestamps_from_probs` on made-up
probabilities that exercise its every branch, for the function's unit tests.
"""

import json
import subprocess
import sys
import tempfile
import wave
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import silero_vad
from silero_vad import get_speech_timestamps, load_silero_vad
from silero_vad.utils_vad import get_speech_timestamps_from_probs

RATE = 16000
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "vad"

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Voice activity detection finds the parts of a recording where somebody speaks.",
    "This sentence is spoken under a steady hiss of noise.",
    "And one more short line at the end.",
]

SECOND_PARAMS = dict(threshold=0.6, min_silence_duration_ms=300, speech_pad_ms=100,
                     min_speech_duration_ms=500)


def speak(text: str) -> np.ndarray:
    """espeak-ng's speech of `text`, as float samples at 16 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    return resample(pcm, rate, RATE)


def resample(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Band-limited resampling by the FFT (the signal is short)."""
    n = int(round(len(x) * to / rate))
    spectrum = np.fft.rfft(x)
    keep = n // 2 + 1
    out = np.zeros(keep, dtype=complex)
    out[: min(keep, len(spectrum))] = spectrum[: min(keep, len(spectrum))]
    return np.fft.irfft(out, n) * (n / len(x))


def recording() -> np.ndarray:
    rng = np.random.default_rng(20261203)
    silence = lambda s: np.zeros(int(s * RATE))
    noise = lambda n: rng.normal(0, 0.02, n)
    s = [speak(t) for t in SENTENCES]
    under_noise = s[2] + noise(len(s[2]))
    parts = [silence(1.0), s[0], silence(0.8), s[1], silence(0.5), noise(RATE), under_noise,
             silence(0.12), s[3], silence(1.0)]
    x = np.concatenate(parts)
    return np.clip(x, -1, 32767 / 32768)


def write_wav(path: Path, x: np.ndarray) -> np.ndarray:
    pcm = np.round(x * 32768).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return pcm.astype(np.float32) / 32768


def frame_probabilities(model, audio: torch.Tensor) -> list:
    model.reset_states()
    probs = []
    for start in range(0, len(audio), 512):
        chunk = audio[start:start + 512]
        if len(chunk) < 512:
            chunk = torch.nn.functional.pad(chunk, (0, 512 - len(chunk)))
        probs.append(model(chunk, RATE).item())
    return probs


def openvino_export_probabilities(audio: np.ndarray) -> list:
    """The 16 kHz-only export (what models/silero-vad serves), by onnxruntime."""
    path = Path(silero_vad.__file__).parent / "data" / "silero_vad_openvino_16k.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros(64, dtype=np.float32)
    probs = []
    for start in range(0, len(audio), 512):
        chunk = np.zeros(512, dtype=np.float32)
        part = audio[start:start + 512]
        chunk[: len(part)] = part
        x = np.concatenate([context, chunk])[None, :]
        out, state = session.run(None, {"input": x, "state": state})
        probs.append(float(out[0, 0]))
        context = x[0, -64:]
    return probs


def branch_cases() -> list:
    """get_speech_timestamps_from_probs on made-up probabilities."""
    rng = np.random.default_rng(7)
    cases = []
    blocks = [0.05] * 10 + [0.9] * 40 + [0.2] * 3 + [0.9] * 20 + [0.1] * 30 + [0.7] * 5 + [0.05] * 8
    long_speech = [0.95] * 30 + [0.1] * 5 + [0.95] * 40 + [0.2] * 4 + [0.95] * 90 + [0.05] * 20
    noisy = list(np.clip(rng.normal(0.5, 0.3, 300), 0, 1).astype(np.float32).astype(float))
    for probs in (blocks, long_speech, noisy):
        audio_len = len(probs) * 512 - 100
        for params in ({}, dict(max_speech_duration_s=2.0),
                       dict(max_speech_duration_s=2.0, use_max_poss_sil_at_max_speech=False),
                       dict(threshold=0.6, neg_threshold=0.3, speech_pad_ms=200,
                            min_silence_duration_ms=50, min_speech_duration_ms=100)):
            got = get_speech_timestamps_from_probs(probs, audio_length_samples=audio_len, **params)
            cases.append(dict(probabilities=probs, audio_length=audio_len, params=params,
                              segments=[[s["start"], s["end"]] for s in got]))
    return cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    audio = write_wav(OUT / "speech.wav", recording())
    tensor = torch.from_numpy(audio)
    model = load_silero_vad(onnx=True)
    probs = frame_probabilities(model, tensor)
    default = get_speech_timestamps(tensor, model, sampling_rate=RATE)
    second = get_speech_timestamps(tensor, model, sampling_rate=RATE, **SECOND_PARAMS)
    export = openvino_export_probabilities(audio)
    spread = max(abs(a - b) for a, b in zip(probs, export))
    reference = {
        "made_by": "tests/vad/make_reference.py",
        "packages": {p: metadata.version(p) for p in ("silero-vad", "torch", "onnxruntime", "numpy")},
        "espeak_ng": subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip(),
        "recording": {"file": "speech.wav", "sample_rate": RATE, "samples": len(audio)},
        "default": {"params": {}, "segments": [[s["start"], s["end"]] for s in default]},
        "second": {"params": SECOND_PARAMS, "segments": [[s["start"], s["end"]] for s in second]},
        "probabilities": probs,
        "export_max_abs_difference": spread,
        "branch_cases": branch_cases(),
    }
    (OUT / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(f"{len(audio) / RATE:.2f} s; default segments {reference['default']['segments']}")
    print(f"second {reference['second']['segments']}")
    print(f"16 kHz export vs package model: max |p - p'| = {spread:.2e}")


if __name__ == "__main__":
    sys.exit(main())
