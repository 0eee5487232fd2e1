#!/usr/bin/env bash
# Writes training/tests/fixtures/rain/: two small renders of every rain family with their rain
# layers (`derain synth --save-rain`) and eight rain layers of the grainy family alone
# (`derain synth-bank`), for test_rain.py's comparison of the PyTorch composition with the
# Rust renderer. Run from the repository root after `cargo build --release`.
set -euo pipefail
out=training/tests/fixtures/rain
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A 96×64 seeded scene (no shared data needed): gradients, blocks and texture.
python3 - "$tmp/a.png" <<'PY'
import sys, zlib, struct
w, h = 96, 64
rows = b""
for y in range(h):
    row = bytearray([0])
    for x in range(w):
        r = int(60 + 150 * x / w) ^ (((x // 12) + (y // 10)) % 2) * 40
        g = int(40 + 180 * y / h)
        b = (x * 7 + y * 13) % 200 + 30
        row += bytes([r & 255, g & 255, b & 255])
    rows += bytes(row)
png = b"\x89PNG\r\n\x1a\n"
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
rm -rf "$out"
for st in reference dense screen layered light grainy; do
  target/release/derain synth --clean "$tmp" --out "$out/$st" --per-image 2 --style "$st" \
    --seed 4 --save-rain --size orig >/dev/null
  rm -rf "$out/$st/streak"
done
# Rain layers alone of family (f), large enough to measure its drops
# (test_grainy_rain_matches_the_rust_grainy_family).
target/release/derain synth-bank --style grainy --count 8 --size 128x128 --seed 4 \
  --out "$out/grainy-bank" >/dev/null
du -sh "$out"
