#!/usr/bin/env python3
"""Writes a small two-class image folder (horizontal vs vertical stripes with noise) as BMP files.

    make_stripes.py OUT_DIR [--per-class N] [--size S] [--seed K]

Only the standard library: BMP is simple enough to write by hand, and the loader reads it.
"""
import argparse
import os
import random
import struct


def write_bmp(path, pixels, size):
    """pixels: list of rows of (r, g, b); 24-bit bottom-up BMP."""
    row_bytes = (3 * size + 3) & ~3
    data = bytearray()
    for row in reversed(pixels):
        line = bytearray()
        for r, g, b in row:
            line += bytes((b, g, r))
        line += b"\0" * (row_bytes - len(line))
        data += line
    header = struct.pack("<2sIHHI", b"BM", 54 + len(data), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, size, size, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, default=60)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    for cls in ("horizontal", "vertical"):
        os.makedirs(os.path.join(args.out, cls), exist_ok=True)
        for i in range(args.per_class):
            phase = rnd.randrange(4)
            rows = []
            for y in range(args.size):
                row = []
                for x in range(args.size):
                    t = y if cls == "horizontal" else x
                    v = 200 if ((t + phase) // 2) % 2 == 0 else 40
                    v = max(0, min(255, v + rnd.randint(-30, 30)))
                    row.append((v, v, v))
                rows.append(row)
            write_bmp(os.path.join(args.out, cls, f"{i:04d}.bmp"), rows, args.size)


if __name__ == "__main__":
    main()
