#!/usr/bin/env python3
"""Makes the OCR test images and what RapidOCR itself reads in them:
tests/data/ocr/{lines,skewed,upside-down,sign}.png and
tests/data/ocr/reference.json.

Run once by a developer (CI does not install rapidocr; it checks against the
JSON this writes):

    python3 -m venv /tmp/ocrvenv
    /tmp/ocrvenv/bin/pip install rapidocr-onnxruntime==1.4.4 pillow numpy
    /tmp/ocrvenv/bin/python tests/ocr/make_reference.py

Versions used for the committed files: rapidocr-onnxruntime 1.4.4 (its
bundled PP-OCRv4 det/rec models and the ppocr mobile v2.0 direction
classifier), onnxruntime 1.32.0, opencv-python 5.1.0.95, pyclipper 1.4.0,
shapely 2.2.0, numpy 2.4.6, Pillow 13.0.0, Python 3.11.7.

The images are drawn with Pillow in DejaVu Sans (host/assets/fonts/DejaVuSans.ttf)
with no randomness: black text on white, the same rotated by 8 degrees, the
same turned upside down, white text on a dark blue gradient, and 504 numbers
(crowded.png: only how many lines RapidOCR finds is recorded). The scanned
page tests/data/images/page.png is read where it is, not copied.

Each image goes through `rapidocr_onnxruntime.RapidOCR()` with the package's
default configuration (its config.yaml: use_det, use_cls and use_rec all true,
text_score 0.5, det limit_type "min" with limit_side_len 736), given the PNG's
path as RapidOCR's own loader reads it. For each image the reference records
the lines in the order RapidOCR returns them (box: four [x, y] corners in the
image's pixels, text, score), the text drawn (`truth`, null for page.png),
the image's size, the size the detector's input is resized to, and the
character error rate of RapidOCR's text against the truth (Levenshtein
distance / truth length, lines joined with "\\n").
"""

import json
import re
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import onnxruntime
from rapidocr_onnxruntime import RapidOCR

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "ocr"
FONT = ROOT / "host" / "assets" / "fonts" / "DejaVuSans.ttf"
PAGE = ROOT / "tests" / "data" / "images" / "page.png"

LINES = [
    "Invoice 2024-117, Blue Door Cafe",
    "Date: 12/03/2024, table 7",
    "3 x Espresso at 2.50 = 7.50",
    "2 x Croissant (plain) = 5.80",
    "Total due: EUR 13.30",
    "Thank you! Please come again.",
]
SKEWED = [
    "The quick brown fox jumps",
    "over the lazy dog, 42 times.",
    "Call 555-0199 before 6 pm!",
]
UPSIDE_DOWN = [
    "Keep this side up.",
    "Fragile: 12 glass jars",
    "Order no. 88-4410",
]
SIGN = [
    "OPEN 7 DAYS",
    "Mon-Sun 8:00-22:00",
]


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT), size)


def text_block(lines, size, width, margin, spacing, fg, bg) -> Image.Image:
    """`lines` left-aligned, one under another, `spacing` pixels apart (baseline
    to baseline), on a `width`-wide canvas with `margin` pixels all round."""
    f = font(size)
    ascent, descent = f.getmetrics()
    for line in lines:
        right = f.getbbox(line)[2]
        if margin + right > width - margin:
            sys.exit(f"{line!r} ({right} px) does not fit in {width} px")
    height = 2 * margin + (len(lines) - 1) * spacing + ascent + descent
    mode = "L" if isinstance(bg, int) else "RGB"
    img = Image.new(mode, (width, height), bg)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * spacing), line, font=f, fill=fg)
    return img


def make_lines() -> Image.Image:
    return text_block(LINES, 28, 640, 24, 44, 0, 255)


def make_skewed() -> Image.Image:
    img = text_block(SKEWED, 28, 520, 24, 44, 0, 255)
    return img.rotate(8, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


def make_upside_down() -> Image.Image:
    img = text_block(UPSIDE_DOWN, 28, 420, 24, 44, 0, 255)
    return img.rotate(180)


def make_sign() -> Image.Image:
    f = font(40)
    ascent, descent = f.getmetrics()
    width, margin, spacing = 560, 36, 60
    height = 2 * margin + spacing + ascent + descent
    # A vertical gradient, dark blue at the top to a dark teal at the bottom.
    t = np.linspace(0.0, 1.0, height)[:, None]
    top, bottom = np.array([16, 32, 96]), np.array([12, 84, 110])
    rows = np.rint(top * (1 - t) + bottom * t).astype(np.uint8)
    img = Image.fromarray(np.repeat(rows[:, None, :], width, axis=1), "RGB")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(SIGN):
        w = f.getbbox(line)[2]
        if w > width - 2 * margin:
            sys.exit(f"{line!r} ({w} px) does not fit in {width} px")
        draw.text(((width - w) // 2, margin + i * spacing), line, font=f, fill=(255, 255, 255))
    return img


def make_crowded() -> Image.Image:
    """504 two-digit numbers, 24 to a row, far enough apart to be found one by
    one: more lines than the function reads in one request."""
    f = font(16)
    img = Image.new("L", (1440, 840), 255)
    draw = ImageDraw.Draw(img)
    for row in range(21):
        for col in range(24):
            draw.text((8 + col * 60, 8 + row * 40), f"{(row * 24 + col) % 100:02d}", font=f, fill=0)
    return img


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def dumps(reference) -> str:
    """JSON, indented, with each recognised line and each short list on one line."""
    text = json.dumps(reference, indent=1, ensure_ascii=False)
    # A list of numbers (a size, a corner) on one line, then a list of corners.
    text = re.sub(r"\[\s+([-0-9.eE]+(?:,\s+[-0-9.eE]+)*)\s+\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    text = re.sub(r"\[\s+(\[[^\[\]]*\](?:,\s+\[[^\[\]]*\])*)\s+\]",
                  lambda m: "[" + re.sub(r"\],\s+\[", "], [", m.group(1)) + "]", text)
    # A line's object {"box": ..., "text": ..., "score": ...} on one line.
    text = re.sub(r'\{\s+("box": [^\n]*),\s+("text": [^\n]*),\s+("score": [^\n]*?)\s+\}',
                  r"{\1, \2, \3}", text)
    assert json.loads(text) == reference
    return text


def det_input_size(engine: RapidOCR, path: Path):
    """[height, width] of the image the detector runs on (RapidOCR's own
    global pre-processing, letterbox and DetPreProcess.resize, run here)."""
    img = engine.load_img(path)
    img, _, _ = engine.preprocess(img)
    img, _ = engine.maybe_add_letterbox(img, {})
    pre = engine.text_det.get_preprocess(max(img.shape[0], img.shape[1]))
    return list(pre.resize(img).shape[:2])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    made = {
        "lines.png": (make_lines(), LINES),
        "skewed.png": (make_skewed(), SKEWED),
        "upside-down.png": (make_upside_down(), UPSIDE_DOWN),
        "sign.png": (make_sign(), SIGN),
    }
    for name, (img, _) in made.items():
        img.save(OUT / name, optimize=True)

    crowded = OUT / "crowded.png"
    make_crowded().save(crowded, optimize=True)

    engine = RapidOCR()
    images = {}
    todo = [("page.png", PAGE, None)] + [(n, OUT / n, t) for n, (_, t) in made.items()]
    for name, path, truth in todo:
        result, _ = engine(str(path))
        lines = [
            {
                "box": [[round(float(x), 2), round(float(y), 2)] for x, y in box],
                "text": text,
                "score": round(float(score), 5),
            }
            for box, text, score in (result or [])
        ]
        with Image.open(path) as im:
            size = list(im.size)
        entry = {
            "path": str(path.relative_to(ROOT)),
            "size": size,
            "det_input": det_input_size(engine, path),
            "lines": lines,
            "truth": truth,
        }
        if truth is not None:
            want = "\n".join(truth)
            got = "\n".join(line["text"] for line in lines)
            entry["cer"] = round(levenshtein(got, want) / len(want), 5)
        images[name] = entry
        print(f"{name}: {size[0]}x{size[1]}, det input {entry['det_input']}, "
              f"{len(lines)} lines, cer {entry.get('cer')}")
        for line in lines:
            print(f"    {line['score']:.5f} {line['text']!r} {line['box']}")

    # Only how many lines RapidOCR finds in the crowded image.
    result, _ = engine(str(crowded))
    images["crowded.png"] = {
        "path": str(crowded.relative_to(ROOT)),
        "size": list(make_crowded().size),
        "lines_found": len(result or []),
    }
    print(f"crowded.png: {images['crowded.png']['lines_found']} lines")

    reference = {
        "generator": "tests/ocr/make_reference.py: rapidocr_onnxruntime.RapidOCR() with its "
                     "default config.yaml (use_det, use_cls, use_rec true; text_score 0.5; "
                     "det limit_type min, limit_side_len 736), image paths as input",
        "rapidocr": metadata.version("rapidocr-onnxruntime"),
        "onnxruntime": onnxruntime.__version__,
        "opencv": metadata.version("opencv-python"),
        "pillow": metadata.version("pillow"),
        "images": images,
    }
    with open(OUT / "reference.json", "w") as f:
        f.write(dumps(reference) + "\n")
    total = sum((OUT / n).stat().st_size for n in [*made, crowded.name])
    print(f"wrote {OUT / 'reference.json'}; images {total} bytes")


if __name__ == "__main__":
    main()
