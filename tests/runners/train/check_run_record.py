#!/usr/bin/env python3
"""Checks a training run's record against metrics.jsonl, sharing no code with the C++ writers:

  check_run_record.py OUTPUT_DIR [--no-plot]

1. Every TensorBoard event file under OUTPUT_DIR/tb is read with this file's own TFRecord framing,
   CRC-32C and protobuf decoding: each record's length and data CRCs must match, the first event of
   a file must be file_version "brain.Event:2", every other one a Summary of simple_value scalars.
   The scalars must equal metrics.jsonl's values (as float32) at the same steps: each training line
   gives train/<key> for loss, loss_avg, lr, samples_per_s, tokens_per_s, rss_mb; each validation line
   ({"split": NAME, "NAME_<metric>": value, ...}) gives NAME/<metric> for its numbers.
2. OUTPUT_DIR/loss_lr.svg must parse as XML and hold polylines loss, loss_avg and lr with one point
   per logged step (a step logged twice counts once), ordered by step, no value drawn above a larger
   one.
Exits 1 with the first problem found.
"""
import collections
import glob
import json
import math
import os
import struct
import sys
import xml.etree.ElementTree as ET

TRAIN_KEYS = ("loss", "loss_avg", "lr", "samples_per_s", "tokens_per_s", "rss_mb")


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, pos):
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(buf):
    """(field number, wire type, value) of a protobuf message."""
    pos, out = 0, []
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire} of field {number}")
        out.append((number, wire, value))
    if pos != len(buf):
        raise ValueError("message overruns its buffer")
    return out


def records(path):
    data = open(path, "rb").read()
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if crc != masked(header):
            raise ValueError(f"{path}: length CRC mismatch at byte {pos}")
        body = data[pos + 12:pos + 12 + length]
        if len(body) != length or pos + 16 + length > len(data):
            raise ValueError(f"{path}: truncated record at byte {pos}")
        (crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if crc != masked(body):
            raise ValueError(f"{path}: data CRC mismatch at byte {pos}")
        yield body
        pos += 16 + length


def read_events(tb_dir):
    """Counter of (tag, step, float32 value) over every event file."""
    files = sorted(glob.glob(os.path.join(tb_dir, "events.out.tfevents.*")))
    if not files:
        raise ValueError(f"no event file in {tb_dir}")
    scalars = collections.Counter()
    for path in files:
        for i, body in enumerate(records(path)):
            event = {n: v for n, _, v in fields(body)}
            if 1 not in event or not math.isfinite(struct.unpack("<d", event[1])[0]):
                raise ValueError(f"{path}: event {i} has no wall_time")
            if i == 0:
                if event.get(3) != b"brain.Event:2":
                    raise ValueError(f"{path}: first event is not file_version brain.Event:2")
                continue
            step = event.get(2, 0)
            for number, _, value in fields(event[5]):
                if number != 1:
                    continue
                v = {n: x for n, _, x in fields(value)}
                scalars[(v[1].decode(), step, struct.unpack("<f", v[2])[0])] += 1
    return scalars, len(files)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected_scalars(lines):
    out = collections.Counter()
    for row in lines:
        if "loss" in row:
            for key in TRAIN_KEYS:
                out[(f"train/{key}", row["step"], f32(row[key]))] += 1
        else:
            name = row["split"]
            for key, value in row.items():
                if key.startswith(name + "_") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[(f"{name}/{key[len(name) + 1:]}", row["step"], f32(value))] += 1
    return out


def check_plot(svg, lines):
    steps = {}
    for row in lines:
        if "loss" in row:
            steps[row["step"]] = row
    ordered = [steps[s] for s in sorted(steps)]
    root = ET.parse(svg).getroot()
    lines_by_id = {e.get("id"): e for e in root.iter("{http://www.w3.org/2000/svg}polyline")}
    for key in ("loss", "loss_avg", "lr"):
        if key not in lines_by_id:
            raise ValueError(f"{svg}: no polyline '{key}'")
        points = [tuple(map(float, p.split(","))) for p in lines_by_id[key].get("points").split()]
        if len(points) != len(ordered):
            raise ValueError(f"{svg}: polyline '{key}' has {len(points)} points, metrics.jsonl {len(ordered)} steps")
        xs = [x for x, _ in points]
        if xs != sorted(xs):
            raise ValueError(f"{svg}: polyline '{key}' is not ordered by step")
        values = [row[key] for row in ordered]
        for (_, ya), va in zip(points, values):  # SVG y grows downwards; coordinates have 2 decimals
            for (_, yb), vb in zip(points, values):
                if va < vb and ya < yb - 0.011:
                    raise ValueError(f"{svg}: polyline '{key}' draws {va} above {vb}")
    return len(ordered)


def main():
    out_dir = sys.argv[1]
    lines = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl")) if l.strip()]
    try:
        got, n_files = read_events(os.path.join(out_dir, "tb"))
        want = expected_scalars(lines)
        if got != want:
            missing, extra = want - got, got - want
            raise ValueError(f"event files differ from metrics.jsonl: missing {sorted(missing)[:5]}, "
                             f"extra {sorted(extra)[:5]}")
        print(f"{sum(got.values())} scalars in {n_files} event file(s) equal metrics.jsonl's")
        if "--no-plot" not in sys.argv:
            n = check_plot(os.path.join(out_dir, "loss_lr.svg"), lines)
            print(f"loss_lr.svg: {n} points per curve")
    except (ValueError, KeyError, ET.ParseError, OSError) as e:
        print(f"check_run_record: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
