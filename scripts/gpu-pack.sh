#!/usr/bin/env bash
# Prepares target/gpu-pack for training/gpu-train.sh on a GPU machine (carry it with the call):
#   derain.xz  the CLI built without GStreamer (the GPU machines have none), stripped and
#            xz-packed (38 MB → 10 MB; training/gpu-train.sh unpacks it there)
#   clean/   the 160 training clean images (sun_000–069, urban_000–089; never the held-out
#            test images), longer side ≤ 768, JPEG quality 92 (to fit the 64 MiB carry limit)
#   init/    streak_SIZE.pt and veil_SIZE.pt: the weights the shipped networks were exported
#            from, to continue from (default: the committed training/weights/*.pt)
# Usage: scripts/gpu-pack.sh CLEAN_DIR [STREAK_FAST STREAK_QUALITY VEIL_FAST VEIL_QUALITY]
set -euo pipefail
clean=$1
w=training/weights
set -- "$1" "${2:-$w/streak_fast.pt}" "${3:-$w/streak_quality.pt}" "${4:-$w/veil_fast.pt}" \
  "${5:-$w/veil_quality.pt}"
pack=target/gpu-pack
rm -rf "$pack"; mkdir -p "$pack/clean" "$pack/init"
# The same build as `scripts/gpu-check.sh prepare` (it replaces target/release/derain with the
# GStreamer-free variant: `cargo build --release` afterwards restores the default one).
cargo build --release --no-default-features --features cli,cuda --bin derain
cp target/release/derain "$pack/derain"
strip --strip-all "$pack/derain"
xz -T0 -6 "$pack/derain"
cp "$2" "$pack/init/streak_fast.pt"; cp "$3" "$pack/init/streak_quality.pt"
cp "$4" "$pack/init/veil_fast.pt"; cp "$5" "$pack/init/veil_quality.pt"
${PYTHON:-python3} - "$clean" "$pack/clean" <<'PY'
import sys
from pathlib import Path
from PIL import Image
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
names = [f"sun_{i:03d}.jpg" for i in range(70)] + [f"urban_{i:03d}.jpg" for i in range(90)]
for n in names:
    im = Image.open(src / n).convert("RGB")
    s = 768 / max(im.size)
    if s < 1:
        im = im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC)
    im.save(dst / n, quality=92)
PY
du -sh "$pack" "$pack"/*
