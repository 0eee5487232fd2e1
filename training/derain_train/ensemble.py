"""Test-time ensembles of the streak network: what each is worth on the validation crops.

The shipped pipeline has one of them, the mirror ensemble (src/engine/cpu/full.rs
`rain_layer`, `--ensemble on`):

    R = ½(StreakNet(I) + mirror(StreakNet(mirror(I))))     mirror: left to right

This script scores it beside the alternatives that were tried (models/README.md, "The mirror
ensemble"): "four" also averages the frames flipped upside down and both ways; "twice" runs
the network again on its own I_s. Per family, the mean Y-PSNR gain of I_s over the input
against the rendered veiled targets (as `select`), and what each takes from rain-free crops
as they are and with scene bars (as `select --harm`):

    python -m derain_train.ensemble --banks BANK/* --clean CLEAN --size quality \\
        --weights weights/streak_quality.pt
"""

import argparse

import numpy as np
import torch

from .export_full import load_streak
from .rain import CleanImages, Composer, RainBank, clean_paths
from .select import pooled_ypsnr, rain_free_sets
from .streak import remove_rain
from .train_streak import make_val, ypsnr


def mirror_ensemble(net, img):
    """I_s with R = ½(net(I) + mirror(net(mirror(I)))), clamped to [0, 1] (the shipped one)."""
    _, r = remove_rain(net, img)
    _, rm = remove_rain(net, img.flip(-1))
    return (img - 0.5 * (r + rm.flip(-1))).clamp(0, 1)


def variants(net, x):
    """I_s of `x` by each way of running the network."""
    plain, _ = remove_rain(net, x)
    mirrored = mirror_ensemble(net, x)
    upside = mirror_ensemble(net, x.flip(-2)).flip(-2)
    return {
        "plain": plain,
        "mirror": mirrored,
        "four": 0.5 * (mirrored + upside),
        "twice": remove_rain(net, plain)[0],
    }


@torch.no_grad()
def score(net, val, clear):
    """{variant: {family or rain-free set: dB}}: gains per family, pooled Y-PSNR of I_s
    against I on the rain-free sets."""
    net.eval()
    out = {}
    for fam, b in val.items():
        base = np.mean(ypsnr(b["in"], b["veiled"]))
        for k, v in variants(net, b["in"]).items():
            out.setdefault(k, {})[fam] = float(np.mean(ypsnr(v, b["veiled"])) - base)
    for name, x in clear.items():
        for k, v in variants(net, x).items():
            out[k][name] = pooled_ypsnr(v, x)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--banks", nargs="+", required=True, help="derain synth-bank folders")
    ap.add_argument("--clean", required=True, help="folder of clean images (project split)")
    ap.add_argument("--size", default="quality", choices=["fast", "quality"])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--per-family", type=int, default=8)
    ap.add_argument("--harm", type=int, default=12, help="rain-free crops")
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    banks = [RainBank(b) for b in args.banks]
    val_c = CleanImages(clean_paths(args.clean, "val"))
    val = make_val(Composer(val_c, banks), args.per_family, 256, seed=args.seed)
    clear = rain_free_sets(val_c, args.harm, 256, args.seed + 1)
    net = load_streak(args.weights, args.size)
    for k, r in score(net, val, clear).items():
        fams = [f for f in r if f not in clear]
        print(f"{args.size} {k}: gain {np.mean([r[f] for f in fams]):.3f} dB ("
              + ", ".join(f"{f} {r[f]:+.2f}" for f in fams) + "); harm "
              + ", ".join(f"{n} {r[n]:.2f} dB" for n in clear), flush=True)


if __name__ == "__main__":
    main()
