"""Writes GIF / WebP / BMP files and what Pillow's `Image.open(f).convert("RGB")` makes of them, for the
"PIL reference" case of test_media_decode (which compares ImageDecoder with them pixel for pixel).

    PYTHONPATH=<dir holding PIL> python3 tests/datasets/media/make_pil_reference.py OUT_DIR
    CB_PIL_REFERENCE_DIR=OUT_DIR build/tests/test_media_decode "image decode: PIL reference*"

Each <case>.<ext> gets <case>.<ext>.rgb: 'H W\n' then H*W*3 bytes. Needs only Pillow (no numpy).
"""
import io
import random
import struct
import sys
from pathlib import Path

from PIL import Image


def pattern(w, h, seed):
    rnd = random.Random(seed)
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 7 + y * 3 + seed) % 256, (x * y + rnd.randrange(40)) % 256, (255 - 5 * y) % 256)
                for y in range(h) for x in range(w)])
    return im


def gif_bytes(screen, palette, frame, indices, *, local=None, transparent=None, interlace=False, bg=0):
    """A GIF built by hand: optional GCE transparency, a frame at `frame`=(x, y, w, h) that may leave or
    pass the screen, an optional local palette, LZW with 9-bit codes (a clear code every 254 literals)."""
    def table(p):
        n = max(1, (len(p) // 3 - 1).bit_length())
        return n, bytes(p) + bytes(3 * (1 << n) - len(p))
    out = bytearray(b"GIF89a" + struct.pack("<HH", *screen))
    if palette:
        n, t = table(palette)
        out += bytes([0x80 | (n - 1), bg, 0]) + t
    else:
        out += bytes([0, 0, 0])
    if transparent is not None:
        out += bytes([0x21, 0xF9, 4, 1, 0, 0, transparent, 0])
    x, y, w, h = frame
    flags = (0x40 if interlace else 0)
    lt = b""
    if local:
        n, lt = table(local)
        flags |= 0x80 | (n - 1)
    out += b"," + struct.pack("<HHHHB", x, y, w, h, flags) + lt
    rows = list(range(h))
    if interlace:
        rows = [r for s, st in ((0, 8), (4, 8), (2, 4), (1, 2)) for r in range(s, h, st)]
    pixels = [indices[r * w + c] for r in rows for c in range(w)]
    codes = [256]
    for i, p in enumerate(pixels):
        if i and i % 254 == 0:
            codes.append(256)
        codes.append(p)
    codes.append(257)
    bits, nbits, data = 0, 0, bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += 9
        while nbits >= 8:
            data.append(bits & 255)
            bits >>= 8
            nbits -= 8
    if nbits:
        data.append(bits & 255)
    out.append(8)
    for i in range(0, len(data), 255):
        chunk = data[i:i + 255]
        out += bytes([len(chunk)]) + chunk
    out += b"\x00;"
    return bytes(out)


def bmp_bytes(w, h, bits, rows, *, compression=0, masks=None, palette=b"", top_down=False):
    """A BMP with a 40-byte info header (+ 12 bytes of masks for bit fields); `rows` bottom-up unless
    top_down, each already padded to 4 bytes (or the RLE stream when compressed)."""
    pixels = b"".join(rows) if isinstance(rows, list) else rows
    extra = struct.pack("<III", *masks) if masks else b""
    offset = 14 + 40 + len(extra) + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bits, compression, len(pixels), 2835, 2835,
                       len(palette) // 4, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + extra + palette + pixels


def pad(row):
    return row + bytes(-len(row) % 4)


def cases():
    w, h = 37, 23
    rnd = random.Random(1)
    pal = [rnd.randrange(256) for _ in range(3 * 200)]
    idx = [rnd.randrange(200) for _ in range(w * h)]
    yield "gif_global.gif", gif_bytes((w, h), pal, (0, 0, w, h), idx)
    yield "gif_interlaced_transparent.gif", gif_bytes((w, h), pal, (0, 0, w, h), idx, interlace=True, transparent=5)
    small = [rnd.randrange(16) for _ in range(20 * 11)]
    loc = [rnd.randrange(256) for _ in range(3 * 16)]
    yield "gif_subframe_local.gif", gif_bytes((w, h), pal, (6, 4, 20, 11), small, local=loc)
    yield "gif_subframe_transparent_fill.gif", gif_bytes((w, h), pal, (6, 4, 20, 11), small, transparent=7)
    yield "gif_frame_past_screen.gif", gif_bytes((20, 10), pal, (10, 5, 20, 11), small)
    yield "gif_no_palette.gif", gif_bytes((20, 11), None, (0, 0, 20, 11), [i * 3 % 256 for i in range(220)])
    yield "gif_short_palette.gif", gif_bytes((20, 11), pal[:3 * 4], (0, 0, 20, 11), [i % 16 for i in range(220)])
    # Pillow's own encoder: P image, palette, transparency.
    p_im = pattern(w, h, 3).quantize(64)
    buf = io.BytesIO()
    p_im.save(buf, "GIF", transparency=3)
    yield "gif_pillow.gif", buf.getvalue()
    frames = [pattern(w, h, s) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=40)
    yield "gif_animated.gif", buf.getvalue()

    rgb = pattern(w, h, 5)
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize((w, h)))
    for name, im, kw in [("webp_lossy.webp", rgb, dict(quality=80)), ("webp_lossy_q20.webp", rgb, dict(quality=20)),
                         ("webp_lossy_alpha.webp", rgba, dict(quality=75)),
                         ("webp_lossless.webp", rgb, dict(lossless=True)),
                         ("webp_lossless_alpha.webp", rgba, dict(lossless=True, exact=True))]:
        buf = io.BytesIO()
        im.save(buf, "WEBP", **kw)
        yield name, buf.getvalue()
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=40, quality=70)
    yield "webp_animated.webp", buf.getvalue()
    big = pattern(160, 96, 9)
    buf = io.BytesIO()
    big.save(buf, "WEBP", quality=50)
    yield "webp_lossy_160x96.webp", buf.getvalue()

    for mode in ["RGB", "RGBA", "P", "L", "1"]:
        im = rgba if mode == "RGBA" else rgb.convert(mode) if mode != "P" else rgb.quantize(16)
        buf = io.BytesIO()
        im.save(buf, "BMP")
        yield f"bmp_pillow_{mode}.bmp", buf.getvalue()
    px = [rnd.randrange(1 << 16) for _ in range(w * h)]
    rows = [pad(b"".join(struct.pack("<H", px[y * w + x]) for x in range(w))) for y in range(h)]
    yield "bmp_16_555.bmp", bmp_bytes(w, h, 16, rows)
    yield "bmp_16_565.bmp", bmp_bytes(w, h, 16, rows, compression=3, masks=(0xF800, 0x7E0, 0x1F))
    rows32 = [bytes(rnd.randrange(256) for _ in range(4 * w)) for _ in range(h)]
    yield "bmp_32_bgrx.bmp", bmp_bytes(w, h, 32, rows32, top_down=True)
    pal4 = bytes(rnd.randrange(256) for _ in range(16 * 4))
    rows4 = [pad(bytes(rnd.randrange(256) for _ in range((w + 1) // 2))) for _ in range(h)]
    yield "bmp_4bit.bmp", bmp_bytes(w, h, 4, rows4, palette=pal4)
    pal8 = bytes(rnd.randrange(256) for _ in range(40 * 4))
    rle = bytearray()
    for y in range(h):
        x = 0
        while x < w:
            n = min(w - x, rnd.randrange(1, 9))
            if rnd.random() < 0.5:
                rle += bytes([n, rnd.randrange(40)])
            else:
                n = max(n, 3)
                n = min(n, w - x) if w - x >= 3 else n
                if w - x < 3:
                    rle += bytes([w - x, rnd.randrange(40)])
                    n = w - x
                else:
                    lit = bytes(rnd.randrange(40) for _ in range(n))
                    rle += bytes([0, n]) + lit + bytes(n % 2)
            x += n
        rle += b"\x00\x00"
    rle += b"\x00\x01"
    yield "bmp_rle8.bmp", bmp_bytes(w, h, 8, bytes(rle), compression=1, palette=pal8)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, data in cases():
        (out / name).write_bytes(data)
        im = Image.open(io.BytesIO(data)).convert("RGB")
        (out / (name + ".rgb")).write_bytes(f"{im.height} {im.width}\n".encode() + im.tobytes())
        print(name, im.size)


if __name__ == "__main__":
    main()
