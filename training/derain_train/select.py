"""Choose streak weights by validation only: the mean Y-PSNR gain of I_s = I − R over the
input against the rendered veiled targets, on crops rendered from the validation clean
images (never the test images), for each weights file given:

    python -m derain_train.select --banks BANK/* --clean CLEAN --size quality \\
        weights/streak_quality.pt runs/quality/weights.pt

A new file replaces the shipped one only if its gain is higher (models/README.md).
"""

import argparse

import torch

from .export_full import load_streak
from .rain import CleanImages, Composer, RainBank, clean_paths
from .train_streak import make_val, mean_gain, validate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--banks", nargs="+", required=True, help="derain synth-bank folders")
    ap.add_argument("--clean", required=True, help="folder of clean images (project split)")
    ap.add_argument("--size", default="quality", choices=["fast", "quality"])
    ap.add_argument("--per-family", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("weights", nargs="+")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    banks = [RainBank(b, device=dev) for b in args.banks]
    val_c = CleanImages(clean_paths(args.clean, "val"), device=dev)
    val = make_val(Composer(val_c, banks, device=dev), args.per_family, args.crop, seed=args.seed)
    for path in args.weights:
        rows = validate(load_streak(path, args.size).to(dev), val, dev, False)
        gain = mean_gain(rows)
        per = ", ".join(f"{k} {o - i:+.2f}" for k, (o, i) in rows.items())
        print(f"{path}: gain {gain:.3f} dB ({per})", flush=True)


if __name__ == "__main__":
    main()
