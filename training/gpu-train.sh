#!/usr/bin/env bash
# One GPU lease of training: render the three training sets from clean images with the derain
# binary, fine-tune (or train) the networks for a wall-clock budget, then fit the frame-level
# heads (A and the veil gate) on whole frames. Needs python3 with torch (CUDA), numpy and pillow;
# no Rust toolchain (the derain binary is prebuilt, e.g. by scripts/gpu-check.sh prepare).
#
#   training/gpu-train.sh DERAIN_BIN CLEAN_TRAIN_DIR OUT_DIR [MINUTES] [INIT_WEIGHTS] [EXTRA TRAIN ARGS...]
#
# CLEAN_TRAIN_DIR holds the training clean images only (the model card's 160: sun_000–069,
# urban_000–089); the held-out ones must not be in it. The renders use the model card's seeds,
# so they are bit-identical to the CPU runs' data. OUT_DIR gets run/ (ckpt.pt, weights.pt,
# log.jsonl) and gate/ (weights.pt, log.jsonl); gate/weights.pt is what export.py takes.
# Renders go to $DERAIN_SYNTH_DIR (default /tmp/derain-synth) and are reused when present;
# DERAIN_TRAIN_DEVICE overrides the torch device (cuda). DERAIN_RENDER_ONLY=1 stops after rendering; FIT_STEPS sets the head fit's steps (600), FIT_TIMEOUT caps it in seconds (0 = none).
set -euo pipefail
bin=$1 clean=$2 out=$3 minutes=${4:-4} init=${5:-}
shift $(( $# < 5 ? $# : 5 ))
here="$(cd "$(dirname "$0")" && pwd)"
data=${DERAIN_SYNTH_DIR:-/tmp/derain-synth}
dev=${DERAIN_TRAIN_DEVICE:-cuda}
mkdir -p "$out" "$data"
bin=$(realpath "$bin") clean=$(realpath "$clean") out=$(realpath "$out") data=$(realpath "$data")
[ -z "$init" ] || init=$(realpath "$init")
t0=$(date +%s)
[ -d "$data/train/in" ] || "$bin" synth --clean "$clean" --out "$data/train" --per-image 10 --intensity 0.0..1 --seed 1
[ -d "$data/light/in" ] || "$bin" synth --clean "$clean" --out "$data/light" --per-image 4 --intensity 0.0..0.15 --seed 3
[ -d "$data/clear/in" ] || "$bin" synth --clean "$clean" --out "$data/clear" --per-image 3 --intensity 0.0..0.03 --seed 4
echo "renders ready in $(( $(date +%s) - t0 )) s"
[ -z "${DERAIN_RENDER_ONLY:-}" ] || exit 0   # several runs can then share one set of renders
cd "$here"
export PYTHONUNBUFFERED=1
python3 -m derain_train.train --data "$data/train" "$data/light" "$data/clear" --out "$out/run" \
  --device "$dev" --steps 100000 --minutes "$minutes" --batch 16 --crop 256 --every 500 \
  ${init:+--init "$init"} "$@"
timeout "${FIT_TIMEOUT:-0}" python3 -m derain_train.fit_atm --data "$data/train" "$data/light" "$data/clear" \
  --init "$out/run/weights.pt" --out "$out/gate" --steps "${FIT_STEPS:-600}" --device "$dev"
echo "gpu-train done in $(( $(date +%s) - t0 )) s"
