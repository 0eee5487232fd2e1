#!/usr/bin/env bash
# Temporal deraining on synthetic clips with ground truth (issue 19): renders four 60-frame
# 640x360 clips from one clean image — a fixed camera with moving objects in layered and in
# dense rain, a panning camera and a shaking one — and scores each with `derain eval
# --sequence` for temporal off / on / auto in both modes. Prints one line per run.
#   scripts/eval-temporal.sh CLEAN_IMAGE [OUT_DIR]
set -euo pipefail
clean=${1:?usage: scripts/eval-temporal.sh CLEAN_IMAGE [OUT_DIR]}
out=${2:-/tmp/derain-temporal}
bin=${DERAIN:-target/release/derain}
mkdir -p "$out"
common=(--clean "$clean" --frames 60 --size 640x360 --zoom 1)
"$bin" synth-video "${common[@]}" --pan 0,0 --objects 5 --seed 3 --out "$out/fixed-layered" >/dev/null
"$bin" synth-video "${common[@]}" --pan 0,0 --objects 5 --seed 4 --style dense --out "$out/fixed-dense" >/dev/null
"$bin" synth-video "${common[@]}" --pan 96,0 --objects 3 --seed 5 --out "$out/pan" >/dev/null
"$bin" synth-video "${common[@]}" --pan 0,0 --shake 3 --objects 3 --seed 6 --out "$out/shake" >/dev/null
for clip in fixed-layered fixed-dense pan shake; do
  for mode in "physics" "full --model fast"; do
    for t in off on auto; do
      # shellcheck disable=SC2086
      line=$("$bin" eval --sequence --json --temporal "$t" --mode $mode \
        --rainy "$out/$clip/in" --clean "$out/$clip/gt" |
        python3 -c 'import json,sys; v=json.load(sys.stdin); print("%.2f -> %.2f dB, flicker %.2f -> %.2f, background %.0f%%" % (v["baseline"]["psnr_y"], v["mean"]["psnr_y"], v["flicker"]["input"], v["flicker"]["output"], 100*v["background_share"]))')
      printf '%-14s %-18s %-5s %s\n' "$clip" "$mode" "$t" "$line"
    done
  done
done
