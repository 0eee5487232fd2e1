#!/usr/bin/env bash
# Sample sheets of every rain family (docs/rain-styles/FAMILY.jpg): three renders over the
# bundled public-domain demo photo (assets/demo/rocket.jpg), centre crops at the rendered
# scale, clean crop first. Needs the release binary and Python with Pillow and NumPy.
set -euo pipefail
bin=${DERAIN_BIN:-target/release/derain}
py=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/clean" docs/rain-styles
cp assets/demo/rocket.jpg "$tmp/clean/"
for st in reference dense screen layered light grainy; do
  "$bin" synth --clean "$tmp/clean" --out "$tmp/$st" --per-image 3 --style "$st" --seed 21 \
    --size orig >/dev/null 2>&1
  "$py" - "$tmp/$st" "docs/rain-styles/$st.jpg" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root, out = Path(sys.argv[1]), sys.argv[2]
stems = sorted(p.stem for p in (root / "in").glob("*.png"))
def crop(p):
    a = np.asarray(Image.open(p).convert("RGB"))
    h, w = a.shape[:2]
    y, x = (h - 240) // 2, (w - 300) // 2
    return a[y:y + 240, x:x + 300]
tiles = [crop(root / "gt" / f"{stems[0]}.png")] + [crop(root / "in" / f"{s}.png") for s in stems]
gap = np.full((240, 4, 3), 255, np.uint8)
row = np.concatenate(sum(([t, gap] for t in tiles), [])[:-1], 1)
Image.fromarray(row).save(out, quality=88)
PY
done
ls -la docs/rain-styles
