#!/usr/bin/env bash
# One unattended training lease on a GPU machine (or, for a check, the CPU): render rain banks
# with the prebuilt derain binary, train the streak network for a wall-clock budget, then the
# veil and refinement networks behind it. Every minute both write a checkpoint and a validation
# line under OUT, so a run cut short still leaves usable weights; export happens afterwards on
# the development machine (training/derain_train/export_full.py).
#
#   training/gpu-train.sh PACK OUT [SIZE] [STREAK_MINUTES] [VEIL_MINUTES]
#
# PACK is what scripts/gpu-pack.sh prepares (target/gpu-pack: derain.xz, a stripped binary
# without GStreamer, unpacked here on first use; clean/, the 160 training images; init/, the
# committed weights to start from). OUT gets streak/ and veil/ (ckpt.pt, weights.pt, log.jsonl
# each) and gpu-train.log; the rain banks go to BANKS (default /tmp/derain-banks, reused when
# present: thousands of PNGs that must not travel back with OUT). SIZE is quality (default) or
# fast. Environment: DERAIN_TRAIN_DEVICE (cuda), BANK_COUNT (layers per family, 1200), BATCH
# (48), CROP (256), BARS (share of crops with scene bars painted in, 0.3), ROTATE (share of
# crops whose rain is turned by 20–65°, 0: a CPU trial cost the usual families, models/README.md),
# THIN (share of crops whose rain layer is scaled by ×0.4–0.67, as in a photo downscaled for the
# web, 0), GRAINY (share of crops whose rain is short, soft and uneven, as heavy rain in a
# compressed web photo: rain.grainy_rain, 0), GRAIN (share of crops with fine scene texture
# painted in, the counterweight to GRAINY: rain.scene_grain, 0), CLEAR (share of samples
# without rain or veil, whose input is their target: the scenes' own texture as a counterweight, 0),
# EMA (decay of the streak network's weight average, validated beside the raw weights in the
# log and written as streak/weights_ema.pt: 0.999; 0 for none; the veil half trains behind the
# raw weights.pt),
# VEIL (frames, the default: the veil half trains on whole frames composed at every step,
# train_frames.py `live`, with VEIL_BATCH 16, VEIL_FRAME 512, VEIL_LR 1e-4 and VEIL_CLEAR 0.25
# rain-free frames; crops: train_full.py on 256² crops, as before the forty-first session),
# TGLOBAL (crops only; 1: the veil's TNet gets the frame's pooled features, model.py Veil
# `tglobal`, when the initial veil has none; 0 by default: an initial veil with them keeps
# them), PY (python3).
set -euo pipefail
pack=$(realpath "$1"); out=$2; size=${3:-quality}; smin=${4:-5.5}; vmin=${5:-1.5}
mkdir -p "$out"; out=$(realpath "$out")
here="$(cd "$(dirname "$0")" && pwd)"
dev=${DERAIN_TRAIN_DEVICE:-cuda}
py=${PY:-python3}
count=${BANK_COUNT:-1200}
banks_dir=${BANKS:-/tmp/derain-banks}
t0=$(date +%s)
exec > >(tee -a "$out/gpu-train.log") 2>&1
echo "gpu-train: size $size, streak $smin min, veil $vmin min, device $dev, $(date -u)"
if [ ! -x "$pack/derain" ]; then
  xz -dc "$pack/derain.xz" > "$pack/derain" && chmod +x "$pack/derain"
fi
for st in reference dense screen layered light; do
  [ -f "$banks_dir/$st/manifest.jsonl" ] || \
    "$pack/derain" synth-bank --style "$st" --count "$count" --size 512x512 --seed 11 \
      --out "$banks_dir/$st"
done
echo "banks ready in $(( $(date +%s) - t0 )) s"
banks=("$banks_dir"/{reference,dense,screen,layered,light})
cd "$here"
export PYTHONUNBUFFERED=1
init_streak=()
[ -f "$pack/init/streak_$size.pt" ] && init_streak=(--init "$pack/init/streak_$size.pt")
"$py" -m derain_train.train_streak --banks "${banks[@]}" --clean "$pack/clean" --size "$size" \
  --out "$out/streak" --minutes "$smin" --every-min 1 --device "$dev" \
  --batch "${BATCH:-48}" --crop "${CROP:-256}" --lr "${LR:-5e-4}" --bars "${BARS:-0.3}" \
  --rotate "${ROTATE:-0}" --thin "${THIN:-0}" --grainy "${GRAINY:-0}" \
  --grain "${GRAIN:-0}" --clear "${CLEAR:-0}" --ema "${EMA:-0.999}" "${init_streak[@]}"
if [ "${VEIL:-frames}" = frames ]; then
  # Whole frames composed at every step behind the new streak network (train_frames live): the
  # shipped pair was trained on whole frames (+0.08 to +0.52 dB on the test sets over crops).
  "$py" -m derain_train.train_frames live --banks "${banks[@]}" --clean "$pack/clean" \
    --size "$size" --streak "$out/streak/weights.pt" --init-veil "$pack/init/veil_$size.pt" \
    --out "$out/veil" --minutes "$vmin" --every-min 1 --device "$dev" \
    --batch "${VEIL_BATCH:-16}" --frame "${VEIL_FRAME:-512}" --lr "${VEIL_LR:-1e-4}" \
    --clear "${VEIL_CLEAR:-0.25}" --grainy 0.1
else
  tglobal=()
  [ "${TGLOBAL:-0}" = 1 ] && tglobal=(--tglobal)
  "$py" -m derain_train.train_full --banks "${banks[@]}" --clean "$pack/clean" --size "$size" \
    --streak "$out/streak/weights.pt" --init-veil "$pack/init/veil_$size.pt" --out "$out/veil" \
    --minutes "$vmin" --every-min 1 --device "$dev" --batch 16 --crop 256 "${tglobal[@]}"
fi
echo "gpu-train done in $(( $(date +%s) - t0 )) s"
