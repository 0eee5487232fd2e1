#!/usr/bin/env python3
"""Before/after sheets of real rain photographs and clip frames, to look at.

    .venv/bin/python scripts/real-sheet.py ../shared/data/real-rain out/real \\
        "physics=--mode physics" "fast=--mode full --model fast" "quality=--mode full --model quality"

Writes OUT/NAME.png per image: input | one column per configuration (labelled in the file name
order given), for photos 1, 10, 23, 57, 100 (the issue's), 32 (a deck railing: parallel bars
the networks must keep) and frames 0 and 30 of the two real clips. Needs
the release binary (DERAIN_BIN) and Pillow.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ["1", "10", "23", "57", "100", "32"]
CLIP_FRAMES = [0, 30]


def main():
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    configs = [c.split("=", 1) for c in sys.argv[3:]]
    binary = os.environ.get("DERAIN_BIN", "target/release/derain")
    out.mkdir(parents=True, exist_ok=True)
    inputs = [(f"photo{p}", root / "photos" / f"{p}.jpg") for p in PHOTOS]
    for clip in ("ra1_Rain", "rb2_Rain"):
        frames = sorted((root / "video" / clip).glob("*.jpg"))
        inputs += [(f"{clip}_{i:02d}", frames[i]) for i in CLIP_FRAMES if i < len(frames)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in inputs:
            cols = [np.asarray(Image.open(path).convert("RGB"))]
            for label, args in configs:
                dst = Path(tmp) / f"{name}_{label}.png"
                subprocess.run([binary, "image", str(path), "-o", str(dst), "--backend", "cpu",
                                *args.split()], check=True, capture_output=True)
                cols.append(np.asarray(Image.open(dst).convert("RGB")))
            gap = np.full((cols[0].shape[0], 6, 3), 255, np.uint8)
            sheet = np.concatenate(sum(([c, gap] for c in cols), [])[:-1], 1)
            Image.fromarray(sheet).save(out / f"{name}.png")
            print(out / f"{name}.png", "input |", " | ".join(l for l, _ in configs))


if __name__ == "__main__":
    main()
