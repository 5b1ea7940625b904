"""Small seeds in formats the hostile fixtures lack (WebP lossy and lossless,
BMP, progressive JPEG, 4:2:0 and greyscale JPEG, a 32x32 PNG with alpha).
Run from the repository root with a Python that has Pillow:

    python fuzz/seeds/make_seeds.py
"""

from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent / "classify_image"
cat = Image.open("tests/data/images/chelsea.png").convert("RGB").resize((64, 43))
cat.save(OUT / "cat.webp", "WEBP", quality=60)
cat.save(OUT / "cat-lossless.webp", "WEBP", lossless=True)
cat.save(OUT / "cat.bmp", "BMP")
cat.save(OUT / "cat-progressive.jpg", "JPEG", quality=70, progressive=True)
cat.convert("L").save(OUT / "cat-grey.jpg", "JPEG", quality=70)
cat.resize((32, 21)).convert("RGBA").save(OUT / "cat-rgba.png", "PNG")
# Large enough (shorter side >= 512) that decode_for takes the scaled JPEG path.
Image.open("tests/data/images/chelsea.png").convert("RGB").resize((800, 532)).save(
    OUT / "cat-large.jpg", "JPEG", quality=40
)
