#!/usr/bin/env bash
# Scores derain on held-out renders of every rain family, the clear frames and Rain12, for one
# or more configurations, and prints one row per (set, configuration): count, input and output
# Y-PSNR / SSIM (TSV). Test sets (models/README.md): `derain synth --style S --clean HELDOUT
# --per-image 3 --seed 999` (reference at --size 720x480), the clear frames of the light
# family moved to clear/. Usage:
#   scripts/eval-families.sh TESTROOT RAIN12_DIR "--mode physics" "--mode full --model fast" ...
# (`eval` runs `full` with the mirror ensemble unless `--ensemble off` is given.)
set -euo pipefail
root=$1; rain12=$2; shift 2
bin=${DERAIN_BIN:-target/release/derain}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf 'set\tconfig\tn\tin_psnr_y\tin_ssim_y\tout_psnr_y\tout_ssim_y\n'
for cfg in "$@"; do
  for set in reference dense screen layered light grainy clear rain12; do
    if [ "$set" = rain12 ]; then rainy=$rain12/rain; clean=$rain12/norain; else rainy=$root/$set/in; clean=$root/$set/gt; fi
    [ -d "$rainy" ] || continue
    # shellcheck disable=SC2086
    "$bin" eval --rainy "$rainy" --clean "$clean" --json --backend cpu $cfg >"$tmp" 2>/dev/null
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
b, o = d["baseline"], d["mean"]
f = lambda v: "inf" if v is None else "%.2f" % v
print("\t".join([sys.argv[2], sys.argv[3], str(d["count"]), f(b["psnr_y"]), "%.3f" % b["ssim_y"],
                 f(o["psnr_y"]), "%.3f" % o["ssim_y"]]))' "$tmp" "$set" "$cfg"
  done
done
