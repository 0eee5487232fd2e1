"""Choose streak weights by validation only: the mean Y-PSNR gain of I_s = I − R over the
input against the rendered veiled targets, on crops rendered from the validation clean
images (never the test images), for each weights file given:

    python -m derain_train.select --banks BANK/* --clean CLEAN --size quality \\
        weights/streak_quality.pt runs/quality/weights.pt

A new file replaces the shipped one only if its gain is higher (models/README.md).

With `--harm N` it also scores what the network takes from rain-free crops (I = J, so
I_s should equal I): N crops of the validation images as they are ("clear") and the same
crops with opaque scene bars painted in (`rain.scene_bars`: lane markings, railings,
slats), as one pooled Y-PSNR each; higher is less harm.

With `--slanted N` it also scores the gain on N crops per family whose rain layer is turned
by 20–65° (`rain.RainBank.crops`: wind-slanted rain, which the families alone rarely draw),
as one more mean gain ("slanted").

With `--thin N` it also scores the gain on N crops of 192² per family whose rain layer is
scaled by ×0.4–0.67 (`rain.THIN`: a photo downscaled for the web, streaks a pixel wide and
dense), as one more mean gain ("thin").

With `--grainy N` it also scores the gain on N crops per family whose rain is short, soft and
uneven (`rain.grainy_rain`: heavy rain in a compressed web photo), as one more ("grainy").
"""

import argparse

import numpy as np
import torch

from .export_full import load_streak
from .rain import CleanImages, Composer, RainBank, clean_paths, luma, scene_bars
from .streak import remove_rain
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
    ap.add_argument("--harm", type=int, default=0, help="rain-free crops to score (0 = none)")
    ap.add_argument("--slanted", type=int, default=0,
                    help="crops per family with the rain turned by 20–65° (0 = none)")
    ap.add_argument("--thin", type=int, default=0,
                    help="crops per family with the rain scaled by ×0.4–0.67 (0 = none)")
    ap.add_argument("--grainy", type=int, default=0,
                    help="crops per family with short, soft, uneven rain (0 = none)")
    ap.add_argument("weights", nargs="+")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    banks = [RainBank(b, device=dev) for b in args.banks]
    val_c = CleanImages(clean_paths(args.clean, "val"), device=dev)
    val = make_val(Composer(val_c, banks, device=dev), args.per_family, args.crop, seed=args.seed)
    slanted = None
    if args.slanted:
        turned = Composer(val_c, banks, device=dev, rotate=1.0)
        slanted = make_val(turned, args.slanted, args.crop, seed=args.seed + 2)
    thin = None
    if args.thin:
        small = Composer(val_c, banks, device=dev, thin=1.0)
        thin = make_val(small, args.thin, 192, seed=args.seed + 3)
    grainy = None
    if args.grainy:
        grainy = make_val(Composer(val_c, banks, device=dev, grainy=1.0), args.grainy,
                          args.crop, seed=args.seed + 4)
    if args.harm:
        clear = rain_free_sets(val_c, args.harm, args.crop, args.seed + 1)
    for path in args.weights:
        net = load_streak(path, args.size).to(dev)
        line = f"{path}: gain {gains(net, val, dev)}"
        if slanted is not None:
            line += f"; slanted {gains(net, slanted, dev)}"
        if thin is not None:
            line += f"; thin {gains(net, thin, dev)}"
        if grainy is not None:
            line += f"; grainy {gains(net, grainy, dev)}"
        if args.harm:
            line += "; harm " + ", ".join(f"{k} {v:.2f} dB" for k, v in harm(net, clear).items())
        print(line, flush=True)


def gains(net, sets, dev):
    """The mean gain over the families and each family's, as printed."""
    rows = validate(net, sets, dev, False)
    per = ", ".join(f"{k} {o - i:+.2f}" for k, (o, i) in rows.items())
    return f"{mean_gain(rows):.3f} dB ({per})"


def rain_free_sets(clean, n, crop, seed):
    """The rain-free crops `--harm` scores: `n` crops of `clean` (CleanImages) as they are
    ("clear") and the same with opaque scene bars painted in ("bars"), drawn from `seed`."""
    rng = np.random.default_rng(seed)
    plain = clean.batch(n, crop, rng)
    return {"clear": plain, "bars": scene_bars(plain, rng, 1.0)}


def pooled_ypsnr(a, b):
    """One Y-PSNR in dB over the whole of the [B, 3, H, W] batches (the harm lines)."""
    mse = ((luma(a) - luma(b)) ** 2).mean().clamp(min=1e-10)
    return float(10 * torch.log10(1 / mse))


@torch.no_grad()
def harm(net, sets):
    """Pooled Y-PSNR of I_s against I on rain-free crops, per set."""
    net.eval()
    return {name: pooled_ypsnr(remove_rain(net, x)[0], x) for name, x in sets.items()}


if __name__ == "__main__":
    main()
