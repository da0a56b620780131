"""Writes GIF / WebP / BMP files and what Pillow's `Image.open(f).convert("RGB")` makes of them, for the
"PIL reference" case of test_media_decode (which compares ImageDecoder with them pixel for pixel).

    PYTHONPATH=<dir holding PIL> python3 tests/datasets/media/make_pil_reference.py OUT_DIR
    CB_PIL_REFERENCE_DIR=OUT_DIR build/tests/test_media_decode "image decode: PIL reference*"

Each <case>.<ext> gets <case>.<ext>.rgb: 'H W\n' then H*W*3 bytes, or, where Pillow raises (with its
default ImageFile.LOAD_TRUNCATED_IMAGES = False), <case>.<ext>.err holding the exception: the test then
expects a cb::Error naming the file. Besides well-formed files there are damaged GIFs (edge_cases: cut,
stray bytes, odd blocks and code sizes) and BMPs (cut pixel data, headers at odds with the data,
RLE), and random mutations of a few GIFs and of the BMPs (mutants). Needs only Pillow.
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


def lzw_pack(codes, min_size):
    """Packs LZW codes LSB first, widening codes as a decoder that adds one table entry per code after the
    first (and after each clear) does: the way Pillow's decoder and GIF encoders agree on."""
    clear = 1 << min_size
    width, nxt, fresh = min_size + 1, clear + 2, True
    bits, nbits, data = 0, 0, bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += width
        while nbits >= 8:
            data.append(bits & 255)
            bits >>= 8
            nbits -= 8
        if c == clear:
            width, nxt, fresh = min_size + 1, clear + 2, True
        elif c != clear + 1:
            if not fresh and nxt < 4096:
                if nxt == (1 << width) - 1 and width < 12:
                    width += 1
                nxt += 1
            fresh = False
    if nbits:
        data.append(bits & 255)
    return bytes(data)


def sub_blocks(data, size=255):
    return b"".join(bytes([len(data[i:i + size])]) + data[i:i + size] for i in range(0, len(data), size))


def gif_with_codes(screen, palette, frame, codes, min_size=8, *, before_image=b"", blocks=None):
    """A GIF whose first frame's data is `codes` (literal pixel values, clear and end codes as given)."""
    out = gif_bytes(screen, palette, frame, [0] * (frame[2] * frame[3]))
    start = 13 + (3 << ((out[10] & 7) + 1) if out[10] & 0x80 else 0)
    desc = out[start:start + 10]
    data = lzw_pack(codes, min_size)
    return out[:start] + before_image + desc + bytes([min_size]) + (blocks or sub_blocks)(data) + b"\x00;"


def gif_edge_cases(pal, rnd):
    """Damaged and unusual GIFs, each with what Pillow 9.4 does in its .rgb or .err file."""
    w, h = 11, 7
    idx = [rnd.randrange(len(pal) // 3) for _ in range(w * h)]
    base = gif_bytes((w, h), pal, (0, 0, w, h), idx)
    img = 13 + (3 << ((base[10] & 7) + 1))  # the image descriptor; code size at img + 10, data at img + 11
    assert base[img] == ord(",")
    data = img + 11
    yield "gif_edge_cut_in_data.gif", base[:data + 5]
    yield "gif_edge_cut_in_last_sub_block.gif", base[:-3]
    yield "gif_edge_cut_after_last_sub_block.gif", base[:-2]
    yield "gif_edge_cut_after_code_size.gif", base[:data]
    yield "gif_edge_cut_in_descriptor.gif", base[:img + 5]
    yield "gif_edge_no_trailer.gif", base[:-1]
    yield "gif_edge_garbage_after_trailer.gif", base + b"garbage\x00,\x01;"
    yield "gif_edge_stray_bytes_before_image.gif", base[:img] + b"\x00\x01xyz\xff" + base[img:]
    yield "gif_edge_semicolon_before_image.gif", base[:img] + b";" + base[img:]
    yield "gif_edge_no_image.gif", base[:img] + b";"
    yield "gif_edge_header_only.gif", base[:img]
    yield "gif_edge_unknown_extension.gif", base[:img] + b"!\x42\x03abc\x02de\x00" + base[img:]
    # An extension whose first sub-block is the terminator: Pillow reads on, taking ',' as a length.
    yield "gif_edge_extension_empty.gif", base[:img] + b"!\x42\x00" + base[img:]
    yield "gif_edge_comment_empty.gif", base[:img] + b"!\xfe\x00" + base[img:]
    yield "gif_edge_comment.gif", base[:img] + b"!\xfe\x05hello\x03abc\x00" + base[img:]
    yield "gif_edge_plain_text_extension.gif", base[:img] + b"!\x01\x0c" + bytes(12) + b"\x02hi\x00" + base[img:]
    yield "gif_edge_gce_3_bytes.gif", base[:img] + b"!\xf9\x03\x00\x00\x00\x00" + base[img:]
    yield "gif_edge_gce_3_bytes_transparent.gif", base[:img] + b"!\xf9\x03\x01\x00\x00\x00" + base[img:]
    yield "gif_edge_gce_empty.gif", base[:img] + b"!\xf9\x00" + base[img:]
    yield "gif_edge_gce_6_bytes_transparent.gif", base[:img] + b"!\xf9\x06\x01\x00\x00\x05\x00\x00\x00" + base[img:]
    yield "gif_edge_two_gces.gif", (base[:img] + b"!\xf9\x04\x01\x00\x00\x09\x00" + b"!\xf9\x04\x00\x00\x00\x02\x00" +
                                    base[img:img + 1] + bytes([2, 0, 1, 0]) + base[img + 5:])
    yield "gif_edge_app_extension_empty.gif", base[:img] + b"!\xff\x00" + base[img:]
    yield "gif_edge_netscape_without_loop.gif", base[:img] + b"!\xff\x0bNETSCAPE2.0\x00" + base[img:]
    yield "gif_edge_netscape.gif", base[:img] + b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00" + base[img:]
    for bits in [0, 1, 2, 7, 9, 12, 13, 255]:
        b = bytearray(base)
        b[img + 10] = bits
        yield f"gif_edge_code_size_{bits}.gif", bytes(b)
    n = base[data]
    block = base[data + 1:data + 1 + n]
    yield "gif_edge_empty_sub_block_first.gif", base[:data] + b"\x00" + base[data:]
    yield "gif_edge_empty_sub_block_between.gif", (base[:data] + bytes([5]) + block[:5] + b"\x00\x00" +
                                                   bytes([n - 5]) + block[5:] + base[data + 1 + n:])
    yield "gif_edge_sub_block_past_end.gif", base[:data] + bytes([n + 10]) + base[data + 1:]
    yield "gif_edge_sub_block_255_past_end.gif", base[:data] + bytes([255]) + base[data + 1:]
    # Frame rectangles: past the screen, empty, width 0 at x 0 (Pillow decodes it over the whole canvas).
    yield "gif_edge_frame_past_screen_interlaced.gif", gif_bytes((8, 5), pal, (3, 2, w, h), idx, interlace=True)
    yield "gif_edge_screen_0x0.gif", gif_bytes((0, 0), pal, (0, 0, w, h), idx)
    yield "gif_edge_frame_width_0_at_0.gif", gif_with_codes((w, h), pal, (0, 2, 0, 3), [256] + idx + [257])
    yield "gif_edge_frame_width_0_at_0_short.gif", gif_with_codes((w, h), pal, (0, 2, 0, 3), [256] + idx[:20] + [257])
    yield "gif_edge_frame_width_0_at_4.gif", gif_with_codes((w, h), pal, (4, 2, 0, 3), [256] + idx + [257])
    yield "gif_edge_frame_height_0.gif", gif_with_codes((w, h), pal, (1, 2, 5, 0), [256] + idx + [257])
    yield "gif_edge_1x1_interlaced.gif", gif_bytes((1, 1), pal, (0, 0, 1, 1), idx[:1], interlace=True)
    yield "gif_edge_3x3_interlaced.gif", gif_bytes((3, 3), pal, (0, 0, 3, 3), idx[:9], interlace=True)
    # LZW streams: an end code before the last pixel, a code past the table, extra codes after the frame,
    # no clear code first, literal-only streams that fill the table (deferred clear) with and without a
    # clear code after it, and string codes (KwKwK: a code defined by its own use).
    yield "gif_edge_end_code_early.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [256] + idx[:30] + [257])
    yield "gif_edge_code_past_table.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [256] + idx[:3] + [300] + idx)
    yield "gif_edge_codes_after_frame.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [256] + idx + idx + [257])
    yield "gif_edge_no_clear_code.gif", gif_with_codes((w, h), pal, (0, 0, w, h), idx + [257])
    yield "gif_edge_clear_clear.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [256, 256] + idx[:5] + [256, 256] + idx[5:] + [257])
    yield "gif_edge_kwkwk.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [256, 3, 258, 259, 260] + idx + [257])
    yield "gif_edge_first_code_is_string.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [256, 258] + idx + [257])
    big = [rnd.randrange(len(pal) // 3) for _ in range(90 * 80)]
    yield "gif_edge_table_full.gif", gif_with_codes((90, 80), pal, (0, 0, 90, 80), [256] + big + [257])
    yield "gif_edge_table_full_then_clear.gif", gif_with_codes((90, 80), pal, (0, 0, 90, 80), [256] + big[:5000] + [256] + big[5000:] + [257])
    small = [rnd.randrange(4) for _ in range(w * h)]
    yield "gif_edge_lzw_min_size_2.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [4] + small + [5], min_size=2)
    yield "gif_edge_lzw_min_size_1.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [2] + [v & 1 for v in small] + [3], min_size=1)
    yield "gif_edge_lzw_min_size_12.gif", gif_with_codes((w, h), pal, (0, 0, w, h), [4096] + [v * 20 for v in idx] + [4097], min_size=12)
    # An end code early in a file with more than one 65536-byte read after it: Pillow's read loop feeds
    # the next read and decoding goes on, so the image is whole.
    bw, bh = 400, 300
    bigidx = [rnd.randrange(len(pal) // 3) for _ in range(bw * bh)]
    codes = [256]
    for i, v in enumerate(bigidx):
        if i and i % 250 == 0:
            codes.append(256)
        if i == 1000:
            codes.append(257)
        codes.append(v)
    yield "gif_edge_end_code_then_more_reads.gif", gif_with_codes((bw, bh), pal, (0, 0, bw, bh), codes + [257])
    codes = [256] + [c for i, v in enumerate(bigidx) for c in ([256, v] if i and i % 250 == 0 else [v])][:-2000] + [257]
    yield "gif_edge_end_code_in_last_read.gif", gif_with_codes((bw, bh), pal, (0, 0, bw, bh), codes)
    frames = [pattern(w, h, s) for s in range(2)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    anim = buf.getvalue()
    yield "gif_edge_second_frame_cut.gif", anim[:-20]


def damage(b, at, rnd, keep):
    """One random change at `at`: a byte replaced, inserted or deleted, or the file cut there (never
    before `keep` bytes)."""
    kind = rnd.randrange(4)
    if kind == 0:
        b[at] = rnd.randrange(256)
    elif kind == 1:
        b.insert(at, rnd.randrange(256))
    elif kind == 2:
        del b[at]
    else:
        del b[max(at, keep):]


def gif_mutants(rnd, count):
    """Random damage to a few GIFs (Pillow's encoder: real LZW strings; interlaced; animated): a byte
    changed, inserted or removed, or the file cut."""
    w, h = 37, 23
    buf = io.BytesIO()
    pattern(w, h, 3).quantize(64).save(buf, "GIF", transparency=3)
    seeds = [buf.getvalue()]
    buf = io.BytesIO()
    pattern(w, h, 4).quantize(200).save(buf, "GIF", interlace=1)
    seeds.append(buf.getvalue())
    buf = io.BytesIO()
    pattern(w, h, 5).save(buf, "GIF", save_all=True, append_images=[pattern(w, h, 6)], duration=40)
    seeds.append(buf.getvalue())
    for i in range(count):
        b = bytearray(seeds[i % len(seeds)])
        for _ in range(rnd.choice([1, 1, 2, 4])):
            damage(b, rnd.randrange(len(b)), rnd, keep=14)
        yield f"gif_mutant_{i:03d}.gif", bytes(b)


def bmp_edge_cases(rnd):
    """BMP files PIL 9.4 reads its own way: cut pixel data, headers that disagree with the data, RLE."""
    w, h = 13, 5
    pal = bytes(rnd.randrange(256) for _ in range(6 * 4))
    rows = [pad(bytes(rnd.randrange(6) for _ in range(w))) for _ in range(h)]
    raw8 = bmp_bytes(w, h, 8, rows, palette=pal)
    yield "bmp_edge_8bit_last_row_unpadded.bmp", raw8[:-3]
    yield "bmp_edge_8bit_last_row_cut.bmp", raw8[:-4]
    yield "bmp_edge_8bit_cut_in_palette.bmp", raw8[:60]
    yield "bmp_edge_8bit_offset_at_header_end.bmp", raw8[:10] + struct.pack("<I", 54) + raw8[14:]
    yield "bmp_edge_8bit_offset_0.bmp", raw8[:10] + struct.pack("<I", 0) + raw8[14:]
    yield "bmp_edge_8bit_offset_past_end.bmp", raw8[:10] + struct.pack("<I", 5000) + raw8[14:]
    yield "bmp_edge_8bit_file_size_wrong.bmp", raw8[:2] + struct.pack("<I", 7) + raw8[6:]
    yield "bmp_edge_8bit_image_size_wrong.bmp", raw8[:34] + struct.pack("<I", 99999) + raw8[38:]
    yield "bmp_edge_8bit_planes_0.bmp", raw8[:26] + b"\x00\x00" + raw8[28:]
    yield "bmp_edge_8bit_colors_300.bmp", raw8[:46] + struct.pack("<I", 300) + raw8[50:]
    yield "bmp_edge_8bit_colors_70000.bmp", raw8[:46] + struct.pack("<I", 70000) + raw8[50:]
    yield "bmp_edge_8bit_header_56.bmp", raw8[:14] + struct.pack("<I", 56) + raw8[18:]
    bw = bytes([0, 0, 0, 0, 255, 255, 255, 0])
    yield "bmp_edge_8bit_black_white_palette.bmp", bmp_bytes(w, h, 8, [pad(bytes(rnd.randrange(256) for _ in range(w)))
                                                                      for _ in range(h)], palette=bw)
    gray16 = b"".join(bytes([i, i, i, 0]) for i in range(16))
    yield "bmp_edge_4bit_gray_palette.bmp", bmp_bytes(w, h, 4, [pad(bytes(rnd.randrange(256) for _ in range((w + 1) // 2)))
                                                                 for _ in range(h)], palette=gray16)
    yield "bmp_edge_2bit.bmp", bmp_bytes(w, h, 2, [pad(bytes(4)) for _ in range(h)], palette=pal[:16])
    yield "bmp_edge_compression_4.bmp", raw8[:30] + struct.pack("<I", 4) + raw8[34:]
    rgb = [pad(bytes(rnd.randrange(256) for _ in range(3 * w))) for _ in range(h)]
    raw24 = bmp_bytes(w, h, 24, rgb)
    yield "bmp_edge_24bit_last_row_unpadded.bmp", raw24[:-1]
    yield "bmp_edge_24bit_last_row_cut.bmp", raw24[:-2]
    yield "bmp_edge_24bit_planes_3.bmp", raw24[:26] + b"\x03\x00" + raw24[28:]
    px = [pad(b"".join(struct.pack("<H", rnd.randrange(1 << 16)) for _ in range(w))) for _ in range(h)]
    yield "bmp_edge_16_masks_444.bmp", bmp_bytes(w, h, 16, px, compression=3, masks=(0xF00, 0xF0, 0xF))
    yield "bmp_edge_16_masks_555.bmp", bmp_bytes(w, h, 16, px, compression=3, masks=(0x7C00, 0x3E0, 0x1F))
    # RLE8 / RLE4: ends, deltas (PIL 9.4 skips two bytes and reads right/up from the next two), runs past
    # the row, absolute runs (odd RLE4 lengths), the compression field against the depth.
    def rle(ops, bits=8, comp=1, palette=pal):
        return bmp_bytes(w, h, bits, bytes(ops), compression=comp, palette=palette)
    full = []
    for y in range(h):
        full += [5, 1, 0, 4, 2, 3, 1, 5, 0, 0, 6, 4, 0, 0]
    yield "bmp_edge_rle8_ok.bmp", rle(full + [0, 1])
    yield "bmp_edge_rle8_no_end_of_bitmap.bmp", rle(full)
    yield "bmp_edge_rle8_end_early.bmp", rle(full[:28] + [0, 1])
    yield "bmp_edge_rle8_cut.bmp", rle(full[:29])
    yield "bmp_edge_rle8_run_past_row.bmp", rle([40, 2, 0, 0] * h + [0, 1])
    yield "bmp_edge_rle8_absolute_past_row.bmp", rle([0, 20] + list(range(20)) + [3, 1, 0, 0] + full)
    yield "bmp_edge_rle8_delta.bmp", rle([2, 1, 0, 2, 9, 9, 3, 1] + full)
    yield "bmp_edge_rle8_delta_cut.bmp", rle([2, 1, 0, 2, 9, 9, 3])
    yield "bmp_edge_rle8_eol_only.bmp", rle([0, 0] * (h + 2) + [0, 1])
    yield "bmp_edge_rle8_odd_offset.bmp", rle([0, 3, 1, 2, 3] + full)
    yield "bmp_edge_rle4.bmp", rle([5, 0x12, 0, 5, 0x34, 0x56, 0x70, 0, 3, 0xAB, 0, 0] * h + [0, 1], bits=4, comp=2)
    yield "bmp_edge_rle4_on_8bit.bmp", rle([5, 0x12, 0, 0] * h + [0, 1], bits=8, comp=2)
    yield "bmp_edge_rle8_on_4bit.bmp", rle(full + [0, 1], bits=4, comp=1)
    yield "bmp_edge_rle8_black_white.bmp", rle([13, 1, 0, 0] * h + [0, 1], palette=bw)
    yield "bmp_edge_rle8_24bit.bmp", rle(full + [0, 1], bits=24, palette=b"")


def bmp_mutants(rnd, seeds, count):
    """Random damage to the BMP reference files (`seeds`: name, bytes), most of it in the headers."""
    for i in range(count):
        name, data = seeds[i % len(seeds)]
        b = bytearray(data)
        for _ in range(rnd.choice([1, 1, 2])):
            at = rnd.randrange(len(b)) if rnd.random() < 0.5 else rnd.randrange(min(len(b), 70))
            damage(b, at, rnd, keep=2)
        yield f"bmp_mutant_{i:03d}_{name}", bytes(b)


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
    bmps = []
    for name, data in reference_files():
        if name.startswith("bmp_"):
            bmps.append((name, data))
        yield name, data
    yield from bmp_edge_cases(random.Random(13))
    yield from bmp_mutants(random.Random(14), bmps, 400)


def reference_files():
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
    yield from gif_edge_cases(pal, random.Random(11))
    yield from gif_mutants(random.Random(12), 400)

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
        for stale in [out / (name + ".rgb"), out / (name + ".err")]:
            stale.unlink(missing_ok=True)
        try:
            im = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception as e:  # the original's dataset skips the sample
            (out / (name + ".err")).write_text(f"{type(e).__name__}: {e}\n")
            print(name, "raises", type(e).__name__, e)
            continue
        (out / (name + ".rgb")).write_bytes(f"{im.height} {im.width}\n".encode() + im.tobytes())
        print(name, im.size)


if __name__ == "__main__":
    main()
