"""Train the attention-pooled atmospheric light (model.py `APool`) behind a frozen streak
network and frozen veil networks, on cached working-resolution crops. Quick on a CPU (the
networks in front run once per crop; a step is a few small convolutions at 1/2 and 1/4 of the
working resolution):

    python -m derain_train.train_apool --banks BANK/* --clean CLEAN --size quality \\
        --streak weights/streak_quality.pt --veil weights/veil_quality.pt \\
        --out runs/apool-quality --samples 800 --steps 2000 --threads 2

The first half of the steps trains the pooled A alone, the second half (at a quarter of the
learning rate) also its mix with the ANet's A. Loss: L1 of J₁ = (I_s − (1 − T)·A)/max(T, t0)
against the clean image at the working resolution (the refinement stage is left out)
+ 10·w·‖A − A_gt‖², w as in train_full.py.
Writes `weights.pt`, a FullModelV2 state dict (veil with its APool, refinement unchanged)
that export_full.py and train_full.py read, and `log.jsonl` with the validation line:
the Y-PSNR of J₁ per family with the ANet's A and with APool's, and the mean |A − A_gt| on
veiled crops.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import model as M
from .export_full import load_streak, load_veil_refine
from .guided_filter import downsample
from .model import APool, FullModelV2, veil_input
from .rain import CleanImages, Composer, RainBank, clean_paths
from .streak import remove_rain
from .train_streak import ypsnr

FACTOR = 2


@torch.no_grad()
def build_cache(model, composer, n, crop, rng):
    """Working-resolution tensors of `n` composed crops, the frozen networks run once."""
    keys = ("x", "t", "g", "a_gt", "a_old", "t_gt")
    c = {k: [] for k in keys}
    fams = []
    for _ in range(math.ceil(n / 8)):
        b = composer.batch(8, crop, rng)
        i_s, _ = remove_rain(model.streak, b["in"])
        x = veil_input(i_s, FACTOR)
        t_lo, a = model.veil(x)
        for k, v in zip(keys, (x, t_lo, downsample(b["gt"], FACTOR), b["atm"], a,
                               downsample(b["trans"], FACTOR))):
            c[k].append(v)
        fams += list(b["family"])
    return {k: torch.cat(v)[:n] for k, v in c.items()}, fams[:n]


def invert(c, a, idx):
    """J₁ of the cached crops `idx` with the atmospheric light `a`."""
    return M.invert(c["x"][idx, :3], c["t"][idx], a)


@torch.no_grad()
def validate(pool, val, fams, mix):
    idx = torch.arange(len(fams))
    a_new = pool(val["x"], val["t"], val["a_old"], mix)
    veiled = (1 - val["t_gt"]).mean(dim=(1, 2, 3)) > 0.1
    rec = {}
    for name, a in (("anet", val["a_old"]), ("apool", a_new)):
        p = torch.tensor(ypsnr(invert(val, a, idx), val["g"]))
        rec[name] = {f: round(float(p[[x == f for x in fams]].mean()), 2) for f in sorted(set(fams))}
        rec[name]["mean"] = round(float(p.mean()), 3)
        rec[name]["a_err"] = round(float((a - val["a_gt"]).abs().mean(1)[veiled].mean()), 4)
    return rec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--banks", nargs="+", required=True)
    ap.add_argument("--clean", required=True)
    ap.add_argument("--size", default="quality", choices=["fast", "quality"])
    ap.add_argument("--streak", required=True, help="streak weights (frozen)")
    ap.add_argument("--veil", required=True, help="veil + refinement (frozen): a FullModelV2 "
                    "state dict or a folder with stage1.onnx and stage2.onnx")
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples", type=int, default=800)
    ap.add_argument("--val-samples", type=int, default=160)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bank-limit", type=int, default=300)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = FullModelV2(args.size)
    model.streak = load_streak(args.streak, args.size).eval()
    veil, refine = load_veil_refine(args.veil)
    # Without an APool of its own (strict=False drops one the file has): the cache's a_old is
    # the ANet's A, the one the new APool mixes with.
    model.veil.load_state_dict(veil.state_dict(), strict=False)
    model.stage2.load_state_dict(refine.state_dict())
    model.eval()
    banks = [RainBank(b, limit=args.bank_limit) for b in args.banks]
    t0 = time.time()
    train, _ = build_cache(model, Composer(CleanImages(clean_paths(args.clean, "train")), banks),
                           args.samples, args.crop, np.random.default_rng(args.seed))
    val, vfams = build_cache(model, Composer(CleanImages(clean_paths(args.clean, "val")), banks),
                             args.val_samples, args.crop, np.random.default_rng(12345))
    print(f"cached {args.samples} + {args.val_samples} crops in {time.time() - t0:.0f} s", flush=True)

    pool = APool()
    opt = torch.optim.Adam(pool.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    log = open(out / "log.jsonl", "a")

    def report(step, mix):
        rec = {"step": step, "seconds": round(time.time() - t0), "mix": mix,
               "val": validate(pool, val, vfams, mix)}
        print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n")
        log.flush()

    report(0, False)
    for step in range(args.steps):
        # First half: the pooled A alone; second half: its mix with the ANet's A as well.
        mix = step >= args.steps // 2
        lr = args.lr * (1 if not mix else 0.25)
        idx = torch.randint(0, args.samples, (args.batch,), generator=gen)
        a = pool(train["x"][idx], train["t"][idx], train["a_old"][idx], mix)
        w_a = ((1 - train["t_gt"][idx]).mean(dim=(1, 2, 3)) / 0.1).clamp(max=1)
        loss = (F.l1_loss(invert(train, a, idx), train["g"][idx])
                + 10 * (w_a * ((a - train["a_gt"][idx]) ** 2).mean(1)).mean())
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (step % (args.steps // 2)) / (args.steps // 2)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 250 == 0 or step + 1 == args.steps:
            report(step + 1, mix)
    model.veil.apool = pool
    torch.save(model.state_dict(), out / "weights.pt")


if __name__ == "__main__":
    main()
