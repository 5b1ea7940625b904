"""Writes the hostile test images in this directory from the test photos one
level up. Run from the repository root with a Python that has Pillow:

    python tests/data/images/hostile/make_hostile.py

Deterministic for a given Pillow version (13.0.0 made the committed files).
Only Pillow and the standard library: 16-bit RGB PNGs and the headers of the
"bombs" are written by hand (zlib, struct), as Pillow cannot make them.
"""

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parent
WIDTH = 160  # small files: every fixture stays well under 100 KB


def small(name, mode="RGB"):
    image = Image.open(PHOTOS / name).convert(mode)
    height = round(image.height * WIDTH / image.width)
    return image.resize((WIDTH, height), Image.Resampling.LANCZOS)


def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width, height, bit_depth, color_type, raw_rows):
    """A PNG from already-filtered scanlines (filter byte 0 + samples, big-endian)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw_rows, 9))
        + png_chunk(b"IEND", b"")
    )


def png16(image):
    """8-bit RGB or L to a 16-bit PNG: each sample v becomes v * 257 (exact)."""
    channels = len(image.getbands())
    color_type = {1: 0, 3: 2}[channels]
    width, height = image.size
    samples = image.tobytes()
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for v in samples[y * width * channels : (y + 1) * width * channels]:
            rows += struct.pack(">H", v * 257)
    return png(width, height, 16, color_type, bytes(rows))


def save(name, data):
    (HERE / name).write_bytes(data)
    print(f"{name}: {len(data)} bytes")


def encoded(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def main():
    cat = small("chelsea.png")
    camera = small("camera.png", "L")

    # The cat as 8-bit RGB PNG: what the 16-bit and CMYK versions are compared with.
    save("chelsea-small.png", encoded(cat, "PNG", optimize=True))
    # 16-bit RGB (colour type 2, depth 16) and 16-bit grey (colour type 0).
    save("chelsea-rgb16.png", png16(cat))
    save("camera-gray16.png", png16(camera))
    # Palette PNG (colour type 3, 256 colours, adaptive palette).
    save("chelsea-palette.png", encoded(cat.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"))
    # CMYK JPEG (Pillow writes an Adobe APP14 marker, inverted CMYK as Photoshop does).
    save("chelsea-cmyk.jpg", encoded(cat.convert("CMYK"), "JPEG", quality=92))

    # An animated GIF: the cat, then two frames that are not a cat (coffee, flat grey).
    coffee = small("coffee.png").crop((0, 0, cat.width, cat.height))
    grey = Image.new("RGB", cat.size, (128, 128, 128))
    save(
        "chelsea-animated.gif",
        encoded(cat, "GIF", save_all=True, append_images=[coffee, grey], duration=200, loop=0),
    )

    # A truncated JPEG: the first 40% of grace_hopper.jpg (61 KB), its scan cut short.
    hopper = (PHOTOS / "grace_hopper.jpg").read_bytes()
    save("grace_hopper-truncated.jpg", hopper[: len(hopper) * 2 // 5])
    # A truncated PNG: the first third of the small cat.
    cat_png = encoded(cat, "PNG", optimize=True)
    save("chelsea-truncated.png", cat_png[: len(cat_png) // 3])

    # Decompression bombs: tiny files whose headers claim 30000x30000 pixels
    # (2.7 GB as 8-bit RGB). A decoder that trusts the header allocates it all.
    tiny_rows = zlib.compress(b"\x00" + b"\x00" * 3 * 8, 9)  # one row of 8 black pixels
    save(
        "bomb-30000x30000.png",
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", tiny_rows)
        + png_chunk(b"IEND", b""),
    )
    # JPEG: a real 16x16 JPEG whose SOF0 frame header is patched to 30000x30000.
    jpeg = bytearray(encoded(Image.new("RGB", (16, 16), (200, 100, 50)), "JPEG", quality=90))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)  # height, width
    save("bomb-30000x30000.jpg", bytes(jpeg))
    # GIF: a real 16x16 GIF whose logical screen is patched to 30000x30000.
    gif = bytearray(encoded(Image.new("RGB", (16, 16), (200, 100, 50)), "GIF"))
    gif[6:10] = struct.pack("<HH", 30000, 30000)
    save("bomb-30000x30000.gif", bytes(gif))
    # BMP: a real 16x16 BMP whose BITMAPINFOHEADER is patched to 30000x30000.
    bmp = bytearray(encoded(Image.new("RGB", (16, 16), (200, 100, 50)), "BMP"))
    bmp[18:26] = struct.pack("<ii", 30000, 30000)
    save("bomb-30000x30000.bmp", bytes(bmp))
    # WebP (lossless, VP8L): 14-bit sizes, 16383x16383 (image-webp reads a 16384 as 0).
    webp = bytearray(encoded(Image.new("RGB", (16, 16), (200, 100, 50)), "WEBP", lossless=True))
    vp8l = webp.index(b"VP8L") + 8
    assert webp[vp8l] == 0x2F
    bits = struct.unpack("<I", webp[vp8l + 1 : vp8l + 5])[0]
    bits = (bits & ~((1 << 28) - 1)) | (16382 << 14) | 16382  # width-1, height-1
    webp[vp8l + 1 : vp8l + 5] = struct.pack("<I", bits)
    save("bomb-16383x16383.webp", bytes(webp))


if __name__ == "__main__":
    main()
